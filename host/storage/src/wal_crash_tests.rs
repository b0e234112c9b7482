//! Power cuts, simulated against the real write path, to show that the WAL never drops a synced
//! record silently and never replays one that was not written.
//!
//! The real [`RaftLog`] writes real segment files (4 KiB ones, so that a few dozen Readies cross
//! many segments), with its real `pwrite`s and fsyncs. After every step the test copies the files
//! (what the page cache holds) and notes what the WAL knows to be durable. A power cut during
//! step k leaves every byte synced before it and, of the bytes written since the last fsync, any
//! subset of 512-byte sectors, the others reading as zeros (the space is preallocated). The test
//! builds such images — a written prefix ending at every record boundary and at offsets inside
//! records, each single sector missing, random sets of sectors missing, a file grown past its
//! preallocation cut short — and opens each with the real code. What comes back must be exactly
//! every batch before the first damaged one (so every synced record, and no torn one): the same
//! records at the same places as before the cut, and the same log state as a model of the steps
//! predicts; the torn bytes are zeroed, and the log goes on being written after it.
//!
//! Then, on fully synced logs, it flips one bit at every byte of the written data, in the current
//! segment and the older ones: opening must fail with the corruption error naming that segment,
//! and leave every file (a leftover `.tmp` too) byte-for-byte as it was.

use std::collections::BTreeMap;
use std::path::Path;

use crate::raft_log::RaftLog;
use crate::types::{ConfState, Entry, HardState, Identity, SnapshotMeta};
use crate::wal::{Position, Wal};

const SEG: u64 = 4096;
const SECTOR: u64 = 512;
/// BEGIN and END records' sizes in the v2 format (docs/decisions.md).
const BEGIN: u64 = 33;
const END: u64 = 41;

type Files = BTreeMap<String, Vec<u8>>;
type Rec = (u8, Vec<u8>, Position);
/// A batch: where it starts and ends, and its records' spans (BEGIN and END included).
type Batch = (u64, u64, Vec<(u64, u64)>);

/// splitmix64: the workload and the sector sets are the same on every run.
struct Prng(u64);

impl Prng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    /// [`Prng::data`] of `min` to `min + spread` bytes.
    fn data_of(&mut self, min: usize, spread: u64) -> Vec<u8> {
        let len = min + self.below(spread) as usize;
        self.data(len)
    }

    /// Bytes without zeros: a torn write's zeros are then never the data's own.
    fn data(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.below(255) + 1) as u8).collect()
    }
}

/// What the log should hold, kept independently of the code under test.
#[derive(Clone, Debug, PartialEq, Default)]
struct Model {
    identity: Option<(u64, u64)>,
    hs: (u64, u64, u64),
    voters: Vec<u64>,
    snap: (u64, u64),
    entries: Vec<(u64, u64, Vec<u8>)>,
}

impl Model {
    fn of(log: &RaftLog) -> Model {
        let first = log.first_index();
        let last = log.last_index();
        let entries = if last >= first {
            log.entries(first, last + 1, None)
                .unwrap()
                .into_iter()
                .map(|e| (e.index, e.term, e.data.to_vec()))
                .collect()
        } else {
            Vec::new()
        };
        let hs = log.hard_state();
        Model {
            identity: log.identity().map(|i| (i.member_id, i.cluster_id)),
            hs: (hs.term, hs.vote, hs.commit),
            voters: log.conf_state().voters.clone(),
            snap: (log.snapshot_index(), log.term(log.snapshot_index()).unwrap()),
            entries,
        }
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap.0, |e| e.0)
    }

    fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) {
        if let Some(first) = ents.first() {
            self.entries.retain(|e| e.0 < first.index);
            self.entries.extend(ents.iter().map(|e| (e.index, e.term, e.data.to_vec())));
        }
        if let Some(hs) = hs {
            self.hs = (hs.term, hs.vote, hs.commit);
        }
    }
}

/// The files and the WAL's view after one step.
struct Step {
    files: Files,
    seq: u64,
    header_end: u64,
    synced_end: u64,
    end: u64,
    /// Where the step's own batch is in segment `seq` (None: it only rolled).
    batch: Option<(u64, u64)>,
    model: Model,
}

fn read_files(dir: &Path) -> Files {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn write_files(dir: &Path, files: &Files) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn entry(index: u64, term: u64, data: Vec<u8>) -> Entry {
    Entry { index, term, data: data.into(), ..Default::default() }
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

fn capture(log: &RaftLog, model: &Model, before: (u64, u64, u64, u64), wrote: bool) -> Step {
    assert_eq!(&Model::of(log), model, "the live log matches the model");
    let (seq, header_end, synced_end, end) = log.wal().tail();
    let batch = wrote.then_some((if seq == before.0 { before.3 } else { header_end }, end));
    Step { files: read_files(log.wal().dir()), seq, header_end, synced_end, end, batch, model: model.clone() }
}

/// Raft's writes as a member makes them: Readies with entries and hard states (fsynced),
/// commit-only hard states (not fsynced), a new leader overwriting a tail, compactions that
/// delete segments, membership changes, an entry larger than a segment, installed snapshots.
fn workload(dir: &Path, ops: usize, seed: u64) -> Vec<Step> {
    let mut rng = Prng(seed);
    let mut log = RaftLog::open_with_segment_bytes(dir, SEG).unwrap();
    let mut m = Model::default();
    let mut steps = Vec::new();
    let before = log.wal().tail();
    log.bootstrap(Identity { member_id: 1, cluster_id: 7 }, vec![1, 2, 3], Vec::new()).unwrap();
    m.identity = Some((1, 7));
    m.voters = vec![1, 2, 3];
    m.hs = (1, 0, 0);
    steps.push(capture(&log, &m, before, true));
    let mut term = 2;
    for op in 0..ops {
        let before = log.wal().tail();
        let last = m.last();
        let pick = if op + 1 == ops { 0 } else { rng.below(100) };
        let mut wrote = true;
        match pick {
            45..60 if last > m.snap.0 => {
                // A commit-only hard state: raft does not ask for an fsync.
                let hs = hard_state(term, 1, m.snap.0 + rng.below(last - m.snap.0 + 1));
                log.append(Vec::new(), Some(hs), false).unwrap();
                m.append(&[], Some(&hs));
            }
            60..66 => {
                let ents: Vec<_> =
                    (1..=1 + rng.below(2)).map(|i| entry(last + i, term, rng.data_of(20, 300))).collect();
                log.append(ents.clone(), None, false).unwrap();
                m.append(&ents, None);
            }
            66..73 if last > m.snap.0 + 1 => {
                // A new leader replaces the tail.
                term += 1;
                let from = (last - 1).max(m.snap.0 + 1);
                let ents: Vec<_> = (0..2).map(|i| entry(from + i, term, rng.data_of(50, 400))).collect();
                let hs = hard_state(term, 2, m.hs.2.min(from - 1));
                log.append(ents.clone(), Some(hs), true).unwrap();
                m.append(&ents, Some(&hs));
            }
            73..83 if last > m.snap.0 + 2 => {
                let index = m.snap.0 + (last - m.snap.0) / 2;
                let t = m.entries.iter().find(|e| e.0 == index).unwrap().1;
                log.compact(index).unwrap();
                m.entries.retain(|e| e.0 > index);
                m.snap = (index, t);
            }
            83..90 => {
                let mut cs = log.conf_state().clone();
                cs.voters = if cs.voters.len() > 3 { vec![1, 2, 3] } else { vec![1, 2, 3, 4 + rng.below(5)] };
                m.voters = cs.voters.clone();
                log.set_conf_state(cs).unwrap();
            }
            90..93 => {
                let big = entry(last + 1, term, rng.data(SEG as usize + 900));
                let hs = hard_state(term, 1, m.hs.2);
                log.append(vec![big.clone()], Some(hs), true).unwrap();
                m.append(&[big], Some(&hs));
            }
            93..96 => {
                term += 1;
                let meta = SnapshotMeta {
                    index: last + 5,
                    term,
                    conf_state: ConfState { voters: vec![1, 2, 3], ..Default::default() },
                };
                log.apply_snapshot(&meta).unwrap();
                m.hs = (m.hs.0.max(term), m.hs.1, m.hs.2.max(meta.index));
                m.voters = vec![1, 2, 3];
                m.snap = (meta.index, term);
                m.entries.clear();
                wrote = false;
            }
            _ => {
                let n = 1 + rng.below(4);
                let ents: Vec<_> = (1..=n).map(|i| entry(last + i, term, rng.data_of(8, 1200))).collect();
                let hs = hard_state(term, 1, m.hs.2.max(last.saturating_sub(2)));
                log.append(ents.clone(), Some(hs), true).unwrap();
                m.append(&ents, Some(&hs));
            }
        }
        steps.push(capture(&log, &m, before, wrote));
    }
    steps
}

/// The batches in `bytes[from..to]`, read from the BEGIN records' lengths: (start, end, the
/// records' spans BEGIN and END included).
fn batches(bytes: &[u8], from: u64, to: u64) -> Vec<Batch> {
    let le64 = |at: u64| u64::from_le_bytes(bytes[at as usize..at as usize + 8].try_into().unwrap());
    let le32 = |at: u64| u64::from(u32::from_le_bytes(bytes[at as usize..at as usize + 4].try_into().unwrap()));
    let mut out = Vec::new();
    let mut p = from;
    while p < to {
        let end = p + le64(p + 9 + 8);
        let mut recs = vec![(p, p + BEGIN)];
        let mut r = p + BEGIN;
        while r < end - END {
            let len = le32(r) + 8;
            recs.push((r, r + len));
            r += len;
        }
        recs.push((end - END, end));
        out.push((p, end, recs));
        p = end;
    }
    assert_eq!(p, to, "batches tile the written span");
    out
}

fn segment_name(files: &Files, seq: u64) -> String {
    let prefix = format!("{seq:016x}-");
    files.keys().find(|n| n.starts_with(&prefix) && n.ends_with(".wal")).unwrap().clone()
}

fn replay(dir: &Path) -> Result<Vec<Rec>, crate::WalError> {
    let mut recs = Vec::new();
    Wal::open_with_segment_bytes(dir, SEG, |k, p, pos| {
        recs.push((k, p.to_vec(), pos));
        Ok(())
    })?;
    Ok(recs)
}

/// A power cut during one step: what is durable, what was in flight, what each batch in flight
/// would add.
struct Cut {
    base: Files,
    last: String,
    seq: u64,
    from: u64,
    to: u64,
    /// The batches in flight, each with the model without it.
    group: Vec<(Batch, Model)>,
    all: Model,
    records: Vec<Rec>,
}

#[derive(Default, Debug)]
struct Counts {
    clean: usize,
    prefix_cuts: usize,
    torn_sectors: usize,
    sector_subsets: usize,
    subsets_refused: usize,
    short_files: usize,
    bit_flips: usize,
    continued: usize,
}

const LEFTOVER: &str = "00000000000000ff-0000000000000001.wal.tmp";

impl Cut {
    fn new(steps: &[Step], k: usize, work: &Path) -> Cut {
        let (prev, cur) = (&steps[k - 1], &steps[k]);
        let from = if cur.seq == prev.seq { prev.synced_end } else { cur.header_end };
        // Segments the step deleted may still be there: the deletion comes after its write.
        let mut base = cur.files.clone();
        for (name, bytes) in &prev.files {
            base.entry(name.clone()).or_insert_with(|| bytes.clone());
        }
        let last = segment_name(&base, cur.seq);
        let spans = batches(&base[&last], from, cur.end);
        let mut group = Vec::new();
        for (start, end, recs) in spans {
            let i = (1..=k)
                .rev()
                .find(|&i| steps[i].seq == cur.seq && steps[i].batch.is_some_and(|b| b.0 == start))
                .expect("a step wrote this batch");
            group.push(((start, end, recs), steps[i - 1].model.clone()));
        }
        write_files(work, &base);
        let records = replay(work).unwrap();
        Cut { base, last, seq: cur.seq, from, to: cur.end, group, all: cur.model.clone(), records }
    }

    /// `image` with the last segment changed by `f`.
    fn image(&self, f: impl FnOnce(&mut Vec<u8>)) -> Files {
        let mut img = self.base.clone();
        f(img.get_mut(&self.last).unwrap());
        img
    }

    fn zero(&self, bytes: &mut [u8], from: u64, to: u64) {
        let (from, to) = (from.max(self.from), to.min(self.to));
        if from < to {
            bytes[from as usize..to as usize].fill(0);
        }
    }

    /// Opens `image` with the real code and checks the outcome. `may_refuse`: the image is one
    /// the format cannot tell from damage (both ends of the last batch and a BEGIN lost).
    fn check(
        &self,
        what: &str,
        image: &Files,
        work: &Path,
        may_refuse: bool,
        go_on: bool,
        counts: &mut Counts,
    ) -> bool {
        let bytes = &image[&self.last];
        let intact = |s: u64, e: u64| {
            bytes.len() as u64 >= e && bytes[s as usize..e as usize] == self.base[&self.last][s as usize..e as usize]
        };
        let torn = self.group.iter().position(|((s, e, _), _)| !intact(*s, *e));
        let (cut, model) = match torn {
            Some(i) => (self.group[i].0.0, &self.group[i].1),
            None => (self.to, &self.all),
        };
        let mut image = image.clone();
        image.insert(LEFTOVER.into(), b"a segment whose creation was interrupted".to_vec());

        // The WAL: exactly the records before the first torn batch, at the same places.
        write_files(work, &image);
        let replayed = replay(work);
        let after = read_files(work);
        let records = match replayed {
            Err(e) => {
                assert!(may_refuse, "{what} (in flight {}..{}): a torn write was refused:\n{e:#}", self.from, self.to);
                assert!(e.corrupt().is_some(), "{e:#}");
                assert_eq!(after, image, "a refused open changed files");
                assert!(RaftLog::open_with_segment_bytes(work, SEG).is_err());
                counts.subsets_refused += 1;
                return false;
            }
            Ok(r) => r,
        };
        let want: Vec<_> =
            self.records.iter().filter(|r| r.2.segment < self.seq || r.2.offset < cut).cloned().collect();
        assert_eq!(records.len(), want.len(), "records after the cut (torn batch at {torn:?}, cut {cut})");
        assert!(records == want, "records differ after the cut at {cut}");
        assert!(!after.contains_key(LEFTOVER), "the leftover .tmp is removed once the log is sound");
        for (name, b) in &after {
            if *name == self.last {
                assert!(
                    b.len() as u64 >= SEG && b[..cut as usize] == image[name][..cut as usize],
                    "{name}: the kept part changed"
                );
                assert!(b[cut as usize..].iter().all(|&x| x == 0), "{name}: the torn tail is not zeroed");
            } else {
                assert_eq!(b, &image[name], "{name} changed");
            }
        }

        // The raft log on the same image: the state the model predicts.
        write_files(work, &image);
        let mut log = RaftLog::open_with_segment_bytes(work, SEG).unwrap();
        assert_eq!(&Model::of(&log), model, "log state after the cut at {cut}");
        if go_on {
            let mut m = model.clone();
            let e = entry(m.last() + 1, m.hs.0.max(1), vec![42; 700]);
            log.append(vec![e.clone()], None, true).unwrap();
            m.append(&[e], None);
            drop(log);
            let log = RaftLog::open_with_segment_bytes(work, SEG).unwrap();
            assert_eq!(Model::of(&log), m, "writing on after the cut");
            counts.continued += 1;
        }
        true
    }
}

/// Flips one bit at each byte (every `stride`th) of the written data of every segment of a
/// synced log, and a few in the zeros after it: open must refuse, name the segment, change
/// nothing.
fn flip_every_byte(step: &Step, work: &Path, stride: usize, counts: &mut Counts) {
    assert_eq!(step.synced_end, step.end, "flips go into a synced log");
    let mut image = step.files.clone();
    image.insert(LEFTOVER.into(), b"a segment whose creation was interrupted".to_vec());
    write_files(work, &image);
    let last = segment_name(&step.files, step.seq);
    for (name, good) in &step.files {
        let data_end = if *name == last { step.end } else { good.iter().rposition(|&b| b != 0).unwrap() as u64 + 1 };
        let mut offsets: Vec<u64> = (0..data_end).step_by(stride).collect();
        offsets.extend(
            [data_end + 8, data_end + 333, good.len() as u64 - 1].into_iter().filter(|&o| o < good.len() as u64),
        );
        let path = work.join(name);
        let mut expect = image.clone();
        for o in offsets {
            let mut bad = good.clone();
            bad[o as usize] ^= 1 << (o % 8);
            std::fs::write(&path, &bad).unwrap();
            expect.insert(name.clone(), bad);
            let err = match RaftLog::open_with_segment_bytes(work, SEG) {
                Ok(_) => panic!("a flipped bit at {o} of {name} went unnoticed"),
                Err(e) => e,
            };
            let c = err.corrupt().unwrap_or_else(|| panic!("flip at {o} of {name}: {err:#}"));
            assert_eq!(c.segment, path, "flip at {o} of {name}: {err:#}");
            assert!(c.offset <= o, "flip at {o} of {name} reported at {}", c.offset);
            let at = format!("offset {}", c.offset);
            let text = err.to_string() + &format!("{:#}", anyhow::Error::from(err));
            assert!(text.contains("member remove") && text.contains(&at), "{text}");
            assert!(read_files(work) == expect, "flip at {o} of {name}: the refused open changed files");
            counts.bit_flips += 1;
        }
        std::fs::write(&path, good).unwrap();
    }
}

#[test]
fn power_cuts_lose_no_synced_record_and_bit_flips_are_refused() {
    let started = std::time::Instant::now();
    let root = tempfile::tempdir().unwrap();
    // Another seed explores other workloads: WASMRAFT_WAL_CRASH_SEED=<n>.
    let seed = std::env::var("WASMRAFT_WAL_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let steps = workload(&root.path().join("live"), 90, seed);
    let segments_written = steps.last().unwrap().seq + 1;
    assert!(segments_written >= 15, "only {segments_written} segments");
    let work = root.path().join("work");
    let mut counts = Counts::default();
    let mut rng = Prng(seed ^ 0xdead_beef_cafe_f00d);
    for k in 1..steps.len() {
        let cut = Cut::new(&steps, k, &work);
        // Nothing lost: everything comes back.
        cut.check(&format!("step {k}: clean"), &cut.base, &work, false, k % 5 == 0, &mut counts);
        counts.clean += 1;
        if cut.from >= cut.to {
            continue;
        }
        // The write stopped at every record boundary and inside every record.
        let mut points = std::collections::BTreeSet::new();
        for ((_, _, recs), _) in &cut.group {
            for &(s, e) in recs {
                points.extend([s, s + 1, s + 4, s + 8, s + 9, (s + e) / 2, e - 1]);
            }
        }
        points.extend((cut.from / SECTOR + 1..cut.to.div_ceil(SECTOR)).map(|s| s * SECTOR));
        for (n, &p) in points.iter().filter(|&&p| p >= cut.from && p < cut.to).enumerate() {
            let img = cut.image(|b| cut.zero(b, p, cut.to));
            cut.check(&format!("step {k}: prefix to {p}"), &img, &work, false, n % 7 == 0, &mut counts);
            counts.prefix_cuts += 1;
        }
        // One sector never written, the rest of the batch was.
        for s in cut.from / SECTOR..cut.to.div_ceil(SECTOR) {
            let img = cut.image(|b| cut.zero(b, s * SECTOR, (s + 1) * SECTOR));
            cut.check(&format!("step {k}: sector {s} lost"), &img, &work, false, s % 3 == 0, &mut counts);
            counts.torn_sectors += 1;
        }
        // Any set of sectors written. Refusing is allowed only when the format cannot tell:
        // the last batch's END and some BEGIN in flight both lost.
        for _ in 0..6 {
            let lost: Vec<u64> = (cut.from / SECTOR..cut.to.div_ceil(SECTOR)).filter(|_| rng.below(2) == 0).collect();
            let img = cut.image(|b| {
                for &s in &lost {
                    cut.zero(b, s * SECTOR, (s + 1) * SECTOR);
                }
            });
            let bytes = &img[&cut.last];
            let kept = |s: u64, e: u64| bytes[s as usize..e as usize] == cut.base[&cut.last][s as usize..e as usize];
            let ((_, last_end, _), _) = cut.group.last().unwrap();
            let end_kept = kept(last_end - END, *last_end);
            let begins_kept = cut.group.iter().all(|((s, _, _), _)| kept(*s, s + BEGIN));
            cut.check(
                &format!("step {k}: sectors {lost:?} lost"),
                &img,
                &work,
                !end_kept && !begins_kept,
                false,
                &mut counts,
            );
            counts.sector_subsets += 1;
        }
        // A write that grew the file past its preallocation, cut short with the file.
        if cut.to > SEG {
            for c in (SEG.max(cut.from).div_ceil(SECTOR)..cut.to.div_ceil(SECTOR)).map(|s| s * SECTOR) {
                let img = cut.image(|b| b.truncate(c as usize));
                cut.check(&format!("step {k}: file cut at {c}"), &img, &work, false, true, &mut counts);
                counts.short_files += 1;
            }
        }
    }
    // Bit flips: at every byte of the final log, and at every other byte of two earlier synced
    // logs with several segments.
    let images_took = started.elapsed();
    let last = steps.last().unwrap();
    flip_every_byte(last, &work, 1, &mut counts);
    let earlier: Vec<&Step> = steps.iter().filter(|s| s.synced_end == s.end && s.files.len() >= 3).collect();
    for s in [earlier[earlier.len() / 3], earlier[2 * earlier.len() / 3]] {
        flip_every_byte(s, &work, 2, &mut counts);
    }
    println!(
        "wal crash simulation over {} steps, {segments_written} segments: {counts:?} (crash images {images_took:?}, all {:?})",
        steps.len(),
        started.elapsed()
    );
    assert!(counts.prefix_cuts > 1000 && counts.torn_sectors > 100 && counts.bit_flips > 10_000, "{counts:?}");
}
