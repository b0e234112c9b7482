//! bbolt's on-disk page: a 16-byte header (`id u64, flags u16, count u16, overflow u32`, little
//! endian as bbolt writes on every platform etcd runs on) and `count` elements of 16 bytes, whose
//! keys and values follow them. A page with `overflow > 0` spans that many more consecutive pages.
//!
//! Every accessor here checks what it reads against the page's own bytes: an element, its key or
//! its value outside the page is a [`Corruption`], never a panic or an out-of-bounds slice.

use super::error::Corruption;

pub(crate) const HEADER: usize = 16;
/// Size of a branch element (`pos u32, ksize u32, pgid u64`) and of a leaf element
/// (`flags u32, pos u32, ksize u32, vsize u32`).
pub(crate) const ELEMENT: usize = 16;

pub(crate) const BRANCH: u16 = 0x01;
pub(crate) const LEAF: u16 = 0x02;
pub(crate) const META: u16 = 0x04;
pub(crate) const FREELIST: u16 = 0x10;

/// A leaf element's flag: its value is a bucket header (a nested bucket).
pub(crate) const BUCKET_LEAF: u32 = 0x01;
/// A bucket header: `root u64, sequence u64`; root 0 means an inline page follows.
pub(crate) const BUCKET_HEADER: usize = 16;

/// bbolt's limits on what a `Put` accepts.
pub const MAX_KEY_SIZE: usize = 32768;
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A page header, decoded from the first [`HEADER`] bytes of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl Header {
    /// `b` must hold at least [`HEADER`] bytes (every caller reads at least that much).
    pub fn decode(b: &[u8]) -> Header {
        Header { id: u64_at(b, 0), flags: u16_at(b, 8), count: u16_at(b, 10), overflow: u32_at(b, 12) }
    }

    pub fn encode(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..10].copy_from_slice(&self.flags.to_le_bytes());
        b[10..12].copy_from_slice(&self.count.to_le_bytes());
        b[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }
}

/// A branch or leaf page (or an inline bucket's page) in memory: its header and all its bytes,
/// overflow pages included. `id` is where it was read from (0 for an inline page, which has no
/// place in the file).
pub(crate) struct Page {
    pub id: u64,
    pub header: Header,
    pub bytes: Vec<u8>,
}

/// One leaf element, borrowed from its page.
pub(crate) struct LeafElement<'p> {
    pub flags: u32,
    pub key: &'p [u8],
    pub value: &'p [u8],
}

impl Page {
    /// Checks the header against what the caller expects (`kinds`: the flags it accepts) and that
    /// the element table fits the page. `bytes` holds the whole page, overflow included.
    pub fn new(id: u64, bytes: Vec<u8>, kinds: u16) -> Result<Page, Corruption> {
        if bytes.len() < HEADER {
            return Err(Corruption::PageTooShort { page: id, len: bytes.len() });
        }
        let header = Header::decode(&bytes);
        if header.flags & kinds == 0 || header.flags & (BRANCH | LEAF) == BRANCH | LEAF {
            return Err(Corruption::WrongPageType { page: id, flags: header.flags, expected: kinds_name(kinds) });
        }
        // A freelist's count is of 8-byte ids (and may say 0xFFFF: see check.rs).
        let max = (bytes.len() - HEADER) / ELEMENT;
        if header.flags & (BRANCH | LEAF) != 0 && usize::from(header.count) > max {
            return Err(Corruption::TooManyElements { page: id, count: header.count, max });
        }
        if header.flags & BRANCH != 0 && header.count == 0 {
            return Err(Corruption::EmptyBranch { page: id });
        }
        Ok(Page { id, header, bytes })
    }

    pub fn is_leaf(&self) -> bool {
        self.header.flags & LEAF != 0
    }

    pub fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    /// The bytes `[pos, pos + len)` counted from element `index`'s own offset, as bbolt's `pos`
    /// fields are.
    fn span(&self, index: usize, pos: u32, len: u64) -> Result<&[u8], Corruption> {
        let elem = HEADER + index * ELEMENT;
        let start = (elem as u64) + u64::from(pos);
        let end = start + len;
        if end > self.bytes.len() as u64 {
            return Err(Corruption::ElementOutOfPage { page: self.id, index, end, page_len: self.bytes.len() });
        }
        // Both bounds are within `bytes.len()`, a usize.
        Ok(&self.bytes[start as usize..end as usize])
    }

    fn element(&self, index: usize) -> &[u8] {
        let at = HEADER + index * ELEMENT;
        &self.bytes[at..at + ELEMENT]
    }

    /// Branch element `index` (< `count()`, which `new` checked fits): its key and child page.
    pub fn branch(&self, index: usize) -> Result<(&[u8], u64), Corruption> {
        let e = self.element(index);
        let (pos, ksize, child) = (u32_at(e, 0), u32_at(e, 4), u64_at(e, 8));
        let key = self.span(index, pos, u64::from(ksize))?;
        if key.is_empty() {
            return Err(Corruption::EmptyKey { page: self.id, index });
        }
        Ok((key, child))
    }

    /// Leaf element `index` (< `count()`).
    pub fn leaf(&self, index: usize) -> Result<LeafElement<'_>, Corruption> {
        let e = self.element(index);
        let (flags, pos, ksize, vsize) = (u32_at(e, 0), u32_at(e, 4), u32_at(e, 8), u32_at(e, 12));
        if flags & !BUCKET_LEAF != 0 {
            return Err(Corruption::ElementFlags { page: self.id, index, flags });
        }
        let kv = self.span(index, pos, u64::from(ksize) + u64::from(vsize))?;
        let (key, value) = kv.split_at(ksize as usize);
        if key.is_empty() {
            return Err(Corruption::EmptyKey { page: self.id, index });
        }
        Ok(LeafElement { flags, key, value })
    }
}

fn kinds_name(kinds: u16) -> &'static str {
    match kinds {
        k if k == BRANCH | LEAF => "branch or leaf",
        LEAF => "leaf",
        BRANCH => "branch",
        META => "meta",
        FREELIST => "freelist",
        _ => "other",
    }
}
