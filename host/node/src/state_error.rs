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

/// `From` redb's per-operation errors into `$target::$variant(redb::Error)`, so `?` works on
/// each inside a function that returns `$target`.
macro_rules! from_redb {
    ($target:ident :: $variant:ident) => {
        $crate::state_error::from_redb!(@each $target::$variant; redb::TransactionError, redb::TableError,
            redb::StorageError, redb::CommitError, redb::SetDurabilityError);
    };
    (@each $target:ident :: $variant:ident; $($t:ty),*) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> $target {
                $target::$variant(e.into())
            }
        }
    )*};
}
pub(crate) use from_redb;

from_redb!(StateError::Db);
