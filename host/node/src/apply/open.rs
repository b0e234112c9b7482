//! The state database's batch transaction: one redb write transaction the apply thread keeps
//! open across apply batches, as etcd's backend keeps its batch transaction open between
//! commits.
//!
//! A redb commit costs tens of microseconds even without fsync, and at one client every put is
//! an apply batch of its own: committing per batch put that commit on every write's path.
//! Now a batch leaves its writes in the open transaction, and what readers need of them goes
//! to [`crate::uncommitted`] (published before the batch's clients are answered). The
//! transaction commits when the apply loop says (the durable schedule, an idle interval, a
//! snapshot, shutdown, a reader that needs the file itself) and after any batch that changed
//! a table readers do not see through the overlay.

use redb::{Durability, WriteTransaction};

use super::Shared;
use super::failure::ApplyFailure;
use crate::uncommitted::Uncommitted;

/// Uncommitted guest keyspace rows past which a batch commits (without fsync) anyway: every
/// write to the overlay after a publish copies the tree nodes on its path, so a small tree
/// keeps writes cheap, and a large KV compaction's deletions should not all wait in memory. A
/// commit every few thousand rows costs little next to one per batch.
pub(super) const MAX_UNCOMMITTED_ROWS: usize = 8192;

/// The apply thread's open transaction, with what it changed since its last commit.
#[derive(Default)]
pub(super) struct OpenTxn {
    txn: Option<WriteTransaction>,
    changes: Uncommitted,
}

impl OpenTxn {
    /// The open transaction (a new one if none is open) and its changes so far, for a batch to
    /// apply to; hand them back with [`OpenTxn::keep`] or [`OpenTxn::commit_taken`].
    pub fn take(&mut self, shared: &Shared) -> Result<(WriteTransaction, Uncommitted), ApplyFailure> {
        let txn = match self.txn.take() {
            Some(txn) => txn,
            None => shared.state_db.begin_write()?,
        };
        Ok((txn, std::mem::take(&mut self.changes)))
    }

    /// Keeps `txn` open after a batch; readers see its changes from now on.
    pub fn keep(&mut self, shared: &Shared, txn: WriteTransaction, changes: Uncommitted) {
        shared.uncommitted.publish(&changes);
        self.txn = Some(txn);
        self.changes = changes;
    }

    /// Commits `txn` (taken from here), durably or not; readers then read the file alone.
    pub fn commit_taken(
        &mut self,
        shared: &Shared,
        mut txn: WriteTransaction,
        durable: bool,
    ) -> Result<(), ApplyFailure> {
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        let committing = std::time::Instant::now();
        txn.commit()?;
        wasmraft_metrics::metrics().backend_commit.observe(committing.elapsed().as_secs_f64());
        // Only now: a reader that took the old changes may have begun its read before the
        // commit (see `crate::uncommitted`).
        self.changes = Uncommitted::default();
        shared.uncommitted.publish(&self.changes);
        Ok(())
    }

    /// Commits the open transaction, if one is open. With `durable`, the state is durable
    /// afterwards even when nothing was open (earlier non-durable commits are made durable by
    /// an empty durable one).
    pub fn commit(&mut self, shared: &Shared, durable: bool) -> Result<(), ApplyFailure> {
        match self.txn.take() {
            Some(txn) => self.commit_taken(shared, txn, durable),
            None if durable => {
                let txn = shared.state_db.begin_write()?;
                self.commit_taken(shared, txn, true)
            }
            None => Ok(()),
        }
    }
}
