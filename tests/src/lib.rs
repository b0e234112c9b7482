//! Test support for wasmraft: real clusters of real processes on loopback, for wasmraft's own
//! cross-crate tests and for guest authors who want to test their guest — and its upgrades —
//! the way it will run.
//!
//! Everything here drives *real processes* — the `wasmraft` binary and, for reference, Debian's
//! real `etcd` 3.4 — over loopback, because the compatibility promise is about what a client or an
//! operator observes from the outside (flags, log lines, gRPC answers, etcdctl output), not about
//! any in-process API.
//!
//! - [`cluster`]: N members of one cluster ([`Cluster`]) on free loopback ports with temp data
//!   dirs, started together; the leader as the members agree on it; clients (etcdctl,
//!   `etcd-client`, the `wasmraft` CLI); kill -9 / restart / pause (SIGSTOP) / resume (SIGCONT)
//!   of single members; teardown on drop, also when the test panics.
//! - [`guest`]: deploying guests through the log ([`Cluster::deploy`], [`Cluster::rollback`]),
//!   what each member runs ([`Cluster::guest_status`]), waiting until every member switched
//!   ([`Cluster::wait_guest`]) and until every member has the same state
//!   ([`Cluster::wait_same_state`]).
//! - [`member`]: one member ([`Member`]) of either flavor, with kill -9 / SIGTERM / restart on
//!   the same data dir, pause / resume, its log (and the guest switches it logged:
//!   [`Member::guest_switches`]), guaranteed teardown.
//! - [`cli`]: the `wasmraft` client subcommands ([`WasmraftCli`]): `propose`, `query` (the
//!   generic API a custom guest serves), `guest …`.
//! - [`etcdctl`]: running etcdctl 3.4 against a member and normalizing its output so two
//!   different servers can be compared byte for byte.
//! - [`binaries`]: where `etcd`, `etcdctl` and `wasmraft` are, building `wasmraft` if needed
//!   (or env `WASMRAFT_BIN`).
//! - [`pki`]: a CA, server and client certificates (with chosen common names) for TLS tests.
//! - [`ports`]: free loopback ports that stay free for the life of the test process.
//! - [`h2raw`]: a raw HTTP/2 client (SETTINGS, PINGs, GOAWAY) and [`dns`]: a tiny DNS server on
//!   loopback, for the network flags' tests.
//! - [`pki`]: CA, server, client and peer certificates for the TLS tests ([`Pki`]).
//! - [`tls_probe`]: a TLS client offering one chosen TLS 1.2 suite, or presenting a chosen
//!   certificate to a peer port ([`Probe`]).
//!
//! The fault-injection harness (docs/reliability.md): [`fault_run`] runs one seed —
//! [`nemesis`] (faults from a seed: kill -9, SIGSTOP, [`partition`]s through the transport's
//! test-only hook, leader moves, guest swaps, compaction), [`kv_workload`] (concurrent clients
//! recorded by [`history_recorder`]), [`watchers`] — then checks [`linearizability`] (through
//! `wasmraft-lincheck`), [`convergence`] and [`watch_check`]. [`prng`] is its seeded PRNG.
//!
//! A guest author's swap test (the components built by the test crate's build script with
//! `wasmraft_guest_sdk::builder::export_components`, as this crate's `build.rs` does; see
//! `docs/testing.md`):
//!
//! ```no_run
//! use std::time::Duration;
//! use wasmraft_tests::{ClusterConfig, Flavor};
//!
//! # let (v1, v2) = ("my-guest-v1.component.wasm", "my-guest-v2.component.wasm");
//! // Three members running v1; all dropped (processes killed, temp dirs removed) at the end,
//! // also if an assertion fails.
//! let mut cluster = ClusterConfig::new(Flavor::Wasmraft, 3).guest(v1).start();
//! cluster.wait_leader(Duration::from_secs(20));
//! assert_eq!(cluster.cli(0).propose("add 5").expect("proposed"), "5");
//!
//! // One member misses the upgrade.
//! cluster.kill9(2);
//! let deployed = cluster.deploy(v2, false).expect("v2 deployed");
//! cluster.cli(1).propose("add 1").expect("proposed to v2");
//!
//! // It comes back, replays the log (v1 before the swap index, v2 after) and agrees.
//! cluster.restart(2);
//! let members = cluster.wait_same_state(Duration::from_secs(30)).expect("same state everywhere");
//! assert!(members.iter().all(|m| m.version == "2.0.0" && m.since_index == deployed.since_index));
//! assert_eq!(cluster.cli(2).query_serializable("get").expect("read"), "6");
//! ```

pub mod binaries;
pub mod cli;
pub mod cluster;
pub mod convergence;
pub mod dns;
pub mod etcdctl;
pub mod fault_run;
pub mod guest;
pub mod h2raw;
pub mod history_recorder;
pub mod kv_model;
pub mod kv_workload;
pub mod linearizability;
pub mod member;
pub mod nemesis;
pub mod partition;
pub mod pki;
pub mod ports;
pub mod power_loss;
pub mod prng;
pub mod tls_probe;
pub mod watch_check;
pub mod watchers;

pub use binaries::{etcd_bin, etcdctl_bin, wasmraft_bin};
pub use cli::WasmraftCli;
pub use cluster::{Cluster, ClusterConfig, EndpointStatus, one_cluster_at_a_time, runtime};
pub use etcdctl::{CmdOutput, Etcdctl};
pub use guest::{DeployOptions, Deployment, GuestStatus, StoredModule};
pub use member::{Flavor, GuestSwitch, Member, MemberConfig};
pub use pki::Pki;
pub use ports::free_port;
pub use tls_probe::Probe;
