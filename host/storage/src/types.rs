//! What the raft log stores, in its own plain types: the host converts raft's protobuf ones at
//! its edge (`node/log_store.rs`), so this crate builds without raft or protobuf.
//!
//! Entry payloads are [`Bytes`], as in raft's entries: converting either way moves a reference
//! count, never the data.

use bytes::Bytes;

/// One raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    pub data: Bytes,
    pub context: Bytes,
}

/// An entry's type. The discriminants are the byte stored in the WAL (and raft's `EntryType`
/// numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum EntryKind {
    #[default]
    Normal = 0,
    ConfChange = 1,
    ConfChangeV2 = 2,
}

/// Raft's hard state: what a member must not forget across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// The membership raft works with, joint consensus included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfState {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
}

/// Where a snapshot puts the log: the last entry it folds in, and the membership there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub conf_state: ConfState,
}

/// Who this member is. Fixed at bootstrap and read back on restart, as etcd reads it from its
/// WAL metadata, so a restart ignores the `--initial-cluster*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}
