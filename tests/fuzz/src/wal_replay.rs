//! `wal_replay`: the raft log's restart path (`host/storage/src/raft_log.rs` over `wal.rs`)
//! on segment files nobody vouches for, as a member reads its WAL after a crash, a bad disk or
//! an operator's mistake.
//!
//! Two modes, chosen by the first byte's low bit:
//!
//! - **raw**: the rest of the input is cut into up to three segment files (each file's length a
//!   little-endian u16 before it, the last takes the rest; named by what their headers claim). Opening must not
//!   panic, hang or allocate beyond the files; when it succeeds, every entry it claims reads
//!   back, and a second open finds exactly the same log (repairing a torn tail is idempotent);
//!   when it fails, no file was changed (the WAL promises to leave a refused log as it found it).
//! - **written**: the input is a script of writer operations (appends synced or not, compaction,
//!   installed snapshots, conf states, bootstrap, `--max-wals`) run through the real writer with
//!   2 KiB segments, then a list of damage (bit flips, zeroed sectors, truncations, the oldest
//!   segment deleted). Without damage, reopening gives exactly the log the writer held. With
//!   damage, reopening either fails with a typed error or gives the writer's log as it was after
//!   some operation at or after the last synced one: a torn unsynced tail may be cut, but a
//!   damaged record is never skipped into some other log. Two refinements of that, both the
//!   WAL's documented model: when nothing was written after the last synced batch, nothing
//!   says it was synced, so it may be cut as torn too, with the unsynced ones before it (any
//!   state from the synced operation before it on is allowed); damage that cuts the newest
//!   segment's tail off (truncation, or zeros to its end) is a power cut's tear to replay, so
//!   any state since that segment began is allowed; and
//!   damage to the newest segment's file header (synced before the segment is named) always
//!   fails the open.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use wasmraft_storage::{ConfState, Entry, EntryKind, HardState, Identity, RaftLog, SnapshotMeta};

/// Segment size for the fuzzed logs: small, so a few appends roll segments.
pub const SEGMENT_BYTES: u64 = 2048;

/// Everything a restart reads back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    pub identity: Option<Identity>,
    pub hard_state: HardState,
    pub conf_state: ConfState,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_term: u64,
    pub entries: Vec<Entry>,
}

/// What the log says about itself; `Err` if it cannot read an entry it claims to have.
pub fn observe(log: &RaftLog) -> Result<LogState, String> {
    let (first, last) = (log.first_index(), log.last_index());
    let entries = if last >= first {
        log.entries(first, last + 1, None).map_err(|e| format!("entries {first}..={last}: {e}"))?
    } else {
        Vec::new()
    };
    if entries.len() as u64 != (last + 1).saturating_sub(first) {
        return Err(format!("{} entries read for {first}..={last}", entries.len()));
    }
    for (i, e) in entries.iter().enumerate() {
        if e.index != first + i as u64 {
            return Err(format!("entry {} read at {}", e.index, first + i as u64));
        }
    }
    let term = log.term(log.snapshot_index()).map_err(|e| format!("term of the snapshot index: {e}"))?;
    assert_eq!(term, log.snapshot_term());
    Ok(LogState {
        identity: log.identity(),
        hard_state: *log.hard_state(),
        conf_state: log.conf_state().clone(),
        first_index: first,
        last_index: last,
        snapshot_term: log.snapshot_term(),
        entries,
    })
}

/// A scratch directory in memory where there is one (the target does file I/O per input).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("wasmraft-fuzz-").tempdir_in(shm)
    {
        return d;
    }
    tempfile::Builder::new().prefix("wasmraft-fuzz-").tempdir().expect("a temporary directory")
}

/// The segment files in `dir`, sorted by name, with their contents.
pub fn segments(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wal")).collect())
        .unwrap_or_default();
    let mut v: Vec<(PathBuf, Vec<u8>)> = paths
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read segment");
            (p, b)
        })
        .collect();
    v.sort();
    v
}

pub fn wal_replay(data: &[u8]) {
    let Some((mode, rest)) = crate::split_shape(data) else { return };
    if mode & 1 == 0 { raw(rest) } else { written(rest) }
}

fn raw(mut data: &[u8]) {
    let dir = scratch();
    let wal = dir.path().join("wal");
    std::fs::create_dir(&wal).expect("mkdir");
    for seq in 0..3u64 {
        let body = if seq == 2 || data.len() < 2 {
            std::mem::take(&mut data)
        } else {
            let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
            let (b, r) = data[2..].split_at(n);
            data = r;
            b
        };
        // The sequence number and first index in the name are the ones the file's header
        // claims (if it is long enough to claim them), so that a valid segment is not refused
        // for its name alone.
        let word = |r: std::ops::Range<usize>| body.get(r).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let first = word(16..24).unwrap_or(1);
        let named = word(8..16).unwrap_or(seq);
        let path = wal.join(format!("{named:016x}-{first:016x}.wal"));
        std::fs::write(path, body).expect("write segment");
        if data.is_empty() {
            break;
        }
    }
    let before = segments(&wal);
    match RaftLog::open_with_segment_bytes(&wal, SEGMENT_BYTES) {
        Ok(log) => {
            let first = observe(&log);
            drop(log);
            let log = RaftLog::open_with_segment_bytes(&wal, SEGMENT_BYTES).expect("a log that opened opens again");
            assert_eq!(first, observe(&log), "a second open finds the same log");
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(before == segments(&wal), "a refused log is left as it was: {e}");
        }
    }
}

/// A cursor over the input that yields zeros when it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, r)) => {
                self.0 = r;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
}

/// Writer operations before the damage list starts (marker byte 0xff ends the script early).
const MAX_OPS: usize = 48;

/// The raw-mode input (mode byte included) holding the segments the writer leaves for `script`
/// (a written-mode input without its mode byte): seeds that are real logs.
pub fn raw_seed(script: &[u8]) -> Vec<u8> {
    let dir = scratch();
    let wal = dir.path().join("wal");
    run_writer(&wal, &mut Input(script));
    let segs = segments(&wal);
    let mut out = vec![0u8];
    for (i, (_, bytes)) in segs.iter().enumerate().take(3) {
        if i + 1 < segs.len().min(3) {
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(bytes);
    }
    out
}

/// What [`run_writer`] leaves.
struct Written {
    /// The log's state before the first operation and after each.
    states: Vec<LogState>,
    /// The first state a crash cannot lose (the one after the last synced operation).
    durable: usize,
    /// The same for the synced operation before that one (0 if none).
    durable_before: usize,
    /// Nothing was written after the last synced operation, so no later batch states that it
    /// was synced (see [`written`]).
    tail_unconfirmed: bool,
    /// The state the newest segment's header restates: the one before the operation that
    /// started that segment.
    newest_from: usize,
}

/// Runs the script's writer operations on a new log in `wal`.
fn run_writer(wal: &Path, input: &mut Input<'_>) -> Written {
    let mut log = RaftLog::open_with_segment_bytes(wal, SEGMENT_BYTES).expect("a new log opens");
    let mut states = vec![observe(&log).expect("a new log reads")];
    let (mut durable, mut durable_before) = (0, 0);
    let newest = |wal: &Path| segments(wal).pop();
    let mut at_durable = newest(wal);
    let mut newest_path = at_durable.as_ref().map(|s| s.0.clone());
    let mut newest_from = 0;
    for _ in 0..MAX_OPS {
        if input.0.is_empty() {
            break;
        }
        let op = input.byte();
        if op == 0xff {
            break;
        }
        if apply(&mut log, op, input) {
            durable_before = durable;
            durable = states.len();
            at_durable = newest(wal);
        }
        let now = newest(wal).map(|s| s.0);
        if now != newest_path {
            newest_path = now;
            newest_from = states.len() - 1;
        }
        states.push(observe(&log).expect("the writer reads back what it wrote"));
    }
    // Only writes to the newest segment confirm anything (deleting older ones, as `--max-wals`
    // does, does not; a new segment does, as rolling syncs the one before).
    let tail_unconfirmed = durable > 0 && newest(wal) == at_durable;
    Written { states, durable, durable_before, tail_unconfirmed, newest_from }
}

fn written(data: &[u8]) {
    let dir = scratch();
    let wal = dir.path().join("wal");
    let mut input = Input(data);
    let Written { states, durable, durable_before, tail_unconfirmed, newest_from } = run_writer(&wal, &mut input);
    let last = states.last().cloned().expect("at least the first state");
    let original = segments(&wal);

    // Damage: 4 bytes each, kind, file, offset.
    let mut damaged = false;
    while input.0.len() >= 4 {
        let (kind, file, offset) = (input.byte(), input.byte(), input.u16() as usize);
        let files = segments(&wal);
        let Some((path, bytes)) = files.get(file as usize % files.len().max(1)) else { break };
        let mut bytes = bytes.clone();
        match kind % 4 {
            0 if !bytes.is_empty() => {
                let at = offset % bytes.len();
                bytes[at] ^= 1 << (kind >> 5);
            }
            1 if !bytes.is_empty() => {
                let at = offset % bytes.len() / 512 * 512;
                let end = (at + 512).min(bytes.len());
                bytes[at..end].fill(0);
            }
            2 => bytes.truncate(offset % (bytes.len() + 1)),
            3 if files.len() > 1 => {
                std::fs::remove_file(&files[0].0).expect("remove segment");
                damaged = true;
                continue;
            }
            _ => continue,
        }
        if bytes != files[file as usize % files.len()].1 {
            std::fs::write(path, &bytes).expect("write damage");
            damaged = true;
        }
    }

    // The newest segment's file header is written and synced before the segment gets its
    // name, so no crash can leave it damaged: damage there is never a torn write.
    let header_damaged = original
        .last()
        .is_some_and(|(path, bytes)| std::fs::read(path).is_ok_and(|now| now.get(..32) != bytes.get(..32)));
    // A batch's BEGIN and END state how far the segment was synced before it, never that the
    // batch itself was: when the last synced operation's batch is the last one written, replay
    // knows only the sync point that batch states, the one before it, and anything after that
    // (unsynced batches between, and the last one) may be cut as torn when damage zeroes or
    // cuts part of it (the WAL's model, `host/storage/src/wal.rs`; etcd's replay has the same
    // limit).
    let mut kept_from = if tail_unconfirmed { durable_before } else { durable };
    // Damage that cuts the newest segment's tail off (a truncation, or zeros from some point to
    // its end) leaves exactly what a power cut during the batch at the cut would: nothing past
    // the cut can say the data before it was synced. Any state since the segment began may come
    // back then (its header, synced before it was named, restates the one before it).
    if let Some((path, before)) = original.last()
        && let Ok(now) = std::fs::read(path)
        && now != *before
    {
        let cut = before.iter().zip(&now).take_while(|(a, b)| a == b).count();
        if now[cut..].iter().all(|&b| b == 0) {
            kept_from = kept_from.min(newest_from);
        }
    }

    match RaftLog::open_with_segment_bytes(&wal, SEGMENT_BYTES) {
        Ok(log) => {
            let got = observe(&log).expect("a log that opened reads its entries");
            if !damaged {
                assert_eq!(got, last, "an undamaged log reopens as it was written");
            } else {
                assert!(!header_damaged, "a log whose newest segment's file header was damaged opened: {got:?}");
                assert!(
                    states[kept_from..].contains(&got),
                    "a damaged log opened as a log the writer never held (durable from state {durable} of {}, \
                     the last synced batch unconfirmed: {tail_unconfirmed}): {got:?}",
                    states.len()
                );
            }
        }
        Err(e) => {
            assert!(damaged, "an undamaged log fails to reopen: {e}");
            let _ = e.to_string();
        }
    }
}

/// Runs one writer operation chosen by `op`; true if it made everything so far durable.
fn apply(log: &mut RaftLog, op: u8, input: &mut Input<'_>) -> bool {
    let (snap, last) = (log.snapshot_index(), log.last_index());
    match op % 8 {
        0..=2 => {
            let n = 1 + input.byte() % 4;
            let first = snap + 1 + u64::from(input.byte()) % (last - snap + 1);
            let term = u64::from(input.byte() % 8);
            let shape = input.byte();
            let entries: Vec<Entry> = (0..u64::from(n))
                .map(|i| Entry {
                    index: first + i,
                    term,
                    kind: match (shape >> 6) % 3 {
                        0 => EntryKind::Normal,
                        1 => EntryKind::ConfChange,
                        _ => EntryKind::ConfChangeV2,
                    },
                    data: Bytes::from(vec![shape ^ i as u8; usize::from(shape & 0x3f) * 7]),
                    context: Bytes::from(vec![0xc0; usize::from(shape >> 6)]),
                })
                .collect();
            let hs = (op & 0x10 != 0).then(|| HardState { term, vote: u64::from(op >> 5), commit: first });
            let sync = op & 0x08 != 0;
            log.append(entries, hs, sync).expect("append");
            sync
        }
        3 if last > snap => {
            let to = snap + 1 + u64::from(input.byte()) % (last - snap);
            log.compact(to).expect("compact");
            true
        }
        4 => {
            let index = last + u64::from(input.byte() % 4);
            let term = u64::from(input.byte() % 8);
            let meta = SnapshotMeta { index, term, conf_state: ConfState { voters: vec![1, 2], ..Default::default() } };
            log.apply_snapshot(&meta).expect("apply snapshot");
            true
        }
        5 => {
            let b = input.byte();
            let cs = ConfState {
                voters: (1..=u64::from(b % 4)).collect(),
                learners: (10..10 + u64::from(b >> 6)).collect(),
                voters_outgoing: if b & 0x10 != 0 { vec![1] } else { Vec::new() },
                learners_next: Vec::new(),
                auto_leave: b & 0x20 != 0,
            };
            log.set_conf_state(cs).expect("conf state");
            true
        }
        6 if log.identity().is_none() => {
            let id = Identity { member_id: u64::from(input.byte()) + 1, cluster_id: 0x1234 };
            log.bootstrap(id, vec![id.member_id], Vec::new()).expect("bootstrap");
            true
        }
        7 => {
            log.set_max_wals(u32::from(input.byte() % 3)).expect("max wals");
            false
        }
        _ => false,
    }
}
