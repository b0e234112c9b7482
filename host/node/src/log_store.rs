//! raft-rs's `Storage` over the raft log of `wasmraft_storage`, which knows nothing of raft's
//! protobuf types: the conversions between the two live here, at the edge, and nowhere else.
//!
//! The hot path stays as cheap as when the log held raft's entries itself: an entry's data and
//! context are `Bytes` on both sides, so converting an entry moves reference counts, never the
//! payload (the log's cache of recent entries keeps what `append` is given).

use raft::eraftpb::{self, EntryType};
use raft::{GetEntriesContext, RaftState, StorageError};
use wasmraft_storage::{ConfState, Entry, EntryKind, HardState, LogError, RaftLog, SnapshotMeta};

/// The raft log as the Ready loop's `RawNode` holds it.
pub struct LogStore(RaftLog);

impl LogStore {
    pub fn new(log: RaftLog) -> LogStore {
        LogStore(log)
    }

    /// The log itself, for what raft does not ask (its indexes, the compaction point).
    pub fn log(&self) -> &RaftLog {
        &self.0
    }

    /// Persists a Ready's entries and hard state as one write (see [`RaftLog::append`]).
    pub fn append(
        &mut self,
        entries: &[eraftpb::Entry],
        hard_state: Option<&eraftpb::HardState>,
        sync: bool,
    ) -> Result<(), LogError> {
        self.0.append(entries.iter().map(entry_from_raft).collect(), hard_state.map(hard_state_from_raft), sync)
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, meta: &eraftpb::SnapshotMetadata) -> Result<(), LogError> {
        self.0.apply_snapshot(&SnapshotMeta {
            index: meta.index,
            term: meta.term,
            conf_state: conf_state_from_raft(meta.get_conf_state()),
        })
    }

    /// Persists a new membership (after a conf change is applied).
    pub fn set_conf_state(&mut self, cs: &eraftpb::ConfState) -> Result<(), LogError> {
        self.0.set_conf_state(conf_state_from_raft(cs))
    }

    /// Notes a commit index raft reported outside a Ready's hard state.
    pub fn set_commit(&mut self, commit: u64) {
        self.0.set_commit(commit);
    }

    /// Drops the entries up to and including `index`.
    pub fn compact(&mut self, index: u64) -> Result<(), LogError> {
        self.0.compact(index)
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(hard_state_to_raft(self.0.hard_state()), conf_state_to_raft(self.0.conf_state())))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<eraftpb::Entry>> {
        self.0.entries_as(low, high, max_size.into(), entry_to_raft).map_err(storage_err)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.0.term(idx).map_err(storage_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.0.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.0.last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<eraftpb::Snapshot> {
        // The snapshot raft sends is the compaction point: its index and term, and the
        // membership. The state itself is attached when the message is sent (the state
        // database as it is then, at an applied index at or past this one; the receiver skips
        // the entries its installed state already reflects, as etcd does with its consistent
        // index).
        if request_index > self.0.snapshot_index() {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snap = eraftpb::Snapshot::default();
        let mut meta = eraftpb::SnapshotMetadata {
            index: self.0.snapshot_index(),
            term: self.0.snapshot_term(),
            ..Default::default()
        };
        meta.set_conf_state(conf_state_to_raft(self.0.conf_state()));
        snap.set_metadata(meta);
        Ok(snap)
    }
}

fn storage_err(e: LogError) -> raft::Error {
    raft::Error::Store(match e {
        LogError::Compacted { .. } => StorageError::Compacted,
        LogError::Unavailable { .. } => StorageError::Unavailable,
        e => StorageError::Other(Box::new(e)),
    })
}

pub(crate) fn entry_from_raft(e: &eraftpb::Entry) -> Entry {
    Entry {
        index: e.index,
        term: e.term,
        kind: match e.get_entry_type() {
            EntryType::EntryNormal => EntryKind::Normal,
            EntryType::EntryConfChange => EntryKind::ConfChange,
            EntryType::EntryConfChangeV2 => EntryKind::ConfChangeV2,
        },
        data: e.data.clone(),
        context: e.context.clone(),
    }
}

pub(crate) fn entry_to_raft(e: Entry) -> eraftpb::Entry {
    let mut out =
        eraftpb::Entry { index: e.index, term: e.term, data: e.data, context: e.context, ..Default::default() };
    out.set_entry_type(match e.kind {
        EntryKind::Normal => EntryType::EntryNormal,
        EntryKind::ConfChange => EntryType::EntryConfChange,
        EntryKind::ConfChangeV2 => EntryType::EntryConfChangeV2,
    });
    out
}

fn hard_state_from_raft(hs: &eraftpb::HardState) -> HardState {
    HardState { term: hs.term, vote: hs.vote, commit: hs.commit }
}

fn hard_state_to_raft(hs: &HardState) -> eraftpb::HardState {
    eraftpb::HardState { term: hs.term, vote: hs.vote, commit: hs.commit, ..Default::default() }
}

fn conf_state_from_raft(cs: &eraftpb::ConfState) -> ConfState {
    ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
    }
}

fn conf_state_to_raft(cs: &ConfState) -> eraftpb::ConfState {
    eraftpb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use raft::Storage as _;
    use raft::eraftpb::{self, EntryType};
    use raft::{GetEntriesContext, StorageError};
    use wasmraft_storage::{Identity, RaftLog};

    use super::LogStore;

    /// What raft hands the log comes back as it was: every entry type, data and context, the
    /// hard state and the membership; and out-of-range reads are the errors raft expects.
    #[test]
    fn raft_types_round_trip_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(&dir.path().join("wal")).unwrap();
        log.bootstrap(Identity { member_id: 1, cluster_id: 2 }, vec![1], vec![4]).unwrap();
        let mut store = LogStore::new(log);
        let ents: Vec<eraftpb::Entry> =
            [EntryType::EntryNormal, EntryType::EntryConfChange, EntryType::EntryConfChangeV2]
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    let mut e = eraftpb::Entry {
                        index: i as u64 + 1,
                        term: 2,
                        data: format!("data {i}").into_bytes().into(),
                        context: format!("ctx {i}").into_bytes().into(),
                        ..Default::default()
                    };
                    e.set_entry_type(t);
                    e
                })
                .collect();
        let hs = eraftpb::HardState { term: 2, vote: 1, commit: 1, ..Default::default() };
        store.append(&ents, Some(&hs), true).unwrap();
        assert_eq!(store.entries(1, 4, None, GetEntriesContext::empty(false)).unwrap(), ents);
        let state = store.initial_state().unwrap();
        assert_eq!(state.hard_state, hs);
        assert_eq!((state.conf_state.voters.clone(), state.conf_state.learners.clone()), (vec![1], vec![4]));
        let cs = eraftpb::ConfState {
            voters: vec![1, 2],
            voters_outgoing: vec![1],
            learners_next: vec![4],
            auto_leave: true,
            ..Default::default()
        };
        store.set_conf_state(&cs).unwrap();
        assert_eq!(store.initial_state().unwrap().conf_state, cs);

        store.compact(2).unwrap();
        assert_eq!(store.term(2).unwrap(), 2);
        assert!(matches!(store.term(1), Err(raft::Error::Store(StorageError::Compacted))));
        assert!(matches!(store.term(4), Err(raft::Error::Store(StorageError::Unavailable))));
        assert!(matches!(
            store.entries(3, 5, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
        let snap = store.snapshot(2, 0).unwrap();
        assert_eq!((snap.get_metadata().index, snap.get_metadata().term), (2, 2));
        assert_eq!(snap.get_metadata().get_conf_state(), &cs);
        assert!(matches!(store.snapshot(3, 0), Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))));
    }
}
