//! Everything that bounds what one guest call may do.
//!
//! Every number here changes *where* a misbehaving guest is stopped, so every member must use
//! the same ones: [`GuestLimits`] travels in the replicated guest deployment record, and the
//! constants below are part of the host's protocol — changing one is a compatibility change,
//! like changing the WIT world.

/// Per-entry budgets of one guest deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestLimits {
    /// Fuel for one `apply`, `query` or `migrate` call (instantiation included, where the call
    /// has a fresh instance; a query may not: see `runtime.rs`). One unit is
    /// roughly one Wasm instruction; host calls are charged too, see [`fuel_for_host_call`].
    pub fuel_per_entry: u64,
    /// The most linear memory the guest instance may have, in bytes. It also caps the bytes an
    /// entry may buffer in writes and events (see [`GuestLimits::pending_bytes_cap`]), because
    /// those are guest memory that merely lives on the host side until the entry commits.
    pub memory_bytes: u64,
    /// The guest's Wasm stack limit, in bytes: where a deep recursion traps. Counted by the
    /// guest's own code in slots of 8 bytes (`stack_limit.rs`), so the same on every member;
    /// wasmtime's native limit is a backstop above it. One of [`STACK_BYTES_CHOICES`].
    pub stack_bytes: u64,
}

impl GuestLimits {
    /// The most bytes of puts, deletes and events one entry may accumulate before it commits.
    pub fn pending_bytes_cap(&self) -> u64 {
        self.memory_bytes
    }
}

impl Default for GuestLimits {
    /// Sized for the KV guest: ten billion units is seconds of CPU, enough to compact or range
    /// over millions of keys in one entry; 256 MiB holds a maximum-size value several times over.
    fn default() -> Self {
        GuestLimits { fuel_per_entry: 10_000_000_000, memory_bytes: 256 << 20, stack_bytes: DEFAULT_STACK_BYTES }
    }
}

/// The stack limit of a deployment that names none (every record written before the limit
/// was part of it): wasmtime's default, which every member used until then.
pub const DEFAULT_STACK_BYTES: u64 = 512 << 10;

/// The stack limits a deployment may choose: powers of two from 64 KiB to 8 MiB. wasmtime sets
/// the limit per engine, not per instance, so each limit in use is an engine of its own (with
/// its own instance pool): a short list keeps that bounded (docs/decisions.md).
pub const STACK_BYTES_CHOICES: [u64; 8] =
    [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20];

/// The largest of [`STACK_BYTES_CHOICES`].
pub const MAX_STACK_BYTES: u64 = STACK_BYTES_CHOICES[STACK_BYTES_CHOICES.len() - 1];

/// Stack for a thread that runs guest code: the largest native backstop (wasmtime's limit, a
/// multiple of the counted one: `stack_limit.rs`), plus room for the host frames under the call
/// (the runtime, the request) and above it (host imports run on the same stack, past the
/// guest's limit). Overrunning it is a crash, not a trap. Only address space: a thread touches
/// the pages its calls reach.
pub const GUEST_THREAD_STACK_BYTES: usize =
    (MAX_STACK_BYTES * crate::stack_limit::BACKSTOP_FACTOR + (4 << 20)) as usize;

/// Whether `stack_bytes` is a limit a deployment may set.
pub fn check_stack_bytes(stack_bytes: u64) -> Result<(), LimitError> {
    if STACK_BYTES_CHOICES.contains(&stack_bytes) {
        return Ok(());
    }
    Err(LimitError::Stack(stack_bytes))
}

/// The smallest memory limit a deployment may set: one Wasm page.
pub const MIN_MEMORY_BYTES: u64 = 64 << 10;

/// The largest memory limit: every byte a 32-bit memory can address (the instance pool
/// reserves no more per instance).
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// A limit a deployment may not set. The text is for the client that asked for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    #[error("wasmraft: memory limit {0} is outside {MIN_MEMORY_BYTES}..={MAX_MEMORY_BYTES} bytes")]
    Memory(u64),
    #[error("wasmraft: fuel per entry must be above 0")]
    Fuel,
    #[error("wasmraft: stack limit {0} is not a power of two from {min} to {MAX_STACK_BYTES} bytes", min = STACK_BYTES_CHOICES[0])]
    Stack(u64),
}

/// Largest key a guest may `put`, `get`, `delete` or pass as a scan bound. Above etcd's default
/// request size (1.5 MiB), so any key an etcd client can send fits with room for a guest's own
/// prefix and suffix; a guest that wants a smaller limit checks it itself, with its own error.
pub const MAX_KEY_BYTES: usize = 4 << 20;

/// Largest value a guest may `put`.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// Largest single event: room for an event that carries a key-value pair and its previous
/// version, both at the maximum sizes (what an etcd watch event with prev_kv holds).
pub const MAX_EVENT_BYTES: usize = 2 * (MAX_KEY_BYTES + MAX_VALUE_BYTES) + (64 << 10);

/// Largest output of `apply` or `query`: a maximum-size value plus generous framing.
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// wasmtime's own cap on the bytes one boundary crossing may lift into the host (its "hostcall
/// fuel", default 128 MiB). Set just above every limit here, so a guest that passes too much is
/// stopped by the check that names the limit rather than by wasmtime's generic one.
pub const HOSTCALL_LIFT_BYTES: usize = MAX_EVENT_BYTES + (1 << 20);

/// Pairs per `scan` page when the guest passes limit 0, and the most it may ask for at once.
pub const SCAN_PAGE_PAIRS: u32 = 1024;

/// A scan page stops before the pair that would take it past this many bytes (keys + values +
/// [`SCAN_PAIR_OVERHEAD`] per pair), but always holds at least one pair so a guest can progress.
pub const SCAN_PAGE_BYTES: usize = 4 << 20;

/// What a pair costs a page beyond its bytes: the canonical ABI's two (pointer, length) pairs.
/// Counting it keeps a page of empty values bounded too.
pub const SCAN_PAIR_OVERHEAD: usize = 16;

/// Fixed fuel per host call: a table lookup is worth about a thousand Wasm instructions.
pub const FUEL_PER_HOST_CALL: u64 = 1_000;

/// Fuel per scanned pair, on top of its bytes.
pub const FUEL_PER_SCANNED_PAIR: u64 = 100;

/// Bytes moved across the boundary per unit of fuel (a memcpy moves several bytes per
/// instruction's worth of time).
pub const BYTES_PER_FUEL: u64 = 8;

/// The fuel a host call costs, from the bytes it moved in and out and the pairs it scanned.
/// Deterministic by construction: it depends only on the call's arguments and results, which
/// are the same on every member.
pub fn fuel_for_host_call(bytes: usize, pairs: usize) -> u64 {
    FUEL_PER_HOST_CALL + (bytes as u64) / BYTES_PER_FUEL + (pairs as u64) * FUEL_PER_SCANNED_PAIR
}

/// Fixed fuel per `metrics` call: an update of a small in-memory map, no store access, so a
/// tenth of [`FUEL_PER_HOST_CALL`] (a guest may call it on every write).
pub const FUEL_PER_METRIC_CALL: u64 = 100;

/// The fuel a `metrics` call costs, from its name's length (and the 8-byte value).
pub fn fuel_for_metric_call(name_bytes: usize) -> u64 {
    FUEL_PER_METRIC_CALL + (name_bytes as u64 + 8) / BYTES_PER_FUEL
}

/// Longest metric name a guest may pass to `metrics.add`/`metrics.set`.
pub const MAX_METRIC_NAME_BYTES: usize = 128;

/// What a metric costs an entry's pending bytes beyond its name: the value and the map entry.
pub const METRIC_OVERHEAD_BYTES: usize = 32;

/// Whether `name` is a metric name a guest may export: `[a-z_][a-z0-9_]*`, at most
/// [`MAX_METRIC_NAME_BYTES`] bytes (a Prometheus name, lower case, without colons, which
/// Prometheus keeps for recording rules).
pub fn is_metric_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_lowercase() || *b == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_METRIC_NAME_BYTES
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}
