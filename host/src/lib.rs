//! # wasmraft: the binary
//!
//! What turns the crates below into a running etcd-compatible member: etcd's command line
//! resolved into the node's and the API's settings ([`config`]), the initial cluster from DNS
//! ([`discovery_srv`]), logging in etcd's two shapes
//! ([`logging`]), the listeners' TLS ([`tls`]), joining an existing cluster ([`join`]), the
//! wiring of storage, runtime, node, peer transport and client API into one process
//! ([`server`]), the client subcommands ([`cli`]), and a member in a test's own process
//! ([`harness`]). The data path lives below it: `wasmraft_api` → `wasmraft_node` →
//! `wasmraft_storage` and `wasmraft_runtime` (docs/architecture.md).
//!
//! It must hold no replication, storage or API logic of its own: a flag's meaning is passed down
//! as a setting, never read below this crate.

pub mod cli;
pub mod config;
pub mod discovery_srv;
pub mod harness;
pub mod join;
pub mod logging;
pub mod server;
pub mod tls;
pub mod version;
