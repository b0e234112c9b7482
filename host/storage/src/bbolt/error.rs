//! What can fail reading or writing a bbolt file, one type per side (as the crate's `error.rs`
//! does): [`ReadError`] for opening and walking a file, [`WriteError`] for building one. A damaged
//! or hostile file is a [`Corruption`] that names the page and what is wrong with it.

use std::io;

/// Opening or reading a bbolt file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("bbolt: reading {len} bytes at offset {offset}")]
    Io { offset: u64, len: usize, source: io::Error },
    #[error("bbolt: invalid database: {0}")]
    Corrupt(#[from] Corruption),
}

/// What is wrong with a file: never a panic, always which page and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    #[error("the file is {len} bytes, too short for a bbolt file (two meta pages)")]
    FileTooShort { len: u64 },
    #[error("neither meta page is valid (meta 0: {meta0}; meta 1: {meta1})")]
    NoValidMeta { meta0: MetaProblem, meta1: MetaProblem },
    #[error("the meta page says {pages} pages of {page_size} bytes, but the file is {len} bytes")]
    Truncated { pages: u64, page_size: u32, len: u64 },
    #[error("page {page} (and {overflow} overflow pages) is past the high-water mark {high_water}")]
    PageOutOfRange { page: u64, overflow: u32, high_water: u64 },
    #[error("page {page}'s header says it is page {found}")]
    WrongPageId { page: u64, found: u64 },
    #[error("page {page} is only {len} bytes")]
    PageTooShort { page: u64, len: usize },
    #[error("page {page} has flags {flags:#04x}, expected a {expected} page")]
    WrongPageType { page: u64, flags: u16, expected: &'static str },
    #[error("page {page} claims {count} elements, at most {max} fit")]
    TooManyElements { page: u64, count: u16, max: usize },
    #[error("branch page {page} has no elements")]
    EmptyBranch { page: u64 },
    #[error("page {page} element {index} ends at byte {end}, past the page's {page_len} bytes")]
    ElementOutOfPage { page: u64, index: usize, end: u64, page_len: usize },
    #[error("page {page} element {index} has an empty key")]
    EmptyKey { page: u64, index: usize },
    #[error("page {page} element {index} has unknown flags {flags:#x}")]
    ElementFlags { page: u64, index: usize, flags: u32 },
    #[error("page {page} element {index}: keys are not in ascending order")]
    KeysOutOfOrder { page: u64, index: usize },
    #[error("page {page} element {index}: a bucket value of {len} bytes is not a bucket header")]
    BadBucketValue { page: u64, index: usize, len: usize },
    #[error("page {page} element {index}: an inline bucket's page is not a leaf (flags {flags:#04x})")]
    InlineNotLeaf { page: u64, index: usize, flags: u16 },
    #[error("page {page} refers to page {child}, which is already on the path from the root (a cycle)")]
    Cycle { page: u64, child: u64 },
    #[error("page {page} overlaps page {other} (with its overflow pages), which is on the path from the root")]
    Overlap { page: u64, other: u64 },
    #[error("page {page} is deeper than {max} levels")]
    TooDeep { page: u64, max: usize },
    #[error("buckets nest deeper than {max} levels")]
    BucketsTooDeep { max: usize },
    #[error("page {page} is referenced twice")]
    PageReused { page: u64 },
    #[error("a walk of one bucket visited more pages than the file has ({high_water}): pages are shared")]
    TooManyPages { high_water: u64 },
    #[error("freelist page {page} lists {count} ids, more than the page holds")]
    FreelistTooLong { page: u64, count: u64 },
    #[error("freelist page {page} lists page {id}, which is not a data page below the high-water mark {high_water}")]
    FreelistBadId { page: u64, id: u64, high_water: u64 },
    #[error("page {page} is neither reachable nor free")]
    Unreachable { page: u64 },
}

/// Why one meta page was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaProblem {
    #[error("cannot be read: the file ends before it")]
    Missing,
    #[error("its page is not a meta page (flags {0:#04x})")]
    NotMeta(u16),
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    #[error("version {0}, expected 2")]
    Version(u32),
    #[error("checksum mismatch")]
    Checksum,
    #[error("page size {0} is not supported")]
    PageSize(u32),
    #[error("root bucket page {root} / freelist page {freelist} not below the high-water mark {high_water}")]
    Pages { root: u64, freelist: u64, high_water: u64 },
}

impl MetaProblem {
    /// Whether the page was a meta page (right flags and magic), damaged otherwise.
    pub(crate) fn is_meta_page(&self) -> bool {
        !matches!(self, MetaProblem::Missing | MetaProblem::NotMeta(_) | MetaProblem::Magic(_))
    }
}

/// Building a bbolt file failed. After an error the [`Writer`](super::Writer) must be dropped:
/// the file is not a valid database (its meta pages are written last).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("bbolt: writing at offset {offset}")]
    Io { offset: u64, source: io::Error },
    #[error("bbolt: syncing the file")]
    Sync(#[source] io::Error),
    #[error("bbolt: page size {0} is not supported (512 to 1 MiB)")]
    PageSize(u32),
    #[error("bbolt: empty key")]
    EmptyKey,
    #[error("bbolt: key too large ({0} bytes, at most 32768)")]
    KeyTooLarge(usize),
    #[error("bbolt: value too large ({0} bytes, at most 2147483646)")]
    ValueTooLarge(usize),
    #[error("bbolt: keys must be put in strictly ascending order")]
    KeyOrder,
    #[error("bbolt: bucket name used twice")]
    DuplicateBucket,
    #[error("bbolt: a put outside a bucket")]
    NoBucket,
    #[error("bbolt: a bucket begun inside another (end_bucket first)")]
    BucketOpen,
    #[error("bbolt: the file would exceed bbolt's limits (page ids)")]
    TooLarge,
}
