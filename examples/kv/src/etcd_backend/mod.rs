//! etcd's backend layout for the KV guest's state, both ways: what `etcdctl snapshot save` of a
//! member writes into etcd's bbolt file, and what `wasmraft snapshot restore` of a file real
//! etcd saved builds. The guest's tables are private to the guest, so the translation lives
//! here; the host links this crate natively (`default-features = false`), runs these functions
//! over its state database through the SDK's [`ReadStore`]/[`Store`] traits, and reads or
//! writes the bbolt file itself.
//!
//! etcd 3.4's buckets that hold KV state (`mvcc/kvstore.go`, `mvcc/revision.go`,
//! `lease/lessor.go`):
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `key` | revision key: `main` (8 bytes BE) `_` `sub` (8 bytes BE), plus `t` for a deletion | `mvccpb.KeyValue` (a deletion's: the key alone) |
//! | `meta` | `scheduledCompactRev`, `finishedCompactRev` | the 17-byte revision key of `{main: rev}` |
//! | `lease` | the lease id, 8 bytes BE | `leasepb.Lease{ID, TTL, RemainingTTL}` |
//!
//! The guest keeps the same history etcd keeps (`compact.rs`): its `h/` table is the `key`
//! bucket, row for row, in the same order, a put's row holding etcd's value verbatim. Out and in
//! are inverse: export then import yields the same tables, up to links to changes a compaction
//! dropped (which an import never had; no read can tell: [`crate::chain`]).
//!
//! [`ReadStore`]: wasmraft_guest_sdk::ReadStore
//! [`Store`]: wasmraft_guest_sdk::Store

mod canonical;
mod error;
mod export;
mod import;
pub mod revkey;
pub(crate) mod walk;

pub use canonical::canonical_tables;
pub use error::{CorruptStore, ExportError, ImportError};
pub use export::{KeyBucketStats, Summary, export_key_bucket, export_leases, export_meta, summary};
pub use import::{ImportSummary, Importer};

/// Where an export sends a bucket's pairs, key then value, in bbolt order; its error stops the
/// export and comes back as [`ExportError::Sink`].
pub type Sink<'a, E> = dyn FnMut(&[u8], &[u8]) -> Result<(), E> + 'a;

/// A bucket's pairs, key then value, in bbolt order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The bucket of revisions and their KeyValues.
pub const KEY_BUCKET: &[u8] = b"key";
/// The bucket of store-wide records (compaction, consistent index).
pub const META_BUCKET: &[u8] = b"meta";
/// The bucket of granted leases.
pub const LEASE_BUCKET: &[u8] = b"lease";
/// `meta`: the revision of the last compaction etcd started.
pub const SCHEDULED_COMPACT_KEY: &[u8] = b"scheduledCompactRev";
/// `meta`: the revision of the last compaction etcd completed.
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";
