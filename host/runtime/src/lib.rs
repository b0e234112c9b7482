//! # wasmraft runtime
//!
//! Runs a state-machine guest (a Wasm component, see `proto/wit/guest.wit`) under wasmtime,
//! deterministically: every member that applies the same entry to the same state gets the same
//! output, events and writes. This crate knows Wasm, the guest's world, the budgets that stop a
//! misbehaving guest, and the key-value store a guest reads and writes, as a trait the host
//! lends it ([`StoreRead`], [`StoreWrite`]). It must not know raft, the log, gRPC or how the
//! host stores anything: no raft, protobuf, tonic, hyper or redb here, and nothing of the
//! host's storage crate. What an entry is, which guest is active since which index and how a
//! module reaches a member are the host's business; the rules a deployment record's limits and
//! a swap must pass are here because they are about a module and its limits alone
//! ([`deployment`]).
//!
//! - [`GuestEngine`] (`engine.rs`): a wasmtime engine, configured by DESIGN.md's determinism
//!   rules (NaN canonicalization, no threads, deterministic relaxed SIMD, fuel, no ambient
//!   imports), with a pooling allocator so a fresh instance per entry is cheap; one per Wasm
//!   stack limit in use, since wasmtime sets that limit per engine.
//! - [`Guest`] (`runtime.rs`): a loaded guest. Every `apply` and `migrate` runs in a fresh
//!   instance, so no linear-memory state survives from one entry to the next (members batch
//!   entries differently, so such state would make them diverge). A `query` may reuse an
//!   instance an earlier query left (`idle.rs`; it replicates nothing: docs/decisions.md).
//! - [`EntryRun`] (`entry_run.rs`): the commands of one entry, one after another in one
//!   instance when the guest declares [`SHARED_ENTRY_INSTANCE`] (the grouping is in the log,
//!   so members agree), each with its own budget, writes and result.
//! - [`GuestLimits`] ([`limits`]): fuel, memory and Wasm stack per entry, part of the replicated
//!   guest deployment; the constants there bound sizes of keys, values, events, results and
//!   scan pages.
//! - [`GuestRegistry`] (`registry.rs`): every guest the member has loaded, by module hash, so a
//!   swap or a query finds compiled code instead of compiling on the spot.
//! - [`StoreRead`], [`StoreWrite`] (`store.rs`): what the host lends a call. `host_store.rs`
//!   implements the guest's `store` and `events` imports over it: an entry's writes collect in
//!   an overlay and reach the host's store only if `apply` returns `Ok`.
//! - [`compile_budget`]: the pass over a module's bytes that refuses a "compile bomb" (too many
//!   or too large functions, too many locals, too deep nesting) before wasmtime compiles it.
//! - [`deployment`]: the limits a deployment record sets and the rules a swap must pass.

mod bindings;
mod call;
pub mod compile_budget;
mod engine;
mod entry_run;
mod error;
mod host_store;
mod idle;
mod registry;
mod runtime;
mod slots;
mod stack_limit;
mod store;

pub mod deployment;
pub mod limits;

#[cfg(test)]
mod tests;

pub use call::{Applied, ApplyContext, GuestInfo, MetricUpdate};
pub use engine::{CONTROL_SLOTS, EngineConfig, GuestEngine, MEMORY_GUARD, MEMORY_RESERVATION};
pub use entry_run::{EntryRun, SHARED_ENTRY_INSTANCE};
pub use error::{ApplyError, LoadError};
pub use limits::GuestLimits;
pub use registry::{GuestRegistry, LOAD_LIMITS};
pub use runtime::{Guest, sha256};
pub use store::{StoreError, StoreRead, StoreWrite, Visit, Writes};
