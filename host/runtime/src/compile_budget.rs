//! The compile budget: a guest whose code would keep Cranelift busy for minutes (a "compile
//! bomb": hundreds of thousands of functions, one enormous function, tens of thousands of
//! locals, blocks nested thousands deep) is refused by a pass over its bytes before anything is
//! compiled.
//!
//! Why a pre-scan and not a time limit: whether a module loads must depend on its bytes alone
//! (every member loads it when the deploy entry applies, and they must all agree, see
//! [`crate::LOAD_LIMITS`]); a deadline would refuse on a busy member what an idle one accepts.
//! The scan is linear in the module's size and far cheaper than compiling it (wasmparser reads
//! operators at hundreds of MB/s; Cranelift's time grows faster than linearly with a function's
//! size and nesting).
//!
//! The limits are far above what real guests reach (the KV guest, built by rustc in release:
//! see the runtime's tests, which measure every test guest against them) and far below what
//! wasmparser itself allows (a million functions, 50,000 locals, no nesting limit).
//!
//! Bytes that do not parse are not this pass's business: it stops and lets wasmtime say what is
//! wrong with them, in its own words.

use wasmparser::{Operator, Parser, Payload};

/// Functions defined in the whole component (all its core modules together).
pub const MAX_FUNCTIONS: u64 = 100_000;
/// Bytes of function bodies in the whole component.
pub const MAX_CODE_BYTES: u64 = 32 << 20;
/// Bytes of one function's body.
pub const MAX_FUNCTION_BYTES: u64 = 2 << 20;
/// Locals one function declares (its parameters not included).
pub const MAX_LOCALS: u64 = 10_000;
/// Blocks (block, loop, if, try) open at once in one function.
pub const MAX_NESTING: u64 = 5_000;

/// What the scan measured: the largest of each quantity the limits bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeShape {
    pub functions: u64,
    pub code_bytes: u64,
    pub max_function_bytes: u64,
    pub max_locals: u64,
    pub max_nesting: u64,
}

/// A module over the compile budget. The text names the quantity, the value, the limit and
/// where (core module and function index, in the order they appear in the component).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "wasmraft: the guest is over the compile budget: {what} is {value}; the limit is {limit} (a module that would take too long to compile is refused before compiling)"
)]
pub struct BudgetError {
    pub what: String,
    pub value: u64,
    pub limit: u64,
}

/// Measures `wasm` (a component or a core module) against the budget; stops at the first
/// quantity over its limit. Bytes that do not parse end the scan with what was measured so
/// far (wasmtime then refuses them).
pub fn check(wasm: &[u8]) -> Result<CodeShape, BudgetError> {
    let mut shape = CodeShape::default();
    let mut module = 0u64;
    let mut function = 0u64;
    let over = |what: String, value: u64, limit: u64| Err(BudgetError { what, value, limit });
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::CodeSectionStart { size, .. } => {
                module += 1;
                function = 0;
                shape.code_bytes += u64::from(size);
                if shape.code_bytes > MAX_CODE_BYTES {
                    return over("the code of its functions, in bytes,".into(), shape.code_bytes, MAX_CODE_BYTES);
                }
            }
            Payload::CodeSectionEntry(body) => {
                let at = || format!("core module {module}, function {function}");
                shape.functions += 1;
                if shape.functions > MAX_FUNCTIONS {
                    return over("the number of functions".into(), shape.functions, MAX_FUNCTIONS);
                }
                let bytes = body.range().len() as u64;
                shape.max_function_bytes = shape.max_function_bytes.max(bytes);
                if bytes > MAX_FUNCTION_BYTES {
                    return over(format!("the body of {} in bytes", at()), bytes, MAX_FUNCTION_BYTES);
                }
                let Ok(locals) = body.get_locals_reader() else { break };
                let mut count = 0u64;
                for l in locals {
                    let Ok((n, _)) = l else { break };
                    count += u64::from(n);
                    if count > MAX_LOCALS {
                        return over(format!("the number of locals of {}", at()), count, MAX_LOCALS);
                    }
                }
                shape.max_locals = shape.max_locals.max(count);
                let Ok(ops) = body.get_operators_reader() else { break };
                let mut depth = 0u64;
                for op in ops {
                    let Ok(op) = op else { break };
                    match op {
                        Operator::Block { .. }
                        | Operator::Loop { .. }
                        | Operator::If { .. }
                        | Operator::TryTable { .. }
                        | Operator::Try { .. } => {
                            depth += 1;
                            if depth > MAX_NESTING {
                                return over(format!("the block nesting of {}", at()), depth, MAX_NESTING);
                            }
                            shape.max_nesting = shape.max_nesting.max(depth);
                        }
                        Operator::End => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                function += 1;
            }
            _ => {}
        }
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with `funcs` functions of type [] -> [], each `body` (locals included).
    fn module(funcs: u32, body: &[u8]) -> Vec<u8> {
        use wasm_encoder::Encode as _;
        let mut m = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        m.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
        let mut funcsec = Vec::new();
        funcs.encode(&mut funcsec);
        funcsec.extend(std::iter::repeat_n(0u8, funcs as usize));
        m.push(0x03);
        funcsec.len().encode(&mut m);
        m.extend_from_slice(&funcsec);
        let mut code = Vec::new();
        funcs.encode(&mut code);
        for _ in 0..funcs {
            body.len().encode(&mut code);
            code.extend_from_slice(body);
        }
        m.push(0x0a);
        code.len().encode(&mut m);
        m.extend_from_slice(&code);
        m
    }

    fn nested(depth: usize) -> Vec<u8> {
        let mut b = vec![0x00];
        for _ in 0..depth {
            b.extend_from_slice(&[0x02, 0x40]);
        }
        b.extend(std::iter::repeat_n(0x0b, depth + 1));
        b
    }

    #[test]
    fn each_limit_refuses_one_past_it_and_names_itself() {
        let m = module(3, &nested(10));
        wasmparser::validate(&m).expect("a valid module");
        let shape = check(&m).expect("within the budget");
        assert_eq!((shape.functions, shape.max_nesting, shape.max_locals), (3, 10, 0));

        let deep = module(1, &nested(MAX_NESTING as usize + 1));
        wasmparser::validate(&deep).expect("valid");
        let e = check(&deep).unwrap_err();
        assert_eq!((e.value, e.limit), (MAX_NESTING + 1, MAX_NESTING));
        assert!(e.to_string().contains("the block nesting of core module 1, function 0"), "{e}");
        assert!(check(&module(1, &nested(MAX_NESTING as usize))).is_ok());

        // One local declaration of MAX_LOCALS + 1 i32s.
        let mut body = Vec::new();
        {
            use wasm_encoder::Encode as _;
            body.push(1);
            (MAX_LOCALS as u32 + 1).encode(&mut body);
            body.extend_from_slice(&[0x7f, 0x0b]);
        }
        let e = check(&module(1, &body)).unwrap_err();
        assert!(e.to_string().contains("the number of locals"), "{e}");

        let e = check(&module(MAX_FUNCTIONS as u32 + 1, &[0x00, 0x0b])).unwrap_err();
        assert_eq!(e.value, MAX_FUNCTIONS + 1);
        assert!(e.to_string().contains("the number of functions is 100001; the limit is 100000"), "{e}");

        let mut big = vec![0x00];
        big.extend(std::iter::repeat_n(0x01, MAX_FUNCTION_BYTES as usize)); // nop
        big.push(0x0b);
        let e = check(&module(1, &big)).unwrap_err();
        assert!(e.to_string().contains("the body of core module 1, function 0 in bytes"), "{e}");
    }

    #[test]
    fn bytes_that_do_not_parse_are_left_to_wasmtime() {
        assert!(check(b"").is_ok());
        assert!(check(b"\0asm\x01\0\0\0\x0a\xff\xff").is_ok());
        assert!(check(&[0xffu8; 100]).is_ok());
    }
}
