//! The raft log: what raft's `Storage` reads (the host adapts it: `node/log_store.rs`) over the
//! write-ahead log ([`crate::wal`]), plus the writes the Ready loop makes.
//!
//! Every `append` is one batch of WAL records: the Ready's entries and hard state land together
//! (replay hands a batch over whole or not at all) and, when raft says the Ready must be synced,
//! are fsynced before `append` returns. That is one `pwrite` and one `fdatasync` per Ready,
//! however many entries it carries. A log the WAL finds damaged is an error naming this member
//! (the id the remedy needs), never a shorter log.
//!
//! Records (the WAL's kinds): an entry, the hard state, the conf state, the compaction point (or
//! an installed snapshot, which replaces the whole log), and the member's identity. Replaying them
//! in order rebuilds the state: a later entry at an index already present truncates the log
//! there, as raft truncates a follower's conflicting tail. Every segment starts by restating the
//! identity, conf state, hard state and compaction point, so the segments before it can be deleted
//! once the log is compacted past them.
//!
//! Entries are stored in a compact binary form of our own (not protobuf): this file is the only
//! reader, and it keeps the protobuf 2 parser out of the restart path. The newest entries are
//! kept in memory because raft reads them over and over (to replicate them, to find terms);
//! older ones are read back from their segment by position.

use std::collections::VecDeque;
use std::path::Path;

use crate::error::{LogError, RecordError};
use crate::types::{ConfState, Entry, EntryKind, HardState, Identity, SnapshotMeta};
use crate::wal::{self, Position, Wal};

const REC_ENTRY: u8 = 1;
const REC_HARD_STATE: u8 = 2;
const REC_CONF_STATE: u8 = 3;
/// `index | term | replaces the log (u8)`: a compaction point, or a snapshot installed from the
/// leader (then every entry before it, whatever its index, is gone).
const REC_SNAPSHOT: u8 = 4;
const REC_IDENTITY: u8 = 5;

/// Entries kept in memory at most; the rest are read from disk on demand.
const CACHE_ENTRIES: usize = 16 * 1024;
const CACHE_BYTES: usize = 64 << 20;

pub struct RaftLog {
    wal: Wal,
    identity: Option<Identity>,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry folded into a snapshot (0, 0 before any).
    snapshot_index: u64,
    snapshot_term: u64,
    last_index: u64,
    /// Where entries `snapshot_index + 1 ..= last_index` are in the WAL.
    positions: VecDeque<Position>,
    /// Entries `cache[0].index ..= last_index`, contiguous.
    cache: VecDeque<Entry>,
    cache_bytes: usize,
    /// The batch being encoded (kept to reuse its allocations).
    enc: wal::Encoder,
}

/// What replaying the WAL rebuilds, before it becomes a [`RaftLog`].
#[derive(Default)]
struct Replayed {
    identity: Option<Identity>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_index: u64,
    snapshot_term: u64,
    /// The index of `positions[0]` (the log may start past the compaction point while replay
    /// has yet to reach the record that moved it there: the segments before were deleted).
    first_entry: u64,
    positions: VecDeque<Position>,
}

impl Replayed {
    fn last_index(&self) -> u64 {
        if self.positions.is_empty() { self.snapshot_index } else { self.first_entry + self.positions.len() as u64 - 1 }
    }

    fn record(&mut self, kind: u8, payload: &[u8], pos: Position) -> Result<(), RecordError> {
        match kind {
            REC_ENTRY => {
                if payload.len() < 16 {
                    return Err(RecordError::TruncatedEntry);
                }
                let index = be_u64(&payload[..8]);
                if index <= self.snapshot_index {
                    return Err(RecordError::EntryBelowCompaction { index, compacted: self.snapshot_index });
                }
                if self.positions.is_empty() || index < self.first_entry {
                    // Below the first entry replayed so far: a conflicting tail replaced from
                    // an index whose earlier entries were in segments since deleted (the
                    // segment's name gives the last index + 1 when it was started, not its
                    // lowest entry). Replaying from the first segment this cannot happen (the
                    // entries then start right after the compaction point, checked above), and
                    // whether the log ends up joined to its compaction point is checked once
                    // every record is in.
                    self.positions.clear();
                    self.first_entry = index;
                } else {
                    if index > self.last_index() + 1 {
                        return Err(RecordError::EntryGap { index, last: self.last_index() });
                    }
                    self.positions.truncate((index - self.first_entry) as usize);
                    if self.positions.is_empty() {
                        self.first_entry = index;
                    }
                }
                self.positions.push_back(pos);
            }
            REC_HARD_STATE => self.hard_state = decode_hard_state(payload)?,
            REC_CONF_STATE => self.conf_state = decode_conf_state(payload)?,
            REC_SNAPSHOT => {
                if payload.len() != 17 {
                    return Err(RecordError::Snapshot);
                }
                let (index, term, replaces) = (be_u64(&payload[..8]), be_u64(&payload[8..16]), payload[16] != 0);
                if replaces || index >= self.last_index() {
                    self.positions.clear();
                } else {
                    while !self.positions.is_empty() && self.first_entry <= index {
                        self.positions.pop_front();
                        self.first_entry += 1;
                    }
                }
                self.snapshot_index = index;
                self.snapshot_term = term;
            }
            REC_IDENTITY => {
                if payload.len() != 16 {
                    return Err(RecordError::Identity);
                }
                self.identity = Some(Identity { member_id: be_u64(&payload[..8]), cluster_id: be_u64(&payload[8..]) });
            }
            k => return Err(RecordError::UnknownKind(k)),
        }
        Ok(())
    }
}

impl RaftLog {
    /// Opens (or creates) the log in the directory `dir` and loads its state.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        RaftLog::open_with_segment_bytes(dir, wal::SEGMENT_BYTES)
    }

    /// [`RaftLog::open`] with WAL segments of another size: tests and the fuzz target
    /// (`tests/fuzz`, `wal_replay`) roll segments with little data.
    pub fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> Result<Self, LogError> {
        let legacy = dir.with_file_name("raft.redb");
        if legacy.exists() && !dir.exists() {
            return Err(LogError::BeforeWal { path: legacy });
        }
        let mut r = Replayed::default();
        let opened =
            Wal::open_with_segment_bytes(dir, segment_bytes, |kind, payload, pos| r.record(kind, payload, pos));
        let wal = match opened {
            Ok(wal) => wal,
            // Who this is, when the log got as far as saying: the id the remedy needs.
            Err(e) => {
                return Err(LogError::Open { dir: dir.to_path_buf(), member: r.identity, source: Box::new(e.into()) });
            }
        };
        if !r.positions.is_empty() && r.first_entry != r.snapshot_index + 1 {
            return Err(LogError::MissingEntries {
                dir: dir.to_path_buf(),
                from: r.snapshot_index + 1,
                to: r.first_entry,
            });
        }
        // Segments are deleted only once the log is compacted up to the first index of the one
        // after them (and the compaction point is restated or recorded in a later segment), so
        // the oldest segment left is never named past the compaction point + 1. Past it with no
        // entry replayed, a segment the log still needed is gone (the check above sees that
        // only when some entry is left), and the log would open short of entries its hard
        // state may commit.
        if let Some(first) = wal.first_segment_index()
            && first > r.snapshot_index + 1
            && r.positions.is_empty()
        {
            return Err(LogError::MissingEntries { dir: dir.to_path_buf(), from: r.snapshot_index + 1, to: first });
        }
        let mut log = RaftLog {
            wal,
            identity: r.identity,
            hard_state: r.hard_state,
            conf_state: r.conf_state,
            snapshot_index: r.snapshot_index,
            snapshot_term: r.snapshot_term,
            last_index: 0,
            positions: r.positions,
            cache: VecDeque::new(),
            cache_bytes: 0,
            enc: wal::Encoder::default(),
        };
        log.last_index = log.snapshot_index + log.positions.len() as u64;
        if log.wal.current_is_legacy() {
            // A data dir from before the v2 WAL format: its segments are read as they are, and
            // writing goes on in a new segment of the current format.
            tracing::info!("wal: {} holds segments in the old format; new records go to a new segment", dir.display());
            log.roll(log.last_index + 1, false)?;
        }
        // Warm the cache with the newest entries: the first thing raft does is look at them.
        let from = log.last_index.saturating_sub(CACHE_ENTRIES as u64 / 4).max(log.snapshot_index + 1);
        if from <= log.last_index {
            let warm = log.read_entries(from, log.last_index + 1, None, |e| e).map_err(|e| LogError::Open {
                dir: dir.to_path_buf(),
                member: None,
                source: Box::new(e),
            })?;
            for e in warm {
                log.push_cache(e);
            }
        }
        Ok(log)
    }

    #[cfg(test)]
    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
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

    /// The first entry's index: the one after the last entry folded into a snapshot.
    pub fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The term of entry `index`: of the last one folded into a snapshot too, as raft's log
    /// matching needs.
    pub fn term(&self, index: u64) -> Result<u64, LogError> {
        if index == self.snapshot_index {
            return Ok(self.snapshot_term);
        }
        if index < self.first_index() {
            return Err(LogError::Compacted { index });
        }
        if index > self.last_index {
            return Err(LogError::Unavailable { index });
        }
        self.read_term(index)
    }

    /// Entries `low..high`, at most `max_size` bytes of them but at least one.
    pub fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>, LogError> {
        self.entries_as(low, high, max_size, |e| e)
    }

    /// [`RaftLog::entries`], each converted as it is read (to raft's type, without collecting
    /// twice).
    pub fn entries_as<T>(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
        convert: impl FnMut(Entry) -> T,
    ) -> Result<Vec<T>, LogError> {
        if low < self.first_index() {
            return Err(LogError::Compacted { index: low });
        }
        if high > self.last_index + 1 {
            return Err(LogError::Unavailable { index: high - 1 });
        }
        self.read_entries(low, high, max_size, convert)
    }

    /// Starts a new segment whose first entry will be `first_index`, beginning with everything
    /// but the entries (so that the segments before it can go once compacted); with `replaces`,
    /// also a record saying that the log before it is gone (an installed snapshot).
    fn roll(&mut self, first_index: u64, replaces: bool) -> Result<(), LogError> {
        let (identity, cs, hs) = (self.identity, &self.conf_state, &self.hard_state);
        let (index, term) = (self.snapshot_index, self.snapshot_term);
        self.wal.roll(first_index, |enc| {
            if let Some(id) = identity {
                encode_identity(enc, id);
            }
            enc.record(REC_CONF_STATE, |o| o.extend_from_slice(&encode_conf_state(cs)));
            enc.record(REC_HARD_STATE, |o| o.extend_from_slice(&encode_hard_state(hs)));
            encode_snapshot(enc, index, term, false);
            if replaces {
                encode_snapshot(enc, index, term, true);
            }
        })?;
        Ok(())
    }

    /// Starts encoding a batch of about `bytes` bytes of records into `self.enc`, rolling to a
    /// new segment first when it would overflow the current one. Deciding before encoding keeps
    /// the records' checksums chained from where they will really be written.
    fn start_batch(&mut self, bytes: u64) -> Result<(), LogError> {
        if bytes + wal::BATCH_OVERHEAD > self.wal.room() && !self.wal.current_is_fresh() {
            self.roll(self.last_index + 1, false)?;
        }
        self.wal.start_batch(&mut self.enc);
        Ok(())
    }

    /// Records a new member's identity and initial voters (and learners, for a member joining a
    /// cluster that has some), durably, before raft starts.
    pub fn bootstrap(&mut self, identity: Identity, voters: Vec<u64>, learners: Vec<u64>) -> Result<(), LogError> {
        if self.identity.is_some() {
            return Err(LogError::AlreadyBootstrapped);
        }
        let cs = ConfState { voters, learners, ..Default::default() };
        // etcd bootstraps its log with the initial members' conf changes at term 1, so its
        // first leader is elected at term 2; start at the same term so `raft_term` in
        // responses reads the same.
        let hs = HardState { term: 1, ..Default::default() };
        self.start_batch(256 + 8 * (cs.voters.len() + cs.learners.len()) as u64)?;
        encode_identity(&mut self.enc, identity);
        self.enc.record(REC_CONF_STATE, |o| o.extend_from_slice(&encode_conf_state(&cs)));
        self.enc.record(REC_HARD_STATE, |o| o.extend_from_slice(&encode_hard_state(&hs)));
        self.wal.append(&mut self.enc, true)?;
        self.hard_state = hs;
        self.identity = Some(identity);
        self.conf_state = cs;
        Ok(())
    }

    /// Persists a Ready's entries and hard state as one write; with `sync`, fsynced before
    /// returning. Entries at or after the first new index replace what was there (raft truncates
    /// a follower's conflicting tail this way). The entries are kept (in the cache of recent
    /// ones), hence taken by value.
    pub fn append(&mut self, entries: Vec<Entry>, hard_state: Option<HardState>, sync: bool) -> Result<(), LogError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        if let Some(first) = entries.first()
            && !(first.index > self.snapshot_index && first.index <= self.last_index + 1)
        {
            return Err(LogError::Gap { index: first.index, snapshot: self.snapshot_index, last: self.last_index });
        }
        let bytes = entries
            .iter()
            .map(|e| (wal::RECORD_HEADER + ENTRY_HEADER + e.context.len() + e.data.len()) as u64)
            .sum::<u64>();
        self.start_batch(bytes + HARD_STATE_RECORD)?;
        for e in &entries {
            self.enc.record(REC_ENTRY, |o| encode_entry(e, o));
        }
        if let Some(hs) = &hard_state {
            self.enc.record(REC_HARD_STATE, |o| o.extend_from_slice(&encode_hard_state(hs)));
        }
        let at = self.wal.append(&mut self.enc, sync)?;

        if let Some(first) = entries.first().map(|e| e.index) {
            self.positions.truncate((first - self.snapshot_index - 1) as usize);
            for &(off, len, seed) in &self.enc.records()[..entries.len()] {
                self.positions.push_back(Position { segment: at.segment, offset: at.offset + off as u64, len, seed });
            }
            while self.cache.back().is_some_and(|e| e.index >= first) {
                if let Some(e) = self.cache.pop_back() {
                    self.cache_bytes -= entry_size(&e);
                }
            }
            if self.cache.back().is_some_and(|e| e.index + 1 != first) {
                // The cache no longer joins the new entries; start it afresh.
                self.cache.clear();
                self.cache_bytes = 0;
            }
            for e in entries {
                self.last_index = e.index;
                self.push_cache(e);
            }
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// The index of the last entry folded into a snapshot (0 before any compaction).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// The term of the entry at [`RaftLog::snapshot_index`].
    pub fn snapshot_term(&self) -> u64 {
        self.snapshot_term
    }

    /// Drops the entries up to and including `index` (already applied and durable in the
    /// state database), keeping its term for raft's log matching, and deletes the WAL segments
    /// that held only those.
    pub fn compact(&mut self, index: u64) -> Result<(), LogError> {
        if index <= self.snapshot_index {
            return Ok(());
        }
        if index > self.last_index {
            return Err(LogError::CompactBeyond { index, last: self.last_index });
        }
        let term = self.read_term(index)?;
        self.start_batch(64)?;
        encode_snapshot(&mut self.enc, index, term, false);
        // Synced: segments are deleted next, and a replay must find the compaction point that
        // explains their absence.
        self.wal.append(&mut self.enc, true)?;
        for _ in self.snapshot_index..index {
            self.positions.pop_front();
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
        while self.cache.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.cache.pop_front() {
                self.cache_bytes -= entry_size(&e);
            }
        }
        Ok(self.wal.release_through(index)?)
    }

    /// Replaces the whole log with a snapshot received from the leader: no entries, the
    /// snapshot's index, term and membership, durably, in a segment of its own (the older ones
    /// are deleted).
    pub fn apply_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), LogError> {
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.conf_state.clone();
        self.snapshot_index = meta.index;
        self.snapshot_term = meta.term;
        self.last_index = meta.index;
        self.positions.clear();
        self.cache.clear();
        self.cache_bytes = 0;
        // Replaces, so that a replay that still finds older segments drops their entries.
        self.roll(meta.index + 1, true)?;
        Ok(self.wal.release_all_but_current()?)
    }

    /// etcd's `--max-wals`: how many WAL segment files to keep, including ones whose entries
    /// are compacted away (0: keep them all). Applies at once to what the log already released.
    pub fn set_max_wals(&mut self, max: u32) -> Result<(), LogError> {
        self.wal.release_through(self.snapshot_index)?;
        Ok(self.wal.set_max_segments(max as usize)?)
    }

    /// Notes a commit index raft reported outside a Ready's hard state. It is persisted with
    /// the next append; losing it in a crash is harmless (raft recomputes commit).
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Persists a new membership (after a conf change is applied).
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<(), LogError> {
        self.start_batch(
            64 + 8 * (cs.voters.len() + cs.learners.len() + cs.voters_outgoing.len() + cs.learners_next.len()) as u64,
        )?;
        self.enc.record(REC_CONF_STATE, |o| o.extend_from_slice(&encode_conf_state(&cs)));
        self.wal.append(&mut self.enc, true)?;
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

    /// Reads entry `index` back from the WAL.
    fn read_from_disk(&self, index: u64) -> Result<Entry, LogError> {
        let pos = index
            .checked_sub(self.first_index())
            .and_then(|i| self.positions.get(i as usize))
            .ok_or(LogError::NoEntry { index })?;
        let (kind, payload) = self.wal.read(*pos)?;
        if kind != REC_ENTRY {
            return Err(LogError::NotAnEntry { index });
        }
        let e = decode_entry(&payload)?;
        if e.index != index {
            return Err(LogError::Misrecorded { index, found: e.index });
        }
        Ok(e)
    }

    fn read_entries<T>(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
        mut convert: impl FnMut(Entry) -> T,
    ) -> Result<Vec<T>, LogError> {
        let mut out = Vec::new();
        let mut size = 0u64;
        let cache_first = self.cache.front().map(|e| e.index).unwrap_or(u64::MAX);
        let mut next = low;
        while next < high {
            let e = if next >= cache_first {
                let Some(e) = self.cache.get((next - cache_first) as usize) else {
                    return Err(LogError::Hole { index: next });
                };
                e.clone()
            } else {
                self.read_from_disk(next)?
            };
            size += entry_size(&e) as u64;
            if !out.is_empty() && max_size.is_some_and(|m| size > m) {
                break;
            }
            out.push(convert(e));
            next += 1;
        }
        Ok(out)
    }

    fn read_term(&self, idx: u64) -> Result<u64, LogError> {
        if let Some(first) = self.cache.front()
            && idx >= first.index
            && let Some(e) = self.cache.get((idx - first.index) as usize)
        {
            return Ok(e.term);
        }
        Ok(self.read_from_disk(idx)?.term)
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// An entry record's payload before its context and data (see [`encode_entry`]).
const ENTRY_HEADER: usize = 21;
/// A hard state record, header included.
const HARD_STATE_RECORD: u64 = (wal::RECORD_HEADER + 24) as u64;

fn entry_size(e: &Entry) -> usize {
    e.data.len() + e.context.len() + 24
}

/// `index u64 | term u64 | type u8 | context length u32 | context | data`.
fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.index.to_be_bytes());
    out.extend_from_slice(&e.term.to_be_bytes());
    out.push(e.kind as u8);
    out.extend_from_slice(&(e.context.len() as u32).to_be_bytes());
    out.extend_from_slice(&e.context);
    out.extend_from_slice(&e.data);
}

fn decode_entry(b: &[u8]) -> Result<Entry, RecordError> {
    if b.len() < ENTRY_HEADER {
        return Err(RecordError::ShortEntry);
    }
    let index = be_u64(&b[..8]);
    let b = &b[8..];
    let kind = match b[8] {
        0 => EntryKind::Normal,
        1 => EntryKind::ConfChange,
        2 => EntryKind::ConfChangeV2,
        kind => return Err(RecordError::UnknownEntryKind { index, kind }),
    };
    let ctx_len = u32::from_be_bytes([b[9], b[10], b[11], b[12]]) as usize;
    if b.len() < 13 + ctx_len {
        return Err(RecordError::EntryContextTruncated { index });
    }
    Ok(Entry {
        index,
        term: be_u64(&b[..8]),
        kind,
        context: b[13..13 + ctx_len].to_vec().into(),
        data: b[13 + ctx_len..].to_vec().into(),
    })
}

fn decode_hard_state(b: &[u8]) -> Result<HardState, RecordError> {
    if b.len() != 24 {
        return Err(RecordError::HardState { len: b.len() });
    }
    Ok(HardState { term: be_u64(&b[..8]), vote: be_u64(&b[8..16]), commit: be_u64(&b[16..]) })
}

fn encode_identity(out: &mut wal::Encoder, id: Identity) {
    out.record(REC_IDENTITY, |o| {
        o.extend_from_slice(&id.member_id.to_be_bytes());
        o.extend_from_slice(&id.cluster_id.to_be_bytes());
    });
}

fn encode_snapshot(out: &mut wal::Encoder, index: u64, term: u64, replaces: bool) {
    out.record(REC_SNAPSHOT, |o| {
        o.extend_from_slice(&index.to_be_bytes());
        o.extend_from_slice(&term.to_be_bytes());
        o.push(replaces as u8);
    });
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

fn decode_conf_state(mut b: &[u8]) -> Result<ConfState, RecordError> {
    let mut lists: [Vec<u64>; 4] = Default::default();
    for list in lists.iter_mut() {
        if b.len() < 4 {
            return Err(RecordError::ConfStateTruncated);
        }
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        b = &b[4..];
        if b.len() < n.saturating_mul(8) {
            return Err(RecordError::ConfStateTruncated);
        }
        for i in 0..n {
            list.push(be_u64(&b[i * 8..]));
        }
        b = &b[n * 8..];
    }
    if b.len() != 1 {
        return Err(RecordError::ConfStateTrailing);
    }
    let [voters, learners, voters_outgoing, learners_next] = lists;
    Ok(ConfState { voters, learners, voters_outgoing, learners_next, auto_leave: b[0] != 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: data.to_vec().into(), ..Default::default() }
    }

    #[test]
    fn append_truncate_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut log = RaftLog::open(&path).unwrap();
        log.bootstrap(Identity { member_id: 7, cluster_id: 9 }, vec![7], Vec::new()).unwrap();
        let ents: Vec<_> = (1..=5).map(|i| entry(i, 1, format!("e{i}").as_bytes())).collect();
        let hs = HardState { term: 1, vote: 7, ..Default::default() };
        log.append(ents, Some(hs), true).unwrap();
        // A new leader overwrites 4 and 5.
        log.append(vec![entry(4, 2, b"x")], None, true).unwrap();
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.term(4).unwrap(), 2);
        assert_eq!(log.term(3).unwrap(), 1);
        let got = log.entries(1, 5, None).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(&got[3].data[..], b"x");
        drop(log);

        let log = RaftLog::open(&path).unwrap();
        assert_eq!(log.identity(), Some(Identity { member_id: 7, cluster_id: 9 }));
        assert_eq!(log.hard_state().vote, 7);
        assert_eq!(log.conf_state().voters, vec![7]);
        assert_eq!(log.last_index(), 4);
        let got = log.entries(2, 5, Some(1)).unwrap();
        assert_eq!(got.len(), 1, "max_size still returns one entry");
        assert_eq!(&got[0].data[..], b"e2");
        assert!(log.entries(1, 9, None).is_err());
    }

    #[test]
    fn reads_beyond_the_cache_come_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(&dir.path().join("wal")).unwrap();
        let n = CACHE_ENTRIES as u64 + 100;
        let ents: Vec<_> = (1..=n).map(|i| entry(i, 1, &i.to_be_bytes())).collect();
        log.append(ents, None, false).unwrap();
        assert!(log.cache.front().unwrap().index > 1);
        let got = log.entries(1, n + 1, None).unwrap();
        assert_eq!(got.len() as u64, n);
        assert!(
            got.iter().enumerate().all(|(i, e)| e.index == i as u64 + 1 && e.data[..] == (i as u64 + 1).to_be_bytes())
        );
        assert_eq!(log.term(1).unwrap(), 1);
    }

    fn all_entries(log: &RaftLog) -> Vec<(u64, u64, Vec<u8>)> {
        let first = log.first_index();
        let last = log.last_index();
        log.entries(first, last + 1, None).unwrap().into_iter().map(|e| (e.index, e.term, e.data.to_vec())).collect()
    }

    /// Many small segments: rolls, a conflicting tail that reaches back into an older segment,
    /// compaction that deletes segments, and every step survives a reopen.
    #[test]
    fn segments_roll_truncate_compact_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let open = || RaftLog::open_with_segment_bytes(&path, 4096);
        let mut log = open().unwrap();
        log.bootstrap(Identity { member_id: 1, cluster_id: 2 }, vec![1, 2, 3], Vec::new()).unwrap();
        let payload = |i: u64| format!("entry {i} {}", "x".repeat(200)).into_bytes();
        for chunk in (1..=100u64).collect::<Vec<_>>().chunks(7) {
            let ents: Vec<_> = chunk.iter().map(|&i| entry(i, 2, &payload(i))).collect();
            log.append(ents, None, true).unwrap();
        }
        let segments = std::fs::read_dir(&path).unwrap().count();
        assert!(segments > 5, "only {segments} segments");
        // A new leader at term 3 replaces 40.. (written several segments ago).
        log.append(vec![entry(40, 3, b"new 40"), entry(41, 3, b"new 41")], None, true).unwrap();
        let mut want: Vec<_> = (1..40).map(|i| (i, 2, payload(i))).collect();
        want.push((40, 3, b"new 40".to_vec()));
        want.push((41, 3, b"new 41".to_vec()));
        assert_eq!(all_entries(&log), want);
        drop(log);
        let mut log = open().unwrap();
        assert_eq!(all_entries(&log), want);
        assert_eq!(log.identity(), Some(Identity { member_id: 1, cluster_id: 2 }));
        assert_eq!(log.conf_state().voters, vec![1, 2, 3]);

        log.compact(30).unwrap();
        assert_eq!(log.term(30).unwrap(), 2);
        assert!(matches!(log.term(29), Err(LogError::Compacted { index: 29 })));
        let after = std::fs::read_dir(&path).unwrap().count();
        assert!(after < segments, "compaction deleted no segment ({after} of {segments})");
        drop(log);
        let log = open().unwrap();
        assert_eq!(log.first_index(), 31);
        assert_eq!(log.term(30).unwrap(), 2);
        assert_eq!(all_entries(&log), want[30..].to_vec());
    }

    /// `--max-wals`: compaction keeps the newest released segments up to the limit (0: all),
    /// never one still needed, and a log reopened with the kept segments is the same log.
    #[test]
    fn max_wals_keeps_released_segments_up_to_the_limit() {
        let wal_files = |path: &std::path::Path| std::fs::read_dir(path).unwrap().count();
        let payload = |i: u64| format!("entry {i} {}", "x".repeat(200)).into_bytes();
        let want: Vec<_> = (91..=100u64).map(|i| (i, 2, payload(i))).collect();
        // With max-wals 1 only the segments still needed stay: learn how many that is first.
        let mut needed = None;
        for max in [1u32, 3, 0] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("wal");
            let open = || RaftLog::open_with_segment_bytes(&path, 4096);
            let mut log = open().unwrap();
            log.set_max_wals(max).unwrap();
            log.bootstrap(Identity { member_id: 1, cluster_id: 2 }, vec![1], Vec::new()).unwrap();
            for chunk in (1..=100u64).collect::<Vec<_>>().chunks(7) {
                log.append(chunk.iter().map(|&i| entry(i, 2, &payload(i))).collect(), None, true).unwrap();
            }
            let before = wal_files(&path);
            log.compact(90).unwrap();
            let after = wal_files(&path);
            let needed = *needed.get_or_insert(after);
            assert!(needed < 3 && before > 3, "{needed} of {before} segments needed: the test needs other sizes");
            match max {
                0 => assert_eq!(after, before, "max-wals 0 keeps every segment"),
                m => assert_eq!(after, before.min(needed.max(m as usize)), "max-wals {m}"),
            }
            drop(log);
            let mut log = open().unwrap();
            assert_eq!(all_entries(&log), want, "max-wals {max}: the reopened log");
            // A lower limit on the next start applies to what was already released.
            log.set_max_wals(1).unwrap();
            assert!(wal_files(&path) <= after);
            assert_eq!(all_entries(&log), want);
        }
    }

    /// Found by the `wal_replay` fuzz target (corpus `found-tail-truncated-into-a-purged-segment`).
    /// A follower's conflicting tail is replaced from an index before the current segment's
    /// first one (a new leader overwrites entries written just before the segment rolled);
    /// once compaction passes that point the older segments are deleted, and replay begins in
    /// a segment whose entries go back in index halfway through. That is a truncation as any
    /// other, not a gap: refusing it made a member with an intact log refuse to start.
    #[test]
    fn undamaged_log_with_a_tail_truncated_into_a_purged_segment_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let open = || RaftLog::open_with_segment_bytes(&path, 2048);
        let mut log = open().unwrap();
        log.set_max_wals(1).unwrap();
        log.bootstrap(Identity { member_id: 1, cluster_id: 2 }, vec![1], Vec::new()).unwrap();
        let payload = |i: u64| format!("entry {i} {}", "x".repeat(300)).into_bytes();
        let mut i = 0;
        let rolled_at = loop {
            i += 1;
            let before = log.wal().tail().0;
            log.append(vec![entry(i, 2, &payload(i))], None, true).unwrap();
            if log.wal().tail().0 != before && i > 4 {
                break i;
            }
        };
        // The newest segment starts with entry `rolled_at`; one more entry after it, then a new
        // leader replaces everything from two entries before the roll.
        log.append(vec![entry(rolled_at + 1, 2, b"old")], None, true).unwrap();
        let from = rolled_at - 2;
        let new = vec![entry(from, 3, b"new a"), entry(from + 1, 3, b"new b"), entry(from + 2, 3, b"new c")];
        log.append(new, None, true).unwrap();
        // Everything before the newest segment's first index is compacted: the rest may go.
        log.compact(from + 1).unwrap();
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 1, "the older segments were deleted");
        let want = vec![(from + 2, 3, b"new c".to_vec())];
        assert_eq!(all_entries(&log), want);
        drop(log);

        let log = open().expect("an undamaged log reopens");
        assert_eq!(log.first_index(), from + 2);
        assert_eq!(log.term(from + 1).unwrap(), 3);
        assert_eq!(all_entries(&log), want);
        assert_eq!(log.identity(), Some(Identity { member_id: 1, cluster_id: 2 }));
    }

    /// Found by the `wal_replay` fuzz target (corpus `found-only-segment-zeroed`,
    /// `found-only-segment-magic-flipped`): a member's only segment, bootstrapped and synced,
    /// whose first sector a disk zeroed, that was cut to nothing, or whose magic lost one bit,
    /// was read as a v1 segment: empty, or torn at its first record and cut to nothing. The
    /// member would have started as a new one with its identity, votes and entries forgotten.
    /// It is refused as corrupt, unchanged.
    #[test]
    fn a_log_whose_only_segment_lost_its_header_is_refused() {
        for damage in ["zeroed", "cut to nothing", "magic flipped"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("wal");
            let mut log = RaftLog::open(&path).unwrap();
            log.bootstrap(Identity { member_id: 3, cluster_id: 4 }, vec![3], Vec::new()).unwrap();
            log.append(vec![entry(1, 1, b"one")], Some(HardState { term: 1, vote: 3, commit: 0 }), true).unwrap();
            drop(log);
            let seg = std::fs::read_dir(&path).unwrap().next().unwrap().unwrap().path();
            let mut bytes = std::fs::read(&seg).unwrap();
            assert!(bytes[512..].iter().all(|&b| b == 0), "everything written fits in the first sector");
            match damage {
                "zeroed" => bytes[..512].fill(0),
                "cut to nothing" => bytes.clear(),
                _ => bytes[0] ^= 1,
            }
            std::fs::write(&seg, &bytes).unwrap();
            let err = RaftLog::open(&path).err().unwrap_or_else(|| panic!("{damage}: the segment is refused"));
            assert_eq!(err.corrupt().map(|c| &c.segment), Some(&seg), "{damage}: {err}");
            assert_eq!(std::fs::read(&seg).unwrap(), bytes, "{damage}: and left as it was");
        }
    }

    /// Found by the `wal_replay` fuzz target (corpus `found-needed-oldest-segment-deleted`):
    /// with the oldest segment gone while its entries were still needed, and the newest one's
    /// entries torn off, replay found no entry at all and opened a log with the hard state of
    /// one whose entries were lost (raft then panics on a commit past the last index).
    #[test]
    fn a_log_missing_a_needed_oldest_segment_is_refused_even_without_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut log = RaftLog::open_with_segment_bytes(&path, 2048).unwrap();
        log.bootstrap(Identity { member_id: 1, cluster_id: 2 }, vec![1], Vec::new()).unwrap();
        let hs = HardState { term: 2, vote: 1, commit: 3 };
        log.append((1..=3).map(|i| entry(i, 2, &[1u8; 400])).collect(), Some(hs), true).unwrap();
        // The next append does not fit: a new segment named 4, restating the hard state.
        log.append(vec![entry(4, 2, &[2u8; 1200])], None, false).unwrap();
        drop(log);
        let mut segs: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
        segs.sort();
        assert_eq!(segs.len(), 2);
        std::fs::remove_file(&segs[0]).unwrap();
        // The unsynced append's batch lost to a power cut: its first sector reads as zeros.
        let mut newest = std::fs::read(&segs[1]).unwrap();
        let at = newest.iter().rposition(|&b| b != 0).unwrap() / 512 * 512;
        newest[at..].fill(0);
        std::fs::write(&segs[1], &newest).unwrap();
        match RaftLog::open_with_segment_bytes(&path, 2048) {
            Err(LogError::MissingEntries { from: 1, to: 4, .. }) => {}
            Err(e) => panic!("refused for another reason: {e}"),
            Ok(log) => {
                panic!("opened with entries {}..={} and {:?}", log.first_index(), log.last_index(), log.hard_state())
            }
        }
    }

    #[test]
    fn an_installed_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut log = RaftLog::open(&path).unwrap();
        log.bootstrap(Identity { member_id: 1, cluster_id: 2 }, vec![1], Vec::new()).unwrap();
        let ents: Vec<_> = (1..=20).map(|i| entry(i, 2, b"old")).collect();
        log.append(ents, None, true).unwrap();
        let meta =
            SnapshotMeta { index: 15, term: 4, conf_state: ConfState { voters: vec![1, 5], ..Default::default() } };
        log.apply_snapshot(&meta).unwrap();
        log.append(vec![entry(16, 4, b"after")], None, true).unwrap();
        drop(log);
        let log = RaftLog::open(&path).unwrap();
        assert_eq!(log.first_index(), 16);
        assert_eq!(log.term(15).unwrap(), 4);
        assert_eq!(all_entries(&log), vec![(16, 4, b"after".to_vec())]);
        assert_eq!(log.conf_state().voters, vec![1, 5]);
        assert_eq!(log.hard_state().commit, 15);
        assert_eq!(log.identity(), Some(Identity { member_id: 1, cluster_id: 2 }));
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 1, "older segments are deleted");
    }

    /// A member's log written before the v2 WAL format (bare records, unchained checksums):
    /// read as it is, and written on in a new segment of the current format.
    #[test]
    fn a_v1_log_is_read_and_continued_in_v2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        std::fs::create_dir_all(&path).unwrap();
        let mut v1 = Vec::new();
        let mut record = |kind: u8, payload: &[u8]| {
            v1.extend_from_slice(&(1 + payload.len() as u32).to_le_bytes());
            let mut body = vec![kind];
            body.extend_from_slice(payload);
            v1.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            v1.extend_from_slice(&body);
        };
        record(REC_IDENTITY, &[7u64.to_be_bytes(), 9u64.to_be_bytes()].concat());
        record(REC_CONF_STATE, &encode_conf_state(&ConfState { voters: vec![7], ..Default::default() }));
        let hs = HardState { term: 3, vote: 7, commit: 2 };
        record(REC_HARD_STATE, &encode_hard_state(&hs));
        for i in 1..=4 {
            let mut p = Vec::new();
            encode_entry(&entry(i, 3, format!("v1 {i}").as_bytes()), &mut p);
            record(REC_ENTRY, &p);
        }
        v1.resize(1 << 20, 0);
        std::fs::write(path.join("0000000000000000-0000000000000001.wal"), &v1).unwrap();

        let mut log = RaftLog::open(&path).unwrap();
        assert_eq!(log.identity(), Some(Identity { member_id: 7, cluster_id: 9 }));
        assert_eq!(log.hard_state(), &hs);
        assert_eq!(all_entries(&log).len(), 4);
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 2, "a v2 segment follows the v1 one");
        log.append(vec![entry(5, 3, b"v2 5")], None, true).unwrap();
        drop(log);
        let log = RaftLog::open(&path).unwrap();
        let got = all_entries(&log);
        assert_eq!(
            got.iter().map(|e| e.2.clone()).collect::<Vec<_>>(),
            ["v1 1", "v1 2", "v1 3", "v1 4", "v2 5"].map(|s| s.as_bytes().to_vec())
        );
        assert_eq!(log.hard_state(), &hs);
        assert_eq!(
            std::fs::read(path.join("0000000000000000-0000000000000001.wal")).unwrap(),
            v1,
            "the v1 segment is left as it was"
        );
    }

    /// The refusal an operator reads (the binary prints the error chain): who this member is,
    /// which segment is damaged where, and what to do.
    #[test]
    fn a_corrupt_log_names_the_member_the_segment_and_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut log = RaftLog::open(&path).unwrap();
        log.bootstrap(Identity { member_id: 0xabc, cluster_id: 0xdef }, vec![0xabc], Vec::new()).unwrap();
        for i in 1..=3 {
            log.append(vec![entry(i, 2, &[7u8; 600])], None, true).unwrap();
        }
        let pos = log.positions[0];
        drop(log);
        let seg = std::fs::read_dir(&path).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[pos.offset as usize + 100] ^= 1;
        std::fs::write(&seg, &bytes).unwrap();
        let err = RaftLog::open(&path).err().expect("a flipped bit is refused");
        assert_eq!(err.corrupt().map(|c| &c.segment), Some(&seg));
        let text = format!("{:#}", anyhow::Error::from(err));
        let start = format!(
            "member abc of cluster def cannot start: reading raft log {}: wal: segment {} is corrupt at offset {}: ",
            path.display(),
            seg.display(),
            pos.offset
        );
        assert!(text.starts_with(&start), "{text}");
        assert!(
            text.ends_with(
                ". This member's log cannot be trusted, so it does not start (nothing on disk was changed). To recover: \
                 remove the member from the cluster (etcdctl member remove <id>), empty its data dir, add it back \
                 (etcdctl member add) and start it with --initial-cluster-state existing; or restore its data dir \
                 from a snapshot (wasmraft snapshot restore)"
            ),
            "{text}"
        );
    }

    #[test]
    fn conf_state_roundtrip() {
        let cs = ConfState { voters: vec![1, 2, 3], learners: vec![4], auto_leave: true, ..Default::default() };
        assert_eq!(decode_conf_state(&encode_conf_state(&cs)).unwrap(), cs);
        assert!(decode_conf_state(&[0, 0]).is_err());
    }
}
