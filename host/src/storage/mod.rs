//! Durable state of a member, in two redb databases under `<data-dir>/member/`:
//!
//! - `raft.redb` ([`RaftLog`]): entries, hard state, conf state, snapshot metadata, member
//!   identity. Written once per Ready and fsynced before the member acknowledges anything.
//! - `state.redb` ([`tables`]): the guest's keyspace and the applied index, committed together per
//!   apply batch without waiting for the disk, because the log can replay whatever a crash loses.
//!
//! Two files rather than one so that the raft loop's fsync never waits behind an apply batch's
//! write transaction (redb allows one writer per database).

pub mod raft_log;
pub mod snapshot;
pub mod state_db;
pub mod tables;

pub use raft_log::{Identity, RaftLog};
pub use state_db::StateDb;
