//! The guest runtime: runs a state-machine guest (a Wasm component, see `proto/wit/guest.wit`)
//! under wasmtime, deterministically.
//!
//! - [`GuestEngine`] ([`engine`]): a wasmtime engine, configured by DESIGN.md's determinism
//!   rules (NaN canonicalization, no threads, deterministic relaxed SIMD, fuel, no ambient
//!   imports), with a pooling allocator so a fresh instance per entry is cheap; one per Wasm
//!   stack limit in use, since wasmtime sets that limit per engine.
//! - [`Guest`] ([`runtime`]): a loaded guest. Every `apply` and `migrate` runs in a fresh
//!   instance, so no linear-memory state survives from one entry to the next (members batch
//!   entries differently, so such state would make them diverge). A `query` may reuse an
//!   instance an earlier query left (it replicates nothing; docs/decisions.md).
//! - [`GuestLimits`] ([`limits`]): fuel, memory and Wasm stack per entry, part of the replicated
//!   guest deployment; the constants there bound sizes of keys, values, events, results and
//!   scan pages.
//! - [`GuestRegistry`] ([`registry`]): every guest the member has loaded, by module hash, so a
//!   swap or a query finds compiled code instead of compiling on the spot.
//! - `host_store`: the `store` and `events` imports. An entry's writes collect in an overlay and
//!   reach the `GUEST_KV` table only if `apply` returns `Ok`.

pub mod engine;
mod host_store;
pub mod limits;
pub mod registry;
pub mod runtime;
pub mod stack_limit;
#[cfg(test)]
mod tests;

pub use engine::{EngineConfig, GuestEngine};
pub use limits::GuestLimits;
pub use registry::GuestRegistry;
pub use runtime::Guest;

/// Where the entry being applied sits in the log. `time_unix_ms` comes from the entry (the
/// proposer's clock), never from the applying member's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyContext {
    pub index: u64,
    pub term: u64,
    pub time_unix_ms: u64,
}

/// A guest's name, version and the client APIs it serves (WIT `guest-info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestInfo {
    pub name: String,
    pub version: String,
    pub apis: Vec<String>,
}

/// What a successful entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// For the client that proposed the entry.
    pub output: Vec<u8>,
    /// For watchers, in emit order.
    pub events: Vec<Vec<u8>>,
}

/// Why a guest call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The guest returned `Err` (its text, verbatim), trapped, ran out of fuel, hit its memory
    /// limit or broke an import rule. Deterministic: every member gets the same error for the
    /// same entry, nothing the entry wrote survives, and the log goes on.
    #[error("{0}")]
    Guest(String),
    /// redb failed. The transaction may hold part of the entry: the member must stop.
    #[error("wasmraft: storage failure while running the guest: {0}")]
    Storage(#[from] redb::Error),
    /// The host could not run the guest at all (an exhausted instance pool, an mmap failure).
    /// Not the guest's doing and not deterministic, so the entry's outcome must not be recorded:
    /// like `Storage`, fatal to the apply loop (a query may simply be retried).
    #[error("{0}")]
    Host(String),
}

impl ApplyError {
    /// Whether the member can go on applying after this error.
    pub fn is_guest(&self) -> bool {
        matches!(self, ApplyError::Guest(_))
    }
}
