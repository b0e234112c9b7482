//! Durable state of a member, under `<data-dir>/member/`:
//!
//! - `wal/` ([`RaftLog`] over [`wal`]): entries, hard state, conf state, snapshot metadata,
//!   member identity, as appended records in preallocated segment files. Written once per Ready
//!   and fsynced before the member acknowledges anything.
//! - `state.redb` ([`tables`]): the guest's keyspace and the applied index, committed together per
//!   apply batch without waiting for the disk, because the log can replay whatever a crash loses.
//!
//! The log is not a redb table: see [`wal`] for why. The state is, and the raft loop's fsync
//! never waits behind an apply batch's write transaction.

pub mod durable;
pub mod raft_log;
pub mod snapshot;
pub mod state_db;
pub mod tables;
pub mod wal;
#[cfg(test)]
mod wal_crash_tests;

pub use raft_log::{Identity, RaftLog};
pub use state_db::StateDb;
