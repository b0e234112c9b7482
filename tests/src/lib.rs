//! Test support for wasmraft's cross-crate tests.
//!
//! Everything here drives *real processes* — the `wasmraft` binary and, for reference, Debian's
//! real `etcd` 3.4 — over loopback, because the compatibility promise is about what a client or an
//! operator observes from the outside (flags, log lines, gRPC answers, etcdctl output), not about
//! any in-process API.
//!
//! - [`ports`]: free loopback ports that stay free for the life of the test process.
//! - [`binaries`]: where `etcd`, `etcdctl` and `wasmraft` are, building `wasmraft` if needed.
//! - [`member`]: one running member ([`Member`]) of either flavor, with kill -9 / SIGTERM /
//!   restart on the same data dir and guaranteed teardown.
//! - [`cluster`]: N members of one cluster ([`Cluster`]) started together, leader discovery via
//!   `endpoint status`, kill -9 / restart of single members, teardown on drop.
//! - [`etcdctl`]: running etcdctl 3.4 against a member and normalizing its output so two
//!   different servers can be compared byte for byte.

pub mod binaries;
pub mod cluster;
pub mod etcdctl;
pub mod member;
pub mod ports;

pub use binaries::{etcd_bin, etcdctl_bin, wasmraft_bin};
pub use cluster::{Cluster, ClusterConfig, EndpointStatus};
pub use etcdctl::{CmdOutput, Etcdctl};
pub use member::{Flavor, Member, MemberConfig};
pub use ports::free_port;
