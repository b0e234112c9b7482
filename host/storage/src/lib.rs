//! # wasmraft storage
//!
//! A member's durable state, under `<data-dir>/member/`. This crate knows bytes, indexes and
//! terms, files and fsyncs; it knows nothing of etcd, of Wasm, of gRPC, nor of the raft library
//! (it builds without raft, protobuf, tonic, hyper or wasmtime). Like TiKV's raft engine and KV
//! engine, its two stores are separate, each behind a small API:
//!
//! - the raft log, [`RaftLog`] (`wal/`): entries, hard state, conf state, compaction point and
//!   member identity as checksummed records in preallocated segment files, written once per Ready
//!   and fsynced before the member acknowledges anything. Its types ([`Entry`], [`HardState`],
//!   [`ConfState`], [`SnapshotMeta`], [`Identity`]) are plain ones: the host converts raft's at its
//!   edge (`host/node/src/log_store.rs`, which implements `raft::Storage`). The log is not a redb
//!   table: see `wal.rs` for why.
//! - the state database, [`StateDb`] (`state.redb`): redb tables ([`tables`]) holding the guest's
//!   keyspace, the host's replicated records and the applied index, committed per apply batch
//!   without waiting for the disk (the log replays whatever a crash loses). The raft loop's fsync
//!   never waits behind an apply batch's write transaction.
//! - [`snapshot`] files: a consistent copy of the state database, streamed, never whole in memory.
//! - [`bbolt`] files: etcd's backend format, read without trusting it and written in one pass.
//!
//! The tables the host's subsystems own (membership, deployments, guest modules, alarms, auth)
//! are defined in [`tables`] as names and key types only, with no knowledge of what their values
//! mean: a snapshot file tags each table, so the set of tables is part of the file format, and
//! copying them is this crate's job. (redb cannot read a table without its types, so a snapshot
//! cannot copy "every table" without this list.)
//!
//! Errors are typed per store ([`LogError`], [`WalError`], [`StateDbError`], [`SnapshotError`],
//! [`IoError`] for file-system steps); a corrupt WAL is [`CorruptWal`], whose text tells the
//! operator what to do.

pub mod bbolt;
// The fuzz target's body (tests/fuzz/src/bbolt.rs) names this crate by name; the bbolt tests
// compile it in to replay its corpus.
#[cfg(test)]
extern crate self as wasmraft_storage;
pub mod durable;
mod error;
mod raft_log;
pub mod snapshot;
mod state_db;
pub mod tables;
mod types;
mod wal;
#[cfg(test)]
mod wal_crash_tests;

pub use error::{CorruptWal, IoError, LogError, RecordError, SnapshotError, StateDbError, WalError};
pub use raft_log::RaftLog;
pub use state_db::StateDb;
pub use types::{ConfState, Entry, EntryKind, HardState, Identity, SnapshotMeta};
/// The size of a WAL segment (etcd's): the disk space one more segment takes.
pub use wal::SEGMENT_BYTES as WAL_SEGMENT_BYTES;
