//! What stops the apply thread: a failure of this member, not of the entry (the guest's own
//! errors and refusals are the client's outcome, and the log goes on). After one the batch's
//! transaction may hold part of an entry, so nothing of it commits and the member stops; the
//! raft log replays the batch after a restart.

use wasmraft_runtime::ApplyError;

use crate::reconfigure::ReconfigureError;
use crate::state_error::from_redb;

/// Why an apply batch could not be applied, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyFailure {
    /// The state database failed (the batch's transaction, or a subsystem's table in it).
    #[error(transparent)]
    Db(#[from] redb::Error),
    /// The runtime could not run the guest on a command: its store failed, or the host could
    /// not run the guest at all ([`ApplyError::Storage`], [`ApplyError::Host`]).
    #[error("applying entry {index}")]
    Command {
        index: u64,
        #[source]
        source: ApplyError,
    },
    /// The same, while swapping guests (the new guest's `migrate`, or storing its record).
    #[error("applying guest swap {index}")]
    Swap {
        index: u64,
        #[source]
        source: ApplyError,
    },
    /// A conf change could not be applied to raft or the members tables.
    #[error(transparent)]
    Reconfigure(#[from] ReconfigureError),
    /// A host record in the state database (a guest metric) could not be read or written.
    #[error(transparent)]
    State(#[from] crate::state_error::StateError),
}

from_redb!(ApplyFailure::Db);
