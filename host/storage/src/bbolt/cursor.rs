//! Iterating one bucket's key/value pairs in key order, streaming: a stack of the pages on the
//! path from the bucket's root to the current leaf (bbolt's cursor), nothing else. A file is not
//! trusted to be a tree: a child already on the path is a cycle, a page overlapping one on the
//! path (by its overflow pages) is refused, so is a path deeper than [`MAX_DEPTH`]; one bucket's
//! walk may not visit more pages than the file has (pages shared between subtrees), and keys must
//! come in strictly ascending order.

use super::error::{Corruption, ReadError};
use super::page::{BRANCH, BUCKET_LEAF, LEAF, Page};
use super::reader::{Bucket, BucketRoot, Reader};
use super::source::Source;

/// The deepest path from a bucket's root to a leaf. bbolt's branch pages hold at least two
/// children, so a real tree of depth 64 would need 2^64 pages.
pub const MAX_DEPTH: usize = 64;

/// One key/value pair of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Value,
}

/// A value, or a nested bucket (which bbolt's `ForEach` shows as a nil value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Data(Vec<u8>),
    Bucket(Bucket),
}

impl Value {
    pub fn into_bucket(self) -> Option<Bucket> {
        match self {
            Value::Bucket(b) => Some(b),
            Value::Data(_) => None,
        }
    }

    /// The value's bytes; None for a nested bucket.
    pub fn data(&self) -> Option<&[u8]> {
        match self {
            Value::Data(d) => Some(d),
            Value::Bucket(_) => None,
        }
    }
}

/// Which pages a whole-file walk has seen, one bit per page below the high-water mark (which is
/// inside the file, so the set is at most a 4096th of the file's size).
pub(crate) struct PageSet {
    bits: Vec<u64>,
}

impl PageSet {
    pub fn new(pages: u64) -> PageSet {
        PageSet { bits: vec![0; pages.div_ceil(64) as usize] }
    }

    /// Marks `id`; false if it was already marked. `id` is below the set's size.
    pub fn insert(&mut self, id: u64) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        let was = self.bits[w] & (1 << b) != 0;
        self.bits[w] |= 1 << b;
        !was
    }

    pub fn contains(&self, id: u64) -> bool {
        self.bits[(id / 64) as usize] & (1 << (id % 64)) != 0
    }
}

struct Frame {
    page: Page,
    index: usize,
}

/// The entries of one bucket, in key order: see [`Reader::entries`].
pub struct Entries<'r, S> {
    reader: &'r Reader<S>,
    /// The bucket's root, until the first `next` reads it.
    start: Option<BucketRoot>,
    stack: Vec<Frame>,
    /// The last key returned, for the order check.
    prev: Option<Vec<u8>>,
    /// Pages read so far (overflow pages counted), bounded by the high-water mark.
    visited: u64,
    /// The bucket's nesting depth (its nested buckets are one deeper).
    depth: usize,
    done: bool,
}

impl<'r, S: Source> Entries<'r, S> {
    pub(crate) fn new(reader: &'r Reader<S>, bucket: &Bucket) -> Self {
        Entries {
            reader,
            start: Some(bucket.root.clone()),
            stack: Vec::new(),
            prev: None,
            visited: 0,
            depth: bucket.depth,
            done: false,
        }
    }

    /// Reads page `id` (a child of `parent`, or the root); `pages`: a whole-file walk's page set,
    /// in which a page seen twice anywhere is an error.
    fn load(&mut self, id: u64, parent: Option<u64>, pages: Option<&mut PageSet>) -> Result<Page, ReadError> {
        if let Some(parent) = parent {
            if self.stack.iter().any(|f| f.page.id == id) {
                return Err(Corruption::Cycle { page: parent, child: id }.into());
            }
            if self.stack.len() >= MAX_DEPTH {
                return Err(Corruption::TooDeep { page: id, max: MAX_DEPTH }.into());
            }
        }
        let page = self.reader.page(id, BRANCH | LEAF)?;
        // The pages on one path are distinct runs of the file, so what the stack holds is at most
        // the file's size, whatever overflow counts a hostile file gives its pages.
        let end = id + u64::from(page.header.overflow);
        if let Some(f) =
            self.stack.iter().find(|f| f.page.id <= end && id <= f.page.id + u64::from(f.page.header.overflow))
        {
            return Err(Corruption::Overlap { page: id, other: f.page.id }.into());
        }
        let high_water = self.reader.meta().pgid;
        self.visited += u64::from(page.header.overflow) + 1;
        if self.visited > high_water {
            return Err(Corruption::TooManyPages { high_water }.into());
        }
        if let Some(set) = pages {
            for p in id..=id + u64::from(page.header.overflow) {
                if !set.insert(p) {
                    return Err(Corruption::PageReused { page: p }.into());
                }
            }
        }
        Ok(page)
    }

    /// The next entry; see [`Entries::load`] for `pages`.
    pub(crate) fn step(&mut self, mut pages: Option<&mut PageSet>) -> Result<Option<Entry>, ReadError> {
        if let Some(root) = self.start.take() {
            let page = match root {
                BucketRoot::Page(id) => self.load(id, None, pages.as_deref_mut())?,
                BucketRoot::Inline { bytes, parent } => Page::new(parent, bytes, LEAF)?,
            };
            self.stack.push(Frame { page, index: 0 });
        }
        loop {
            let Some(top) = self.stack.last_mut() else { return Ok(None) };
            if top.index >= top.page.count() {
                self.stack.pop();
                continue;
            }
            let index = top.index;
            top.index += 1;
            if !top.page.is_leaf() {
                let (parent, (_, child)) = (top.page.id, top.page.branch(index)?);
                let page = self.load(child, Some(parent), pages.as_deref_mut())?;
                self.stack.push(Frame { page, index: 0 });
                continue;
            }
            let page_id = top.page.id;
            let e = top.page.leaf(index)?;
            if self.prev.as_deref().is_some_and(|prev| e.key <= prev) {
                return Err(Corruption::KeysOutOfOrder { page: page_id, index }.into());
            }
            let prev = self.prev.get_or_insert_with(Vec::new);
            prev.clear();
            prev.extend_from_slice(e.key);
            let value = if e.flags & BUCKET_LEAF != 0 {
                Value::Bucket(Bucket::from_value(e.value, page_id, index, self.depth + 1)?)
            } else {
                Value::Data(e.value.to_vec())
            };
            return Ok(Some(Entry { key: e.key.to_vec(), value }));
        }
    }
}

impl<S: Source> Iterator for Entries<'_, S> {
    type Item = Result<Entry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tracked(None)
    }
}

impl<S: Source> Entries<'_, S> {
    /// `next`, with a whole-file walk's page set.
    pub(crate) fn next_tracked(&mut self, pages: Option<&mut PageSet>) -> Option<Result<Entry, ReadError>> {
        if self.done {
            return None;
        }
        let r = self.step(pages);
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
            self.stack.clear();
        }
        r.transpose()
    }
}

impl<S: Source> std::iter::FusedIterator for Entries<'_, S> {}
