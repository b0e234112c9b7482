//! etcd 3.4's KV semantics, checked natively through the guest SDK's harness: every command is
//! an encoded `InternalRaftRequest` applied as a log entry, every read an encoded query, exactly
//! as the host drives the Wasm guest.

mod common;

mod compact;
mod delete;
mod etcd_backend;
mod etcd_hash;
mod events;
mod history;
mod layout;
mod lease;
mod malformed;
mod metrics;
mod put;
mod range;
mod revisions;
mod script;
mod sort_ties;
mod txn;
mod watch_history;
mod write_cost;
