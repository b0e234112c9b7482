//! bbolt files (go.etcd.io/bbolt, the database etcd keeps its backend in, and the file
//! `etcdctl snapshot save` writes): a reader that walks any file without trusting it, and a
//! writer that builds a fresh file in one pass. No crate reads or writes bbolt's format (jammdb
//! is modelled on it but not file-compatible), so this is our own, written from bbolt's source
//! (v1.3.x, what etcd 3.4 and 3.5 use): see `docs/decisions.md`.
//!
//! The format, in brief: a file of fixed-size pages. Pages 0 and 1 are meta pages (`meta.rs`),
//! one of which is current; it names the root bucket's root page, the freelist page and the
//! high-water mark. A bucket is a B+tree of branch and leaf pages (`page.rs`); a node larger than
//! a page takes consecutive overflow pages. A leaf value flagged as a bucket is a nested bucket:
//! its root page and sequence, or (root 0) an inline leaf page right in the value.
//!
//! Reading ([`Reader`]): pages are read on demand with positioned reads (never an mmap, never the
//! whole file), checked before use, and iterated in key order by [`Entries`], which holds only the
//! path from a bucket's root to the current leaf. A damaged or hostile file is a
//! [`ReadError::Corrupt`] naming the page and the problem, never a panic, a hang or an allocation
//! larger than the file. [`Reader::get`] looks one key up; [`Reader::walk`] and
//! [`Reader::check`] go through everything, as `bbolt check` does.
//!
//! Writing ([`Writer`]): top-level buckets of sorted pairs, streamed to disk; see `writer.rs` for
//! what it holds in memory.
//!
//! This module knows bbolt only: which buckets a file has and what their keys mean is the
//! caller's business.
//!
//! What `etcdctl snapshot status` reads from a file is all here: [`Reader::info`]'s size, and the
//! top-level buckets' names with every key and value in order (its hash and key count).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wasmraft_storage::bbolt::{Reader, Value};
//! let db = Reader::open(std::fs::File::open("db")?)?;
//! for bucket in db.entries(&db.root()) {
//!     let bucket = bucket?;
//!     let Value::Bucket(b) = &bucket.value else { continue };
//!     for pair in db.entries(b) {
//!         let pair = pair?;
//!         println!("{:?} {:?} {:?}", bucket.key, pair.key, pair.value.data());
//!     }
//! }
//! # Ok(()) }
//! ```

mod build;
mod check;
mod cursor;
mod error;
mod get;
mod meta;
mod page;
mod pages;
mod reader;
mod source;
mod writer;

#[cfg(test)]
mod tests;

pub use check::{CheckSummary, MAX_BUCKET_DEPTH};
pub use cursor::{Entries, Entry, MAX_DEPTH, Value};
pub use error::{Corruption, MetaProblem, ReadError, WriteError};
pub use meta::{MAX_PAGE_SIZE, MIN_PAGE_SIZE};
pub use page::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
pub use reader::{Bucket, Info, Reader};
pub use source::Source;
pub use writer::{DEFAULT_PAGE_SIZE, Writer};
