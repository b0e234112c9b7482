//! What goes wrong reading or writing an etcd backend file.

use wasmraft_kv_guest::etcd_backend::{CorruptStore, ExportError, ImportError};
use wasmraft_storage::bbolt::{ReadError, WriteError};

/// Why a backup could not be written or read. Every variant names the part concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("state database: {0}")]
    Db(#[from] redb::Error),
    #[error("state database: {0}")]
    State(#[from] wasmraft_node::StateError),
    #[error("the KV guest's tables: {0}")]
    Guest(#[from] CorruptStore),
    #[error("bbolt file: {0}")]
    Read(#[from] ReadError),
    #[error("bbolt file: {0}")]
    Write(#[from] WriteError),
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A bucket etcd writes holds something etcd would not have written.
    #[error("bucket {bucket:?}: {reason}")]
    Bucket { bucket: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<ExportError<WriteError>> for BackupError {
    fn from(e: ExportError<WriteError>) -> Self {
        match e {
            ExportError::Store(c) => BackupError::Guest(c),
            ExportError::Sink(w) => BackupError::Write(w),
            other => BackupError::Bucket { bucket: "key".into(), reason: other.to_string() },
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for BackupError {
            fn from(e: $t) -> Self {
                BackupError::Db(e.into())
            }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
