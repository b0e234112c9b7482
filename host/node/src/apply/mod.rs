//! The apply thread: committed entries → the guest → the state database → waiting clients.
//!
//! Entries arrive in the order raft committed them and are applied in batches, each entry in
//! a fresh guest instance (an entry of several commands in one), into the state database's
//! batch transaction ([`open`]): one redb write transaction kept open across batches, as
//! etcd's backend keeps its batch transaction, with the applied index written in it, so the
//! state and the index it reflects can never disagree. After each batch the writes readers
//! need are published (`crate::uncommitted`) and only then are its waiters woken, so a client
//! that got its answer reads its own write at once.
//!
//! Around the loop: `batch` applies one batch, `command` a client's guest command behind
//! the refusal `rules` (etcd's `apply/` wrappers, one per file), `deploy` guest modules and
//! swaps, `snapshot` a state received from the leader. The host's own replicated state
//! (membership, the active guest, auth, alarms) is staged and published through
//! `super::replicated`.
//!
//! The transaction commits with fsync every `--backend-batch-interval` (a second by default;
//! after that long without work too) or once `--backend-batch-limit` entries were applied
//! since the last durable commit, which bounds replay work after a crash and lets the raft log
//! be compacted behind it: etcd's backend commits its batch transaction on the same two
//! triggers. It also commits, without fsync, after a batch that changed the host's own tables,
//! before a snapshot is installed, and when a reader needs the file itself (`ApplyMsg::Commit`:
//! a snapshot for a client, a hash, a defragmentation). A crash loses what was not made
//! durable; the raft log, fsynced, replays it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::StateError;
use redb::ReadableDatabase;

use super::{ApplyMsg, NodeError, RaftMsg, Shared};
use crate::deployment;
use crate::error_chain::Chain;
use wasmraft_runtime::ApplyError;
use wasmraft_storage::tables::{GUEST_KV, META, META_APPLIED_INDEX, META_APPLIED_TERM};

mod batch;
mod command;
mod deploy;
mod failure;
mod open;
mod rules;
mod snapshot;

use batch::{Commit, apply_batch};
use open::OpenTxn;
pub(crate) use snapshot::install_snapshot;
use snapshot::swap_in_snapshot;

/// Entries applied in one transaction at most, so waiters of the first entries aren't held back
/// by a huge backlog.
const MAX_BATCH: usize = 4096;

/// Reads the applied index and term recorded with the state (0, 0 for a new member), creating
/// the state tables if needed.
pub fn load_applied(db: &redb::Database) -> Result<(u64, u64), StateError> {
    let txn = db.begin_write()?;
    txn.open_table(GUEST_KV)?;
    txn.open_table(META)?;
    deployment::create_tables(&txn)?;
    crate::kv_size::ensure(&txn)?;
    txn.commit()?;
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let read = |k: &str| -> Result<u64, StateError> {
        Ok(match meta.get(k)? {
            Some(v) => u64::from_be_bytes(
                v.value()
                    .try_into()
                    .map_err(|_| StateError::corrupt("applied index", format!("{} bytes", v.value().len())))?,
            ),
            None => 0,
        })
    };
    Ok((read(META_APPLIED_INDEX)?, read(META_APPLIED_TERM)?))
}

/// Maps a guest failure to what the client sees.
pub(crate) fn node_error(e: ApplyError) -> NodeError {
    match e {
        ApplyError::Guest(text) => NodeError::Guest(text),
        other => NodeError::Internal(other.to_string()),
    }
}

pub(crate) fn run(rx: Receiver<ApplyMsg>, shared: Arc<Shared>, applied: u64) {
    let mut durability = DurableSchedule::new(shared.limits.apply, applied);
    let mut open = OpenTxn::default();
    let mut applied = applied;
    loop {
        let first = match rx.recv_timeout(durability.until_due()) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                // Idle: make the last batches durable now rather than at the next write, so an
                // idle member's log is compacted (and its replay after a crash stays short).
                if applied > durability.durable_index {
                    if let Err(e) = open.commit(&shared, true) {
                        shared.fail(format!("making the state durable at {applied}: {}", Chain(&e)));
                        return;
                    }
                    durability.made_durable(&shared, applied);
                } else {
                    durability.nothing_to_do();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = match first {
            ApplyMsg::Entries(entries) => entries,
            ApplyMsg::Snapshot { index, path } => {
                match install(&shared, &mut open, index, &path, applied) {
                    Some(state_index) => {
                        applied = state_index;
                        durability.installed(applied);
                    }
                    None => return,
                }
                continue;
            }
            ApplyMsg::Commit(reply) => {
                if let Err(e) = open.commit(&shared, false) {
                    shared.fail(format!("committing the state at {applied}: {}", Chain(&e)));
                    return;
                }
                let _ = reply.send(());
                continue;
            }
        };
        let mut pending = None;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ApplyMsg::Entries(more)) => batch.extend(more),
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let durable = durability.due(batch.len());
        let commit = if durable { Commit::Durable } else { Commit::IfNeeded };
        match apply_batch(&shared, &mut open, &batch, applied, commit) {
            Ok(done) => {
                applied = done.index;
                for (id, outcome) in done.outcomes {
                    shared.waits.trigger(id, outcome);
                }
                shared.publish_applied(applied);
                if durable {
                    durability.made_durable(&shared, applied);
                } else {
                    durability.pending += batch.len() as u64;
                }
            }
            Err(e) => {
                shared.fail(format!("apply stopped at index {}: {}", applied + 1, Chain(&e)));
                return;
            }
        }
        // It came right behind this batch: handle it now, in order.
        match pending {
            Some(ApplyMsg::Snapshot { index, path }) => match install(&shared, &mut open, index, &path, applied) {
                Some(state_index) => {
                    applied = state_index;
                    durability.installed(applied);
                }
                None => return,
            },
            Some(ApplyMsg::Commit(reply)) => {
                if let Err(e) = open.commit(&shared, false) {
                    shared.fail(format!("committing the state at {applied}: {}", Chain(&e)));
                    return;
                }
                let _ = reply.send(());
            }
            Some(ApplyMsg::Entries(_)) | None => {}
        }
    }
    // Shutting down: make what was applied durable so a restart replays nothing.
    if let Err(e) = open.commit(&shared, true) {
        tracing::warn!("final state commit failed (the log will replay it): {}", Chain(&e));
    }
}

/// Installs a snapshot raft accepted, after committing what the open transaction holds (the
/// install replaces the file, and would wait forever on a transaction this thread holds).
fn install(shared: &Shared, open: &mut OpenTxn, index: u64, path: &std::path::Path, applied: u64) -> Option<u64> {
    if let Err(e) = open.commit(shared, false) {
        shared.fail(format!("committing the state before snapshot {index}: {}", Chain(&e)));
        return None;
    }
    // Installed durably.
    swap_in_snapshot(shared, index, path, applied)
}

/// When the state database is next made durable: `--backend-batch-interval` after the last
/// time, or once `--backend-batch-limit` entries wait, whichever comes first (etcd's backend
/// commits its batch transaction on the same two triggers).
struct DurableSchedule {
    options: crate::ApplyOptions,
    last: Instant,
    /// The applied index the state database was last made durable at.
    durable_index: u64,
    /// Entries applied since then.
    pending: u64,
}

impl DurableSchedule {
    fn new(options: crate::ApplyOptions, applied: u64) -> Self {
        DurableSchedule { options, last: Instant::now(), durable_index: applied, pending: 0 }
    }

    /// How long the loop may wait for entries before the idle commit is due.
    fn until_due(&self) -> Duration {
        self.options.durable_interval.saturating_sub(self.last.elapsed()).max(Duration::from_millis(1))
    }

    /// Whether the batch about to be applied (`entries` long) commits durably.
    fn due(&self, entries: usize) -> bool {
        self.last.elapsed() >= self.options.durable_interval
            || self.pending.saturating_add(entries as u64) >= self.options.durable_limit
    }

    /// The state is durable at `applied`: the raft log may be compacted behind it.
    fn made_durable(&mut self, shared: &Shared, applied: u64) {
        self.installed(applied);
        wasmraft_metrics::metrics().backend_durable_commits.inc();
        let _ = shared.to_raft.send(RaftMsg::Durable(applied));
    }

    /// A snapshot was installed (durably) at `applied`.
    fn installed(&mut self, applied: u64) {
        self.last = Instant::now();
        self.durable_index = applied;
        self.pending = 0;
    }

    /// An interval passed with nothing to make durable: the next one starts now.
    fn nothing_to_do(&mut self) {
        self.last = Instant::now();
    }
}
