//! The redb tables of a member's state database (`member/state.redb`).
//!
//! The state database holds everything the raft log can rebuild: the guest's keyspace, the
//! membership, the stored guest modules and the deployment record, and the index they reflect.
//! All are written in the same transaction, so after a crash the member resumes applying at
//! exactly the entry after the last committed batch, with the guest that was active there.
//!
//! Here they are names and key types only: what the values mean belongs to the host module
//! that owns each table (named below). They are defined here, not there, because a snapshot
//! file gives every table a tag of its own ([`crate::snapshot`]), so the set of tables is part
//! of this crate's file format.

use redb::TableDefinition;

/// The active guest's keyspace: the bytes its `store` imports read and write.
pub const GUEST_KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("guest_kv");

/// Host bookkeeping, keyed by the constants below.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// u64 big-endian: the index of the last entry whose effects are in this database.
pub const META_APPLIED_INDEX: &str = "applied_index";
/// u64 big-endian: the term of that entry.
pub const META_APPLIED_TERM: &str = "applied_term";

/// u64 big-endian: what the guest's keyspace counts for in the backend quota (the host's
/// `kv_size`: its records' keys and values plus a per-record overhead).
pub const META_GUEST_KV_BYTES: &str = "guest_kv_bytes";

/// The cluster's members: member id → the member's record (the host's `membership`). Written at
/// bootstrap from `--initial-cluster` (identically on every member) and by applied entries
/// afterwards.
pub const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");

/// Members removed from the cluster: member id → nothing. etcd keeps them forever too: a removed
/// id can never come back, its messages are refused, and its own restart refuses to run.
pub const REMOVED_MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("removed_members");

/// The key in `META` of the deployment record (the host's `deployment`): the active guest, its
/// limits and the index where it became active. Absent until the first guest is deployed
/// through the log.
pub const META_DEPLOYMENT: &str = "deployment";

/// Stored guest modules: sha256 → the component's bytes. Written when the last piece of a
/// module arrives through the log; kept so members that join or restore later, and rollbacks,
/// find every module that was ever active.
pub const GUEST_MODULES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("guest_modules");

/// Pieces of modules still arriving: sha256 ‖ offset (u64 big-endian) → the piece.
pub const GUEST_UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("guest_uploads");

/// Every deployment that became active: its index → its deployment record.
pub const DEPLOYMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("deployments");

/// Active alarms (owned by the host's `alarms`): keys only, each with an empty value.
pub const ALARMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("alarms");

/// The auth store: users, roles and flags (owned by the host's `auth`).
pub const AUTH: TableDefinition<&[u8], &[u8]> = TableDefinition::new("auth");

/// Metrics the active guest exports (WIT `metrics`, owned by the host's `guest_metrics`): the
/// name's bytes → one kind byte (0: last written with `add`, 1: with `set`) and the value as an
/// i64 big-endian. Written in each batch's transaction, so every member has the same values at
/// the same applied index.
pub const GUEST_METRICS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("guest_metrics");
