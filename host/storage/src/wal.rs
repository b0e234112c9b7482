//! The write-ahead log: append-only segment files of checksummed records, under
//! `<data-dir>/member/wal/`, as etcd keeps its raft log.
//!
//! Why not a redb table: a raft log is only ever appended to, truncated at the tail, and dropped
//! from the front, and it must be durable before a member answers. A B-tree commit rewrote about
//! eight 4 KiB pages (leaf, branches, allocator state, header) for every Ready however small, and
//! the fsync paid for all of them; here a Ready is one `pwrite` of its records and one
//! `fdatasync` of a preallocated file, which flushes the data pages alone.
//!
//! A segment is `<seq>-<first index>.wal` (16 hex digits each, as etcd names them), preallocated
//! to [`SEGMENT_BYTES`] so appends never change the file's size. The format ("v2", described in
//! full in docs/decisions.md) is a 32-byte file header, then batches: one batch per `pwrite`,
//! framed by a BEGIN record (where it starts, how long it is, how far the segment was durable
//! when it was written) and an END record (the same again, ending in a marker). Between them,
//! the caller's records: `length u32 | crc32 u32 | kind u8 | payload`, each checksum seeded
//! with the previous record's, across segments too (the file header restates the seed), so a
//! stale or reordered record never replays as current. The records' meaning belongs to the
//! caller ([`crate::RaftLog`]); this file only stores and finds them. Segments written
//! before this format (v1: bare records, unchained checksums) are still read.
//!
//! Crashes: a kill loses nothing written (the page cache survives); a power cut keeps what was
//! fsynced and, of what was written after the last fsync, any subset of its 512-byte sectors
//! (the rest read as zeros: the space is preallocated). Replay tells the two apart. A batch that
//! fails its checks is a torn write only if it lies in the part written since the last fsync
//! (known from the last batch's BEGIN or END, which state the durable point) and shows a sector
//! that was never written (all zeros). Such a batch and everything after it were never
//! acknowledged: they are cut off and the rest of the segment zeroed. Anything else that fails
//! — a flipped bit, a damaged record followed by data, anything in an older segment — is
//! corruption: the member refuses to start with [`CorruptWal`] and changes nothing on disk.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::durable;
use crate::error::{CorruptWal, IoError, RecordError, WalError};

/// Segment size: etcd's `SegmentSizeBytes`. A record larger than a segment gets a segment of
/// its own, which grows past this.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Record header: length, checksum, kind.
pub const RECORD_HEADER: usize = 9;

/// What a power cut tears at: a sector is written whole or not at all.
const SECTOR: u64 = 512;

/// The file header: magic, seq, first index, chain seed, and a checksum of those.
const FILE_HEADER: u64 = 32;
const MAGIC: [u8; 8] = *b"wrwal\0v2";

/// Kinds at and above this are the WAL's own (batch framing); callers use the ones below.
const FIRST_WAL_KIND: u8 = 0x80;
const K_BEGIN: u8 = 0xb0;
const K_END: u8 = 0xe0;
/// Filler before an END record that would otherwise straddle a sector boundary (chained like
/// the caller's records, never handed to them).
const K_PAD: u8 = 0xa0;
/// BEGIN: `start u64 | length u64 | synced end u64`.
const BEGIN_BYTES: usize = RECORD_HEADER + 24;
/// END: `start u64 | length u64 | synced end u64 | chain u32 | END_MAGIC`.
const END_BYTES: usize = RECORD_HEADER + 32;
/// The last bytes of every batch: non-zero, so the end of the written data can be found from
/// the end of the file.
const END_MAGIC: [u8; 4] = *b"WEND";
/// Seeds the framing records' own checksums (which are outside the chain, so that a BEGIN can
/// be checked without what precedes it).
const FRAME_SEED: u32 = 0x7772_6672;

/// Bytes a batch takes beyond its records.
pub const BATCH_OVERHEAD: u64 = (BEGIN_BYTES + END_BYTES) as u64;

/// How much of a segment replay reads at once.
const WINDOW: usize = 1 << 20;

/// Where a record is: enough to read it back with one `pread` and check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    /// Header included.
    pub len: u32,
    /// The chain value its checksum continues from (0 in a v1 segment).
    pub seed: u32,
}

/// A batch being encoded for [`Wal::append`] (or a segment header for [`Wal::roll`]): the
/// records chained from where the log ends now. Kept by the caller to reuse its buffers.
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
    /// (offset in the batch, length, chain seed) of each record.
    spans: Vec<(usize, u32, u32)>,
    seq: u64,
    start: u64,
    seed: u32,
    crc: u32,
}

impl Encoder {
    fn reset(&mut self, seq: u64, start: u64, seed: u32) {
        self.buf.clear();
        self.buf.resize(BEGIN_BYTES, 0);
        self.spans.clear();
        self.seq = seq;
        self.start = start;
        self.seed = seed;
        self.crc = seed;
    }

    /// Appends one record: the header, then whatever `payload` writes. Its checksum continues
    /// the chain: one pass over its bytes, as an unchained one would take.
    pub fn record(&mut self, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
        debug_assert!(kind < FIRST_WAL_KIND, "record kind {kind} is the WAL's own");
        let (at, seed) = self.chain(kind, payload);
        self.spans.push((at, (self.buf.len() - at) as u32, seed));
    }

    /// Appends a chained record; returns where it starts and the chain value it continues.
    fn chain(&mut self, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) -> (usize, u32) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0u8; RECORD_HEADER]);
        self.buf[at + 8] = kind;
        payload(&mut self.buf);
        let len = (self.buf.len() - at - 8) as u32;
        let mut h = crc32fast::Hasher::new_with_initial(self.crc);
        h.update(&self.buf[at + 8..]);
        let crc = h.finalize();
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        let seed = self.crc;
        self.crc = crc;
        (at, seed)
    }

    /// The records encoded so far: (offset in the batch, length, chain seed).
    pub fn records(&self) -> &[(usize, u32, u32)] {
        &self.spans
    }

    /// Frames the records: the END record after them, the BEGIN record before them. The END
    /// never straddles a sector boundary (a filler record goes first if it would), so that one
    /// sector lost in a power cut cannot take parts of both the BEGIN and the END of a batch.
    fn seal(&mut self, synced_end: u64) {
        let room = (SECTOR - (self.start + self.buf.len() as u64) % SECTOR) as usize;
        if room < END_BYTES {
            let filler = if room < RECORD_HEADER { room + SECTOR as usize } else { room };
            self.chain(K_PAD, |o| o.resize(o.len() + filler - RECORD_HEADER, 0xff));
        }
        let len = (self.buf.len() + END_BYTES) as u64;
        let mut end = [0u8; 32];
        end[..8].copy_from_slice(&self.start.to_le_bytes());
        end[8..16].copy_from_slice(&len.to_le_bytes());
        end[16..24].copy_from_slice(&synced_end.to_le_bytes());
        end[24..28].copy_from_slice(&self.crc.to_le_bytes());
        end[28..].copy_from_slice(&END_MAGIC);
        let at = self.buf.len();
        self.buf.resize(at + END_BYTES, 0);
        encode_frame(&mut self.buf[at..], self.seq, K_END, &end);
        let mut begin = [0u8; 24];
        begin.copy_from_slice(&end[..24]);
        encode_frame(&mut self.buf[..BEGIN_BYTES], self.seq, K_BEGIN, &begin);
    }
}

/// A framing record in `out` (exactly its size), checksummed on its own and bound to its segment.
fn encode_frame(out: &mut [u8], seq: u64, kind: u8, payload: &[u8]) {
    out[..4].copy_from_slice(&(1 + payload.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&frame_crc(seq, kind, payload).to_le_bytes());
    out[8] = kind;
    out[9..].copy_from_slice(payload);
}

fn frame_crc(seq: u64, kind: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(FRAME_SEED);
    h.update(&seq.to_le_bytes());
    h.update(&[kind]);
    h.update(payload);
    h.finalize()
}

/// The payload of the framing record of `kind` at the start of `b`, if intact.
fn parse_frame(b: &[u8], seq: u64, kind: u8, payload_len: usize) -> Option<&[u8]> {
    let b = b.get(..RECORD_HEADER + payload_len)?;
    let ok = le_u32(&b[..4]) as usize == 1 + payload_len
        && b[8] == kind
        && le_u32(&b[4..8]) == frame_crc(seq, kind, &b[9..]);
    ok.then(|| &b[9..])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    start: u64,
    len: u64,
    synced_end: u64,
}

impl Frame {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The BEGIN record at `pos`, if intact and consistent with being there.
fn parse_begin(b: &[u8], seq: u64, pos: u64) -> Option<Frame> {
    let p = parse_frame(b, seq, K_BEGIN, 24)?;
    let f = Frame { start: le_u64(&p[..8]), len: le_u64(&p[8..16]), synced_end: le_u64(&p[16..24]) };
    // A batch states the durable point before it, or (a segment's header batch, synced
    // before the segment got its name) its own end.
    let ok = f.start == pos
        && f.len >= BATCH_OVERHEAD
        && f.start.checked_add(f.len).is_some()
        && (f.synced_end <= f.start || f.synced_end == f.end());
    ok.then_some(f)
}

/// The END record at the start of `b`, if intact: its batch's frame and chain value.
fn parse_end(b: &[u8], seq: u64) -> Option<(Frame, u32)> {
    let p = parse_frame(b, seq, K_END, 32)?;
    if p[28..] != END_MAGIC {
        return None;
    }
    let f = Frame { start: le_u64(&p[..8]), len: le_u64(&p[8..16]), synced_end: le_u64(&p[16..24]) };
    f.start.checked_add(f.len)?;
    Some((f, le_u32(&p[24..28])))
}

struct Segment {
    seq: u64,
    /// The index of the first entry written after this segment's header (its name's second part).
    first_index: u64,
    file: File,
    /// Where the next batch goes.
    end: u64,
    /// Up to where the segment is known to be on disk (fsynced).
    synced_end: u64,
    /// Where the header batch written at its creation ends.
    header_end: u64,
    /// Written before the v2 format: read, never appended to.
    legacy: bool,
}

pub struct Wal {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`] but in tests.
    segment_bytes: u64,
    /// Oldest first; the last is the one being written.
    segments: Vec<Segment>,
    /// The chain value after the last record.
    crc: u32,
    /// The highest index whose entries the log no longer needs (compacted, durably): segments
    /// holding nothing above it may go.
    released: u64,
    /// etcd's `--max-wals`: released segments are deleted only while more than this many
    /// segments exist (0: none is deleted). Segments still needed always stay.
    max_segments: usize,
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(seq, 16).ok()?, u64::from_str_radix(first, 16).ok()?))
}

fn file_header(seq: u64, first_index: u64, seed: u32) -> [u8; FILE_HEADER as usize] {
    let mut h = [0u8; FILE_HEADER as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..24].copy_from_slice(&first_index.to_le_bytes());
    h[24..28].copy_from_slice(&seed.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reserves a segment's space up front, so writing into it never changes the file's size and
/// `fdatasync` has no metadata to flush for it. A file system without `fallocate` just grows the
/// file as it is written.
fn preallocate(file: &File, bytes: u64) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: plain syscall on an open descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
    if rc != 0 {
        tracing::debug!("wal: fallocate: {}", std::io::Error::last_os_error());
    }
}

/// Cuts a segment at `at` and zeroes it from there to `size`, durably. The cut comes first and
/// is one metadata step, so a crash in the middle leaves either the old tail (found torn again)
/// or nothing after `at`; then the space is reserved again reading as zeros.
fn cut_tail(file: &File, path: &Path, at: u64, size: u64) -> Result<(), IoError> {
    use std::os::fd::AsRawFd as _;
    file.set_len(at).map_err(IoError::at("cutting off a torn tail of", path))?;
    if size > at {
        // SAFETY: plain syscall on an open descriptor we own; no memory is passed.
        let rc = unsafe {
            libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_ZERO_RANGE, at as libc::off_t, (size - at) as libc::off_t)
        };
        if rc != 0 {
            // No ZERO_RANGE here (tmpfs, some network file systems): write the zeros.
            preallocate(file, size);
            let zeros = vec![0u8; WINDOW];
            let mut off = at;
            while off < size {
                let n = ((size - off) as usize).min(WINDOW);
                file.write_all_at(&zeros[..n], off).map_err(IoError::at("zeroing a torn tail of", path))?;
                off += n as u64;
            }
        }
    }
    file.sync_all().map_err(IoError::at("syncing the repaired wal segment", path))
}

impl Wal {
    /// Opens the log in `dir` (creating it), calling `replay(kind, payload, position)` for every
    /// record in order. A torn write at the end is cut off; anything else unreadable is a
    /// [`CorruptWal`] error, and then nothing on disk has been changed.
    #[cfg(test)]
    pub fn open(
        dir: &Path,
        replay: impl FnMut(u8, &[u8], Position) -> Result<(), RecordError>,
    ) -> Result<Wal, WalError> {
        Wal::open_with_segment_bytes(dir, SEGMENT_BYTES, replay)
    }

    /// [`Wal::open`] with segments of another size (tests roll segments with little data).
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes: u64,
        mut replay: impl FnMut(u8, &[u8], Position) -> Result<(), RecordError>,
    ) -> Result<Wal, WalError> {
        durable::create_dir_all(dir)?;
        // Everything is checked before anything is changed: a member that refuses to start
        // leaves its files exactly as it found them, for the operator (or a tool) to look at.
        let mut names = Vec::new();
        let mut leftovers = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(IoError::at("reading", dir))? {
            let entry = entry.map_err(IoError::at("reading", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A segment whose creation a crash interrupted: it never held a record (a
                // segment is appended to only once it has its name).
                leftovers.push(entry.path());
            } else if let Some((seq, first)) = parse_segment_name(&name) {
                names.push((seq, first, entry.path()));
            }
        }
        names.sort();
        for pair in names.windows(2) {
            let reason = if pair[1].0 == pair[0].0 {
                format!("another segment has its sequence number {}", pair[1].0)
            } else if pair[1].0 != pair[0].0 + 1 {
                format!("the segments between sequence numbers {} and {} are missing", pair[0].0, pair[1].0)
            } else {
                continue;
            };
            return Err(CorruptWal { segment: pair[1].2.clone(), offset: 0, reason }.into());
        }
        let mut wal =
            Wal { dir: dir.to_path_buf(), segment_bytes, segments: Vec::new(), crc: 0, released: 0, max_segments: 1 };
        let count = names.len();
        let mut torn = None;
        for (i, (seq, first_index, path)) in names.into_iter().enumerate() {
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(IoError::at("opening", &path))?;
            let last = i + 1 == count;
            let prev = wal.segments.last().map(|s| (s.legacy, wal.crc));
            let s = scan_segment(&file, &path, seq, first_index, last, prev, &mut replay)?;
            if let Some(at) = s.cut {
                torn = Some((at, s.size));
            }
            wal.crc = s.chain;
            wal.segments.push(Segment {
                seq,
                first_index,
                file,
                end: s.end,
                synced_end: s.end,
                header_end: s.header_end,
                legacy: s.legacy,
            });
        }

        // The log is sound: now repair and tidy.
        for path in leftovers {
            std::fs::remove_file(&path).map_err(IoError::at("removing", &path))?;
        }
        if let Some(cur) = wal.segments.last_mut() {
            let path = dir.join(segment_name(cur.seq, cur.first_index));
            match torn {
                Some((at, size)) => {
                    // A write whose fsync never returned: nothing in it was acknowledged.
                    tracing::warn!("wal: cutting off a torn write at offset {at} of segment {:016x}", cur.seq);
                    cut_tail(&cur.file, &path, at, size.max(segment_bytes))?;
                }
                None => {
                    // What was read may have been in the page cache only (a process that was
                    // killed): make it durable before later batches say it is.
                    cur.file.sync_data().map_err(IoError::at("syncing", &path))?;
                    let size = cur.file.metadata().map_err(IoError::at("reading", &path))?.len();
                    if !cur.legacy && size < segment_bytes {
                        preallocate(&cur.file, segment_bytes);
                    }
                }
            }
        }
        if wal.segments.is_empty() {
            wal.roll(1, |_| {})?;
        }
        Ok(wal)
    }

    /// Bytes a batch may still take in the current segment before [`Wal::roll`] is due.
    pub fn room(&self) -> u64 {
        self.segments.last().map_or(0, |s| self.segment_bytes.saturating_sub(s.end))
    }

    /// The first index in the oldest segment's name: the log's last index + 1 when it began.
    pub fn first_segment_index(&self) -> Option<u64> {
        self.segments.first().map(|s| s.first_index)
    }

    /// Whether the current segment holds nothing but the header it was created with (rolling
    /// again would not make room).
    pub fn current_is_fresh(&self) -> bool {
        self.segments.last().is_some_and(|s| s.end == s.header_end)
    }

    /// Whether the current segment is in the v1 format: it is not appended to, so the caller
    /// rolls to a new segment before writing.
    pub fn current_is_legacy(&self) -> bool {
        self.segments.last().is_some_and(|s| s.legacy)
    }

    /// Starts a new segment whose first entry will be `first_index`, beginning with the
    /// records `header` encodes (everything a replay starting here needs), durably: the
    /// previous segment is synced, then the new file is written, synced, and its name synced
    /// into the directory before anything else is written to it.
    pub fn roll(&mut self, first_index: u64, header: impl FnOnce(&mut Encoder)) -> Result<(), WalError> {
        if let Some(cur) = self.segments.last_mut() {
            let path = self.dir.join(segment_name(cur.seq, cur.first_index));
            cur.file.sync_data().map_err(IoError::at("syncing", &path))?;
            cur.synced_end = cur.end;
        }
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let mut enc = Encoder::default();
        enc.reset(seq, FILE_HEADER, self.crc);
        header(&mut enc);
        // The header batch is durable before the segment has a name: it says so itself.
        let end = FILE_HEADER + (enc.buf.len() + END_BYTES) as u64;
        enc.seal(end);
        let mut bytes = file_header(seq, first_index, self.crc).to_vec();
        bytes.extend_from_slice(&enc.buf);

        let name = segment_name(seq, first_index);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(IoError::at("creating", &tmp))?;
        preallocate(&file, self.segment_bytes.max(end));
        file.write_all_at(&bytes, 0).map_err(IoError::at("writing", &tmp))?;
        file.sync_all().map_err(IoError::at("syncing", &tmp))?;
        durable::rename(&tmp, &path)?;
        self.segments.push(Segment { seq, first_index, file, end, synced_end: end, header_end: end, legacy: false });
        self.crc = enc.crc;
        // A new segment may push a released one past the retention.
        self.purge()
    }

    /// Starts encoding a batch to go at the end of the log.
    pub fn start_batch(&self, enc: &mut Encoder) {
        let (seq, end) = self.segments.last().map_or((0, 0), |s| (s.seq, s.end));
        enc.reset(seq, end, self.crc);
    }

    /// Writes the batch `enc` holds (started with [`Wal::start_batch`] since the last write) at
    /// the end of the current segment: one `pwrite`, and with `sync` one `fdatasync`. Returns
    /// where the batch starts (add a record's offset from [`Encoder::records`]).
    pub fn append(&mut self, enc: &mut Encoder, sync: bool) -> Result<Position, WalError> {
        let seg = self.segments.last_mut().ok_or(WalError::NoSegment)?;
        let at = Position { segment: seg.seq, offset: seg.end, len: 0, seed: self.crc };
        if enc.spans.is_empty() {
            return Ok(at);
        }
        if seg.legacy {
            return Err(WalError::Legacy { seq: seg.seq });
        }
        if !(enc.seq == seg.seq && enc.start == seg.end && enc.seed == self.crc) {
            return Err(WalError::Misplaced);
        }
        enc.seal(seg.synced_end);
        let path = || self.dir.join(segment_name(seg.seq, seg.first_index));
        seg.file.write_all_at(&enc.buf, seg.end).map_err(|e| IoError::new("writing", &path(), e))?;
        if sync {
            seg.file.sync_data().map_err(|e| IoError::new("syncing", &path(), e))?;
        }
        seg.end += enc.buf.len() as u64;
        if sync {
            seg.synced_end = seg.end;
        }
        self.crc = enc.crc;
        Ok(Position { len: enc.buf.len() as u32, ..at })
    }

    /// Reads back the payload of the record at `pos`, checking it.
    pub fn read(&self, pos: Position) -> Result<(u8, Vec<u8>), WalError> {
        let seg = self
            .segments
            .binary_search_by_key(&pos.segment, |s| s.seq)
            .ok()
            .map(|i| &self.segments[i])
            .ok_or(WalError::Released { segment: pos.segment })?;
        let mut buf = vec![0u8; pos.len as usize];
        seg.file.read_exact_at(&mut buf, pos.offset).map_err(|source| WalError::ReadRecord {
            segment: pos.segment,
            offset: pos.offset,
            source,
        })?;
        match check_record(&buf, pos.seed) {
            Some((len, _)) if len == buf.len() && buf[8] < FIRST_WAL_KIND => Ok((buf[8], buf[9..].to_vec())),
            _ => Err(WalError::BadRecord { segment: pos.segment, offset: pos.offset }),
        }
    }

    /// Notes that the entries up to `index` are no longer needed (the log was compacted up to
    /// there, durably), and deletes the segments holding only such entries that the retention
    /// ([`Wal::set_max_segments`]) does not keep. The current segment always stays.
    pub fn release_through(&mut self, index: u64) -> Result<(), WalError> {
        self.released = self.released.max(index);
        self.purge()
    }

    /// etcd's `--max-wals`: how many segment files to keep, released ones included (0: keep
    /// every released segment). A segment whose entries are still needed is never deleted, so
    /// more may exist.
    pub fn set_max_segments(&mut self, max: usize) -> Result<(), WalError> {
        self.max_segments = max;
        self.purge()
    }

    fn purge(&mut self) -> Result<(), WalError> {
        let mut releasable = 0;
        while releasable + 1 < self.segments.len()
            && self.segments[releasable + 1].first_index <= self.released.saturating_add(1)
        {
            releasable += 1;
        }
        let over = match self.max_segments {
            0 => 0,
            max => self.segments.len().saturating_sub(max),
        };
        let n = releasable.min(over);
        if n == 0 {
            return Ok(());
        }
        // Oldest first, so that whatever a crash leaves is a run of consecutive segments.
        for seg in self.segments.drain(..n) {
            let path = self.dir.join(segment_name(seg.seq, seg.first_index));
            std::fs::remove_file(&path).map_err(IoError::at("removing", &path))?;
        }
        Ok(durable::sync_dir(&self.dir)?)
    }

    /// Releases every segment but the current one (deleted as the retention allows).
    pub fn release_all_but_current(&mut self) -> Result<(), WalError> {
        let below_current = self.segments.last().map_or(0, |s| s.first_index.saturating_sub(1));
        self.release_through(below_current)
    }

    /// (segment seq, header end, durable end, written end) of the current segment.
    #[cfg(test)]
    pub(crate) fn tail(&self) -> (u64, u64, u64, u64) {
        self.segments.last().map_or((0, 0, 0, 0), |s| (s.seq, s.header_end, s.synced_end, s.end))
    }

    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// If `buf` starts with an intact record chained from `seed`: its length (header included)
/// and checksum.
fn check_record(buf: &[u8], seed: u32) -> Option<(usize, u32)> {
    let len = le_u32(buf.get(..4)?) as usize;
    let crc = le_u32(buf.get(4..8)?);
    let body = buf.get(8..8usize.checked_add(len)?)?;
    if len == 0 || (body[0] >= FIRST_WAL_KIND && body[0] != K_PAD) {
        return None;
    }
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(body);
    (h.finalize() == crc).then_some((len + 8, crc))
}

fn is_zero(b: &[u8]) -> bool {
    // SAFETY: u128 has no invalid bit patterns; align_to only reinterprets the aligned middle.
    let (head, mid, tail) = unsafe { b.align_to::<u128>() };
    head.iter().all(|&x| x == 0) && mid.iter().all(|&x| x == 0) && tail.iter().all(|&x| x == 0)
}

/// Reads a segment through a window, so that replay costs a few large reads.
struct Reader<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    buf: Vec<u8>,
    at: u64,
}

impl<'a> Reader<'a> {
    fn new(file: &'a File, path: &'a Path) -> Result<Reader<'a>, IoError> {
        let size = file.metadata().map_err(IoError::at("reading", path))?.len();
        Ok(Reader { file, path, size, buf: Vec::new(), at: 0 })
    }

    /// Up to `len` bytes at `offset`: fewer where the file ends.
    fn get(&mut self, offset: u64, len: usize) -> Result<&[u8], IoError> {
        if offset >= self.size {
            return Ok(&[]);
        }
        let end = offset.saturating_add(len as u64).min(self.size);
        if offset < self.at || end > self.at + self.buf.len() as u64 {
            let n = (self.size - offset).min(len.max(WINDOW) as u64) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, offset).map_err(IoError::at("reading", self.path))?;
            self.at = offset;
        }
        let from = (offset - self.at) as usize;
        Ok(&self.buf[from..from + (end - offset) as usize])
    }

    /// The offset of the last byte at or after `from` that is not zero.
    fn last_nonzero(&mut self, from: u64) -> Result<Option<u64>, IoError> {
        let mut found = None;
        let mut at = from;
        while at < self.size {
            let chunk = self.get(at, WINDOW)?;
            if !is_zero(chunk) {
                found = chunk.iter().rposition(|&b| b != 0).map(|i| at + i as u64);
            }
            at += chunk.len() as u64;
        }
        Ok(found)
    }

    /// Whether some sector that the span `[from, to)` touches reads as zeros from `from` (or
    /// its start) up to its end or `cap`, whichever is first: a sector the write never reached.
    /// Bytes past the end of the file count as zeros.
    fn shows_unwritten_sector(&mut self, from: u64, to: u64, cap: u64) -> Result<bool, IoError> {
        let mut sector = from / SECTOR * SECTOR;
        while sector < to.max(from + 1) {
            let lo = sector.max(from);
            let hi = (sector + SECTOR).min(cap);
            if lo < hi && is_zero(self.get(lo, (hi - lo) as usize)?) {
                return Ok(true);
            }
            sector += SECTOR;
        }
        Ok(false)
    }
}

/// What replaying one segment found.
struct Scanned {
    /// Where its data ends (where a torn batch starts, if `cut`).
    end: u64,
    header_end: u64,
    /// The chain value after its last record (0 for v1).
    chain: u32,
    /// A torn write to cut off at this offset.
    cut: Option<u64>,
    size: u64,
    legacy: bool,
}

/// A batch (or v1 record) that failed its checks.
struct Failure {
    /// Where the batch starts (a v1 record: where it starts).
    batch_start: u64,
    /// Its BEGIN, if that was intact.
    begin: Option<Frame>,
    /// The first record in it that failed, and where that record claims to end.
    at: u64,
    rec_end: u64,
    reason: &'static str,
}

/// Replays one segment; checks, never writes. `prev` is the previous segment's (legacy,
/// chain value), if there is one.
fn scan_segment(
    file: &File,
    path: &Path,
    seq: u64,
    first_index: u64,
    last: bool,
    prev: Option<(bool, u32)>,
    replay: &mut impl FnMut(u8, &[u8], Position) -> Result<(), RecordError>,
) -> Result<Scanned, WalError> {
    let corrupt =
        |offset: u64, reason: String| -> WalError { CorruptWal { segment: path.to_path_buf(), offset, reason }.into() };
    let mut r = Reader::new(file, path)?;
    let size = r.size;
    let head = r.get(0, FILE_HEADER as usize)?.to_vec();
    if head.get(..8) != Some(&MAGIC[..]) {
        if prev.is_some_and(|(legacy, _)| !legacy) {
            return Err(corrupt(
                0,
                "its header is damaged (it follows a v2 segment but does not start like one)".into(),
            ));
        }
        return scan_legacy(&mut r, path, seq, last, replay);
    }
    if head.len() < FILE_HEADER as usize || head != file_header(seq, first_index, le_u32(&head[24..28])) {
        return Err(corrupt(0, "its file header is damaged or belongs to another segment".into()));
    }
    let mut chain = le_u32(&head[24..28]);
    if let Some((false, prev_chain)) = prev
        && prev_chain != chain
    {
        return Err(corrupt(
            0,
            format!(
                "it does not continue the previous segment (chain {chain:08x}, previous segment ends at {prev_chain:08x})"
            ),
        ));
    }

    let mut pos = FILE_HEADER;
    let mut header_end = 0;
    let failure = loop {
        let head = r.get(pos, BEGIN_BYTES)?;
        if head.len() < 8 || is_zero(&head[..8]) {
            // No batch here: the data ends, if nothing follows.
            match r.last_nonzero(pos)? {
                None => {
                    return Ok(Scanned { end: pos, header_end, chain, cut: None, size, legacy: false });
                }
                Some(_) => {
                    break Failure {
                        batch_start: pos,
                        begin: None,
                        at: pos,
                        rec_end: pos + 8,
                        reason: "a batch's first bytes are zeros",
                    };
                }
            }
        }
        let Some(begin) = parse_begin(head, seq, pos) else {
            break Failure {
                batch_start: pos,
                begin: None,
                at: pos,
                rec_end: pos + BEGIN_BYTES as u64,
                reason: "a batch's BEGIN record fails its check",
            };
        };
        let batch = r.get(pos, begin.len as usize)?;
        match check_batch(batch, seq, begin, chain) {
            Ok(after) => {
                deliver(batch, seq, pos, chain, replay).map_err(|source| WalError::Record {
                    segment: path.to_path_buf(),
                    offset: pos,
                    source,
                })?;
                chain = after;
                pos = begin.end();
                if header_end == 0 {
                    header_end = pos;
                }
            }
            Err((at, rec_end, reason)) => {
                break Failure {
                    batch_start: pos,
                    begin: Some(begin),
                    at: pos + at as u64,
                    rec_end: pos + rec_end as u64,
                    reason,
                };
            }
        }
    };

    let f = failure;
    if !last {
        return Err(corrupt(
            f.at,
            format!("{} (in a segment that was complete and synced before the next one began)", f.reason),
        ));
    }
    match classify(&mut r, seq, &f)? {
        Ok(()) => Ok(Scanned { end: f.batch_start, header_end, chain, cut: Some(f.batch_start), size, legacy: false }),
        Err(why) => Err(corrupt(f.at, format!("{}, {why}", f.reason))),
    }
}

/// Checks a whole batch (BEGIN already parsed) chained from `seed`: its chain value after it,
/// or the first failing record's (offset in the batch, claimed end in the batch, reason).
fn check_batch(b: &[u8], seq: u64, begin: Frame, seed: u32) -> Result<u32, (usize, usize, &'static str)> {
    let len = begin.len as usize;
    let body_end = len - END_BYTES;
    let mut off = BEGIN_BYTES;
    let mut crc = seed;
    while off < body_end {
        // A batch cut short by the end of the file fails at its first incomplete record.
        match check_record(&b[off..body_end.min(b.len())], crc) {
            Some((n, next)) => {
                off += n;
                crc = next;
            }
            None if b.len() < len => {
                return Err((off, claimed_end(b, off, len), "the batch runs past the end of the file"));
            }
            None => return Err((off, claimed_end(b, off, len), "a record fails its checksum")),
        }
    }
    let end = b.get(body_end..len).and_then(|e| parse_end(e, seq));
    match end {
        Some((f, chain)) if off == body_end && f == begin && chain == crc => Ok(crc),
        _ => Err((body_end, len, "a batch's END record fails its check")),
    }
}

/// Where the record at `off` claims to end, kept inside the batch (a damaged length must not
/// send the search for unwritten sectors elsewhere).
fn claimed_end(b: &[u8], off: usize, batch_len: usize) -> usize {
    let len = b.get(off..off + 4).map_or(0, |l| le_u32(l) as usize);
    off.saturating_add(8).saturating_add(len).min(batch_len).max(off + 1)
}

/// Hands a checked batch's records to `replay`.
fn deliver(
    b: &[u8],
    seq: u64,
    start: u64,
    seed: u32,
    replay: &mut impl FnMut(u8, &[u8], Position) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let body_end = b.len() - END_BYTES;
    let mut off = BEGIN_BYTES;
    let mut crc = seed;
    while off < body_end {
        let len = le_u32(&b[off..]) as usize + 8;
        if b[off + 8] != K_PAD {
            replay(
                b[off + 8],
                &b[off + 9..off + len],
                Position { segment: seq, offset: start + off as u64, len: len as u32, seed: crc },
            )?;
        }
        crc = le_u32(&b[off + 4..]);
        off += len;
    }
    Ok(())
}

/// Decides whether a failure in the last segment is a torn write (Ok) or corruption (Err with
/// why). Torn means both: the batch lies in what was written since the last fsync, and the
/// failing record shows where the write stopped — nothing written from inside it on, or a
/// sector of it the write never reached (all zeros).
fn classify(r: &mut Reader<'_>, seq: u64, f: &Failure) -> Result<Result<(), String>, IoError> {
    let header = || Err("it is the segment's header, which was synced before the segment got its name".to_string());
    let Some(last) = r.last_nonzero(f.at)?.filter(|&l| l + 1 >= f.rec_end) else {
        // Zeros from inside the failing record to the end of the file: the write stopped
        // there (a damaged record is followed by the rest of its batch, which ends in a
        // non-zero marker). Its batch was the last written; the header batch never is torn.
        let synced = f.begin.map_or(if f.batch_start == FILE_HEADER { u64::MAX } else { 0 }, |b| b.synced_end);
        return Ok(if f.batch_start >= synced { Ok(()) } else { header() });
    };
    let Some(region) = in_flight(r, seq, f, last)? else {
        return Ok(Err("and data follows it that no intact batch accounts for, so it cannot be a torn write".into()));
    };
    if f.batch_start < region.synced_end {
        return Ok(Err(format!("but the log was synced through offset {} after it was written", region.synced_end)));
    }
    let cap = f.begin.map_or(region.end, |b| b.end()).max(f.rec_end);
    if !r.shows_unwritten_sector(f.at, f.rec_end, cap)? {
        return Ok(Err("and shows no unwritten (all-zero) sector, so it is damage, not a torn write".into()));
    }
    Ok(Ok(()))
}

/// The span written since the last fsync, as the last batch on disk states it.
struct InFlight {
    synced_end: u64,
    end: u64,
}

/// Finds [`InFlight`] for a failure followed by data up to `last` (the last non-zero byte):
/// from the END record of the last batch, which ends there if it survived, or else by hopping
/// from the failing batch over the BEGIN records of the batches after it. None when neither
/// accounts for every byte written after the failure.
fn in_flight(r: &mut Reader<'_>, seq: u64, f: &Failure, last: u64) -> Result<Option<InFlight>, IoError> {
    if let Some(e_at) = (last + 1).checked_sub(END_BYTES as u64).filter(|&e| e >= f.batch_start) {
        let b = r.get(e_at, END_BYTES)?.to_vec();
        if let Some((end, _)) = parse_end(&b, seq) {
            let fits = end.end() == last + 1
                && end.start >= f.batch_start
                && f.begin.is_none_or(|b| if end.start == b.start { end == b } else { end.start >= b.end() });
            if fits {
                return Ok(Some(InFlight { synced_end: end.synced_end, end: last + 1 }));
            }
        }
    }
    let Some(begin) = f.begin else { return Ok(None) };
    let mut synced = begin.synced_end;
    let mut p = begin.end();
    while p <= last {
        let h = r.get(p, BEGIN_BYTES)?.to_vec();
        let Some(next) = parse_begin(&h, seq, p) else { return Ok(None) };
        synced = next.synced_end;
        p = next.end();
    }
    Ok(Some(InFlight { synced_end: synced, end: p }))
}

/// Why the newest segment is refused when it has neither the v2 magic nor an intact first
/// record. Read as v1 it would be an empty log (all zeros) or one torn at its very first record,
/// and cut to nothing: the member would start as a new one with its votes and entries
/// forgotten. No crash leaves a v2 segment so (its header is synced before it gets its name),
/// nor a v1 one after the first (each began with a header); what reads so is a segment that
/// lost its header, or a v1 log that never held a record, which costs nothing to remove.
const NO_FIRST_RECORD: &str = "it has no intact header (v2) nor first record (v1): a segment whose header was \
                               damaged, or a log from before WAL format v2 that never held a record";

/// Replays a v1 segment (bare records, each checksum on its own). Without batch framing the
/// only tear that can be told from damage is a clean prefix: the failing record shows an
/// unwritten sector and nothing after that sector was written.
fn scan_legacy(
    r: &mut Reader<'_>,
    path: &Path,
    seq: u64,
    last: bool,
    replay: &mut impl FnMut(u8, &[u8], Position) -> Result<(), RecordError>,
) -> Result<Scanned, WalError> {
    let corrupt = |offset: u64, reason: &str| -> WalError {
        CorruptWal { segment: path.to_path_buf(), offset, reason: reason.into() }.into()
    };
    let size = r.size;
    let mut pos = 0u64;
    loop {
        let head = r.get(pos, 8)?;
        if head.len() < 8 || le_u32(head) == 0 {
            if r.last_nonzero(pos)?.is_none() {
                if pos == 0 && last {
                    return Err(corrupt(0, NO_FIRST_RECORD));
                }
                return Ok(Scanned { end: pos, header_end: 0, chain: 0, cut: None, size, legacy: true });
            }
        } else {
            let len = le_u32(head) as usize + 8;
            let rec = r.get(pos, len)?;
            if let Some((n, _)) = check_record(rec, 0) {
                replay(rec[8], &rec[9..n], Position { segment: seq, offset: pos, len: n as u32, seed: 0 })
                    .map_err(|source| WalError::Record { segment: path.to_path_buf(), offset: pos, source })?;
                pos += n as u64;
                continue;
            }
        }
        if !last {
            return Err(corrupt(
                pos,
                "a record fails its checksum (in a segment that was complete before the next one began)",
            ));
        }
        if pos == 0 {
            return Err(corrupt(0, NO_FIRST_RECORD));
        }
        let claimed = r.get(pos, 4)?;
        let rec_end = if claimed.len() == 4 { pos.saturating_add(8 + le_u32(claimed) as u64).min(size) } else { size };
        let mut sector = pos / SECTOR * SECTOR;
        while sector < rec_end.max(pos + 1) {
            let lo = sector.max(pos);
            if is_zero(r.get(lo, (sector + SECTOR - lo) as usize)?) {
                if r.last_nonzero(lo)?.is_none() {
                    return Ok(Scanned { end: pos, header_end: 0, chain: 0, cut: Some(pos), size, legacy: true });
                }
                break;
            }
            sector += SECTOR;
        }
        return Err(corrupt(
            pos,
            "a record fails its checksum and is not a torn write at the end of the log (a v1 segment)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(wal: &Wal, records: &[(u8, &[u8])]) -> Encoder {
        let mut enc = Encoder::default();
        wal.start_batch(&mut enc);
        for (k, p) in records {
            enc.record(*k, |o| o.extend_from_slice(p));
        }
        enc
    }

    fn append(wal: &mut Wal, records: &[(u8, &[u8])], sync: bool) -> (Position, Vec<Position>) {
        let mut enc = batch(wal, records);
        let at = wal.append(&mut enc, sync).unwrap();
        let each = enc
            .records()
            .iter()
            .map(|&(off, len, seed)| Position { segment: at.segment, offset: at.offset + off as u64, len, seed })
            .collect();
        (at, each)
    }

    fn replay_all(dir: &Path) -> (Wal, Vec<(u8, Vec<u8>)>) {
        let mut seen = Vec::new();
        let wal = Wal::open(dir, |k, p, _| {
            seen.push((k, p.to_vec()));
            Ok(())
        })
        .unwrap();
        (wal, seen)
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v.pop().unwrap()
    }

    #[test]
    fn records_survive_reopen_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, seen) = replay_all(dir.path());
        assert!(seen.is_empty());
        let (_, each) = append(&mut wal, &[(1, b"one"), (2, b""), (3, &[7u8; 5000])], true);
        assert_eq!(wal.read(each[2]).unwrap(), (3, vec![7u8; 5000]));
        drop(wal);
        let (wal, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"one".to_vec()), (2, vec![]), (3, vec![7u8; 5000])]);
        assert_eq!(wal.read(each[2]).unwrap().1.len(), 5000);
        // A position with the wrong chain seed does not read: records are bound to their place.
        assert!(wal.read(Position { seed: each[2].seed ^ 1, ..each[2] }).is_err());
    }

    #[test]
    fn a_torn_tail_is_cut_off_zeroed_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        append(&mut wal, &[(1, b"kept")], true);
        let (at, _) = append(&mut wal, &[(1, &[9u8; 3000])], true);
        drop(wal);
        // The second batch's last sectors never reached the disk.
        let path = only_segment(dir.path());
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let from = (at.offset + 1024) / SECTOR * SECTOR;
        f.write_all_at(&vec![0u8; (at.offset + at.len as u64 - from) as usize], from).unwrap();
        drop(f);
        let (mut wal, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"kept".to_vec())]);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, SEGMENT_BYTES);
        assert!(is_zero(&bytes[at.offset as usize..]), "the torn batch is zeroed");
        append(&mut wal, &[(2, b"next")], true);
        drop(wal);
        let (_, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"kept".to_vec()), (2, b"next".to_vec())]);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_an_error_that_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        let (first, _) = append(&mut wal, &[(1, b"first")], true);
        wal.roll(2, |e| e.record(9, |o| o.extend_from_slice(b"header"))).unwrap();
        let (last, _) = append(&mut wal, &[(1, b"second")], true);
        drop(wal);
        let mut segs: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        segs.sort();
        std::fs::write(dir.path().join("0000000000000002-0000000000000009.wal.tmp"), b"x").unwrap();
        for (path, at) in [(&segs[0], first.offset + 12), (&segs[1], last.offset + 40)] {
            let good = std::fs::read(path).unwrap();
            let mut bad = good.clone();
            bad[at as usize] ^= 0x10;
            std::fs::write(path, &bad).unwrap();
            let err = Wal::open(dir.path(), |_, _, _| Ok(())).err().expect("corruption must be reported");
            let c = err.corrupt().unwrap_or_else(|| panic!("{err:#}"));
            assert_eq!(&c.segment, path);
            assert!(format!("{err}").contains("member remove"), "{err}");
            assert_eq!(std::fs::read(path).unwrap(), bad, "nothing was changed");
            assert!(dir.path().join("0000000000000002-0000000000000009.wal.tmp").exists());
            std::fs::write(path, &good).unwrap();
        }
        replay_all(dir.path());
        assert!(
            !dir.path().join("0000000000000002-0000000000000009.wal.tmp").exists(),
            "removed once the log is sound"
        );
    }

    #[test]
    fn rolled_segments_replay_in_order_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        append(&mut wal, &[(1, b"a")], false);
        wal.roll(10, |e| e.record(9, |o| o.extend_from_slice(b"h1"))).unwrap();
        append(&mut wal, &[(1, b"b")], false);
        wal.roll(20, |e| e.record(9, |o| o.extend_from_slice(b"h2"))).unwrap();
        append(&mut wal, &[(1, b"c")], false);
        drop(wal);
        let (mut wal, seen) = replay_all(dir.path());
        let payloads: Vec<_> = seen.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, vec![&b"a"[..], b"h1", b"b", b"h2", b"c"]);
        // Entries up to 9 are compacted: the first segment (entries < 10) goes.
        wal.release_through(9).unwrap();
        assert_eq!(wal.segments.len(), 2);
        wal.release_through(15).unwrap();
        assert_eq!(wal.segments.len(), 2, "the second segment still holds entries above 15");
        wal.release_all_but_current().unwrap();
        drop(wal);
        let (_, seen) = replay_all(dir.path());
        let payloads: Vec<_> = seen.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, vec![&b"h2"[..], b"c"]);
    }

    #[test]
    fn a_missing_or_swapped_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        for i in 1..=3u64 {
            append(&mut wal, &[(1, &i.to_le_bytes())], true);
            wal.roll(i * 10, |_| {}).unwrap();
        }
        drop(wal);
        let mut segs: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        segs.sort();
        // Two segments' contents exchanged: names and headers disagree.
        let (a, b) = (std::fs::read(&segs[1]).unwrap(), std::fs::read(&segs[2]).unwrap());
        std::fs::write(&segs[1], &b).unwrap();
        std::fs::write(&segs[2], &a).unwrap();
        let err = Wal::open(dir.path(), |_, _, _| Ok(())).err().expect("swapped segments");
        assert!(err.corrupt().is_some(), "{err:#}");
        std::fs::write(&segs[1], &a).unwrap();
        std::fs::write(&segs[2], &b).unwrap();
        // The newest cut short inside its file header.
        let last = std::fs::read(&segs[3]).unwrap();
        std::fs::write(&segs[3], &last[..20]).unwrap();
        let err = Wal::open(dir.path(), |_, _, _| Ok(())).err().expect("a short header");
        assert_eq!(err.corrupt().map(|c| (&c.segment, c.offset)), Some((&segs[3], 0)), "{err:#}");
        std::fs::write(&segs[3], &last).unwrap();
        // One in the middle gone.
        std::fs::remove_file(&segs[2]).unwrap();
        let err = Wal::open(dir.path(), |_, _, _| Ok(())).err().expect("a missing segment");
        assert!(format!("{err}").contains("are missing"), "{err}");
    }

    /// A data dir written before the v2 format: its records are read, and the next write goes
    /// to a new v2 segment.
    #[test]
    fn v1_segments_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = Vec::new();
        for (k, p) in [(1u8, &b"old one"[..]), (2, b"old two")] {
            let start = v1.len();
            v1.extend_from_slice(&[0u8; 8]);
            v1.push(k);
            v1.extend_from_slice(p);
            let len = (v1.len() - start - 8) as u32;
            let crc = crc32fast::hash(&v1[start + 8..]);
            v1[start..start + 4].copy_from_slice(&len.to_le_bytes());
            v1[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
        // A record whose first sector was written and whose second was not.
        let torn_at = v1.len();
        v1.extend_from_slice(&[232, 3, 0, 0, 1, 2, 3, 4, 1]);
        v1.resize(512, 7);
        v1.resize(4096, 0);
        std::fs::write(dir.path().join(segment_name(0, 1)), &v1).unwrap();
        let (mut wal, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"old one".to_vec()), (2, b"old two".to_vec())], "the torn v1 record is cut");
        assert!(wal.current_is_legacy());
        assert!(is_zero(&std::fs::read(dir.path().join(segment_name(0, 1))).unwrap()[torn_at..]));
        let mut enc = batch(&wal, &[(1, b"new")]);
        assert!(wal.append(&mut enc, true).is_err(), "a v1 segment is not appended to");
        wal.roll(5, |_| {}).unwrap();
        append(&mut wal, &[(1, b"new")], true);
        drop(wal);
        let (_, seen) = replay_all(dir.path());
        assert_eq!(seen.last().unwrap(), &(1, b"new".to_vec()));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(3, 0x1234)), Some((3, 0x1234)));
        assert_eq!(parse_segment_name("0000000000000001-0000000000000001.wal.tmp"), None);
        assert_eq!(parse_segment_name("x.wal"), None);
    }
}
