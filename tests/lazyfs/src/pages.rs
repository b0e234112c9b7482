//! One regular file's bytes as a disk with a page cache sees them: the durable pages (what a
//! power cut leaves) and, over them, the pages written since the last fsync.
//!
//! Pages that were never written read as zeros and take no memory, so a 64 MiB preallocated WAL
//! segment costs what was written into it.

use std::collections::BTreeMap;

/// The page size of the model: a torn write is cut at a multiple of it.
pub const PAGE: u64 = 4096;

/// A page written since the last fsync. `data: None` is a page of zeros (a hole punched or
/// zeroed); `lost` marks a page whose fsync failed: as Linux does after a writeback error, the
/// page stays readable but is no longer dirty, so a later fsync does not write it (the
/// "fsyncgate" behaviour a database must not rely on).
#[derive(Clone, Debug)]
struct Dirty {
    data: Option<Box<[u8]>>,
    lost: bool,
}

#[derive(Clone, Debug, Default)]
pub struct FileData {
    base: BTreeMap<u64, Box<[u8]>>,
    base_size: u64,
    dirty: BTreeMap<u64, Dirty>,
    size: u64,
    /// Bytes of `base` at or past this offset are hidden (the file was truncated below them
    /// since the last fsync).
    trunc_floor: Option<u64>,
}

fn zero_page() -> Box<[u8]> {
    vec![0u8; PAGE as usize].into_boxed_slice()
}

impl FileData {
    /// A file whose whole content is durable (as loaded from the backing directory).
    pub fn durable(bytes: &[u8]) -> Self {
        let mut f = FileData::default();
        f.write(0, bytes);
        f.sync();
        f
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether anything is written but not synced.
    pub fn has_unsynced(&self) -> bool {
        self.dirty.values().any(|d| !d.lost) || self.size != self.base_size || self.trunc_floor.is_some()
    }

    /// Page `p` as the file reads now (None: zeros).
    fn page(&self, p: u64) -> Option<Box<[u8]>> {
        if let Some(d) = self.dirty.get(&p) {
            return d.data.clone();
        }
        let base = self.base.get(&p)?;
        match self.trunc_floor {
            Some(floor) if p * PAGE + PAGE > floor => {
                if p * PAGE >= floor {
                    return None;
                }
                let mut page = base.clone();
                page[(floor - p * PAGE) as usize..].fill(0);
                Some(page)
            }
            _ => Some(base.clone()),
        }
    }

    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let end = (offset + len as u64).min(self.size);
        if offset >= end {
            return Vec::new();
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let mut at = offset;
        while at < end {
            let p = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = ((PAGE as usize - in_page) as u64).min(end - at) as usize;
            if let Some(page) = self.page(p) {
                let o = (at - offset) as usize;
                out[o..o + n].copy_from_slice(&page[in_page..in_page + n]);
            }
            at += n as u64;
        }
        out
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut at = offset;
        let end = offset + data.len() as u64;
        while at < end {
            let p = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = ((PAGE as usize - in_page) as u64).min(end - at) as usize;
            let mut page = self.page(p).unwrap_or_else(zero_page);
            let o = (at - offset) as usize;
            page[in_page..in_page + n].copy_from_slice(&data[o..o + n]);
            self.dirty.insert(p, Dirty { data: Some(page), lost: false });
            at += n as u64;
        }
        self.size = self.size.max(end);
    }

    /// Zeros `[offset, offset+len)` (FALLOC_FL_ZERO_RANGE / PUNCH_HOLE); whole pages become holes.
    pub fn zero_range(&mut self, offset: u64, len: u64) {
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let p = at / PAGE;
            let in_page = at % PAGE;
            let n = (PAGE - in_page).min(end - at);
            if n == PAGE {
                self.dirty.insert(p, Dirty { data: None, lost: false });
            } else {
                let zeros = vec![0u8; n as usize];
                let size = self.size;
                self.write(at, &zeros);
                self.size = size;
            }
            at += n;
        }
    }

    pub fn set_size(&mut self, new: u64) {
        if new < self.size {
            self.trunc_floor = Some(self.trunc_floor.map_or(new, |f| f.min(new)));
            let first_gone = new.div_ceil(PAGE);
            self.dirty.retain(|&p, _| p < first_gone);
            if !new.is_multiple_of(PAGE) {
                let p = new / PAGE;
                if let Some(Some(page)) = self.dirty.get_mut(&p).map(|d| d.data.as_mut()) {
                    page[(new % PAGE) as usize..].fill(0);
                }
            }
        }
        self.size = new;
    }

    /// fsync/fdatasync: what the file reads now (bar pages whose writeback failed) is durable.
    pub fn sync(&mut self) {
        if let Some(floor) = self.trunc_floor.take() {
            let first_gone = floor.div_ceil(PAGE);
            self.base.retain(|&p, _| p < first_gone);
            if !floor.is_multiple_of(PAGE)
                && let Some(page) = self.base.get_mut(&(floor / PAGE))
            {
                page[(floor % PAGE) as usize..].fill(0);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for (p, d) in dirty {
            if d.lost {
                self.dirty.insert(p, d);
                continue;
            }
            match d.data {
                Some(data) => {
                    self.base.insert(p, data);
                }
                None => {
                    self.base.remove(&p);
                }
            }
        }
        let first_gone = self.size.div_ceil(PAGE);
        self.base.retain(|&p, _| p < first_gone);
        self.base_size = self.size;
    }

    /// A failed fsync: the written pages stay readable but will never reach the disk.
    pub fn writeback_failed(&mut self) {
        for d in self.dirty.values_mut() {
            d.lost = true;
        }
    }

    /// A power cut: only the durable pages remain.
    pub fn power_cut(&mut self) {
        self.dirty.clear();
        self.trunc_floor = None;
        self.size = self.base_size;
    }

    /// Makes the first `keep` bytes of a write at `offset` durable, as a disk that lost power
    /// mid-write would leave them (the caller picks `keep` at a page or sector boundary).
    pub fn tear_in(&mut self, offset: u64, data: &[u8], keep: usize) {
        let keep = keep.min(data.len());
        if keep == 0 {
            return;
        }
        self.write(offset, &data[..keep]);
        self.sync();
    }

    /// The durable content, for writing the image back to the backing directory.
    pub fn durable_bytes(&self) -> Vec<u8> {
        let mut copy = self.clone();
        copy.power_cut();
        copy.read(0, copy.size as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_vanish_on_power_cut_synced_ones_stay() {
        let mut f = FileData::default();
        f.write(0, b"hello");
        f.sync();
        f.write(5, b" world");
        f.write(0, b"J");
        assert_eq!(f.read(0, 100), b"Jello world");
        f.power_cut();
        assert_eq!(f.read(0, 100), b"hello");
    }

    #[test]
    fn a_truncation_is_durable_only_after_sync() {
        let mut f = FileData::durable(&vec![7u8; 10_000]);
        f.set_size(100);
        f.set_size(9000);
        assert_eq!(f.read(0, 10_000)[100..], vec![0u8; 8900][..]);
        f.power_cut();
        assert_eq!(f.read(0, 10_000), vec![7u8; 10_000]);
        f.set_size(100);
        f.sync();
        f.set_size(5000);
        f.sync();
        f.power_cut();
        assert_eq!(f.read(0, 5000)[100..], vec![0u8; 4900][..]);
    }

    #[test]
    fn a_failed_fsync_leaves_pages_readable_but_never_durable() {
        let mut f = FileData::durable(b"aaaa");
        f.write(0, b"bb");
        f.writeback_failed();
        assert_eq!(f.read(0, 4), b"bbaa");
        f.sync();
        assert_eq!(f.read(0, 4), b"bbaa");
        f.power_cut();
        assert_eq!(f.read(0, 4), b"aaaa");
    }

    #[test]
    fn zero_range_and_holes() {
        let mut f = FileData::durable(&vec![1u8; 3 * PAGE as usize]);
        f.zero_range(10, 2 * PAGE);
        let r = f.read(0, 3 * PAGE as usize);
        assert_eq!(r[..10], [1u8; 10]);
        assert!(r[10..10 + 2 * PAGE as usize].iter().all(|&b| b == 0));
        assert_eq!(r[10 + 2 * PAGE as usize..], vec![1u8; PAGE as usize - 10][..]);
        f.sync();
        assert_eq!(f.read(0, 3 * PAGE as usize), r);
    }
}
