//! The redb tables of a member's state database (`member/state.redb`).
//!
//! The state database holds everything the raft log can rebuild: the guest's keyspace and the
//! index it reflects. Both are written in the same transaction, so after a crash the member
//! resumes applying at exactly the entry after the last committed batch.

use redb::TableDefinition;

/// The active guest's keyspace, exactly as the guest's `store` imports see it.
pub const GUEST_KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("guest_kv");

/// Host bookkeeping, keyed by the constants below.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// u64 big-endian: the index of the last entry whose effects are in this database.
pub const META_APPLIED_INDEX: &str = "applied_index";
/// u64 big-endian: the term of that entry.
pub const META_APPLIED_TERM: &str = "applied_term";

/// The cluster's members: member id → prost-encoded `wasmraft.v1.Member`. Written at bootstrap
/// from `--initial-cluster` (identically on every member) and by applied entries afterwards.
pub const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");
