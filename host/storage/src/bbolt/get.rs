//! Looking one key up in a bucket, as bbolt's `Bucket.Get` does: down the branch pages by their
//! keys (each branch key is its child's first key), then a binary search in the leaf. A hostile
//! file's unordered keys can only make it answer wrongly, never read outside a page or loop: the
//! path is checked as the iterator's is (cycles, overlapping pages, depth).

use std::cmp::Ordering;

use super::cursor::{MAX_DEPTH, Value};
use super::error::{Corruption, ReadError};
use super::page::{BRANCH, BUCKET_LEAF, LEAF, Page};
use super::reader::{Bucket, BucketRoot, Reader};
use super::source::Source;

impl<S: Source> Reader<S> {
    /// The value of `key` in `bucket` (a nested bucket's value is its [`Bucket`]), if present.
    pub fn get(&self, bucket: &Bucket, key: &[u8]) -> Result<Option<Value>, ReadError> {
        let mut path: Vec<(u64, u64)> = Vec::new();
        let mut page = match &bucket.root {
            BucketRoot::Page(id) => self.page(*id, BRANCH | LEAF)?,
            BucketRoot::Inline { bytes, parent } => Page::new(*parent, bytes.clone(), LEAF)?,
        };
        loop {
            let run = (page.id, page.id + u64::from(page.header.overflow));
            if let Some(&(other, _)) = path.iter().find(|(start, end)| *start <= run.1 && run.0 <= *end) {
                return Err(if other == page.id {
                    Corruption::Cycle { page: path.last().map_or(other, |p| p.0), child: other }
                } else {
                    Corruption::Overlap { page: page.id, other }
                }
                .into());
            }
            if page.is_leaf() {
                return self.search_leaf(&page, key, bucket.depth + 1);
            }
            if path.len() >= MAX_DEPTH {
                return Err(Corruption::TooDeep { page: page.id, max: MAX_DEPTH }.into());
            }
            path.push(run);
            // The last child whose first key is at most `key` (or the first child).
            let (mut lo, mut hi) = (0, page.count());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match page.branch(mid)?.0.cmp(key) {
                    Ordering::Greater => hi = mid,
                    _ => lo = mid + 1,
                }
            }
            let child = page.branch(lo.saturating_sub(1))?.1;
            page = self.page(child, BRANCH | LEAF)?;
        }
    }

    fn search_leaf(&self, page: &Page, key: &[u8], depth: usize) -> Result<Option<Value>, ReadError> {
        let (mut lo, mut hi) = (0, page.count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = page.leaf(mid)?;
            match e.key.cmp(key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal if e.flags & BUCKET_LEAF != 0 => {
                    return Ok(Some(Value::Bucket(Bucket::from_value(e.value, page.id, mid, depth)?)));
                }
                Ordering::Equal => return Ok(Some(Value::Data(e.value.to_vec()))),
            }
        }
        Ok(None)
    }
}
