//! A loaded guest: its compiled component, pre-linked, instantiated afresh for every entry.
//!
//! Queries are the exception: an instance that answered a query normally is kept and answers
//! later ones (`idle.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Store, Trap};

use crate::bindings::wasmraft::guest::types as wit;
use crate::bindings::{StateMachine, StateMachinePre};
use crate::call::{Applied, ApplyContext, GuestInfo};
use crate::compile_budget;
use crate::engine::GuestEngine;
use crate::error::{ApplyError, LoadError};
use crate::host_store::{self, Fault, HostState, Lent};
use crate::idle::{IdleQuery, QUERIES_PER_INSTANCE};
use crate::limits::{self, GuestLimits};
use crate::slots::QuerySlot;
use crate::stack_limit;
use crate::store::{StoreRead, StoreWrite, Writes};
use wasmraft_metrics::{GuestFailure, metrics};

/// A guest component ready to run: compiled once, linked once, instantiated per call.
///
/// `Send + Sync`: the apply thread and any number of query tasks share one `Arc<Guest>`; each
/// entry builds its own `Store`, and a query takes a kept instance for itself alone.
pub struct Guest {
    engine: GuestEngine,
    pre: StateMachinePre<HostState>,
    limits: GuestLimits,
    info: GuestInfo,
    hash: [u8; 32],
    /// Whether the commands of one entry may share an instance ([`crate::SHARED_ENTRY_INSTANCE`]
    /// among its apis).
    shares_instances: bool,
    /// Tells this guest's kept query instances from other guests' (and from the same module's
    /// under other limits, whose stores carry other budgets).
    id: u64,
}

fn next_guest_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("info", &self.info)
            .field("hash", &self.hash_hex())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Guest {
    /// Compiles `wasm` (a component), checks that it exports the `state-machine` world and
    /// imports nothing but `store`, `events` and `metrics`, and calls its `info`.
    pub fn load(engine: &GuestEngine, wasm: &[u8], limits: GuestLimits) -> Result<Guest, LoadError> {
        Self::from_component(engine, compile(engine, wasm)?, sha256(wasm), limits)
    }

    /// [`Guest::load`], keeping the compiled code in `cache_dir` (`compile_cached`).
    pub fn load_cached(
        engine: &GuestEngine,
        wasm: &[u8],
        limits: GuestLimits,
        cache_dir: &Path,
    ) -> Result<Guest, LoadError> {
        Self::from_component(engine, compile_cached(engine, wasm, cache_dir)?, sha256(wasm), limits)
    }

    /// The same guest compiled for `engine` (one with another stack limit, which the code
    /// counts itself: `stack_limit.rs`), with `limits`. Its `info` is the one it gave at load, so
    /// whether a module loads still depends on its bytes alone.
    pub fn on_engine(
        &self,
        engine: &GuestEngine,
        wasm: &[u8],
        limits: GuestLimits,
        cache_dir: &Path,
    ) -> Result<Guest, LoadError> {
        let component = compile_cached(engine, wasm, cache_dir)?;
        Ok(Guest {
            engine: engine.clone(),
            pre: link(engine, &component)?,
            limits: stack_of(engine, limits)?,
            info: self.info.clone(),
            hash: self.hash,
            shares_instances: self.shares_instances,
            id: next_guest_id(),
        })
    }

    fn from_component(
        engine: &GuestEngine,
        component: Component,
        hash: [u8; 32],
        limits: GuestLimits,
    ) -> Result<Guest, LoadError> {
        let mut guest = Guest {
            engine: engine.clone(),
            pre: link(engine, &component)?,
            limits: stack_of(engine, limits)?,
            info: GuestInfo::default(),
            hash,
            shares_instances: false,
            id: next_guest_id(),
        };
        guest.info = guest.call_info().map_err(LoadError::Info)?;
        guest.shares_instances = guest.info.apis.iter().any(|a| a == crate::SHARED_ENTRY_INSTANCE);
        Ok(guest)
    }

    /// The same compiled guest with another deployment's per-entry limits, without compiling or
    /// linking again. The stack limit is compiled in: another one needs [`Guest::on_engine`].
    pub fn with_limits(&self, limits: GuestLimits) -> Guest {
        debug_assert_eq!(limits.stack_bytes, self.engine.stack_bytes(), "a stack limit is an engine's");
        Guest {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            limits,
            info: self.info.clone(),
            hash: self.hash,
            shares_instances: self.shares_instances,
            id: next_guest_id(),
        }
    }

    /// `info()`, in a fresh instance with no store: a guest that touches the store here traps.
    fn call_info(&self) -> Result<GuestInfo, ApplyError> {
        let _slot = self.engine.inner.control.acquire();
        let mut store = self.new_store(&self.limits)?;
        let sm = self.instantiate_in(&mut store, &self.limits).map_err(|(e, _)| e)?;
        match sm.call_info(&mut store) {
            Ok(info) => Ok(GuestInfo { name: info.name, version: info.version, apis: info.apis }),
            Err(e) => Err(classify(e, store.data_mut(), &self.limits)),
        }
    }

    /// The guest's name, version and APIs, from `info()` at load.
    pub fn info(&self) -> &GuestInfo {
        &self.info
    }

    /// sha256 of the component bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.limits
    }

    /// Whether the commands of one entry may run one after another in one instance (the guest
    /// declared [`crate::SHARED_ENTRY_INSTANCE`]); see [`crate::EntryRun`].
    pub fn shares_instances(&self) -> bool {
        self.shares_instances
    }

    pub(crate) fn slots(&self) -> &crate::slots::Slots {
        &self.engine.inner.control
    }

    /// Applies one committed command to `store`, in a fresh instance.
    ///
    /// On `Ok` the entry's writes have gone to `store` ([`StoreWrite::write`]) and its events
    /// are returned; on [`ApplyError::Guest`] nothing was written and the caller goes on with
    /// the next entry. On [`ApplyError::Storage`] or [`ApplyError::Host`] the store may hold
    /// part of the entry and the outcome must not be recorded: the caller aborts the
    /// transaction and stops.
    pub fn apply(&self, store: &mut dyn StoreWrite, ctx: ApplyContext, command: &[u8]) -> Result<Applied, ApplyError> {
        let _slot = self.engine.inner.control.acquire();
        let wit_ctx = wit::ApplyContext { index: ctx.index, term: ctx.term, time_unix_ms: ctx.time_unix_ms };
        self.run_write(store, |wasm, sm| sm.call_apply(wasm, wit_ctx, command))
    }

    /// Runs the guest's `migrate` inside the entry that swaps it in, like [`Guest::apply`]
    /// (output is empty; events are allowed).
    pub fn migrate(&self, store: &mut dyn StoreWrite, from: &GuestInfo) -> Result<Applied, ApplyError> {
        let _slot = self.engine.inner.control.acquire();
        let from = wit::GuestInfo { name: from.name.clone(), version: from.version.clone(), apis: from.apis.clone() };
        self.run_write(store, |wasm, sm| sm.call_migrate(wasm, &from).map(|r| r.map(|()| Vec::new())))
    }

    /// Answers a read-only request against `store` (a snapshot), in a kept query instance or a
    /// fresh one. Blocks while every query slot is busy.
    pub fn query(&self, store: &dyn StoreRead, request: &[u8]) -> Result<Vec<u8>, ApplyError> {
        self.run_query(store, request, self.limits.fuel_per_entry, true)
            .unwrap_or_else(|| {
                // Only a caller that does not wait can be turned away.
                Err((ApplyError::Host("wasmraft: no query slot".into()), None))
            })
            .map_err(|(e, _)| e)
    }

    /// [`Guest::query`] for a caller that must not block for long (an async worker): runs only
    /// if a kept instance or a query slot is free now, and with at most `fuel` instead of the
    /// deployment's budget. `None` means it did not finish that way (no free slot, or it needed
    /// more fuel) and must be run again with [`Guest::query`]; a query writes nothing, so
    /// running it twice is harmless. Every other outcome, a guest error included, is final.
    pub fn try_query(&self, store: &dyn StoreRead, request: &[u8], fuel: u64) -> Option<Result<Vec<u8>, ApplyError>> {
        let budget = fuel.min(self.limits.fuel_per_entry);
        match self.run_query(store, request, budget, false)? {
            Err((_, Some(GuestFailure::OutOfFuel))) if budget < self.limits.fuel_per_entry => None,
            done => Some(done.map_err(|(e, _)| e)),
        }
    }

    /// One query; `None` only when `wait` is false and no instance or slot was free.
    fn run_query(
        &self,
        kv: &dyn StoreRead,
        request: &[u8],
        fuel: u64,
        wait: bool,
    ) -> Option<Result<Vec<u8>, Classified>> {
        let limits = GuestLimits { fuel_per_entry: fuel, ..self.limits };
        let mut q = match self.kept_query(fuel) {
            Some(q) => q,
            None => {
                let slot = self.query_slot(wait)?;
                let mut store = match self.new_store(&limits) {
                    Ok(store) => store,
                    Err(e) => return Some(Err((e, None))),
                };
                let sm = match self.instantiate_in(&mut Lent::new(&mut store, kv, false), &limits) {
                    Ok(sm) => sm,
                    Err(failed) => return Some(Err(failed)),
                };
                IdleQuery { guest: self.id, store, sm, served: 0, _slot: slot }
            }
        };
        let initial_memory = q.store.data().memory.size;
        // The guard ends with the call: a kept instance must not point at (or pin) this
        // snapshot.
        let result = q.sm.call_query(&mut *Lent::new(&mut q.store, kv, false), request);
        let returned = result.is_ok();
        let outcome = finish_classified(result, q.store.data_mut(), &limits).map(|(output, _)| output);
        let state = q.store.data();
        // Not while a query waits for a slot: this one's would otherwise go idle under it.
        let reusable = returned
            && state.fault.is_none()
            && !state.memory.hit
            && state.memory.size == initial_memory
            && q.served + 1 < QUERIES_PER_INSTANCE
            && !self.engine.inner.queries.has_waiters();
        if reusable {
            q.served += 1;
            self.engine.inner.idle_queries.keep(q);
        }
        Some(outcome)
    }

    /// A query slot for a new instance; idle instances (of any guest) give theirs up first.
    /// `None` only when `wait` is false and every slot is busy.
    fn query_slot(&self, wait: bool) -> Option<QuerySlot> {
        let idle = &self.engine.inner.idle_queries;
        loop {
            if let Some(slot) = self.engine.try_query_slot() {
                return Some(slot);
            }
            if !idle.evict_one() {
                break;
            }
        }
        wait.then(|| self.engine.query_slot())
    }

    /// A kept query instance readied for `fuel`, if one is idle.
    ///
    /// Nothing else of the last query is left in its store data: an instance is kept only if
    /// nothing faulted and no memory growth was refused, and a query's writes and events fault.
    fn kept_query(&self, fuel: u64) -> Option<IdleQuery> {
        let mut q = self.engine.inner.idle_queries.take(self.id)?;
        // Fuel was set on this store before; if it cannot be now, the query starts afresh.
        q.store.set_fuel(fuel).ok()?;
        Some(q)
    }

    fn run_write(
        &self,
        kv: &mut dyn StoreWrite,
        call: impl FnOnce(&mut Store<HostState>, &StateMachine) -> wasmtime::Result<Result<Vec<u8>, String>>,
    ) -> Result<Applied, ApplyError> {
        // Measured per entry with atomics only (the metrics' counters and histogram): the time
        // from instantiation to the result, the fuel spent, and how a failure failed.
        let started = std::time::Instant::now();
        let mut store = self.new_store(&self.limits)?;
        let (result, fuel_left) = {
            // Lent for instantiation and the call only: the entry's writes go to `kv` below,
            // after the guard has detached it from the store.
            let mut lent = Lent::new(&mut store, &*kv, true);
            let sm = match self.instantiate_in(&mut lent, &self.limits) {
                Ok(sm) => sm,
                Err((e, kind)) => {
                    if let Some(kind) = kind {
                        metrics().guest_failed(kind);
                    }
                    return Err(e);
                }
            };
            let result = call(&mut lent, &sm);
            (result, lent.get_fuel().unwrap_or(0))
        };
        let mut state = store.into_data();
        let m = metrics();
        let elapsed = started.elapsed();
        m.guest_apply_duration.observe(elapsed.as_secs_f64());
        m.guest_fuel_consumed.inc_by(self.limits.fuel_per_entry.saturating_sub(fuel_left));
        let (output, state) = finish_classified(result, &mut state, &self.limits).map_err(|(e, kind)| {
            if let Some(kind) = kind {
                m.guest_failed(kind);
            }
            e
        })?;
        let writes = Writes(std::mem::take(&mut state.overlay));
        if !writes.is_empty() {
            kv.write(&writes)?;
        }
        Ok(Applied { output, events: std::mem::take(&mut state.events), metrics: std::mem::take(&mut state.metrics) })
    }

    /// A fresh store for one call, with `limits`' fuel and memory budget and no view.
    pub(crate) fn new_store(&self, limits: &GuestLimits) -> Result<Store<HostState>, ApplyError> {
        let mut store = Store::new(self.engine.engine(), HostState::new(limits));
        store.limiter(|state| &mut state.memory);
        store.set_hostcall_fuel(limits::HOSTCALL_LIFT_BYTES);
        store
            .set_fuel(limits.fuel_per_entry)
            .map_err(|e| ApplyError::Host(format!("wasmraft: cannot set guest fuel: {e:#}")))?;
        Ok(store)
    }

    /// A fresh instance in `store` (made by [`Guest::new_store`] with `limits`).
    pub(crate) fn instantiate_in(
        &self,
        store: &mut Store<HostState>,
        limits: &GuestLimits,
    ) -> Result<StateMachine, Classified> {
        self.pre.instantiate(&mut *store).map_err(|e| {
            let state = store.data_mut();
            // Instantiation was already done once at load with these limits, so a failure
            // here is the host's (an exhausted pool) unless the guest's own start code
            // blew a budget, which every member sees alike.
            if state.memory.hit || state.fault.is_some() || e.downcast_ref::<Trap>().is_some() {
                classify_kind(e, state, limits)
            } else {
                (ApplyError::Host(format!("wasmraft: cannot instantiate the guest: {e:#}")), None)
            }
        })
    }
}

/// Links `component` against the host's imports and checks that it exports the world.
fn link(engine: &GuestEngine, component: &Component) -> Result<StateMachinePre<HostState>, LoadError> {
    let mut linker = Linker::<HostState>::new(engine.engine());
    host_store::add_to_linker(&mut linker).map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let instance_pre = linker.instantiate_pre(component).map_err(|e| LoadError::Imports(format!("{e:#}")))?;
    StateMachinePre::new(instance_pre).map_err(|e| LoadError::Exports(format!("{e:#}")))
}

/// Compiles `wasm` for `engine`, its core modules counting their stack against the engine's
/// limit (`stack_limit.rs`).
fn compile(engine: &GuestEngine, wasm: &[u8]) -> Result<Component, LoadError> {
    let compile_error = |e: wasmtime::Error| LoadError::Compile(format!("{e:#}"));
    // Before the rewriting too, which is linear but allocates per function.
    compile_budget::check(wasm)?;
    let counted = match stack_limit::instrument(wasm, stack_limit::limit_slots(engine.stack_bytes())) {
        Ok(counted) => counted,
        // Bytes that are not Wasm get wasmtime's own words for what is wrong with them (the
        // texts etcd-style tooling and the tests expect); only what wasmtime would accept but
        // the counting cannot handle gets the counting's error. Either way nothing runs.
        Err(e) => {
            Component::new(engine.engine(), wasm).map_err(compile_error)?;
            return Err(LoadError::Compile(e.to_string()));
        }
    };
    Component::new(engine.engine(), &counted).map_err(compile_error)
}

/// [`compile`], keeping the compiled code in `cache_dir` as
/// `<sha256 of wasm>-<stack limit>-<engine compatibility hash>.cwasm` (the stack limit is
/// compiled in), so a restart skips compilation. Cache failures only cost time: they are logged
/// and the component is compiled.
fn compile_cached(engine: &GuestEngine, wasm: &[u8], cache_dir: &Path) -> Result<Component, LoadError> {
    let hash = sha256(wasm);
    let path =
        cache_dir.join(format!("{}-{}-{}.cwasm", hex::encode(hash), engine.stack_bytes(), engine.compatibility_hash()));
    // Read rather than mapped: a mapped file that someone truncates later (an operator
    // clearing the cache, a disk tool) would crash the member with SIGBUS.
    if let Ok(bytes) = std::fs::read(&path) {
        // SAFETY: `deserialize` trusts its input to be machine code wasmtime produced,
        // because it runs it. These bytes are: only this function writes to the cache,
        // under a name that binds them to the exact Wasm bytes (sha256) and to this
        // engine's compiled-code format, and always through a temporary file synced and
        // renamed into place, so a crash never leaves a partial file under the final name. wasmtime
        // still checks the header (its version, the engine settings) and fails cleanly on
        // a mismatch. The cache lives in the member's data directory, which only this
        // process writes; whoever can write there can already replace the state wholesale.
        match unsafe { Component::deserialize(engine.engine(), &bytes) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "wasmraft: ignoring unusable compiled guest cache entry")
            }
        }
    }
    let component = compile(engine, wasm)?;
    if let Err(e) = write_cache(&component, cache_dir, &path) {
        tracing::warn!(path = %path.display(), error = %e, "wasmraft: cannot cache the compiled guest");
    }
    Ok(component)
}

/// A recursion that went past the deployment's stack limit: the counted one
/// (`stack_limit.rs`), or wasmtime's native backstop should it ever trip first.
fn stack_exhausted(limits: &GuestLimits) -> ApplyError {
    ApplyError::Guest(format!("wasmraft: guest exhausted its stack (limit {} bytes)", limits.stack_bytes))
}

/// `limits`, if their stack limit is `engine`'s: the engine is what enforces it.
fn stack_of(engine: &GuestEngine, limits: GuestLimits) -> Result<GuestLimits, LoadError> {
    if limits.stack_bytes != engine.stack_bytes() {
        return Err(LoadError::StackMismatch { limit: limits.stack_bytes, engine: engine.stack_bytes() });
    }
    Ok(limits)
}

/// Turns a call's outcome into the guest's output or an error, checking the output size and
/// telling how a failure failed (None: not the guest's doing).
pub(crate) fn finish_classified<'s>(
    result: wasmtime::Result<Result<Vec<u8>, String>>,
    state: &'s mut HostState,
    limits: &GuestLimits,
) -> Result<(Vec<u8>, &'s mut HostState), Classified> {
    match result {
        Ok(Ok(output)) if output.len() > limits::MAX_RESULT_BYTES => Err((
            ApplyError::Guest(format!(
                "wasmraft: guest returned {} bytes (the limit is {} bytes)",
                output.len(),
                limits::MAX_RESULT_BYTES
            )),
            Some(GuestFailure::HostLimit),
        )),
        Ok(Ok(output)) => Ok((output, state)),
        Ok(Err(text)) => Err((ApplyError::Guest(text), Some(GuestFailure::Err))),
        Err(e) => Err(classify_kind(e, state, limits)),
    }
}

/// A failed call's error for the client and, when it was the guest's doing, how it failed.
pub(crate) type Classified = (ApplyError, Option<GuestFailure>);

/// Why a guest call failed, in words for the client; storage failures stay typed.
fn classify(e: wasmtime::Error, state: &mut HostState, limits: &GuestLimits) -> ApplyError {
    classify_kind(e, state, limits).0
}

/// [`classify`], with the kind of failure for the metrics (None: storage, not the guest).
fn classify_kind(e: wasmtime::Error, state: &mut HostState, limits: &GuestLimits) -> Classified {
    match state.fault.take() {
        Some(Fault::Storage(e)) => return (ApplyError::Storage(e), None),
        Some(Fault::Guest(text)) => return (ApplyError::Guest(text), Some(GuestFailure::HostLimit)),
        Some(Fault::OutOfFuel) => return (out_of_fuel(limits), Some(GuestFailure::OutOfFuel)),
        None => {}
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (out_of_fuel(limits), Some(GuestFailure::OutOfFuel)),
        Some(Trap::StackOverflow) => (stack_exhausted(limits), Some(GuestFailure::Trap)),
        Some(Trap::UnreachableCodeReached) if stack_limit::is_counted_overrun(&e) => {
            (stack_exhausted(limits), Some(GuestFailure::Trap))
        }
        // A failed allocation aborts (`unreachable`) in most guests: report the cause.
        Some(_) if state.memory.hit => (memory_exceeded(limits), Some(GuestFailure::Memory)),
        Some(trap) => {
            tracing::debug!(error = %format!("{e:?}"), "guest trapped");
            (ApplyError::Guest(format!("wasmraft: guest trapped: {trap}")), Some(GuestFailure::Trap))
        }
        // Not a trap: the canonical ABI refused what the guest handed back (bad UTF-8, a list
        // out of bounds), or the guest's realloc failed. Still the guest's doing, and the same
        // on every member.
        None if state.memory.hit => (memory_exceeded(limits), Some(GuestFailure::Memory)),
        None => (ApplyError::Guest(format!("wasmraft: guest trapped: {}", root_message(&e))), Some(GuestFailure::Trap)),
    }
}

fn out_of_fuel(limits: &GuestLimits) -> ApplyError {
    ApplyError::Guest(format!("wasmraft: guest ran out of fuel (limit {} per entry)", limits.fuel_per_entry))
}

fn memory_exceeded(limits: &GuestLimits) -> ApplyError {
    ApplyError::Guest(format!("wasmraft: guest exceeded its memory limit ({} bytes)", limits.memory_bytes))
}

/// The innermost message of a wasmtime error, without the backtrace context wasmtime adds.
fn root_message(e: &wasmtime::Error) -> String {
    e.chain().last().map(|c| c.to_string()).unwrap_or_else(|| e.to_string())
}

/// sha256 of a module's bytes: how a member names a module (its [`Guest::hash`], the key of
/// the registry, of the compiled-code cache and of the deployment record).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

fn write_cache(component: &Component, dir: &Path, path: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(|e| std::io::Error::other(format!("serializing: {e:#}")))?;
    std::fs::create_dir_all(dir).map_err(|e| at(e, "creating", dir))?;
    let tmp = tempfile_in(dir, path)?;
    // Synced before the rename and the directory after it: otherwise a power cut can leave the
    // final name on a file whose data never reached the disk, which `deserialize` would run.
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()
        })
        .map_err(|e| at(e, "writing", &tmp));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| at(e, "renaming into place", path))?;
    // The new name is on disk only once the directory is.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| at(e, "syncing", dir))
}

/// `e`, saying what it was doing to which file (the cache's failures are only logged).
fn at(e: std::io::Error, doing: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

/// A temporary name next to `path`, unique per process and call so concurrent loads of the
/// same guest never write the same file.
fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| std::io::Error::other("cache path has no file name"))?.to_string_lossy();
    Ok(dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))))
}
