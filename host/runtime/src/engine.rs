//! A member's wasmtime engines, configured for determinism, and the instance slots that bound
//! how many guest instances run at once.
//!
//! One engine per Wasm stack limit in use: the guest counts its own stack against the
//! deployment's limit, and wasmtime's native limit, which it takes from the engine's
//! configuration only, is a backstop set from it (see [`GuestEngine::with_stack`]).

use std::sync::Arc;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::error::LoadError;
use crate::idle::IdleQueries;
use crate::limits::{self, DEFAULT_STACK_BYTES};
use crate::slots::{QuerySlot, Slots};
use crate::stack_limit;

/// How the engine is sized. Nothing here changes what a guest computes, only how many guest
/// instances may exist at once, so members may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Guest instances alive at once: one apply, the occasional load or migrate, and the rest
    /// for concurrent queries (see [`CONTROL_SLOTS`]). Each is a pool slot reserving
    /// [`MEMORY_RESERVATION`] + [`MEMORY_GUARD`] of address space (not memory).
    pub max_instances: u32,
    /// Use the pooling allocator (fast per-entry instantiation). If the pool's address-space
    /// reservation fails (a ulimit -v, a small sandbox), the engine falls back to on-demand
    /// allocation with a warning rather than refusing to start.
    pub pooling: bool,
}

/// Slots kept for apply, migrate and load, so queries can never starve the apply loop: apply
/// failing for want of a slot would give this member a different outcome than its peers.
pub const CONTROL_SLOTS: u32 = 4;

/// Address space reserved per linear memory: 4 GiB is every address a 32-bit memory can form,
/// so Cranelift elides bounds checks. It is `PROT_NONE` until used and costs no memory.
pub const MEMORY_RESERVATION: u64 = 1 << 32;

/// Guard after each memory (wasmtime's default): static offsets below it need no bounds check.
pub const MEMORY_GUARD: u64 = 32 << 20;

/// Core instances a component built by `wit-component` holds: the guest module plus the shim
/// and fixup modules for its imports, with room to spare.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const TABLES_PER_COMPONENT: u32 = 8;

/// How a recycled slot's memory is reset, which is most of the cost of a fresh instance per
/// entry. Measured with the hostile guest (instantiate + one trivial call + drop, release build,
/// Linux 6.18): madvise only 40 µs (every touched page faults again next entry); memset of the
/// first 1 MiB without pagemap 89 µs; with PAGEMAP_SCAN (Linux ≥ 6.7), which resets only the
/// pages the entry dirtied and keeps them mapped, 21 µs for 1 or 8 MiB. So: keep 8 MiB resident
/// when the kernel can say which pages are dirty, nothing otherwise.
const KEEP_RESIDENT_WITH_PAGEMAP: usize = 8 << 20;

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2);
        // 16..=256 slots: 64 GiB to 1 TiB of address space out of x86-64's 128 TiB.
        EngineConfig { max_instances: (4 * cores).clamp(16, 256), pooling: true }
    }
}

/// A member's guest engine. Cheap to clone; every [`crate::Guest`] loaded on it shares its code
/// cache settings, its pool and its slots.
#[derive(Clone)]
pub struct GuestEngine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) engine: Engine,
    pub(crate) pooled: bool,
    config: EngineConfig,
    stack_bytes: u64,
    pub(crate) control: Slots,
    pub(crate) queries: Arc<Slots>,
    /// Shared by the engines of one member (see [`GuestEngine::with_stack`]), so instances that
    /// guests of an engine no longer in use keep give way to the current guest's.
    pub(crate) idle_queries: Arc<IdleQueries>,
}

impl std::fmt::Debug for GuestEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestEngine")
            .field("pooled", &self.inner.pooled)
            .field("stack_bytes", &self.inner.stack_bytes)
            .field("control_slots", &self.inner.control.capacity)
            .field("query_slots", &self.inner.queries.capacity)
            .finish()
    }
}

impl GuestEngine {
    /// An engine with the stack limit of deployments that name none.
    pub fn new(config: EngineConfig) -> Result<Self, LoadError> {
        let max_instances = config.max_instances.max(CONTROL_SLOTS + 1);
        let idle_queries = Arc::new(IdleQueries::new(max_instances - CONTROL_SLOTS));
        Self::build(config, DEFAULT_STACK_BYTES, idle_queries)
    }

    /// An engine like this one whose guests get `stack_bytes` of Wasm stack, sharing its idle
    /// query instances. The guest's code counts its stack against the limit itself (compiled
    /// for it, [`crate::Guest::on_engine`]); wasmtime's native limit, read from the engine's
    /// configuration, is the backstop above it.
    pub fn with_stack(&self, stack_bytes: u64) -> Result<Self, LoadError> {
        limits::check_stack_bytes(stack_bytes)?;
        Self::build(self.inner.config, stack_bytes, self.inner.idle_queries.clone())
    }

    fn build(config: EngineConfig, stack_bytes: u64, idle_queries: Arc<IdleQueries>) -> Result<Self, LoadError> {
        let max_instances = config.max_instances.max(CONTROL_SLOTS + 1);
        let with_stack = |pool_slots| {
            let mut c = base_config(pool_slots);
            // The guest counts its own stack against `stack_bytes` (stack_limit.rs); wasmtime's
            // native limit is only the backstop, far enough above it never to trip first.
            // Checked against STACK_BYTES_CHOICES, far below usize::MAX.
            let backstop = usize::try_from(stack_limit::native_backstop_bytes(stack_bytes)).unwrap_or(usize::MAX);
            c.max_wasm_stack(backstop);
            // wasmtime refuses a Wasm stack limit above its async stack size (2 MiB by default)
            // even though guests never run on async stacks here.
            c.async_stack_size(backstop.saturating_add(1 << 20));
            c
        };
        let (engine, pooled) = if config.pooling {
            match Engine::new(&with_stack(Some(max_instances))) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        max_instances,
                        "wasmraft: cannot reserve the guest instance pool; falling back to on-demand instance allocation (slower per entry)"
                    );
                    (Engine::new(&with_stack(None)).map_err(engine_error)?, false)
                }
            }
        } else {
            (Engine::new(&with_stack(None)).map_err(engine_error)?, false)
        };
        let query_slots = max_instances - CONTROL_SLOTS;
        Ok(GuestEngine {
            inner: Arc::new(EngineInner {
                engine,
                pooled,
                config,
                stack_bytes,
                control: Slots::new(CONTROL_SLOTS),
                queries: Arc::new(Slots::new(query_slots)),
                idle_queries,
            }),
        })
    }

    /// The Wasm stack limit of this engine's guests, in bytes.
    pub fn stack_bytes(&self) -> u64 {
        self.inner.stack_bytes
    }

    /// The underlying wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Whether instances come from the pooling allocator (false after a fallback).
    pub fn is_pooled(&self) -> bool {
        self.inner.pooled
    }

    /// Identifies the compiled-code format of this engine (wasmtime version, settings, CPU
    /// features): compiled artifacts are reusable exactly between engines with equal hashes.
    pub fn compatibility_hash(&self) -> String {
        use sha2::Digest as _;
        use std::hash::Hash as _;
        struct Sha(sha2::Sha256);
        impl std::hash::Hasher for Sha {
            fn finish(&self) -> u64 {
                0
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
        }
        let mut h = Sha(sha2::Sha256::new());
        self.inner.engine.precompile_compatibility_hash().hash(&mut h);
        hex::encode(&h.0.finalize()[..16])
    }
}

/// The configuration every member must share (DESIGN.md, "Determinism"), plus the allocation
/// strategy, which members may choose freely.
fn base_config(pool_slots: Option<u32>) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    // Determinism: the same bits from the same inputs on every CPU.
    c.cranelift_nan_canonicalization(true);
    // Threads: wasmtime is built without its `threads` feature (workspace Cargo.toml), so the
    // proposal cannot be enabled at all; shared memories are refused explicitly as well.
    c.shared_memory(false);
    c.relaxed_simd_deterministic(true);
    // One memory of 32-bit addresses, so the memory cap and the reservation mean what they say.
    c.wasm_memory64(false);
    c.wasm_multi_memory(false);
    // Fuel stops a guest at the same instruction on every member; epochs would stop it at a
    // time, which differs between members.
    c.consume_fuel(true);
    c.epoch_interruption(false);
    c.cranelift_opt_level(OptLevel::Speed);
    c.parallel_compilation(true);
    c.memory_reservation(MEMORY_RESERVATION);
    c.memory_guard_size(MEMORY_GUARD);
    // Memories never move, so compiled code can keep the heap base in a register; with a 4 GiB
    // reservation they never need to.
    c.memory_may_move(false);
    c.memory_init_cow(true);
    if let Some(slots) = pool_slots {
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        let keep_resident = if pagemap { KEEP_RESIDENT_WITH_PAGEMAP } else { 0 };
        let mut p = PoolingAllocationConfig::new();
        p.total_component_instances(slots)
            .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(slots)
            .max_memories_per_component(1)
            .max_memories_per_module(1)
            .total_tables(slots * TABLES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_tables_per_module(1)
            .max_memory_size(MEMORY_RESERVATION as usize)
            .linear_memory_keep_resident(keep_resident)
            .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No })
            .table_keep_resident(64 << 10)
            // A slot is reused first by the module that last ran in it (its memory image is
            // already in place); 0 also recycles another module's warm slot before touching a
            // cold one, so resident memory tracks peak concurrency, not pool size.
            .max_unused_warm_slots(0);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

fn engine_error(e: wasmtime::Error) -> LoadError {
    LoadError::Engine(format!("{e:#}"))
}

impl GuestEngine {
    /// A query slot, waiting while every one is taken.
    pub(crate) fn query_slot(&self) -> QuerySlot {
        QuerySlot::take(&self.inner.queries)
    }

    /// A query slot if one is free now.
    pub(crate) fn try_query_slot(&self) -> Option<QuerySlot> {
        QuerySlot::try_take(&self.inner.queries)
    }
}
