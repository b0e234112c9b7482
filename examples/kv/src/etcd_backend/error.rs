//! What can fail when the guest's tables are translated to or from etcd's backend buckets.
//!
//! Typed, unlike the guest's `String` errors: these functions are called natively by the host
//! (snapshot save and restore), which must tell a broken file (the user's input, reported with
//! the bucket and key at fault) from a broken store or a failing writer.

use thiserror::Error;

/// The guest's tables do not read back as the guest wrote them (the text says where). Never
/// happens unless the keyspace was changed behind the guest's back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct CorruptStore(pub String);

/// An export stopped: the store is corrupt, or the sink (the file being written) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExportError<E> {
    #[error(transparent)]
    Store(#[from] CorruptStore),
    #[error("{0}")]
    Sink(E),
}

/// An import refused its input, or the store it writes to misbehaved. The texts name the
/// bucket and key at fault, as a user restoring a file needs them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A pair of the `key` bucket (its key shown as `main_sub[t]`, or in hex when it is not a
    /// revision key).
    #[error("etcd backend: bucket \"key\", key {key}: {reason}")]
    KeyBucket { key: String, reason: String },
    /// A pair of the `lease` bucket (its key in hex).
    #[error("etcd backend: bucket \"lease\", key {key}: {reason}")]
    LeaseBucket { key: String, reason: String },
    /// A pair of the `meta` bucket.
    #[error("etcd backend: bucket \"meta\", key {key:?}: {reason}")]
    MetaBucket { key: String, reason: String },
    /// The buckets disagree with each other (found when the import finishes).
    #[error("etcd backend: {0}")]
    Inconsistent(String),
    /// The store the import writes to is not empty.
    #[error("etcd backend: the KV guest's keyspace must be empty before an import (found {0})")]
    NotEmpty(String),
    #[error(transparent)]
    Store(#[from] CorruptStore),
}
