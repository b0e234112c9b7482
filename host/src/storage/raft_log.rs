//! The raft log on redb: raft-rs's `Storage`, plus the writes the Ready loop makes.
//!
//! Every `append` is one redb write transaction: the Ready's entries and hard state land together
//! and, when raft says the Ready must be synced, are fsynced before `append` returns. That is one
//! fsync per Ready, however many entries it carries.
//!
//! Entries are stored in a compact binary form of our own (not protobuf): this file is the only
//! reader, and it keeps the protobuf 2 parser out of the restart path.
//! A tail of recent entries is mirrored in memory because raft reads the newest entries over and
//! over (to replicate them, to find terms); older ones are read from redb.

use std::collections::VecDeque;
use std::path::Path;

use anyhow::Context;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_HARD_STATE: &str = "hard_state";
const META_CONF_STATE: &str = "conf_state";
const META_SNAPSHOT: &str = "snapshot";
const META_IDENTITY: &str = "identity";

/// Entries kept in memory at most; the rest are read from disk on demand.
const CACHE_ENTRIES: usize = 16 * 1024;
const CACHE_BYTES: usize = 64 << 20;

/// Who this member is. Fixed at bootstrap and read back on restart, as etcd reads it from its
/// WAL metadata, so a restart ignores the `--initial-cluster*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

pub struct RaftLog {
    db: Database,
    identity: Option<Identity>,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry folded into a snapshot (0, 0 before any).
    snapshot_index: u64,
    snapshot_term: u64,
    last_index: u64,
    /// Entries `cache[0].index ..= last_index`, contiguous.
    cache: VecDeque<Entry>,
    cache_bytes: usize,
}

fn storage_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl RaftLog {
    /// Opens (or creates) the log at `path` and loads its state.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = Database::create(path).with_context(|| format!("opening raft log {}", path.display()))?;
        let mut log = RaftLog {
            db,
            identity: None,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot_index: 0,
            snapshot_term: 0,
            last_index: 0,
            cache: VecDeque::new(),
            cache_bytes: 0,
        };
        log.load().with_context(|| format!("reading raft log {}", path.display()))?;
        Ok(log)
    }

    fn load(&mut self) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        // Creates the tables on first open so readers never see them missing.
        txn.open_table(ENTRIES)?;
        txn.open_table(META)?;
        txn.commit()?;

        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        if let Some(v) = meta.get(META_IDENTITY)? {
            let b = v.value();
            anyhow::ensure!(b.len() == 16, "corrupt identity record");
            self.identity = Some(Identity { member_id: be_u64(&b[..8]), cluster_id: be_u64(&b[8..]) });
        }
        if let Some(v) = meta.get(META_HARD_STATE)? {
            let b = v.value();
            anyhow::ensure!(b.len() == 24, "corrupt hard state record");
            self.hard_state.term = be_u64(&b[..8]);
            self.hard_state.vote = be_u64(&b[8..16]);
            self.hard_state.commit = be_u64(&b[16..]);
        }
        if let Some(v) = meta.get(META_CONF_STATE)? {
            self.conf_state = decode_conf_state(v.value()).context("corrupt conf state record")?;
        }
        if let Some(v) = meta.get(META_SNAPSHOT)? {
            let b = v.value();
            anyhow::ensure!(b.len() == 16, "corrupt snapshot record");
            self.snapshot_index = be_u64(&b[..8]);
            self.snapshot_term = be_u64(&b[8..]);
        }
        let entries = txn.open_table(ENTRIES)?;
        self.last_index = match entries.last()? {
            Some((k, _)) => k.value(),
            None => self.snapshot_index,
        };
        // Warm the cache with the newest entries: the first thing raft does is look at them.
        let from = self.last_index.saturating_sub(CACHE_ENTRIES as u64 / 4).max(self.snapshot_index + 1);
        for item in entries.range(from..)? {
            let (k, v) = item?;
            let e = decode_entry(k.value(), v.value()).with_context(|| format!("corrupt entry {}", k.value()))?;
            self.push_cache(e);
        }
        Ok(())
    }

    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Records a new member's identity and initial voters (and learners, for a member joining a
    /// cluster that has some), durably, before raft starts.
    pub fn bootstrap(&mut self, identity: Identity, voters: Vec<u64>, learners: Vec<u64>) -> anyhow::Result<()> {
        anyhow::ensure!(self.identity.is_none(), "raft log is already bootstrapped");
        let cs = ConfState { voters, learners, ..Default::default() };
        let mut hs = HardState::default();
        hs.term = 1;
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut id = Vec::with_capacity(16);
            id.extend_from_slice(&identity.member_id.to_be_bytes());
            id.extend_from_slice(&identity.cluster_id.to_be_bytes());
            meta.insert(META_IDENTITY, id.as_slice())?;
            meta.insert(META_CONF_STATE, encode_conf_state(&cs).as_slice())?;
            // etcd bootstraps its log with the initial members' conf changes at term 1, so its
            // first leader is elected at term 2; start at the same term so `raft_term` in
            // responses reads the same.
            meta.insert(META_HARD_STATE, encode_hard_state(&hs).as_slice())?;
        }
        txn.commit()?;
        self.hard_state = hs;
        self.identity = Some(identity);
        self.conf_state = cs;
        Ok(())
    }

    /// Persists a Ready's entries and hard state in one transaction; with `sync`, fsynced before
    /// returning. Entries at or after the first new index replace what was there (raft truncates
    /// a follower's conflicting tail this way).
    pub fn append(&mut self, entries: &[Entry], hard_state: Option<&HardState>, sync: bool) -> anyhow::Result<()> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if sync { Durability::Immediate } else { Durability::None })?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            if let Some(first) = entries.first() {
                let first_index = first.index;
                anyhow::ensure!(
                    first_index > self.snapshot_index && first_index <= self.last_index + 1,
                    "append at {first_index} leaves a gap (snapshot {}, last {})",
                    self.snapshot_index,
                    self.last_index
                );
                for stale in first_index..=self.last_index {
                    table.remove(stale)?;
                }
                let mut buf = Vec::new();
                for e in entries {
                    buf.clear();
                    encode_entry(e, &mut buf);
                    table.insert(e.index, buf.as_slice())?;
                }
            }
            if let Some(hs) = hard_state {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_HARD_STATE, encode_hard_state(hs).as_slice())?;
            }
        }
        txn.commit()?;

        if let Some(first) = entries.first() {
            while self.cache.back().is_some_and(|e| e.index >= first.index) {
                if let Some(e) = self.cache.pop_back() {
                    self.cache_bytes -= entry_size(&e);
                }
            }
            if self.cache.back().is_some_and(|e| e.index + 1 != first.index) {
                // The cache no longer joins the new entries; start it afresh.
                self.cache.clear();
                self.cache_bytes = 0;
            }
            for e in entries {
                self.push_cache(e.clone());
            }
            self.last_index = entries[entries.len() - 1].index;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// The index of the last entry folded into a snapshot (0 before any compaction).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Drops the entries up to and including `index` (already applied and durable in the
    /// state database), keeping its term for raft's log matching.
    pub fn compact(&mut self, index: u64) -> anyhow::Result<()> {
        if index <= self.snapshot_index {
            return Ok(());
        }
        anyhow::ensure!(index <= self.last_index, "compacting to {index} beyond the last entry {}", self.last_index);
        let term = self.read_term(index)?;
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            table.retain_in(..=index, |_, _| false)?;
            let mut snap = [0u8; 16];
            snap[..8].copy_from_slice(&index.to_be_bytes());
            snap[8..].copy_from_slice(&term.to_be_bytes());
            txn.open_table(META)?.insert(META_SNAPSHOT, snap.as_slice())?;
        }
        txn.commit()?;
        self.snapshot_index = index;
        self.snapshot_term = term;
        while self.cache.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.cache.pop_front() {
                self.cache_bytes -= entry_size(&e);
            }
        }
        Ok(())
    }

    /// Replaces the whole log with a snapshot received from the leader: no entries, the
    /// snapshot's index, term and membership, durably.
    pub fn apply_snapshot(&mut self, meta: &SnapshotMetadata) -> anyhow::Result<()> {
        let cs = meta.get_conf_state().clone();
        let txn = self.db.begin_write()?;
        {
            txn.open_table(ENTRIES)?.retain(|_, _| false)?;
            let mut m = txn.open_table(META)?;
            let mut snap = [0u8; 16];
            snap[..8].copy_from_slice(&meta.index.to_be_bytes());
            snap[8..].copy_from_slice(&meta.term.to_be_bytes());
            m.insert(META_SNAPSHOT, snap.as_slice())?;
            m.insert(META_CONF_STATE, encode_conf_state(&cs).as_slice())?;
            let mut hs = self.hard_state.clone();
            hs.commit = hs.commit.max(meta.index);
            hs.term = hs.term.max(meta.term);
            m.insert(META_HARD_STATE, encode_hard_state(&hs).as_slice())?;
            self.hard_state = hs;
        }
        txn.commit()?;
        self.snapshot_index = meta.index;
        self.snapshot_term = meta.term;
        self.last_index = meta.index;
        self.conf_state = cs;
        self.cache.clear();
        self.cache_bytes = 0;
        Ok(())
    }

    /// Notes a commit index raft reported outside a Ready's hard state. It is persisted with
    /// the next append; losing it in a crash is harmless (raft recomputes commit).
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Persists a new membership (after a conf change is applied).
    pub fn set_conf_state(&mut self, cs: ConfState) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(META_CONF_STATE, encode_conf_state(&cs).as_slice())?;
        txn.commit()?;
        self.conf_state = cs;
        Ok(())
    }

    fn push_cache(&mut self, e: Entry) {
        self.cache_bytes += entry_size(&e);
        self.cache.push_back(e);
        while self.cache.len() > CACHE_ENTRIES || (self.cache_bytes > CACHE_BYTES && self.cache.len() > 1) {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= entry_size(&old);
            }
        }
    }

    fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    fn read_entries(&self, low: u64, high: u64, max_size: Option<u64>) -> anyhow::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut size = 0u64;
        let cache_first = self.cache.front().map(|e| e.index).unwrap_or(u64::MAX);
        let mut next = low;
        if next < cache_first {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            for item in table.range(next..high.min(cache_first))? {
                let (k, v) = item?;
                let e = decode_entry(k.value(), v.value())?;
                anyhow::ensure!(e.index == next, "raft log has a hole at {next}");
                size += entry_size(&e) as u64;
                if !out.is_empty() && max_size.is_some_and(|m| size > m) {
                    return Ok(out);
                }
                out.push(e);
                next += 1;
            }
        }
        while next < high {
            let Some(e) = self.cache.get((next - cache_first) as usize) else {
                anyhow::bail!("raft log has a hole at {next}");
            };
            size += entry_size(e) as u64;
            if !out.is_empty() && max_size.is_some_and(|m| size > m) {
                break;
            }
            out.push(e.clone());
            next += 1;
        }
        Ok(out)
    }

    fn read_term(&self, idx: u64) -> anyhow::Result<u64> {
        if let Some(first) = self.cache.front()
            && idx >= first.index
            && let Some(e) = self.cache.get((idx - first.index) as usize)
        {
            return Ok(e.term);
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let v = table.get(idx)?.with_context(|| format!("raft log has no entry {idx}"))?;
        Ok(decode_entry(idx, v.value())?.term)
    }

    /// Total bytes of the log file, for Maintenance.Status.
    pub fn file_size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

impl raft::Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _ctx: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.read_entries(low, high, max_size.into()).map_err(storage_err)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index {
            return Ok(self.snapshot_term);
        }
        if idx < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.read_term(idx).map_err(storage_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(RaftLog::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The snapshot raft sends is the compaction point: its index and term, and the
        // membership. The state itself is attached when the message is sent (the state
        // database as it is then, at an applied index at or past this one; the receiver skips
        // the entries its installed state already reflects, as etcd does with its consistent
        // index).
        if request_index > self.snapshot_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snap = Snapshot::default();
        let mut meta = SnapshotMetadata::default();
        meta.index = self.snapshot_index;
        meta.term = self.snapshot_term;
        meta.set_conf_state(self.conf_state.clone());
        snap.set_metadata(meta);
        Ok(snap)
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn entry_size(e: &Entry) -> usize {
    e.data.len() + e.context.len() + 24
}

/// `term u64 | type u8 | context length u32 | context | data` (the index is the key).
fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.term.to_be_bytes());
    out.push(e.get_entry_type() as u8);
    out.extend_from_slice(&(e.context.len() as u32).to_be_bytes());
    out.extend_from_slice(&e.context);
    out.extend_from_slice(&e.data);
}

fn decode_entry(index: u64, b: &[u8]) -> anyhow::Result<Entry> {
    anyhow::ensure!(b.len() >= 13, "entry {index} is truncated");
    let mut e = Entry::default();
    e.index = index;
    e.term = be_u64(&b[..8]);
    e.set_entry_type(match b[8] {
        0 => EntryType::EntryNormal,
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        t => anyhow::bail!("entry {index} has unknown type {t}"),
    });
    let ctx_len = u32::from_be_bytes([b[9], b[10], b[11], b[12]]) as usize;
    anyhow::ensure!(b.len() >= 13 + ctx_len, "entry {index} is truncated");
    e.context = b[13..13 + ctx_len].to_vec().into();
    e.data = b[13 + ctx_len..].to_vec().into();
    Ok(e)
}

fn encode_hard_state(hs: &HardState) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&hs.term.to_be_bytes());
    b[8..16].copy_from_slice(&hs.vote.to_be_bytes());
    b[16..].copy_from_slice(&hs.commit.to_be_bytes());
    b
}

/// Four length-prefixed lists of u64 (voters, learners, outgoing voters, learners next) and the
/// auto-leave flag.
fn encode_conf_state(cs: &ConfState) -> Vec<u8> {
    let mut b = Vec::new();
    for list in [&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next] {
        b.extend_from_slice(&(list.len() as u32).to_be_bytes());
        for id in list {
            b.extend_from_slice(&id.to_be_bytes());
        }
    }
    b.push(cs.auto_leave as u8);
    b
}

fn decode_conf_state(mut b: &[u8]) -> anyhow::Result<ConfState> {
    let mut lists: [Vec<u64>; 4] = Default::default();
    for list in lists.iter_mut() {
        anyhow::ensure!(b.len() >= 4, "truncated");
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        b = &b[4..];
        anyhow::ensure!(b.len() >= n * 8, "truncated");
        for i in 0..n {
            list.push(be_u64(&b[i * 8..]));
        }
        b = &b[n * 8..];
    }
    anyhow::ensure!(b.len() == 1, "trailing bytes");
    let [voters, learners, voters_outgoing, learners_next] = lists;
    let mut cs = ConfState::default();
    cs.voters = voters;
    cs.learners = learners;
    cs.voters_outgoing = voters_outgoing;
    cs.learners_next = learners_next;
    cs.auto_leave = b[0] != 0;
    Ok(cs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        let mut e = Entry::default();
        e.index = index;
        e.term = term;
        e.data = data.to_vec().into();
        e
    }

    #[test]
    fn append_truncate_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let mut log = RaftLog::open(&path).unwrap();
        log.bootstrap(Identity { member_id: 7, cluster_id: 9 }, vec![7], Vec::new()).unwrap();
        let ents: Vec<_> = (1..=5).map(|i| entry(i, 1, format!("e{i}").as_bytes())).collect();
        let mut hs = HardState::default();
        hs.term = 1;
        hs.vote = 7;
        log.append(&ents, Some(&hs), true).unwrap();
        // A new leader overwrites 4 and 5.
        log.append(&[entry(4, 2, b"x")], None, true).unwrap();
        assert_eq!(Storage::last_index(&log).unwrap(), 4);
        assert_eq!(log.term(4).unwrap(), 2);
        assert_eq!(log.term(3).unwrap(), 1);
        let got = log.entries(1, 5, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(&got[3].data[..], b"x");
        drop(log);

        let log = RaftLog::open(&path).unwrap();
        assert_eq!(log.identity(), Some(Identity { member_id: 7, cluster_id: 9 }));
        assert_eq!(log.hard_state().vote, 7);
        assert_eq!(log.conf_state().voters, vec![7]);
        assert_eq!(Storage::last_index(&log).unwrap(), 4);
        let got = log.entries(2, 5, Some(1), GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.len(), 1, "max_size still returns one entry");
        assert_eq!(&got[0].data[..], b"e2");
        assert!(log.entries(1, 9, None, GetEntriesContext::empty(false)).is_err());
    }

    #[test]
    fn reads_beyond_the_cache_come_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(&dir.path().join("raft.redb")).unwrap();
        let n = CACHE_ENTRIES as u64 + 100;
        let ents: Vec<_> = (1..=n).map(|i| entry(i, 1, &i.to_be_bytes())).collect();
        log.append(&ents, None, false).unwrap();
        assert!(log.cache.front().unwrap().index > 1);
        let got = log.entries(1, n + 1, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.len() as u64, n);
        assert!(got.iter().enumerate().all(|(i, e)| e.index == i as u64 + 1 && e.data[..] == (i as u64 + 1).to_be_bytes()));
        assert_eq!(log.term(1).unwrap(), 1);
    }

    #[test]
    fn conf_state_roundtrip() {
        let mut cs = ConfState::default();
        cs.voters = vec![1, 2, 3];
        cs.learners = vec![4];
        cs.auto_leave = true;
        assert_eq!(decode_conf_state(&encode_conf_state(&cs)).unwrap(), cs);
        assert!(decode_conf_state(&[0, 0]).is_err());
    }
}
