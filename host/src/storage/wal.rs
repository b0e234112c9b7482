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
//! to [`SEGMENT_BYTES`] so appends never change the file's size. A record is
//! `length u32 | crc32 u32 | kind u8 | payload` (little-endian; the length counts kind and
//! payload, the checksum covers them). Preallocated space reads as zeros, and a zero length is
//! where a segment's data ends. The records' meaning belongs to the caller
//! ([`crate::storage::RaftLog`]); this file only stores and finds them.
//!
//! Crashes: a kill loses nothing written (the page cache survives); a power cut may leave the
//! newest write half on disk. Replay takes an unreadable record at the end of the last segment
//! as that torn write — cut off, never acknowledged because its fsync never returned — and
//! anywhere else as corruption, which stops the member rather than guessing.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Segment size: etcd's `SegmentSizeBytes`. A record larger than a segment gets a segment of
/// its own, which grows past this.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Record header: length, checksum, kind.
const HEADER: usize = 9;

/// Where a record is: enough to read it back with one `pread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    /// Header included.
    pub len: u32,
}

struct Segment {
    seq: u64,
    /// The index of the first entry written after this segment's header (its name's second part).
    first_index: u64,
    file: File,
    /// Where the next record goes.
    end: u64,
    /// Where the header written at its creation ends (0 for a segment found on disk).
    header_end: u64,
}

pub struct Wal {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`] but in tests.
    segment_bytes: u64,
    /// Oldest first; the last is the one being written.
    segments: Vec<Segment>,
}

/// Appends one record to `out`: the header, then whatever `payload` writes.
pub fn encode_record(out: &mut Vec<u8>, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    out[start + 8] = kind;
    payload(out);
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The records of an encoded batch: (offset in the batch, length) of each, in order.
pub fn record_spans(batch: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = u32::from_le_bytes(batch.get(at..at + 4)?.try_into().ok()?) as usize;
        let span = (at, len + 8);
        at += len + 8;
        Some(span)
    })
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

/// Makes a directory entry (a new or renamed file) durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing directory {}", dir.display()))
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

impl Wal {
    /// Opens the log in `dir` (creating it), calling `replay(kind, payload, position)` for every
    /// record in order. A torn record at the very end is cut off; anything else unreadable is an
    /// error.
    pub fn open(dir: &Path, replay: impl FnMut(u8, &[u8], Position) -> anyhow::Result<()>) -> anyhow::Result<Wal> {
        Wal::open_with_segment_bytes(dir, SEGMENT_BYTES, replay)
    }

    /// [`Wal::open`] with segments of another size (tests roll segments with little data).
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes: u64,
        mut replay: impl FnMut(u8, &[u8], Position) -> anyhow::Result<()>,
    ) -> anyhow::Result<Wal> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A segment whose creation a crash interrupted: it never held a record.
                std::fs::remove_file(entry.path()).with_context(|| format!("removing {name}"))?;
            } else if let Some((seq, first)) = parse_segment_name(&name) {
                names.push((seq, first, entry.path()));
            }
        }
        names.sort();
        let mut wal = Wal { dir: dir.to_path_buf(), segment_bytes, segments: Vec::new() };
        let count = names.len();
        for (i, (seq, first_index, path)) in names.into_iter().enumerate() {
            let file = OpenOptions::new().read(true).write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
            let last = i + 1 == count;
            let end = replay_segment(&file, seq, last, segment_bytes, &mut replay).with_context(|| format!("replaying {}", path.display()))?;
            wal.segments.push(Segment { seq, first_index, file, end, header_end: 0 });
        }
        if wal.segments.is_empty() {
            wal.roll(1, &[])?;
        }
        Ok(wal)
    }

    /// Bytes a batch may still take in the current segment before [`Wal::roll`] is due.
    pub fn room(&self) -> u64 {
        self.segments.last().map_or(0, |s| self.segment_bytes.saturating_sub(s.end))
    }

    /// Whether the current segment holds nothing but the header it was created with (rolling
    /// again would not make room).
    pub fn current_is_fresh(&self) -> bool {
        self.segments.last().is_some_and(|s| s.end == s.header_end)
    }

    /// Starts a new segment whose first entry will be `first_index`, beginning with `header`
    /// (records that restate everything a replay starting here needs), durably: the previous
    /// segment's tail is synced, the new file is synced and its name is synced into the
    /// directory before anything else is written to it.
    pub fn roll(&mut self, first_index: u64, header: &[u8]) -> anyhow::Result<()> {
        if let Some(cur) = self.segments.last() {
            cur.file.sync_data().context("syncing the wal segment")?;
        }
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let name = segment_name(seq, first_index);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        preallocate(&file, self.segment_bytes.max(header.len() as u64));
        file.write_all_at(header, 0).with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {name}", tmp.display()))?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment { seq, first_index, file, end: header.len() as u64, header_end: header.len() as u64 });
        Ok(())
    }

    /// Writes an encoded batch of records at the end of the current segment (one `pwrite`), and
    /// with `sync` makes it durable (one `fdatasync`). Returns where the batch starts.
    pub fn append(&mut self, batch: &[u8], sync: bool) -> anyhow::Result<Position> {
        let seg = self.segments.last_mut().context("the wal has no segment")?;
        if batch.is_empty() {
            return Ok(Position { segment: seg.seq, offset: seg.end, len: 0 });
        }
        seg.file.write_all_at(batch, seg.end).context("writing the wal")?;
        if sync {
            seg.file.sync_data().context("syncing the wal")?;
        }
        let at = Position { segment: seg.seq, offset: seg.end, len: batch.len() as u32 };
        seg.end += batch.len() as u64;
        Ok(at)
    }

    /// Reads back the payload of the record at `pos`, checking it.
    pub fn read(&self, pos: Position) -> anyhow::Result<(u8, Vec<u8>)> {
        let seg = self
            .segments
            .binary_search_by_key(&pos.segment, |s| s.seq)
            .ok()
            .map(|i| &self.segments[i])
            .with_context(|| format!("wal segment {} was released", pos.segment))?;
        let mut buf = vec![0u8; pos.len as usize];
        seg.file.read_exact_at(&mut buf, pos.offset).with_context(|| format!("reading wal segment {} at {}", pos.segment, pos.offset))?;
        match check_record(&buf) {
            Some((kind, payload)) if payload.len() + HEADER == buf.len() => Ok((kind, payload.to_vec())),
            _ => anyhow::bail!("wal segment {} has a corrupt record at {}", pos.segment, pos.offset),
        }
    }

    /// Deletes the segments none of whose entries are above `index` (the log was compacted up to
    /// there, durably). The current segment always stays.
    pub fn release_through(&mut self, index: u64) -> anyhow::Result<()> {
        let mut n = 0;
        while n + 1 < self.segments.len() && self.segments[n + 1].first_index <= index.saturating_add(1) {
            n += 1;
        }
        for seg in self.segments.drain(..n) {
            let path = self.dir.join(segment_name(seg.seq, seg.first_index));
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }

    /// Deletes every segment but the current one.
    pub fn release_all_but_current(&mut self) -> anyhow::Result<()> {
        self.release_through(u64::MAX - 1)
    }
}

/// A record's kind and payload if `buf` starts with a whole, intact one.
fn check_record(buf: &[u8]) -> Option<(u8, &[u8])> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
    let body = buf.get(8..8 + len)?;
    if len == 0 || crc32fast::hash(body) != crc {
        return None;
    }
    Some((body[0], &body[1..]))
}

/// Replays one segment, returning where its data ends. In the last segment a torn tail is cut
/// off (the file is cut there and its space reserved again, so nothing of it can be read later
/// as if it were a record).
fn replay_segment(
    file: &File,
    seq: u64,
    last: bool,
    segment_bytes: u64,
    replay: &mut impl FnMut(u8, &[u8], Position) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let size = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut at = 0u64;
    let mut header = [0u8; 8];
    let mut body = Vec::new();
    loop {
        use std::io::Read as _;
        if at + 8 > size || reader.read_exact(&mut header).is_err() {
            break;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
        if len == 0 {
            // Preallocated, never written: the segment's data ends here.
            return Ok(at);
        }
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let whole = at + 8 + len <= size;
        body.resize(if whole { len as usize } else { 0 }, 0);
        if whole && reader.read_exact(&mut body).is_ok() && crc32fast::hash(&body) == crc {
            replay(body[0], &body[1..], Position { segment: seq, offset: at, len: (len + 8) as u32 })?;
            at += 8 + len;
            continue;
        }
        anyhow::ensure!(last, "corrupt record at offset {at} (not at the end of the log)");
        break;
    }
    if at < size {
        // A write that was under way when the member stopped: it was never acknowledged.
        tracing::warn!("wal: cutting off a torn write at offset {at} of segment {seq}");
        file.set_len(at).context("cutting off a torn wal tail")?;
        preallocate(file, segment_bytes);
        file.sync_all().context("syncing the repaired wal segment")?;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(kinds_payloads: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, p) in kinds_payloads {
            encode_record(&mut out, *k, |o| o.extend_from_slice(p));
        }
        out
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

    #[test]
    fn records_survive_reopen_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, seen) = replay_all(dir.path());
        assert!(seen.is_empty());
        let batch = records(&[(1, b"one"), (2, b""), (3, &[7u8; 5000])]);
        let at = wal.append(&batch, true).unwrap();
        let spans: Vec<_> = record_spans(&batch).collect();
        assert_eq!(spans.len(), 3);
        let third = Position { segment: at.segment, offset: at.offset + spans[2].0 as u64, len: spans[2].1 as u32 };
        assert_eq!(wal.read(third).unwrap(), (3, vec![7u8; 5000]));
        drop(wal);
        let (wal, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"one".to_vec()), (2, vec![]), (3, vec![7u8; 5000])]);
        assert_eq!(wal.read(third).unwrap().1.len(), 5000);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        wal.append(&records(&[(1, b"kept")]), true).unwrap();
        let torn = records(&[(1, b"torn record payload")]);
        wal.append(&torn[..torn.len() - 3], true).unwrap();
        drop(wal);
        let (mut wal, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"kept".to_vec())]);
        wal.append(&records(&[(2, b"next")]), true).unwrap();
        drop(wal);
        let (_, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![(1, b"kept".to_vec()), (2, b"next".to_vec())]);
    }

    #[test]
    fn a_flipped_bit_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        let at = wal.append(&records(&[(1, b"first")]), true).unwrap();
        wal.roll(2, &records(&[(9, b"header")])).unwrap();
        wal.append(&records(&[(1, b"second")]), true).unwrap();
        drop(wal);
        let first = dir.path().join(segment_name(at.segment, 1));
        let f = OpenOptions::new().write(true).open(&first).unwrap();
        f.write_all_at(b"F", at.offset + 10).unwrap();
        drop(f);
        let err = Wal::open(dir.path(), |_, _, _| Ok(())).err().expect("corruption must be reported");
        assert!(format!("{err:#}").contains("corrupt record"), "{err:#}");
    }

    #[test]
    fn rolled_segments_replay_in_order_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        wal.append(&records(&[(1, b"a")]), false).unwrap();
        wal.roll(10, &records(&[(9, b"h1")])).unwrap();
        wal.append(&records(&[(1, b"b")]), false).unwrap();
        wal.roll(20, &records(&[(9, b"h2")])).unwrap();
        wal.append(&records(&[(1, b"c")]), false).unwrap();
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
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(3, 0x1234)), Some((3, 0x1234)));
        assert_eq!(parse_segment_name("0000000000000001-0000000000000001.wal.tmp"), None);
        assert_eq!(parse_segment_name("x.wal"), None);
    }
}
