//! Building a fresh bbolt file in one pass from buckets whose pairs come in ascending key order:
//! what a snapshot of a sorted keyspace needs, without bbolt's transactions, freelist churn or
//! copy-on-write. Pages are written as they fill; the root bucket, an empty freelist and the two
//! meta pages come last, then one fsync. Until then the file has no valid meta page, so a file
//! cut short by a crash or an error is refused by every reader rather than read as empty.
//!
//! Memory: the pending leaf (a page, or one pair larger than a page), one branch entry (first
//! key and page id) per leaf of the open bucket, and per bucket its name and its bucket value (16
//! bytes, or an inline bucket of at most a quarter page).
//!
//! Buckets are top-level only (no nested buckets), in any order of names. A bucket whose pairs fit
//! in a quarter page is stored inline, as bbolt stores it; an empty bucket too.

use std::collections::BTreeMap;
use std::fs::File;

use super::build::TreeBuilder;
use super::error::WriteError;
use super::meta::{MAX_PAGE_SIZE, MIN_PAGE_SIZE, Meta};
use super::page::{BUCKET_HEADER, BUCKET_LEAF, FREELIST, Header, MAX_KEY_SIZE, MAX_VALUE_SIZE};
use super::pages::PageOut;

/// The page size etcd's bbolt files have on Linux x86-64 (the OS page size).
pub const DEFAULT_PAGE_SIZE: u32 = 4096;

struct OpenBucket {
    name: Vec<u8>,
    sequence: u64,
    tree: TreeBuilder,
    last_key: Option<Vec<u8>>,
}

/// A bbolt file being built: see the module docs.
pub struct Writer {
    out: PageOut,
    page_size: u32,
    /// Finished buckets: name → the value the root bucket's leaf holds for it.
    buckets: BTreeMap<Vec<u8>, Vec<u8>>,
    open: Option<OpenBucket>,
}

impl Writer {
    /// Starts a file in `file` (empty, or cut to size by [`finish`](Writer::finish)) with pages of
    /// `page_size` bytes ([`DEFAULT_PAGE_SIZE`] as etcd on Linux; 512 B to 1 MiB).
    pub fn create(file: File, page_size: u32) -> Result<Writer, WriteError> {
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(WriteError::PageSize(page_size));
        }
        Ok(Writer { out: PageOut::new(file, page_size), page_size, buckets: BTreeMap::new(), open: None })
    }

    /// Starts the top-level bucket `name` (not empty, not used before); the previous one must
    /// have been ended.
    pub fn begin_bucket(&mut self, name: &[u8]) -> Result<(), WriteError> {
        if self.open.is_some() {
            return Err(WriteError::BucketOpen);
        }
        check_key(name)?;
        if self.buckets.contains_key(name) {
            return Err(WriteError::DuplicateBucket);
        }
        let tree = TreeBuilder::new(self.page_size);
        self.open = Some(OpenBucket { name: name.to_vec(), sequence: 0, tree, last_key: None });
        Ok(())
    }

    /// Sets the open bucket's sequence (bbolt's `Bucket.SetSequence`).
    pub fn set_sequence(&mut self, sequence: u64) -> Result<(), WriteError> {
        self.open.as_mut().ok_or(WriteError::NoBucket)?.sequence = sequence;
        Ok(())
    }

    /// Adds a pair to the open bucket; keys strictly ascending (bytewise, as bbolt orders them).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), WriteError> {
        let open = self.open.as_mut().ok_or(WriteError::NoBucket)?;
        check_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(WriteError::ValueTooLarge(value.len()));
        }
        if open.last_key.as_deref().is_some_and(|last| key <= last) {
            return Err(WriteError::KeyOrder);
        }
        open.tree.push(&mut self.out, 0, key, value)?;
        let last = open.last_key.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        Ok(())
    }

    /// Ends the open bucket: writes its branch pages (or keeps it inline if small).
    pub fn end_bucket(&mut self) -> Result<(), WriteError> {
        let open = self.open.take().ok_or(WriteError::NoBucket)?;
        let value = match open.tree.inline(open.sequence) {
            Some(value) => value,
            None => bucket_header(open.tree.finish(&mut self.out)?, open.sequence),
        };
        self.buckets.insert(open.name, value);
        Ok(())
    }

    /// Writes the root bucket, an empty freelist and both meta pages, and fsyncs. Returns the
    /// file (its length is the database's: high-water mark × page size).
    pub fn finish(mut self) -> Result<File, WriteError> {
        if self.open.is_some() {
            return Err(WriteError::BucketOpen);
        }
        let mut root = TreeBuilder::new(self.page_size);
        for (name, value) in std::mem::take(&mut self.buckets) {
            root.push(&mut self.out, BUCKET_LEAF, &name, &value)?;
        }
        // The root bucket is never inline: the meta names its root page.
        let root = root.finish(&mut self.out)?;
        // An empty freelist page: bbolt with NoFreelistSync reads it as well as without.
        let freelist =
            self.out.write_page(|page, id| Header { id, flags: FREELIST, count: 0, overflow: 0 }.encode(page))?;
        let high_water = self.out.high_water();
        let mut page = vec![0u8; self.page_size as usize];
        // Both metas valid and equal but for the txid, as bbolt's freshly created file has them;
        // meta page `txid % 2`, as bbolt writes them.
        for txid in [0u64, 1] {
            let meta =
                Meta { page_size: self.page_size, flags: 0, root, sequence: 0, freelist, pgid: high_water, txid };
            page.fill(0);
            meta.encode(txid, &mut page);
            self.out.write_at(txid, &page)?;
        }
        self.out.sync()
    }
}

fn check_key(key: &[u8]) -> Result<(), WriteError> {
    if key.is_empty() {
        return Err(WriteError::EmptyKey);
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(WriteError::KeyTooLarge(key.len()));
    }
    Ok(())
}

fn bucket_header(root: u64, sequence: u64) -> Vec<u8> {
    let mut v = vec![0u8; BUCKET_HEADER];
    v[0..8].copy_from_slice(&root.to_le_bytes());
    v[8..16].copy_from_slice(&sequence.to_le_bytes());
    v
}
