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
//! code with other budgets ([`Guest::with_limits`]). Compiled code is also cached on disk
//! (`member/guest-cache`), so a restart deserializes instead of compiling.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Guest, GuestEngine, GuestLimits};

pub struct GuestRegistry {
    engine: GuestEngine,
    cache_dir: PathBuf,
    /// Keyed by (module hash, limits); the entry with [`LOAD_LIMITS`] is the one compiled.
    loaded: Mutex<HashMap<([u8; 32], GuestLimits), Arc<Guest>>>,
    /// One lock per module being compiled, so a swap entry that needs a module a background
    /// [`GuestRegistry::prepare`] is compiling waits for it instead of compiling it again.
    compiling: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
}

/// The budgets a module's `info()` runs under when it is loaded, whatever limits a deployment
/// then asks for. Whether a module loads must depend on its bytes alone: if it depended on the
/// deployment's limits, a member that had already loaded the module under other limits would
/// accept a swap that a member loading it fresh refuses.
pub const LOAD_LIMITS: GuestLimits = GuestLimits { fuel_per_entry: 10_000_000_000, memory_bytes: 256 << 20 };

impl GuestRegistry {
    pub fn new(engine: GuestEngine, cache_dir: PathBuf) -> GuestRegistry {
        GuestRegistry { engine, cache_dir, loaded: Mutex::new(HashMap::new()), compiling: Mutex::new(HashMap::new()) }
    }

    pub fn engine(&self) -> &GuestEngine {
        &self.engine
    }

    /// The guest whose module hashes to `hash`, with `limits`, if this member has loaded it.
    pub fn get(&self, hash: &[u8; 32], limits: GuestLimits) -> Option<Arc<Guest>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = loaded.get(&(*hash, limits)) {
            return Some(g.clone());
        }
        let base = loaded.get(&(*hash, LOAD_LIMITS))?.clone();
        let guest = Arc::new(base.with_limits(limits));
        loaded.insert((*hash, limits), guest.clone());
        Some(guest)
    }

    /// Compiles (or finds) `wasm`, checks it against the world and calls its `info()` (under
    /// [`LOAD_LIMITS`]); returns it with `limits`. An `Err` says why the module cannot be a
    /// guest, and depends on the bytes alone, so it is the same on every member.
    pub fn load(&self, wasm: &[u8], limits: GuestLimits) -> anyhow::Result<Arc<Guest>> {
        let hash: [u8; 32] = {
            use sha2::Digest as _;
            sha2::Sha256::digest(wasm).into()
        };
        if let Some(g) = self.get(&hash, limits) {
            return Ok(g);
        }
        let lock = self.compiling.lock().unwrap_or_else(|p| p.into_inner()).entry(hash).or_default().clone();
        let _compiling = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Someone else may have compiled it while this call waited for the lock.
        if let Some(g) = self.get(&hash, limits) {
            return Ok(g);
        }
        let base = Arc::new(Guest::load_cached(&self.engine, wasm, LOAD_LIMITS, &self.cache_dir)?);
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert((hash, LOAD_LIMITS), base);
        self.compiling.lock().unwrap_or_else(|p| p.into_inner()).remove(&hash);
        self.get(&hash, limits).ok_or_else(|| anyhow::anyhow!("wasmraft: the loaded guest vanished from the registry"))
    }

    /// Starts compiling `wasm` on a thread of its own, so that a swap to it later finds it
    /// compiled. Only a head start: failures are left for the swap entry to report.
    pub fn prepare(self: &Arc<Self>, wasm: Vec<u8>) {
        use sha2::Digest as _;
        let hash: [u8; 32] = sha2::Sha256::digest(&wasm).into();
        if self.get(&hash, LOAD_LIMITS).is_some() {
            return;
        }
        let registry = self.clone();
        let spawned = std::thread::Builder::new().name("guest-compile".into()).spawn(move || {
            let started = std::time::Instant::now();
            match registry.load(&wasm, LOAD_LIMITS) {
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
