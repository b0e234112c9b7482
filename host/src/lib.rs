//! # wasmraft host
//!
//! One member of a replicated state machine. The data path, in module order:
//!
//! - [`config`]: etcd 3.4's command line, validated.
//! - [`wasmraft_storage`] (host/storage): the raft log (a WAL, one fsync per Ready), the state
//!   database and its tables, snapshot files.
//! - [`node`]: the raft-rs Ready loop (raft's `Storage` over that log: `node::log_store`), the
//!   apply loop and the wait registry that hands each client its own entry's result.
//! - `wasmraft_runtime` (host/runtime): the wasmtime runtime that runs the guest's `apply` and
//!   `query`, over the `GUEST_KV` table lent to it by [`node::guest_store`].
//! - [`deployment`]: which guest is active since which index, and swaps through the log.
//! - `api`: etcd's v3 gRPC API in front of it all.
//! - `wasmraft_metrics` (host/metrics): what `/metrics` serves (etcd's names where the meaning is etcd's).
//!
//! The host knows logs, terms, members and bytes. What a command means is the guest's business.

pub mod cli;
pub mod config;
pub mod harness;
pub mod join;
pub mod logging;
pub mod server;
pub mod tls;
