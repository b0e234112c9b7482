//! # wasmraft-kv-guest
//!
//! etcd 3.4's MVCC key-value store as a wasmraft guest: with it, a wasmraft cluster answers
//! etcd's KV API (Range, Put, DeleteRange, Txn, Compact) exactly as etcd 3.4 does — revisions,
//! versions, history reads, compaction, transactions, error texts. The host knows nothing of
//! this: it hands [`KvGuest`] encoded `etcdserverpb.InternalRaftRequest`s (`apply`) and
//! `RangeRequest`s (`query`) and returns the encoded response messages to clients, filling in
//! cluster id, member id and raft term.
//!
//! Every entry runs in a fresh instance, so all state is in the store. Each module mirrors one
//! piece of etcd (`etcdserver/apply.go`, `mvcc/kvstore_txn.go`, `mvcc/key_index.go`, …) and
//! says where it does what etcd does and why.
//!
//! ## Storage layout
//!
//! Single-byte table prefixes, then a `/` (the layout of issue 26: a put writes two rows):
//!
//! | key | value | what for |
//! |---|---|---|
//! | `h/<main><sub>` | `p`/`t` ‖ links ‖ `mvccpb.KeyValue` (a deletion: the key) | every change, in revision order: etcd's `key` bucket row for row (watch history, HashKV, the backup file read it as is) |
//! | `h/\xff` | i64 BE | the current revision, only while it is above the newest change's (after a compaction dropped a deletion); absent otherwise: the newest `h/` row *is* the revision |
//! | `k/<key>` | `p`/`t` ‖ fingers ‖ live `mvccpb.KeyValue` | each key's live value (reads at the current revision: one scan of the span) and the entry to its history (a deleted key keeps its row, `t`, until a compaction passes its deletion) |
//! | `m/compacted` | i64 BE | the last compaction's revision (absent: -1, never compacted) |
//! | `L/<lease id BE>` | `wasmraft.v1.LeaseRecord` | the lease table: granted leases, their TTL and last checkpointed remaining TTL |
//! | `K/<lease id BE><key>` | empty | the keys attached to each lease, for revoke and TimeToLive |
//!
//! Revisions are `(main, sub)` as in etcd, each 8 bytes big-endian in keys, so byte order is
//! revision order. A key's changes form a skip list through `h/` ([`chain`]): each change links
//! back to the key's earlier changes at a few levels, the key's row holds the newest change at
//! each level, so a read at a past revision reaches the key's value in O(log versions) gets,
//! while a put writes one change row and rewrites the key's row (bounded: one finger per level,
//! at most 64). The live value is stored twice (`k/` and the newest `h/`): the price of
//! answering the common read — at the current revision — with one scan of the span's keys.
//!
//! Every write also emits an `mvccpb.Event` (PUT with the new KeyValue, or DELETE with the key
//! and the delete's revision), with `prev_kv` set to the key's value before the entry's
//! transaction, as etcd's watchers see it.
//!
//! A keyspace written by the layout before issue 26 (`l/`, `i/`, `r/`, `m/revision`) is
//! rewritten by this guest's `migrate` when it is swapped in ([`legacy`]).
//!
//! ## etcd's backend file
//!
//! `h/` holds exactly the history etcd's `key` bucket holds, in the same order;
//! [`etcd_backend`] turns the tables into etcd 3.4's `key`, `lease` and `meta` buckets and back
//! (the host reads and writes the bbolt file: `etcdctl snapshot save`, `wasmraft snapshot
//! restore`), and HashKV is etcd's `HashByRev` computed over that same view, so its values are
//! etcd's.
//!
//! ## Where this differs from etcd 3.4, on purpose
//!
//! - Inputs on which etcd crashes the member are errors here, rolled back: a transaction put with
//!   `ignore_value`/`ignore_lease` on a key an earlier operation of the same transaction deleted
//!   (etcd panics with "unexpected error during txn"; here `etcdserver: key not found`), and a
//!   sort target etcd does not know (etcd dereferences a nil sorter; here key order).
//! - Compaction runs entirely inside its entry instead of in background batches, so a
//!   compaction over a long history costs that one entry its fuel.
//! - Sort ties fall as Go ≥ 1.19's `sort.Sort` leaves them (the etcd 3.4.23 that Debian ships,
//!   built with Go 1.19, which `tests/kv/fixtures` were recorded from). etcd release binaries
//!   built with an older Go order ties differently among themselves.

mod apply;
mod chain;
mod compact;
mod compare;
mod delete;
pub mod errors;
pub mod etcd_backend;
mod hash;
/// HashKV, for a host that runs it natively over the same state (no fuel bound on a large
/// keyspace); the same code the guest's `query` runs.
pub use hash::hash_kv;
mod history;
pub mod layout;
mod lease;
pub mod legacy;
mod meta;
mod pager;
mod put;
mod range;
mod read;
mod record;
pub mod revision;
mod sort;
mod txn;
mod write;

use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};

/// The etcd KV state machine.
pub struct KvGuest;

impl StateMachine for KvGuest {
    fn info() -> GuestInfo {
        GuestInfo::new("etcd-kv", env!("CARGO_PKG_VERSION")).with_api(wasmraft_guest_sdk::API_ETCD_KV)
    }

    fn apply(_ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        apply::apply(store, command)
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        apply::query(store, request)
    }

    /// Brings a keyspace an earlier etcd-kv wrote in its layout to this one's ([`legacy`]),
    /// whatever guest it is swapped in from.
    fn migrate(_from: &GuestInfo, store: &mut dyn Store) -> Result<(), String> {
        legacy::migrate(store).map(|_| ())
    }
}

// Behind the default `export` feature, so a crate wrapping `KvGuest` can export its own guest.
#[cfg(feature = "export")]
wasmraft_guest_sdk::export_guest!(KvGuest);
