//! The member's loaded guests, by module hash and limits.
//!
//! Compiling a component takes from milliseconds to seconds; a swap entry must not pay that on
//! the apply thread when the member has already compiled the module (the member that validated
//! a deploy did; every member starts compiling a module in the background, [`prepare`], as soon
//! as its last piece is applied; a restarted member did at startup), and queries must find the
//! guest that
//! matches the state they read without compiling anything.
//!
//! [`prepare`]: GuestRegistry::prepare So every guest a member loads stays
//! here, keyed by its sha256, and each set of limits a deployment asks for is the same compiled
//! code with other budgets ([`Guest::with_limits`]), except for the stack limit: the code
//! counts its own stack against it (`stack_limit.rs`), so each limit in use is the module
//! compiled again for that limit, on an engine of its own whose native limit is the backstop
//! (made when first needed, [`Guest::on_engine`]). Compiled code is also cached on disk (`member/guest-cache`), so a
//! restart deserializes instead of compiling.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::engine::GuestEngine;
use crate::error::LoadError;
use crate::limits::{DEFAULT_STACK_BYTES, GuestLimits};
use crate::runtime::{Guest, sha256};

/// A loaded guest: its module's hash and the limits it runs with.
type LoadedKey = ([u8; 32], GuestLimits);

pub struct GuestRegistry {
    engine: GuestEngine,
    /// Engines by stack limit; `engine` is the one of [`LOAD_LIMITS`]' limit.
    engines: Mutex<HashMap<u64, GuestEngine>>,
    cache_dir: PathBuf,
    /// Keyed by (module hash, limits); the entry with [`LOAD_LIMITS`] is the one compiled, and
    /// [`load_limits`] of another stack limit is it compiled for that limit, on its engine.
    loaded: Mutex<HashMap<LoadedKey, Arc<Guest>>>,
    /// One lock per module being compiled, so a swap entry that needs a module a background
    /// [`GuestRegistry::prepare`] is compiling waits for it instead of compiling it again.
    compiling: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
}

/// The budgets a module's `info()` runs under when it is loaded, whatever limits a deployment
/// then asks for. Whether a module loads must depend on its bytes alone: if it depended on the
/// deployment's limits, a member that had already loaded the module under other limits would
/// accept a swap that a member loading it fresh refuses.
pub const LOAD_LIMITS: GuestLimits =
    GuestLimits { fuel_per_entry: 10_000_000_000, memory_bytes: 256 << 20, stack_bytes: DEFAULT_STACK_BYTES };

/// [`LOAD_LIMITS`] on the engine of `stack_bytes`: the key of a module's copy there.
fn load_limits(stack_bytes: u64) -> GuestLimits {
    GuestLimits { stack_bytes, ..LOAD_LIMITS }
}

impl GuestRegistry {
    /// A registry whose modules load on `engine`, which must have [`LOAD_LIMITS`]' stack limit.
    pub fn new(engine: GuestEngine, cache_dir: PathBuf) -> GuestRegistry {
        let engines = Mutex::new(HashMap::from([(engine.stack_bytes(), engine.clone())]));
        GuestRegistry {
            engine,
            engines,
            cache_dir,
            loaded: Mutex::new(HashMap::new()),
            compiling: Mutex::new(HashMap::new()),
        }
    }

    pub fn engine(&self) -> &GuestEngine {
        &self.engine
    }

    /// The engine whose guests get `stack_bytes` of Wasm stack, made on first use.
    fn engine_for(&self, stack_bytes: u64) -> Result<GuestEngine, LoadError> {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = engines.get(&stack_bytes) {
            return Ok(e.clone());
        }
        let engine = self.engine.with_stack(stack_bytes)?;
        engines.insert(stack_bytes, engine.clone());
        Ok(engine)
    }

    /// The guest whose module hashes to `hash`, with `limits`, if this member has loaded it
    /// (on the engine of `limits`' stack limit).
    pub fn get(&self, hash: &[u8; 32], limits: GuestLimits) -> Option<Arc<Guest>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = loaded.get(&(*hash, limits)) {
            return Some(g.clone());
        }
        let base = loaded.get(&(*hash, load_limits(limits.stack_bytes)))?.clone();
        let guest = Arc::new(base.with_limits(limits));
        loaded.insert((*hash, limits), guest.clone());
        Some(guest)
    }

    /// Compiles (or finds) `wasm`, checks it against the world and calls its `info()` (under
    /// [`LOAD_LIMITS`]); returns it with `limits`. An `Err` says why the module cannot be a
    /// guest, and depends on the bytes alone, so it is the same on every member.
    pub fn load(&self, wasm: &[u8], limits: GuestLimits) -> Result<Arc<Guest>, LoadError> {
        let hash = sha256(wasm);
        if let Some(g) = self.get(&hash, limits) {
            return Ok(g);
        }
        let lock = self.compiling.lock().unwrap_or_else(|p| p.into_inner()).entry(hash).or_default().clone();
        let _compiling = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Someone else may have compiled it while this call waited for the lock.
        if let Some(g) = self.get(&hash, limits) {
            return Ok(g);
        }
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(&(hash, LOAD_LIMITS)).cloned();
        let base = match loaded {
            Some(base) => base,
            None => {
                let base = Arc::new(Guest::load_cached(&self.engine, wasm, LOAD_LIMITS, &self.cache_dir)?);
                self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert((hash, LOAD_LIMITS), base.clone());
                base
            }
        };
        if limits.stack_bytes != LOAD_LIMITS.stack_bytes {
            let moved = base.on_engine(
                &self.engine_for(limits.stack_bytes)?,
                wasm,
                load_limits(limits.stack_bytes),
                &self.cache_dir,
            )?;
            self.loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((hash, load_limits(limits.stack_bytes)), Arc::new(moved));
        }
        self.compiling.lock().unwrap_or_else(|p| p.into_inner()).remove(&hash);
        self.get(&hash, limits).ok_or(LoadError::Vanished)
    }

    /// Starts compiling `wasm` on a thread of its own, so that a swap to it later finds it
    /// compiled: for the load limits and for `stack_bytes`, the stack limit the swap will most
    /// likely keep (the active deployment's; the code counts it, so it is compiled in). Only a
    /// head start: failures are left for the swap entry to report.
    pub fn prepare(self: &Arc<Self>, wasm: Vec<u8>, stack_bytes: u64) {
        let hash = sha256(&wasm);
        let limits = load_limits(stack_bytes);
        if self.get(&hash, limits).is_some() {
            return;
        }
        let registry = self.clone();
        let spawned = std::thread::Builder::new().name("guest-compile".into()).spawn(move || {
            let started = std::time::Instant::now();
            match registry.load(&wasm, limits) {
                Ok(g) => tracing::info!(
                    "wasmraft: compiled stored guest {} {} (sha256 {}) ahead of its swap in {:.0} ms",
                    g.info().name,
                    g.info().version,
                    g.hash_hex(),
                    started.elapsed().as_secs_f64() * 1000.0
                ),
                Err(e) => tracing::debug!("a stored module does not load (its swap will be refused): {e:#}"),
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot compile a stored guest ahead of its swap: {e}");
        }
    }
}
