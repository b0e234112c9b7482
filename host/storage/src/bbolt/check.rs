//! A whole-file walk that is also a consistency check, as bbolt's `Tx.Check` (`bbolt check`):
//! every bucket at every depth is walked, no page is used twice, and when the file stores its
//! freelist every page below the high-water mark is either reachable or free. It reads each page
//! once (so a hostile file's shared subtrees cannot multiply the work) and holds one bit per page
//! plus one path per open bucket level, iteratively (no recursion).

use super::cursor::{Entries, Entry, PageSet, Value};
use super::error::{Corruption, ReadError};
use super::page::{FREELIST, HEADER, u64_at};
use super::reader::Reader;
use super::source::Source;

/// How deep buckets may nest (inline buckets take no page, so the page checks do not bound it).
pub const MAX_BUCKET_DEPTH: usize = 64;

/// What a [`Reader::check`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckSummary {
    /// Buckets at every depth (the root bucket not counted).
    pub buckets: u64,
    /// Key/value pairs at every depth (bucket entries not counted).
    pub keys: u64,
    /// Pages on the freelist (0 when the file does not store it).
    pub free_pages: u64,
}

impl<S: Source> Reader<S> {
    /// Checks the whole file (see the module docs); the first problem is the error.
    pub fn check(&self) -> Result<CheckSummary, ReadError> {
        self.walk(|_, _| {})
    }

    /// Walks every bucket at every depth, depth first and in key order: `visit(depth, entry)`
    /// for each entry, where depth 0 is the top-level buckets and a bucket's entry is followed by
    /// its own entries at `depth + 1`. The walk checks the file as [`Reader::check`] does; on a
    /// problem it stops with the error (after visiting what came before it).
    pub fn walk(&self, mut visit: impl FnMut(usize, &Entry)) -> Result<CheckSummary, ReadError> {
        let high_water = self.meta().pgid;
        let mut pages = PageSet::new(high_water);
        pages.insert(0);
        pages.insert(1);
        let mut summary = CheckSummary::default();
        if let Some(freelist) = self.info().freelist {
            summary.free_pages = self.read_freelist(freelist, &mut pages)?;
        }
        let root = self.root();
        let mut stack: Vec<Entries<'_, S>> = vec![self.entries(&root)];
        while let Some(top) = stack.last_mut() {
            match top.next_tracked(Some(&mut pages)) {
                None => {
                    stack.pop();
                }
                Some(entry) => {
                    let entry = entry?;
                    visit(stack.len() - 1, &entry);
                    match entry.value {
                        Value::Data(_) => summary.keys += 1,
                        Value::Bucket(b) => {
                            summary.buckets += 1;
                            // Bucket::from_value bounded the depth.
                            stack.push(self.entries(&b));
                        }
                    }
                }
            }
        }
        // Without a stored freelist, unreachable pages are simply free (bbolt finds them by
        // the same walk at open).
        let unreachable = || (2..high_water).find(|p| !pages.contains(*p));
        if let Some(page) = self.info().freelist.and_then(|_| unreachable()) {
            return Err(Corruption::Unreachable { page }.into());
        }
        Ok(summary)
    }

    /// Marks the freelist page and the pages it lists; returns how many it lists.
    fn read_freelist(&self, id: u64, set: &mut PageSet) -> Result<u64, ReadError> {
        let high_water = self.meta().pgid;
        let page = self.page(id, FREELIST)?;
        for p in id..=id + u64::from(page.header.overflow) {
            if !set.insert(p) {
                return Err(Corruption::PageReused { page: p }.into());
            }
        }
        let slots = ((page.bytes.len() - HEADER) / 8) as u64;
        // A count of 0xFFFF means the real count is the first id slot (bbolt's freelist.read).
        let (first, count) = if page.header.count == 0xFFFF {
            (1, u64_at(&page.bytes, HEADER))
        } else {
            (0, u64::from(page.header.count))
        };
        if count > slots.saturating_sub(first) {
            return Err(Corruption::FreelistTooLong { page: id, count }.into());
        }
        for slot in first..first + count {
            let free = u64_at(&page.bytes, HEADER + 8 * slot as usize);
            if free < 2 || free >= high_water {
                return Err(Corruption::FreelistBadId { page: id, id: free, high_water }.into());
            }
            if !set.insert(free) {
                return Err(Corruption::PageReused { page: free }.into());
            }
        }
        Ok(count)
    }
}
