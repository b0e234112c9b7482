//! # wasmraft-backup
//!
//! etcd's backup file for a wasmraft member whose active guest is the bundled KV guest: what
//! `etcdctl snapshot save` receives from `Maintenance.Snapshot` is etcd's bbolt backend, which
//! `etcdctl snapshot status` and `restore` (and an `etcd` started on the result) read, and what
//! `wasmraft snapshot restore` takes from a real etcd is the same file.
//!
//! The crate joins three things it does not own: the bbolt format (`wasmraft_storage::bbolt`),
//! the KV guest's translation of its private tables into etcd's `key`, `lease` and `meta`
//! buckets (`wasmraft_kv_guest::etcd_backend`, linked natively), and the host's own records —
//! auth (`auth`, `authUsers`, `authRoles`), membership (`members`, `members_removed`), alarms,
//! the cluster version and the consistent index — which it lays out as etcd's `etcdserver`
//! does. It knows nothing of gRPC or raft: the node streams what [`EtcdBackend`] writes, and the
//! binary's `snapshot restore` calls [`restore`]. [`hash_kv`] runs the KV guest's HashKV over
//! the same state natively, as etcd hashes its backend, without a query's fuel bound.
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `alarm` | `etcdserverpb.AlarmMember` | empty |
//! | `auth` | `authEnabled`, `authRevision` | `1`/`0`; 8 bytes BE |
//! | `authRoles`, `authUsers` | the name | `authpb.Role`, `authpb.User` |
//! | `cluster` | `clusterVersion` | e.g. `3.4.0` |
//! | `key`, `lease` | see the KV guest | |
//! | `members` | the member id in hex | etcd's member JSON |
//! | `members_removed` | the member id in hex | `removed` |
//! | `meta` | `consistent_index`; the compaction keys | 8 bytes BE; see the KV guest |

mod buckets;
mod encode;
mod error;
mod hash;
mod restore;
mod status;
mod store;

pub use encode::EtcdBackend;
pub use error::BackupError;
pub use hash::hash_kv;
pub use restore::{RestoreSummary, restore};
pub use status::{FileStatus, status};
