//! One bucket's B+tree built bottom-up from keys in ascending order: leaves are filled up to the
//! page size and written as soon as the next pair would not fit; each written leaf leaves one
//! branch entry (its first key and page id) in memory, and the branch levels are written when
//! the bucket ends. That entry per leaf is all the memory that grows with the bucket; the pending
//! leaf is at most a page, or one pair larger than a page (which gets a page with overflow, as
//! bbolt writes it).
//!
//! Pages are packed full rather than at bbolt's FillPercent (0.5, a margin for later inserts that
//! a bulk load does not need); bbolt reads them as any other page and rebalances them if it ever
//! writes to them.

use super::error::WriteError;
use super::page::{BRANCH, BUCKET_HEADER, ELEMENT, HEADER, Header, LEAF};
use super::pages::PageOut;

/// bbolt refuses to write a node of 0xFFFF elements or more (`page.count` is a u16).
const MAX_ELEMENTS: usize = 0xFFFE;

struct Pair {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

pub(crate) struct TreeBuilder {
    page_size: usize,
    leaf: Vec<Pair>,
    /// The pending leaf's encoded size.
    leaf_size: usize,
    /// One (first key, page id) per written leaf.
    leaves: Vec<(Vec<u8>, u64)>,
}

impl TreeBuilder {
    pub fn new(page_size: u32) -> TreeBuilder {
        TreeBuilder { page_size: page_size as usize, leaf: Vec::new(), leaf_size: HEADER, leaves: Vec::new() }
    }

    /// Adds a pair; keys must come in ascending order (the writer checks).
    pub fn push(&mut self, out: &mut PageOut, flags: u32, key: &[u8], value: &[u8]) -> Result<(), WriteError> {
        let size = ELEMENT + key.len() + value.len();
        if !self.leaf.is_empty() && (self.leaf_size + size > self.page_size || self.leaf.len() >= MAX_ELEMENTS) {
            self.flush_leaf(out)?;
        }
        self.leaf.push(Pair { flags, key: key.to_vec(), value: value.to_vec() });
        self.leaf_size += size;
        Ok(())
    }

    fn flush_leaf(&mut self, out: &mut PageOut) -> Result<(), WriteError> {
        let elems = self.leaf.iter().map(|p| (p.flags, &p.key[..], &p.value[..]));
        let id = out.write_node(LEAF, self.leaf_size, elems)?;
        let first = std::mem::take(&mut self.leaf).into_iter().next().map(|p| p.key).unwrap_or_default();
        self.leaves.push((first, id));
        self.leaf_size = HEADER;
        Ok(())
    }

    /// The bucket as bbolt would store it inline (`Bucket.inlineable`): one leaf of at most a
    /// quarter page, in a value `root 0, sequence, page`. None if it does not fit.
    pub fn inline(&self, sequence: u64) -> Option<Vec<u8>> {
        if !self.leaves.is_empty() || self.leaf_size > self.page_size / 4 {
            return None;
        }
        let mut value = vec![0u8; BUCKET_HEADER + self.leaf_size];
        value[8..16].copy_from_slice(&sequence.to_le_bytes());
        let elems = self.leaf.iter().map(|p| (p.flags, &p.key[..], &p.value[..]));
        encode_node(&mut value[BUCKET_HEADER..], 0, LEAF, 0, elems);
        Some(value)
    }

    /// Ends the tree in pages: writes the pending leaf (an empty one for an empty tree) and the
    /// branch levels; returns the root page.
    pub fn finish(mut self, out: &mut PageOut) -> Result<u64, WriteError> {
        if !self.leaf.is_empty() || self.leaves.is_empty() {
            self.flush_leaf(out)?;
        }
        let mut level = self.leaves;
        while level.len() > 1 {
            level = branch_level(out, self.page_size, level)?;
        }
        // flush_leaf left at least one entry, and a level of n > 1 entries has fewer above it.
        Ok(level.first().map_or(0, |(_, id)| *id))
    }
}

/// Writes one level of branch pages over `children`; returns the entries of the level above.
fn branch_level(
    out: &mut PageOut,
    page_size: usize,
    children: Vec<(Vec<u8>, u64)>,
) -> Result<Vec<(Vec<u8>, u64)>, WriteError> {
    let mut parents = Vec::new();
    let mut start = 0;
    while start < children.len() {
        let mut end = start;
        let mut size = HEADER;
        while end < children.len() {
            let add = ELEMENT + children[end].0.len();
            // At least two children per branch where there are two left (bbolt's
            // minKeysPerPage): a page of one child would only add a level.
            if end - start >= 2 && (size + add > page_size || end - start >= MAX_ELEMENTS) {
                break;
            }
            size += add;
            end += 1;
        }
        // Never leave one child for a last page of its own.
        if children.len() - end == 1 {
            if end - start > 2 {
                end -= 1;
                size -= ELEMENT + children[end].0.len();
            } else {
                size += ELEMENT + children[end].0.len();
                end += 1;
            }
        }
        let group = &children[start..end];
        // Branch elements carry the child id in the element, not as a value: see encode_node.
        let ids: Vec<[u8; 8]> = group.iter().map(|(_, id)| id.to_le_bytes()).collect();
        let elems = group.iter().zip(&ids).map(|((k, _), id)| (0u32, &k[..], &id[..]));
        let id = out.write_node(BRANCH, size, elems)?;
        parents.push((group[0].0.clone(), id));
        start = end;
    }
    Ok(parents)
}

/// Encodes a node's header and elements into `page` (zeroed, at least `HEADER + elements +
/// data` long). Leaf elements: `flags, pos, ksize, vsize`, key and value after the element
/// table. Branch elements: `pos, ksize, pgid`, the key after the table, where `value` is the
/// child id's 8 little-endian bytes. `pos` counts from the element's own offset, as bbolt's does.
pub(crate) fn encode_node<'a>(
    page: &mut [u8],
    id: u64,
    flags: u16,
    overflow: u32,
    elems: impl ExactSizeIterator<Item = (u32, &'a [u8], &'a [u8])>,
) {
    let count = elems.len();
    Header { id, flags, count: count as u16, overflow }.encode(page);
    let mut data = HEADER + count * ELEMENT;
    for (i, (eflags, key, value)) in elems.enumerate() {
        let at = HEADER + i * ELEMENT;
        let pos = (data - at) as u32;
        let e = &mut page[at..at + ELEMENT];
        if flags & LEAF != 0 {
            e[0..4].copy_from_slice(&eflags.to_le_bytes());
            e[4..8].copy_from_slice(&pos.to_le_bytes());
            e[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
            e[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
            page[data..data + key.len()].copy_from_slice(key);
            data += key.len();
            page[data..data + value.len()].copy_from_slice(value);
            data += value.len();
        } else {
            e[0..4].copy_from_slice(&pos.to_le_bytes());
            e[4..8].copy_from_slice(&(key.len() as u32).to_le_bytes());
            e[8..16].copy_from_slice(value);
            page[data..data + key.len()].copy_from_slice(key);
            data += key.len();
        }
    }
}
