//! Why the member's replicated records (applied index, members, alarms, auth store) could not be read from or written to the state database: at start, after a
//! snapshot is installed, and by `wasmraft snapshot restore`. A typed error so that callers
//! outside this crate (the binary's start-up and restore) can tell a broken database from a
//! corrupt record without parsing text.

/// The state database failed, or a record in it does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("state database: {0}")]
    Db(#[from] redb::Error),
    /// A record was written by something that is not this member's code (or the disk lied).
    #[error("corrupt {what} in the state database: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StateError {
    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StateError {
        StateError::Corrupt { what, detail: detail.to_string() }
    }
}

/// redb's per-operation errors all become [`StateError::Db`], so `?` works on each.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StateError {
            fn from(e: $t) -> StateError {
                StateError::Db(e.into())
            }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
