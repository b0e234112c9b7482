//! The counted Wasm stack limit: where a deep recursion traps, as a function of the module's
//! bytes and the deployment record alone.
//!
//! wasmtime's own limit (`max_wasm_stack`) counts native bytes, and how many native bytes a
//! Wasm frame takes depends on Cranelift's code for the member's CPU and on how wasmtime itself
//! was built, so the same recursion trapped at different depths on different members. So before
//! a guest is compiled, every core module in it is rewritten here to keep its own count (the
//! idea of paritytech's `wasm-instrument` stack limiter; this code is ours): a mutable `i32`
//! global holds the stack height in slots; every defined function adds its static cost on entry,
//! traps if that takes the height past the limit, and subtracts the cost again on every way out
//! (the end of its body, a branch to its outermost label, `return`, a tail call). A function's
//! cost is [`FRAME_SLOTS`] + its parameters + its locals + the most values its operand stack
//! can hold (computed from the validator's own arities, so an over-estimate at worst). The
//! limit in slots is the deployment's `stack_bytes` / [`BYTES_PER_SLOT`]; wasmtime's byte limit
//! stays as a backstop [`BACKSTOP_FACTOR`] times higher (docs/decisions.md).
//!
//! An overrun calls a function of its own, named [`EXHAUSTED_FUNC`] in the name section, which
//! executes `unreachable`: the runtime tells that trap from the guest's own `unreachable` by the
//! innermost frame's name, and reports it as stack exhaustion.
//!
//! The rewriting is a pure function of the input bytes and the limit, so every member compiles
//! the same code.

use wasm_encoder::reencode::{Reencode as _, RoundtripReencoder};
use wasm_encoder::{
    BlockType as EncBlockType, CodeSection, ConstExpr, Function, FunctionSection, GlobalSection, GlobalType,
    Instruction, NameMap, NameSection, RawSection, TypeSection, ValType,
};
use wasmparser::{
    BlockType, Chunk, FrameKind, FuncType, FunctionBody, ModuleArity, Name, Operator, Parser, Payload, SubType, TypeRef,
};

/// Why a module's stack cannot be counted: bytes that wasmtime would accept but this rewriting
/// cannot handle (`runtime.rs` asks wasmtime first, so bytes that are not Wasm get its words).
/// The text says where, outermost first, like a chain of contexts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InstrumentError(String);

type Result<T, E = InstrumentError> = std::result::Result<T, E>;

impl From<wasmparser::BinaryReaderError> for InstrumentError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        InstrumentError(e.to_string())
    }
}

impl<E: std::fmt::Display> From<wasm_encoder::reencode::Error<E>> for InstrumentError {
    fn from(e: wasm_encoder::reencode::Error<E>) -> Self {
        InstrumentError(e.to_string())
    }
}

/// Says what was being done when an error happened (or a value was missing).
trait Context<T> {
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;

    fn context(self, what: &str) -> Result<T>
    where
        Self: Sized,
    {
        self.with_context(|| what.to_string())
    }
}

impl<T> Context<T> for Option<T> {
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| InstrumentError(what()))
    }
}

impl<T, E: Into<InstrumentError>> Context<T> for std::result::Result<T, E> {
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| InstrumentError(format!("{}: {}", what(), e.into())))
    }
}

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(InstrumentError(format!($($arg)*)))
    };
}

/// Bytes of a deployment's `stack_bytes` per counted slot: a slot is one Wasm value (an `i64`
/// or `f64` is 8 bytes; a `v128` counts as one slot too, which the backstop covers).
pub const BYTES_PER_SLOT: u64 = 8;

/// Slots every call costs on top of its values: the return address, the frame pointer, the
/// callee-saved registers a native frame keeps. Without it a function with no parameters,
/// locals or operands would recurse for free.
pub const FRAME_SLOTS: u32 = 8;

/// wasmtime's native `max_wasm_stack` is this many times the deployment's `stack_bytes`, so the
/// counted limit always trips first: a counted slot is 8 bytes, and no native frame was measured
/// above 2 native bytes per counted byte (every value a live v128, 16 bytes in a spill slot);
/// most take under 1 (docs/decisions.md).
pub const BACKSTOP_FACTOR: u64 = 4;

/// The name section's name of the function an overrun calls.
pub const EXHAUSTED_FUNC: &str = "wasmraft:stack-exhausted";

/// Whether a trap is the counted limit's: an `unreachable` in [`EXHAUSTED_FUNC`], the
/// innermost frame of the trap's backtrace.
pub fn is_counted_overrun(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(|bt| bt.frames().first())
        .is_some_and(|f| f.func_name() == Some(EXHAUSTED_FUNC))
}

/// The counted limit, in slots, of a deployment allowing `stack_bytes`.
pub fn limit_slots(stack_bytes: u64) -> u32 {
    u32::try_from(stack_bytes / BYTES_PER_SLOT).unwrap_or(u32::MAX)
}

/// wasmtime's native stack limit for a deployment allowing `stack_bytes`: the backstop.
pub fn native_backstop_bytes(stack_bytes: u64) -> u64 {
    stack_bytes.saturating_mul(BACKSTOP_FACTOR)
}

/// `wasm` (a component or a core module) with every core module in it counting its stack
/// against `limit` slots.
pub fn instrument(wasm: &[u8], limit: u32) -> Result<Vec<u8>> {
    if Parser::is_component(wasm) { instrument_component(wasm, limit) } else { instrument_module(wasm, limit) }
}

/// A component with its core modules (and those of nested components) instrumented; every
/// other section is copied as it is.
fn instrument_component(wasm: &[u8], limit: u32) -> Result<Vec<u8>> {
    let mut out = wasm.get(..8).context("wasmraft: the guest is not a component")?.to_vec();
    let mut parser = Parser::new(0);
    let mut rest = wasm;
    loop {
        let (payload, consumed) = match parser.parse(rest, true)? {
            Chunk::Parsed { consumed, payload } => (payload, consumed),
            Chunk::NeedMoreData(_) => bail!("wasmraft: the guest component is truncated"),
        };
        rest = &rest[consumed..];
        let is_module = matches!(payload, Payload::ModuleSection { .. });
        match payload {
            Payload::Version { .. } => {}
            Payload::End(_) => break,
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => {
                let nested = wasm.get(unchecked_range.clone()).context("wasmraft: a nested module is truncated")?;
                let (id, bytes) = if is_module {
                    (wasm_encoder::ComponentSectionId::CoreModule, instrument_module(nested, limit)?)
                } else {
                    (wasm_encoder::ComponentSectionId::Component, instrument_component(nested, limit)?)
                };
                // The parser has moved past the nested bytes; `consumed` covered only the header.
                rest = rest.get(unchecked_range.len()..).context("wasmraft: a nested module is truncated")?;
                push_section(&mut out, id as u8, &bytes);
            }
            other => {
                let (id, range) = other.as_section().context("wasmraft: an unexpected component payload")?;
                push_section(&mut out, id, &wasm[range]);
            }
        }
    }
    Ok(out)
}

fn push_section(out: &mut Vec<u8>, id: u8, data: &[u8]) {
    use wasm_encoder::Encode as _;
    out.push(id);
    data.len().encode(out);
    out.extend_from_slice(data);
}

/// What the rewriting needs to know about a module before it rewrites it.
#[derive(Default)]
struct ModuleFacts {
    types: Vec<SubType>,
    /// The type of every function, imported ones first.
    func_types: Vec<u32>,
    imported_funcs: u32,
    globals: u32,
    tag_types: Vec<u32>,
    has_code: bool,
}

impl ModuleFacts {
    fn read(wasm: &[u8]) -> Result<ModuleFacts> {
        let mut facts = ModuleFacts::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload? {
                Payload::TypeSection(s) => {
                    for group in s {
                        facts.types.extend(group?.into_types());
                    }
                }
                Payload::ImportSection(s) => {
                    for import in s.into_imports() {
                        match import?.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                facts.func_types.push(t);
                                facts.imported_funcs += 1;
                            }
                            TypeRef::Global(_) => facts.globals += 1,
                            TypeRef::Tag(t) => facts.tag_types.push(t.func_type_idx),
                            _ => {}
                        }
                    }
                }
                Payload::FunctionSection(s) => {
                    for t in s {
                        facts.func_types.push(t?);
                    }
                }
                Payload::GlobalSection(s) => facts.globals += s.count(),
                Payload::TagSection(s) => {
                    for t in s {
                        facts.tag_types.push(t?.func_type_idx);
                    }
                }
                Payload::CodeSectionStart { count, .. } => facts.has_code = count > 0,
                _ => {}
            }
        }
        Ok(facts)
    }

    fn func_type(&self, ty: u32) -> Option<&FuncType> {
        match &self.types.get(ty as usize)?.composite_type.inner {
            wasmparser::CompositeInnerType::Func(f) => Some(f),
            _ => None,
        }
    }
}

/// A core module counting its stack against `limit` slots. A module without code is returned
/// as it is.
pub fn instrument_module(wasm: &[u8], limit: u32) -> Result<Vec<u8>> {
    let facts = ModuleFacts::read(wasm).context("wasmraft: reading a guest module")?;
    if !facts.has_code {
        return Ok(wasm.to_vec());
    }
    let defined = facts.func_types.len() as u32 - facts.imported_funcs;
    let exhausted_type = facts.types.len() as u32;
    let exhausted_func = facts.func_types.len() as u32;
    let height = facts.globals;
    let mut module = wasm_encoder::Module::new();
    let mut global_done = false;
    let mut names_done = false;
    let mut code: Option<(CodeSection, u32)> = None;
    let mut next_defined = facts.imported_funcs;
    // Block types of functions with several results, appended to the type section.
    let mut multi: Vec<(u32, u32)> = Vec::new();
    for (i, &t) in facts.func_types.iter().enumerate().skip(facts.imported_funcs as usize) {
        if facts.func_type(t).is_some_and(|f| f.results().len() > 1) {
            multi.push((i as u32, exhausted_type + 1 + multi.len() as u32));
        }
    }
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        let before_global = matches!(
            payload,
            Payload::ExportSection(_)
                | Payload::StartSection { .. }
                | Payload::ElementSection(_)
                | Payload::DataCountSection { .. }
                | Payload::CodeSectionStart { .. }
                | Payload::DataSection(_)
        );
        if before_global && !global_done {
            let mut globals = GlobalSection::new();
            push_height_global(&mut globals);
            module.section(&globals);
            global_done = true;
        }
        match payload {
            Payload::Version { .. } => {}
            Payload::TypeSection(s) => {
                let mut types = TypeSection::new();
                RoundtripReencoder.parse_type_section(&mut types, s)?;
                types.ty().function([], []);
                for &(f, _) in &multi {
                    let ty = facts
                        .func_type(facts.func_types[f as usize])
                        .context("wasmraft: a function without a function type")?;
                    let results: Vec<ValType> =
                        ty.results().iter().map(|&v| RoundtripReencoder.val_type(v)).collect::<Result<_, _>>()?;
                    types.ty().function([], results);
                }
                module.section(&types);
            }
            Payload::FunctionSection(s) => {
                let mut funcs = FunctionSection::new();
                for t in s {
                    funcs.function(t?);
                }
                funcs.function(exhausted_type);
                module.section(&funcs);
            }
            Payload::GlobalSection(s) => {
                let mut globals = GlobalSection::new();
                RoundtripReencoder.parse_global_section(&mut globals, s)?;
                push_height_global(&mut globals);
                module.section(&globals);
                global_done = true;
            }
            Payload::CodeSectionStart { .. } => code = Some((CodeSection::new(), 0)),
            Payload::CodeSectionEntry(body) => {
                let (section, seen) = code.as_mut().context("wasmraft: code outside the code section")?;
                let ty = facts.func_types[next_defined as usize];
                let block = multi.iter().find(|&&(f, _)| f == next_defined).map(|&(_, t)| t);
                section.function(
                    &instrument_function(&facts, ty, block, body, height, exhausted_func, limit)
                        .with_context(|| format!("wasmraft: counting the stack of function {next_defined}"))?,
                );
                next_defined += 1;
                *seen += 1;
                if *seen == defined {
                    let mut exhausted = Function::new([]);
                    exhausted.instruction(&Instruction::Unreachable).instruction(&Instruction::End);
                    section.function(&exhausted);
                    module.section(&*section);
                }
            }
            Payload::CustomSection(c) if c.name() == "name" => {
                if let wasmparser::KnownCustom::Name(reader) = c.as_known() {
                    module.section(&names_with_exhausted(reader, exhausted_func)?);
                    names_done = true;
                }
            }
            Payload::End(_) => {}
            other => {
                let (id, range) = other.as_section().context("wasmraft: an unexpected module payload")?;
                module.section(&RawSection { id, data: &wasm[range] });
            }
        }
    }
    if !names_done {
        let mut names = NameSection::new();
        let mut map = NameMap::new();
        map.append(exhausted_func, EXHAUSTED_FUNC);
        names.functions(&map);
        module.section(&names);
    }
    Ok(module.finish())
}

fn push_height_global(globals: &mut GlobalSection) {
    globals.global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(0));
}

/// The module's name section, with [`EXHAUSTED_FUNC`] added to its function names.
fn names_with_exhausted(reader: wasmparser::NameSectionReader<'_>, exhausted_func: u32) -> Result<NameSection> {
    let mut names = NameSection::new();
    let mut done = false;
    let ours = |map: &mut NameMap| map.append(exhausted_func, EXHAUSTED_FUNC);
    for sub in reader {
        match sub? {
            Name::Function(existing) => {
                let mut map = NameMap::new();
                for n in existing {
                    let n = n?;
                    if n.index < exhausted_func {
                        map.append(n.index, n.name);
                    }
                }
                ours(&mut map);
                names.functions(&map);
                done = true;
            }
            Name::Module { name, .. } => names.module(name),
            other => {
                if !done {
                    let mut map = NameMap::new();
                    ours(&mut map);
                    names.functions(&map);
                    done = true;
                }
                RoundtripReencoder.parse_custom_name_subsection(&mut names, other)?;
            }
        }
    }
    if !done {
        let mut map = NameMap::new();
        ours(&mut map);
        names.functions(&map);
    }
    Ok(names)
}

/// `body` (of type `ty`) counting itself: the prologue adds its cost to the height global and
/// calls `exhausted` past `limit`; the original body runs inside a block, so every way out of it
/// but `return` and tail calls (which get the epilogue in front) reaches the epilogue after it.
fn instrument_function(
    facts: &ModuleFacts,
    ty: u32,
    multi_block: Option<u32>,
    body: FunctionBody<'_>,
    height: u32,
    exhausted: u32,
    limit: u32,
) -> Result<Function> {
    let func_ty = facts.func_type(ty).context("not a function type")?;
    let mut locals = Vec::new();
    let mut local_count: u64 = 0;
    for l in body.get_locals_reader()? {
        let (n, t) = l?;
        local_count += u64::from(n);
        locals.push((n, RoundtripReencoder.val_type(t)?));
    }
    let cost =
        u64::from(FRAME_SLOTS) + func_ty.params().len() as u64 + local_count + max_operand_height(facts, ty, &body)?;
    // Above the limit, the first call traps; clamping keeps the arithmetic in i32.
    let cost = i32::try_from(cost.min(u64::from(limit) + 1)).unwrap_or(i32::MAX);
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let mut f = Function::new(locals);
    let epilogue = |f: &mut Function| {
        f.instruction(&Instruction::GlobalGet(height))
            .instruction(&Instruction::I32Const(cost))
            .instruction(&Instruction::I32Sub)
            .instruction(&Instruction::GlobalSet(height));
    };
    // The height and the limit stay far below 2^31 (the limit is at most a few million slots and
    // a cost is clamped at limit + 1), so the signed comparison is exact.
    f.instruction(&Instruction::GlobalGet(height))
        .instruction(&Instruction::I32Const(cost))
        .instruction(&Instruction::I32Add)
        .instruction(&Instruction::I32Const(limit))
        .instruction(&Instruction::I32GtS)
        .instruction(&Instruction::If(EncBlockType::Empty))
        .instruction(&Instruction::Call(exhausted))
        .instruction(&Instruction::End)
        .instruction(&Instruction::GlobalGet(height))
        .instruction(&Instruction::I32Const(cost))
        .instruction(&Instruction::I32Add)
        .instruction(&Instruction::GlobalSet(height));
    let block = match (func_ty.results(), multi_block) {
        ([], _) => EncBlockType::Empty,
        ([one], _) => EncBlockType::Result(RoundtripReencoder.val_type(*one)?),
        (_, Some(t)) => EncBlockType::FunctionType(t),
        (_, None) => bail!("no block type for a function with several results"),
    };
    f.instruction(&Instruction::Block(block));
    for op in body.get_operators_reader()? {
        let op = op?;
        if matches!(
            op,
            Operator::Return
                | Operator::ReturnCall { .. }
                | Operator::ReturnCallIndirect { .. }
                | Operator::ReturnCallRef { .. }
        ) {
            epilogue(&mut f);
        }
        f.instruction(&RoundtripReencoder.instruction(op)?);
    }
    // The body's own final `end` closed the block.
    epilogue(&mut f);
    f.instruction(&Instruction::End);
    Ok(f)
}

/// One open block while the operand stack is measured.
struct Frame {
    ty: BlockType,
    kind: FrameKind,
    /// The operand stack height under the block's parameters.
    floor: u64,
}

struct Arity<'a> {
    facts: &'a ModuleFacts,
    frames: Vec<Frame>,
}

impl ModuleArity for Arity<'_> {
    fn sub_type_at(&self, type_idx: u32) -> Option<&SubType> {
        self.facts.types.get(type_idx as usize)
    }
    fn tag_type_arity(&self, at: u32) -> Option<(u32, u32)> {
        let t = self.facts.func_type(*self.facts.tag_types.get(at as usize)?)?;
        Some((t.params().len() as u32, t.results().len() as u32))
    }
    fn type_index_of_function(&self, function_idx: u32) -> Option<u32> {
        self.facts.func_types.get(function_idx as usize).copied()
    }
    fn func_type_of_cont_type(&self, c: &wasmparser::ContType) -> Option<&FuncType> {
        self.facts.func_type(c.0.as_module_index()?)
    }
    fn sub_type_of_ref_type(&self, rt: &wasmparser::RefType) -> Option<&SubType> {
        self.sub_type_at(rt.type_index()?.as_module_index()?)
    }
    fn control_stack_height(&self) -> u32 {
        self.frames.len() as u32
    }
    fn label_block(&self, depth: u32) -> Option<(BlockType, FrameKind)> {
        let f = self.frames.get(self.frames.len().checked_sub(1 + depth as usize)?)?;
        Some((f.ty, f.kind))
    }
}

/// The most values the operand stack of `body` (of type `ty`) can hold, from the arity of
/// every operator: exact for reachable code; unreachable code may only over-estimate it.
fn max_operand_height(facts: &ModuleFacts, ty: u32, body: &FunctionBody<'_>) -> Result<u64> {
    let mut arity =
        Arity { facts, frames: vec![Frame { ty: BlockType::FuncType(ty), kind: FrameKind::Block, floor: 0 }] };
    let (mut h, mut max) = (0u64, 0u64);
    for op in body.get_operators_reader()? {
        let op = op?;
        let (pop, push) = op.operator_arity(&arity).with_context(|| format!("no arity for {op:?}"))?;
        let (pop, push) = (u64::from(pop), u64::from(push));
        let floor = arity.frames.last().map_or(0, |f| f.floor);
        let after_pop = h.saturating_sub(pop).max(floor);
        match op {
            Operator::Block { blockty } | Operator::Loop { blockty } | Operator::If { blockty } => {
                let kind = match op {
                    Operator::Block { .. } => FrameKind::Block,
                    Operator::Loop { .. } => FrameKind::Loop,
                    _ => FrameKind::If,
                };
                arity.frames.push(Frame { ty: blockty, kind, floor: after_pop });
                h = after_pop + push;
            }
            Operator::TryTable { try_table } => {
                arity.frames.push(Frame { ty: try_table.ty, kind: FrameKind::TryTable, floor: after_pop });
                h = after_pop + push;
            }
            Operator::Else => {
                if let Some(f) = arity.frames.last_mut() {
                    f.kind = FrameKind::Else;
                }
                h = floor + push;
            }
            Operator::End => {
                arity.frames.pop();
                h = floor + push;
            }
            Operator::Try { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. }
            | Operator::Rethrow { .. } => {
                bail!("legacy exception handling is not supported")
            }
            Operator::Unreachable
            | Operator::Br { .. }
            | Operator::BrTable { .. }
            | Operator::Return
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::Throw { .. }
            | Operator::ThrowRef => h = floor,
            _ => h = after_pop + push,
        }
        max = max.max(h);
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        BlockType as B, CodeSection, ElementSection, Elements, ExportKind, ExportSection, Function, FunctionSection,
        Instruction as I, Module, RefType, TableSection, TableType, TypeSection, ValType,
    };
    use wasmtime::{Config, Engine, Instance, Store, Trap};

    use super::*;

    const LIMIT: u32 = 8 << 10;

    /// What `height()` reads with nothing else on the stack: its own cost (a frame and one
    /// operand).
    const OWN: i32 = FRAME_SLOTS as i32 + 1;

    /// A module whose function 0, `rec(n)`, recurses `n` calls deep (directly, or through a
    /// table when `indirect`) with `locals` locals of type `local`; function 1, `height()`,
    /// reads the global the instrumentation adds (index 0: the module has none of its own).
    fn recursion(locals: u32, local: ValType, indirect: bool) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        types.ty().function([], [ValType::I32]);
        let mut funcs = FunctionSection::new();
        funcs.function(0).function(1);
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            minimum: 1,
            maximum: Some(1),
            table64: false,
            shared: false,
        });
        let mut exports = ExportSection::new();
        exports.export("rec", ExportKind::Func, 0).export("height", ExportKind::Func, 1);
        let mut elems = ElementSection::new();
        elems.active(Some(0), &ConstExpr::i32_const(0), Elements::Functions([0].as_slice().into()));
        let mut rec = Function::new([(locals, local)]);
        rec.instruction(&I::LocalGet(0)).instruction(&I::If(B::Result(ValType::I32)));
        rec.instruction(&I::LocalGet(0)).instruction(&I::I32Const(1)).instruction(&I::I32Sub);
        if indirect {
            rec.instruction(&I::I32Const(0)).instruction(&I::CallIndirect { type_index: 0, table_index: 0 });
        } else {
            rec.instruction(&I::Call(0));
        }
        rec.instruction(&I::I32Const(1)).instruction(&I::I32Add);
        rec.instruction(&I::Else).instruction(&I::I32Const(0)).instruction(&I::End).instruction(&I::End);
        let mut height = Function::new([]);
        height.instruction(&I::GlobalGet(0)).instruction(&I::End);
        let mut code = CodeSection::new();
        code.function(&rec).function(&height);
        let mut m = Module::new();
        m.section(&types).section(&funcs).section(&tables).section(&exports).section(&elems).section(&code);
        m.finish()
    }

    fn engine() -> Engine {
        let mut c = Config::new();
        c.max_wasm_stack(native_backstop_bytes(u64::from(LIMIT) * BYTES_PER_SLOT) as usize);
        Engine::new(&c).unwrap()
    }

    /// Instruments `wasm` and instantiates it.
    fn instantiate(engine: &Engine, wasm: &[u8]) -> (Store<()>, Instance) {
        let counted = instrument(wasm, LIMIT).unwrap();
        wasmparser::validate(&counted).unwrap();
        assert_eq!(instrument(wasm, LIMIT).unwrap(), counted, "the same bytes in, the same bytes out");
        let module = wasmtime::Module::new(engine, &counted).unwrap();
        let mut store = Store::new(engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        (store, instance)
    }

    /// Calls that `rec` may make: `rec(n)` is `n + 1` calls, each costing the frame, one
    /// parameter, its locals and an operand stack of `stack` values.
    fn predicted_calls(locals: u32, stack: u32) -> u32 {
        LIMIT / (FRAME_SLOTS + 1 + locals + stack)
    }

    #[test]
    fn recursion_traps_at_the_depth_its_cost_predicts() {
        let engine = engine();
        for indirect in [false, true] {
            // The operand stack peaks at two values: `n` and `1`, or `n - 1` and the table index.
            let stack = 2;
            for (locals, ty) in [
                (0, ValType::I32),
                (1, ValType::I64),
                (10, ValType::I64),
                (100, ValType::F64),
                (50, ValType::V128),
                (1000, ValType::I32),
            ] {
                let (mut store, instance) = instantiate(&engine, &recursion(locals, ty, indirect));
                let rec = instance.get_typed_func::<i32, i32>(&mut store, "rec").unwrap();
                let height = instance.get_typed_func::<(), i32>(&mut store, "height").unwrap();
                let calls = predicted_calls(locals, stack) as i32;
                assert!(calls > 3, "{locals}");
                assert_eq!(rec.call(&mut store, calls - 1).unwrap(), calls - 1, "{locals} locals, indirect {indirect}");
                assert_eq!(
                    height.call(&mut store, ()).unwrap(),
                    OWN,
                    "a function that returns leaves the height as it was"
                );
                let e = rec.call(&mut store, calls).unwrap_err();
                assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached), "{e:?}");
                assert!(is_counted_overrun(&e), "{locals} locals, indirect {indirect}: {e:?}");
            }
        }
    }

    /// A guest's own `unreachable` is not a stack overrun.
    #[test]
    fn the_guests_own_unreachable_is_not_an_overrun() {
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        let mut exports = ExportSection::new();
        exports.export("boom", ExportKind::Func, 0);
        let mut f = Function::new([]);
        f.instruction(&I::Unreachable).instruction(&I::End);
        let mut code = CodeSection::new();
        code.function(&f);
        let mut m = Module::new();
        m.section(&types).section(&funcs).section(&exports).section(&code);
        let engine = engine();
        let (mut store, instance) = instantiate(&engine, &m.finish());
        let e = instance.get_typed_func::<(), ()>(&mut store, "boom").unwrap().call(&mut store, ()).unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
        assert!(!is_counted_overrun(&e));
    }

    /// Every way out of a function gives its cost back: `return`, a branch to the outermost
    /// label (conditional and from a table), the end, with one and with two results.
    #[test]
    fn every_way_out_leaves_the_height_as_it_was() {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        types.ty().function([], [ValType::I32]);
        types.ty().function([ValType::I32], [ValType::I32, ValType::I32]);
        let mut funcs = FunctionSection::new();
        funcs.function(0).function(1).function(2).function(0);
        let mut exports = ExportSection::new();
        exports.export("out", ExportKind::Func, 0).export("height", ExportKind::Func, 1).export(
            "pair",
            ExportKind::Func,
            3,
        );
        // out(n): n == 0 returns, n == 1 takes br_if to the function label, n == 2 br_table,
        // anything else falls off the end.
        let mut out = Function::new([]);
        out.instruction(&I::LocalGet(0)).instruction(&I::I32Eqz).instruction(&I::If(B::Empty));
        out.instruction(&I::I32Const(10)).instruction(&I::Return).instruction(&I::End);
        out.instruction(&I::I32Const(11))
            .instruction(&I::LocalGet(0))
            .instruction(&I::I32Const(1))
            .instruction(&I::I32Eq);
        out.instruction(&I::BrIf(0)).instruction(&I::Drop);
        out.instruction(&I::Block(B::Result(ValType::I32)))
            .instruction(&I::I32Const(12))
            .instruction(&I::LocalGet(0))
            .instruction(&I::I32Const(2))
            .instruction(&I::I32Sub);
        out.instruction(&I::BrTable([1].as_slice().into(), 0)).instruction(&I::End).instruction(&I::Drop);
        out.instruction(&I::I32Const(13)).instruction(&I::End);
        let mut height = Function::new([]);
        height.instruction(&I::GlobalGet(0)).instruction(&I::End);
        let mut two = Function::new([]);
        two.instruction(&I::LocalGet(0)).instruction(&I::LocalGet(0)).instruction(&I::Return).instruction(&I::End);
        let mut pair = Function::new([]);
        pair.instruction(&I::LocalGet(0)).instruction(&I::Call(2)).instruction(&I::I32Add).instruction(&I::End);
        let mut code = CodeSection::new();
        code.function(&out).function(&height).function(&two).function(&pair);
        let mut m = Module::new();
        m.section(&types).section(&funcs).section(&exports).section(&code);
        let engine = engine();
        let (mut store, instance) = instantiate(&engine, &m.finish());
        let out = instance.get_typed_func::<i32, i32>(&mut store, "out").unwrap();
        let height = instance.get_typed_func::<(), i32>(&mut store, "height").unwrap();
        let pair = instance.get_typed_func::<i32, i32>(&mut store, "pair").unwrap();
        for (n, want) in [(0, 10), (1, 11), (2, 12), (3, 13)] {
            assert_eq!(out.call(&mut store, n).unwrap(), want);
            assert_eq!(height.call(&mut store, ()).unwrap(), OWN, "out({n})");
        }
        assert_eq!(pair.call(&mut store, 21).unwrap(), 42);
        assert_eq!(height.call(&mut store, ()).unwrap(), OWN);
    }

    /// The backstop: a recursion whose frames are as big natively as Cranelift makes them for
    /// their counted cost (no locals at all, a deep operand stack, v128 locals held across the
    /// call) still stops at the counted limit, never at wasmtime's native one.
    #[test]
    fn the_counted_limit_trips_before_the_native_backstop() {
        let engine = engine();
        for (locals, ty) in [(0, ValType::I32), (4, ValType::V128), (500, ValType::V128), (2000, ValType::I64)] {
            for indirect in [false, true] {
                let (mut store, instance) = instantiate(&engine, &recursion(locals, ty, indirect));
                let rec = instance.get_typed_func::<i32, i32>(&mut store, "rec").unwrap();
                let e = rec.call(&mut store, i32::MAX).unwrap_err();
                assert!(is_counted_overrun(&e), "{locals} x {ty:?}: {e:?}");
            }
        }
        for (locals, v128) in [(1, true), (16, true), (300, true), (1000, true), (300, false)] {
            let (mut store, instance) = instantiate(&engine, &live(locals, v128));
            let e = instance.get_typed_func::<i32, i32>(&mut store, "rec").unwrap().call(&mut store, 0).unwrap_err();
            assert!(is_counted_overrun(&e), "{locals} live, v128 {v128}: {e:?}");
        }
        // A deep operand stack, every value live across the recursive call.
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        let mut exports = ExportSection::new();
        exports.export("rec", ExportKind::Func, 0);
        let mut f = Function::new([]);
        for i in 0..200 {
            f.instruction(&I::LocalGet(0)).instruction(&I::I32Const(i)).instruction(&I::I32Add);
        }
        f.instruction(&I::LocalGet(0)).instruction(&I::I32Const(1)).instruction(&I::I32Add).instruction(&I::Call(0));
        for _ in 0..200 {
            f.instruction(&I::I32Add);
        }
        f.instruction(&I::End);
        let mut code = CodeSection::new();
        code.function(&f);
        let mut m = Module::new();
        m.section(&types).section(&funcs).section(&exports).section(&code);
        let (mut store, instance) = instantiate(&engine, &m.finish());
        let e = instance.get_typed_func::<i32, i32>(&mut store, "rec").unwrap().call(&mut store, 0).unwrap_err();
        assert!(is_counted_overrun(&e), "{e:?}");
    }

    /// `rec(n)`, recursing forever, with `locals` v128 (or i32) locals all live across the
    /// recursive call: each comes from a call, so Cranelift cannot recompute it after the call
    /// instead of keeping it, and must spill it to the native frame. The shape with the most
    /// native bytes per counted slot (about 2: a v128 is 16 bytes, counted as one 8-byte slot).
    fn live(locals: u32, v128: bool) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        types.ty().function([], [ValType::I32]);
        types.ty().function([ValType::I32], [if v128 { ValType::V128 } else { ValType::I32 }]);
        let mut funcs = FunctionSection::new();
        funcs.function(0).function(1).function(2);
        let mut exports = ExportSection::new();
        exports.export("rec", ExportKind::Func, 0).export("height", ExportKind::Func, 1);
        let mut f = Function::new([(locals, if v128 { ValType::V128 } else { ValType::I64 })]);
        for l in 1..=locals {
            if v128 {
                f.instruction(&I::I32Const(l as i32)).instruction(&I::Call(2)).instruction(&I::LocalSet(l));
            } else {
                f.instruction(&I::I32Const(l as i32))
                    .instruction(&I::Call(2))
                    .instruction(&I::I64ExtendI32U)
                    .instruction(&I::LocalSet(l));
            }
        }
        f.instruction(&I::LocalGet(0)).instruction(&I::I32Const(1)).instruction(&I::I32Add).instruction(&I::Call(0));
        for l in 1..=locals {
            f.instruction(&I::LocalGet(l));
            if v128 {
                f.instruction(&I::I32x4ExtractLane(1));
            } else {
                f.instruction(&I::I32WrapI64);
            }
            f.instruction(&I::I32Add);
        }
        f.instruction(&I::End);
        let mut height = Function::new([]);
        height.instruction(&I::GlobalGet(1)).instruction(&I::End);
        let mut code = CodeSection::new();
        let mut get = Function::new([]);
        get.instruction(&I::GlobalGet(0)).instruction(&I::LocalGet(0)).instruction(&I::I32Add);
        if v128 {
            get.instruction(&I::I32x4Splat);
        }
        get.instruction(&I::End);
        code.function(&f).function(&height).function(&get);
        let mut globals = GlobalSection::new();
        globals.global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(7));
        let mut m = Module::new();
        m.section(&types).section(&funcs).section(&globals).section(&exports).section(&code);
        m.finish()
    }
}
