//! The two meta pages (pages 0 and 1): where a bbolt file says its page size, its root bucket,
//! its freelist page, its high-water mark and its transaction id. bbolt writes a commit's meta to
//! page `txid % 2`, so one of the two is always whole; a reader takes the valid one with the
//! higher txid, and the other if that one is damaged (bbolt's `DB.meta`).
//!
//! Layout after the page header: `magic u32 (0xED0CDAED), version u32 (2), page_size u32,
//! flags u32, root: (root u64, sequence u64), freelist u64, pgid u64, txid u64, checksum u64`,
//! the checksum being FNV-64a over everything before it.

use super::error::MetaProblem;
use super::page::{HEADER, Header, META, u32_at, u64_at};

pub(crate) const MAGIC: u32 = 0xED0C_DAED;
pub(crate) const VERSION: u32 = 2;
/// The meta's size, and what must be read of a meta page to decode it.
pub(crate) const META_SIZE: usize = 64;
pub(crate) const META_PAGE_BYTES: usize = HEADER + META_SIZE;
/// bbolt's `pgidNoFreelist`: the freelist is not stored (bbolt's NoFreelistSync).
pub const NO_FREELIST: u64 = u64::MAX;
/// The page sizes this reader and writer accept. bbolt takes the OS page size (4 KiB on Linux
/// x86-64, 16 or 64 KiB elsewhere); the bounds keep a hostile meta from choosing a page size that
/// makes one page a large allocation, or that holds no element.
pub const MIN_PAGE_SIZE: u32 = 512;
pub const MAX_PAGE_SIZE: u32 = 1 << 20;
/// Where to look for meta 1 when meta 0 is damaged (and so does not say the page size).
pub(crate) const PAGE_SIZE_GUESSES: [u32; 8] = [4096, 512, 1024, 2048, 8192, 16384, 32768, 65536];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    pub flags: u32,
    pub root: u64,
    pub sequence: u64,
    pub freelist: u64,
    /// The high-water mark: the number of pages in use (every page id is below it).
    pub pgid: u64,
    pub txid: u64,
}

/// FNV-1a, 64 bits: bbolt's meta checksum (Go's `hash/fnv.New64a`).
pub(crate) fn fnv64a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Decodes and validates the meta page `page` (0 or 1) from its first [`META_PAGE_BYTES`],
    /// as read at `page * page_size`: bbolt's checks (magic, version, checksum, where bbolt
    /// accepts a zero checksum as old bolt files have) and ours (a meta page's flags, a page size
    /// in range and equal to where the page was found, root and freelist below the high-water
    /// mark).
    pub fn decode(b: &[u8], expected_page_size: Option<u32>) -> Result<Meta, MetaProblem> {
        if b.len() < META_PAGE_BYTES {
            return Err(MetaProblem::Missing);
        }
        let header = Header::decode(b);
        if header.flags & META == 0 {
            return Err(MetaProblem::NotMeta(header.flags));
        }
        let m = &b[HEADER..HEADER + META_SIZE];
        let magic = u32_at(m, 0);
        if magic != MAGIC {
            return Err(MetaProblem::Magic(magic));
        }
        let version = u32_at(m, 4);
        if version != VERSION {
            return Err(MetaProblem::Version(version));
        }
        let checksum = u64_at(m, 56);
        if checksum != 0 && checksum != fnv64a(&m[..56]) {
            return Err(MetaProblem::Checksum);
        }
        let meta = Meta {
            page_size: u32_at(m, 8),
            flags: u32_at(m, 12),
            root: u64_at(m, 16),
            sequence: u64_at(m, 24),
            freelist: u64_at(m, 32),
            pgid: u64_at(m, 40),
            txid: u64_at(m, 48),
        };
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&meta.page_size)
            || expected_page_size.is_some_and(|p| p != meta.page_size)
        {
            return Err(MetaProblem::PageSize(meta.page_size));
        }
        let data_page = |p: u64| p >= 2 && p < meta.pgid;
        if !data_page(meta.root) || !(meta.freelist == NO_FREELIST || data_page(meta.freelist)) {
            return Err(MetaProblem::Pages { root: meta.root, freelist: meta.freelist, high_water: meta.pgid });
        }
        Ok(meta)
    }

    /// The meta page `id` (0 or 1), checksummed, into `page` (at least [`META_PAGE_BYTES`]).
    pub fn encode(&self, id: u64, page: &mut [u8]) {
        Header { id, flags: META, count: 0, overflow: 0 }.encode(page);
        let m = &mut page[HEADER..HEADER + META_SIZE];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        m[12..16].copy_from_slice(&self.flags.to_le_bytes());
        m[16..24].copy_from_slice(&self.root.to_le_bytes());
        m[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        m[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        m[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        m[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv64a(&m[..56]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
    }
}

/// bbolt's choice between two decoded metas: the higher txid if valid, else the other.
pub(crate) fn choose(
    meta0: Result<Meta, MetaProblem>,
    meta1: Result<Meta, MetaProblem>,
) -> Result<Meta, (MetaProblem, MetaProblem)> {
    match (meta0, meta1) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(a), Err(b)) => Err((a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbolt_fnv64a_matches_go() {
        // Go: fnv.New64a() of "" and of "a".
        assert_eq!(fnv64a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv64a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn bbolt_meta_round_trip_and_choice() {
        let m = Meta { page_size: 4096, flags: 0, root: 3, sequence: 0, freelist: 2, pgid: 4, txid: 7 };
        let mut page = vec![0u8; 4096];
        m.encode(1, &mut page);
        assert_eq!(Meta::decode(&page, Some(4096)), Ok(m));
        assert_eq!(Meta::decode(&page, Some(8192)), Err(MetaProblem::PageSize(4096)));
        let older = Meta { txid: 6, ..m };
        assert_eq!(choose(Ok(older), Ok(m)), Ok(m));
        assert_eq!(choose(Ok(m), Ok(older)), Ok(m));
        page[HEADER + 20] ^= 1;
        assert_eq!(Meta::decode(&page, Some(4096)), Err(MetaProblem::Checksum));
        assert_eq!(choose(Meta::decode(&page, None), Ok(older)), Ok(older));
    }
}
