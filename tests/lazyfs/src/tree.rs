//! The file system's state: inodes, directories with their current and their durable entries,
//! files as [`FileData`]; what a power cut keeps is computed from the durable side alone.
//!
//! The model's rules (stricter than ext4 with `data=ordered`, which often persists a new file's
//! name together with its data):
//! - a file's data and size become durable by `fsync`/`fdatasync` of that file, nothing else;
//! - a name (create, mkdir, rename, unlink, rmdir) becomes durable only by `fsync` of the
//!   directory holding it (for a rename across directories: each directory for its own side);
//! - a power cut keeps exactly what was made durable; an inode no durable name reaches is gone;
//! - with a torn cut, the last write not yet synced is kept in part: its first bytes up to a page
//!   (else 512-byte sector) boundary, chosen by the cut's seed, together with whatever the page
//!   cache held in the sector it starts in (a sector is written whole).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::SystemTime;

use crate::faults::{FaultOp, Faults};
use crate::pages::{FileData, PAGE};

pub const ROOT: u64 = 1;

#[derive(Debug)]
pub enum Kind {
    File(FileData),
    Dir { entries: BTreeMap<OsString, u64>, synced: BTreeMap<OsString, u64> },
}

#[derive(Debug)]
pub struct Inode {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    parent: u64,
    name: OsString,
    links: u32,
    durable_links: u32,
    open: u32,
}

/// The last write not yet synced, for a torn cut.
#[derive(Debug)]
struct LastWrite {
    ino: u64,
    offset: u64,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub writes: u64,
    pub bytes: u64,
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub cuts: u64,
    pub torn_bytes_kept: u64,
}

pub struct State {
    pub inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// The last unsynced write of each file, with a sequence number (a torn cut tears the most
    /// recent of them).
    last_writes: HashMap<u64, (u64, LastWrite)>,
    write_seq: u64,
    /// After a cut, every operation fails with EIO until power comes back: the dead disk the
    /// member sees in the instant before it is killed.
    pub powered_off: bool,
    pub faults: Faults,
    pub stats: Stats,
}

pub type Res<T> = Result<T, i32>;

impl Inode {
    fn new(kind: Kind, mode: u32, parent: u64, name: OsString) -> Self {
        Inode {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: SystemTime::now(),
            parent,
            name,
            links: 1,
            durable_links: 0,
            open: 0,
        }
    }
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File(f) => f.size(),
            Kind::Dir { entries, .. } => entries.len() as u64,
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    pub fn new() -> Self {
        let mut inodes = HashMap::new();
        let mut root = Inode::new(
            Kind::Dir { entries: BTreeMap::new(), synced: BTreeMap::new() },
            libc::S_IFDIR | 0o755,
            ROOT,
            OsString::new(),
        );
        root.durable_links = 1;
        inodes.insert(ROOT, root);
        State {
            inodes,
            next_ino: ROOT + 1,
            last_writes: HashMap::new(),
            write_seq: 0,
            powered_off: false,
            faults: Faults::default(),
            stats: Stats::default(),
        }
    }

    /// Loads `dir` as durable content (the backing directory's image).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut s = State::new();
        s.load_into(dir, ROOT)?;
        s.sync_all_dirs();
        Ok(s)
    }

    fn load_into(&mut self, dir: &Path, parent: u64) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let ft = e.file_type()?;
            let name = e.file_name();
            if ft.is_dir() {
                let ino = self.mkdir(parent, &name, 0o755).map_err(std::io::Error::from_raw_os_error)?;
                self.load_into(&e.path(), ino)?;
            } else if ft.is_file() {
                let bytes = std::fs::read(e.path())?;
                let ino = self.create(parent, &name, 0o644).map_err(std::io::Error::from_raw_os_error)?;
                if let Some(Kind::File(f)) = self.inodes.get_mut(&ino).map(|i| &mut i.kind) {
                    *f = FileData::durable(&bytes);
                }
            }
        }
        Ok(())
    }

    fn sync_all_dirs(&mut self) {
        let dirs: Vec<u64> = self.inodes.iter().filter(|(_, i)| i.is_dir()).map(|(&n, _)| n).collect();
        for d in dirs {
            let _ = self.sync_dir(d);
        }
    }

    /// Writes the durable image into `dir` (emptied first).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() { std::fs::remove_dir_all(&p)? } else { std::fs::remove_file(&p)? }
        }
        self.save_from(ROOT, dir)
    }

    fn save_from(&self, ino: u64, dir: &Path) -> std::io::Result<()> {
        let Some(Inode { kind: Kind::Dir { synced, .. }, .. }) = self.inodes.get(&ino) else { return Ok(()) };
        for (name, child) in synced {
            let Some(c) = self.inodes.get(child) else { continue };
            let p = dir.join(name);
            match &c.kind {
                Kind::Dir { .. } => {
                    std::fs::create_dir_all(&p)?;
                    self.save_from(*child, &p)?;
                }
                Kind::File(f) => std::fs::write(&p, f.durable_bytes())?,
            }
        }
        Ok(())
    }

    pub fn get(&self, ino: u64) -> Res<&Inode> {
        self.inodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn get_mut(&mut self, ino: u64) -> Res<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn powered(&self) -> Res<()> {
        if self.powered_off { Err(libc::EIO) } else { Ok(()) }
    }

    /// The path of `ino` inside the mount, for fault patterns.
    pub fn path(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let Some(i) = self.inodes.get(&at) else { break };
            parts.push(i.name.to_string_lossy().into_owned());
            at = i.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.get(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.get_mut(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.powered()?;
        self.entries(parent)?.get(name).copied().ok_or(libc::ENOENT)
    }

    pub fn list(&self, dir: u64) -> Res<Vec<(OsString, u64, bool)>> {
        self.powered()?;
        Ok(self
            .entries(dir)?
            .iter()
            .map(|(n, &i)| (n.clone(), i, self.inodes.get(&i).is_some_and(Inode::is_dir)))
            .collect())
    }

    fn add_child(&mut self, parent: u64, name: &OsStr, inode: Inode) -> Res<u64> {
        self.powered()?;
        if self.entries(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, inode);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.touch(parent);
        Ok(ino)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.mtime = SystemTime::now();
        }
    }

    pub fn create(&mut self, parent: u64, name: &OsStr, perm: u32) -> Res<u64> {
        let inode =
            Inode::new(Kind::File(FileData::default()), libc::S_IFREG | (perm & 0o7777), parent, name.to_owned());
        self.add_child(parent, name, inode)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u32) -> Res<u64> {
        let inode = Inode::new(
            Kind::Dir { entries: BTreeMap::new(), synced: BTreeMap::new() },
            libc::S_IFDIR | (perm & 0o7777),
            parent,
            name.to_owned(),
        );
        self.add_child(parent, name, inode)
    }

    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Res<()> {
        self.powered()?;
        let ino = self.lookup(parent, name)?;
        let node = self.get(ino)?;
        match (&node.kind, dir) {
            (Kind::Dir { entries, .. }, true) if !entries.is_empty() => return Err(libc::ENOTEMPTY),
            (Kind::Dir { .. }, false) => return Err(libc::EISDIR),
            (Kind::File(_), true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        self.touch(parent);
        let node = self.get_mut(ino)?;
        node.links = node.links.saturating_sub(1);
        self.maybe_drop(ino);
        Ok(())
    }

    pub fn rename(&mut self, parent: u64, name: &OsStr, new_parent: u64, new_name: &OsStr) -> Res<()> {
        self.powered()?;
        let ino = self.lookup(parent, name)?;
        if let Ok(old) = self.lookup(new_parent, new_name) {
            if old == ino {
                return Ok(());
            }
            let replaced = self.get(old)?;
            match (&replaced.kind, self.get(ino)?.is_dir()) {
                (Kind::Dir { entries, .. }, true) if !entries.is_empty() => return Err(libc::ENOTEMPTY),
                (Kind::Dir { .. }, false) => return Err(libc::EISDIR),
                (Kind::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
            let r = self.get_mut(old)?;
            r.links = r.links.saturating_sub(1);
        }
        self.entries_mut(parent)?.remove(name);
        let old = self.entries_mut(new_parent)?.insert(new_name.to_owned(), ino);
        let node = self.get_mut(ino)?;
        node.parent = new_parent;
        node.name = new_name.to_owned();
        if let Some(old) = old {
            self.maybe_drop(old);
        }
        self.touch(parent);
        self.touch(new_parent);
        Ok(())
    }

    fn maybe_drop(&mut self, ino: u64) {
        if ino != ROOT && self.inodes.get(&ino).is_some_and(|i| i.links == 0 && i.durable_links == 0 && i.open == 0) {
            self.inodes.remove(&ino);
        }
    }

    pub fn opened(&mut self, ino: u64) -> Res<()> {
        self.powered()?;
        self.get_mut(ino)?.open += 1;
        Ok(())
    }

    pub fn released(&mut self, ino: u64) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.open = i.open.saturating_sub(1);
        }
        self.maybe_drop(ino);
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileData> {
        match &mut self.get_mut(ino)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn read(&self, ino: u64, offset: u64, len: usize) -> Res<Vec<u8>> {
        self.powered()?;
        match &self.get(ino)?.kind {
            Kind::File(f) => Ok(f.read(offset, len)),
            Kind::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Res<usize> {
        self.powered()?;
        let path = self.path(ino);
        if let Some(errno) = self.faults.check(FaultOp::Write, &path, data.len() as u64) {
            return Err(errno);
        }
        self.file_mut(ino)?.write(offset, data);
        self.touch(ino);
        self.stats.writes += 1;
        self.stats.bytes += data.len() as u64;
        self.write_seq += 1;
        self.last_writes.insert(ino, (self.write_seq, LastWrite { ino, offset, data: data.to_vec() }));
        Ok(data.len())
    }

    pub fn set_size(&mut self, ino: u64, size: u64) -> Res<()> {
        self.powered()?;
        self.file_mut(ino)?.set_size(size);
        self.touch(ino);
        Ok(())
    }

    pub fn fallocate(&mut self, ino: u64, offset: u64, len: u64, mode: i32) -> Res<()> {
        self.powered()?;
        let f = self.file_mut(ino)?;
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        if mode & (libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_PUNCH_HOLE) != 0 {
            let end = if keep_size { (offset + len).min(f.size()) } else { offset + len };
            if end > offset {
                f.zero_range(offset, end - offset);
            }
        } else if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        if !keep_size && offset + len > f.size() {
            f.set_size(offset + len);
        }
        Ok(())
    }

    /// Checks for a fault on the fsync of `ino`; on success the caller sleeps any slow-fsync
    /// delay and then calls [`State::sync_file`].
    pub fn fsync_fault(&mut self, ino: u64) -> Res<Option<std::time::Duration>> {
        self.powered()?;
        let path = self.path(ino);
        if let Some(errno) = self.faults.check(FaultOp::Fsync, &path, 0) {
            if let Ok(f) = self.file_mut(ino) {
                f.writeback_failed();
            }
            self.last_writes.remove(&ino);
            return Err(errno);
        }
        Ok(self.faults.fsync_delay(&path))
    }

    pub fn sync_file(&mut self, ino: u64) -> Res<()> {
        self.powered()?;
        self.stats.fsyncs += 1;
        if let Kind::Dir { .. } = self.get(ino)?.kind {
            return self.sync_dir(ino);
        }
        self.file_mut(ino)?.sync();
        self.last_writes.remove(&ino);
        Ok(())
    }

    pub fn sync_dir(&mut self, ino: u64) -> Res<()> {
        self.powered()?;
        self.stats.dir_fsyncs += 1;
        let (old, new) = match &mut self.get_mut(ino)?.kind {
            Kind::Dir { entries, synced } => {
                let old = std::mem::replace(synced, entries.clone());
                (old, entries.clone())
            }
            Kind::File(_) => return Err(libc::ENOTDIR),
        };
        for c in new.values() {
            if let Some(i) = self.inodes.get_mut(c) {
                i.durable_links += 1;
            }
        }
        for c in old.values() {
            if let Some(i) = self.inodes.get_mut(c) {
                i.durable_links = i.durable_links.saturating_sub(1);
            }
            self.maybe_drop(*c);
        }
        Ok(())
    }

    /// Power cut: everything not durable is dropped, and the disk answers EIO until
    /// [`State::power_on`]. With `torn: Some(seed)` the last unsynced write survives in part.
    pub fn power_cut(&mut self, torn: Option<u64>) -> u64 {
        self.stats.cuts += 1;
        self.powered_off = true;
        let torn_write =
            std::mem::take(&mut self.last_writes).into_values().max_by_key(|(seq, _)| *seq).map(|(_, w)| w);
        // What a torn cut keeps, read from the page-cache image before it is dropped: whole
        // sectors, from the one the write starts in up to the tear. A disk writes a sector whole
        // and the kernel writes back whole pages, so bytes of earlier unsynced writes sharing
        // those sectors survive with it (keeping only the last write's bytes would leave a hole
        // before them that no disk can leave).
        let torn_image = match (torn, torn_write) {
            (Some(seed), Some(w)) => {
                let kept = tear_point(seed, w.offset, w.data.len());
                match self.inodes.get(&w.ino) {
                    Some(Inode { kind: Kind::File(f), .. }) if kept > 0 => {
                        let start = w.offset / 512 * 512;
                        let end = w.offset + kept as u64;
                        Some((w.ino, start, f.read(start, (end - start) as usize)))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        for i in self.inodes.values_mut() {
            match &mut i.kind {
                Kind::File(f) => f.power_cut(),
                Kind::Dir { entries, synced } => *entries = synced.clone(),
            }
            i.open = 0;
        }
        // Only what a durable name reaches from the root survives.
        let mut reach: HashMap<u64, (u64, OsString, u32)> = HashMap::new();
        let mut stack = vec![ROOT];
        while let Some(d) = stack.pop() {
            if let Some(Inode { kind: Kind::Dir { entries, .. }, .. }) = self.inodes.get(&d) {
                for (name, &c) in entries {
                    let e = reach.entry(c).or_insert((d, name.clone(), 0));
                    e.2 += 1;
                    if e.2 == 1 {
                        stack.push(c);
                    }
                }
            }
        }
        self.inodes.retain(|ino, _| *ino == ROOT || reach.contains_key(ino));
        for (ino, i) in self.inodes.iter_mut() {
            if let Some((parent, name, n)) = reach.get(ino) {
                i.parent = *parent;
                i.name = name.clone();
                i.links = *n;
                i.durable_links = *n;
            }
        }
        let mut kept = 0;
        if let Some((ino, start, image)) = torn_image
            && let Some(Inode { kind: Kind::File(f), .. }) = self.inodes.get_mut(&ino)
        {
            kept = image.len();
            f.tear_in(start, &image, kept);
        }
        self.stats.torn_bytes_kept += kept as u64;
        kept as u64
    }

    pub fn power_on(&mut self) {
        self.powered_off = false;
    }
}

/// How many bytes of a write at `offset` of `len` bytes a torn cut keeps: a page boundary
/// strictly inside the write, else a 512-byte sector boundary, else none.
pub fn tear_point(seed: u64, offset: u64, len: usize) -> usize {
    let end = offset + len as u64;
    for unit in [PAGE, 512] {
        let first = offset / unit + 1;
        let last = (end - 1) / unit;
        if len > 0 && first <= last {
            let n = last - first + 1;
            let pick = first + splitmix(seed) % n;
            return (pick * unit - offset) as usize;
        }
    }
    0
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn a_name_needs_its_directory_synced() {
        let mut s = State::new();
        let d = s.mkdir(ROOT, os("d"), 0o755).unwrap();
        s.sync_dir(ROOT).unwrap();
        let a = s.create(d, os("a"), 0o644).unwrap();
        s.write(a, 0, b"x").unwrap();
        s.sync_file(a).unwrap();
        let b = s.create(d, os("b"), 0o644).unwrap();
        s.write(b, 0, b"y").unwrap();
        s.sync_file(b).unwrap();
        s.sync_dir(d).unwrap();
        s.rename(d, os("b"), d, os("c")).unwrap();
        s.power_cut(None);
        s.power_on();
        let d = s.lookup(ROOT, os("d")).unwrap();
        assert_eq!(s.list(d).unwrap().into_iter().map(|e| e.0).collect::<Vec<_>>(), vec![os("a"), os("b")]);
        let b = s.lookup(d, os("b")).unwrap();
        assert_eq!(s.read(b, 0, 10).unwrap(), b"y");
    }

    #[test]
    fn an_unlink_not_synced_is_undone_with_the_data() {
        let mut s = State::new();
        let a = s.create(ROOT, os("a"), 0o644).unwrap();
        s.write(a, 0, b"keep").unwrap();
        s.sync_file(a).unwrap();
        s.sync_dir(ROOT).unwrap();
        s.remove(ROOT, os("a"), false).unwrap();
        assert!(s.lookup(ROOT, os("a")).is_err());
        s.power_cut(None);
        s.power_on();
        let a = s.lookup(ROOT, os("a")).unwrap();
        assert_eq!(s.read(a, 0, 10).unwrap(), b"keep");
    }

    #[test]
    fn a_torn_cut_keeps_a_page_aligned_prefix_of_the_last_write() {
        let mut s = State::new();
        let a = s.create(ROOT, os("a"), 0o644).unwrap();
        s.sync_dir(ROOT).unwrap();
        s.write(a, 100, &vec![9u8; 3 * PAGE as usize]).unwrap();
        let kept = s.power_cut(Some(7));
        s.power_on();
        // Kept: whole sectors from the one the write starts in (offset 0) to a page boundary.
        assert!(kept > 0 && kept.is_multiple_of(PAGE), "kept {kept}");
        let a = s.lookup(ROOT, os("a")).unwrap();
        let r = s.read(a, 0, 4 * PAGE as usize).unwrap();
        assert_eq!(r.len(), kept as usize);
        assert!(r[..100].iter().all(|&b| b == 0) && r[100..].iter().all(|&b| b == 9));
    }

    /// The WAL's power-loss finding was this shape: an earlier unsynced write lost, a later one's
    /// first bytes kept in the same sector. A sector is written whole, so both survive.
    #[test]
    fn a_torn_cut_keeps_the_whole_sector_its_write_starts_in() {
        let mut s = State::new();
        let a = s.create(ROOT, os("a"), 0o644).unwrap();
        s.sync_dir(ROOT).unwrap();
        s.write(a, 0, &[1u8; 600]).unwrap();
        s.sync_file(a).unwrap();
        s.write(a, 600, &[2u8; 20]).unwrap();
        s.write(a, 620, &[3u8; 500]).unwrap();
        let kept = s.power_cut(Some(1));
        s.power_on();
        // The tear falls at 1024, the only boundary inside the last write.
        assert_eq!(kept, 1024 - 512);
        let a = s.lookup(ROOT, os("a")).unwrap();
        let r = s.read(a, 0, 2048).unwrap();
        assert_eq!(r.len(), 1024);
        assert!(r[..600].iter().all(|&b| b == 1));
        assert!(r[600..620].iter().all(|&b| b == 2), "the earlier write's bytes in the sector");
        assert!(r[620..].iter().all(|&b| b == 3));
    }

    #[test]
    fn faults_start_after_their_budget_and_off_means_eio() {
        use crate::faults::FaultRule;
        let mut s = State::new();
        let a = s.create(ROOT, os("wal"), 0o644).unwrap();
        s.faults.rules.push(FaultRule::new(FaultOp::Write, libc::ENOSPC, "wal".into(), 10, 0));
        assert_eq!(s.write(a, 0, b"12345678"), Ok(8));
        assert_eq!(s.write(a, 8, b"123"), Err(libc::ENOSPC));
        s.faults.rules.push(FaultRule::new(FaultOp::Fsync, libc::EIO, "wal".into(), 0, 1));
        assert_eq!(s.fsync_fault(a), Ok(None));
        assert_eq!(s.fsync_fault(a), Err(libc::EIO));
        s.power_cut(None);
        assert_eq!(s.read(a, 0, 1), Err(libc::EIO));
    }
}
