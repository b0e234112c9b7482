//! Following the state as it changes, rather than waiting for one answer.
//!
//! Some parts of a client API need every applied command, not just the ones their own clients
//! proposed: the etcd API's watch hub delivers the events of every entry, and its lessor learns
//! of every lease granted or revoked, whichever member proposed it. The node knows nothing of
//! what commands mean, so it hands each applied guest command — its bytes, its result and the
//! events the guest emitted — to the observers registered with [`NodeHandle::observe`], and
//! they interpret them.
//!
//! [`NodeHandle::observe`]: super::NodeHandle::observe

/// One guest command as the apply thread applied it.
#[derive(Clone, Debug)]
pub struct AppliedCommand {
    /// Its raft log index.
    pub index: u64,
    /// The bytes the guest's `apply` got.
    pub command: Vec<u8>,
    /// What `apply` answered: the output, or the guest's error (then the entry wrote nothing
    /// and emitted nothing).
    pub result: Result<Vec<u8>, String>,
    /// The events the entry emitted, in emit order (empty when it failed).
    pub events: Vec<Vec<u8>>,
}

/// Something that follows every applied command.
///
/// Both calls run on the apply thread, in log order, after the transaction holding the
/// commands committed (so a read issued from inside sees their effects). They must not block:
/// the apply thread is the member's throughput, and a slow observer would stall every write.
/// Hand work to a task or a channel instead.
pub trait ApplyObserver: Send + Sync + 'static {
    /// The guest commands of one applied batch, oldest first. Called only for non-empty batches.
    fn applied(&self, commands: &[AppliedCommand]);

    /// The state was replaced wholesale (a snapshot from the leader was installed, so entries
    /// were skipped): whatever an observer derived from the state must be read again.
    fn state_replaced(&self);
}
