//! The apply thread: committed entries → the guest → the state database → waiting clients.
//!
//! Entries arrive in the order raft committed them and are applied in batches: one redb write
//! transaction per batch, in which each entry runs in a fresh guest instance, and the applied
//! index is written in the same transaction, so the state and the index it reflects can never
//! disagree. Waiters are woken only after the transaction commits, so a client that got its
//! answer can read its own write at once.
//!
//! Around the loop: `batch` applies one batch, `command` a client's guest command behind
//! the refusal `rules` (etcd's `apply/` wrappers, one per file), `deploy` guest modules and
//! swaps, `snapshot` a state received from the leader. The host's own replicated state
//! (membership, the active guest, auth, alarms) is staged and published through
//! `super::replicated`.
//!
//! The state database is committed without fsync (the raft log, fsynced, can replay anything a
//! crash loses), except once a second (after a second without work, too), which bounds replay
//! work after a crash and lets the raft log be compacted behind it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::StateError;
use redb::{Durability, ReadableDatabase};

use super::{ApplyMsg, NodeError, RaftMsg, Shared};
use crate::deployment;
use crate::error_chain::Chain;
use wasmraft_runtime::ApplyError;
use wasmraft_storage::tables::{GUEST_KV, META, META_APPLIED_INDEX, META_APPLIED_TERM};

mod batch;
mod command;
mod deploy;
mod failure;
mod rules;
mod snapshot;

use batch::apply_batch;
pub(crate) use snapshot::install_snapshot;
use snapshot::swap_in_snapshot;

/// Entries applied in one transaction at most, so waiters of the first entries aren't held back
/// by a huge backlog.
const MAX_BATCH: usize = 4096;
/// How often the state database is made durable.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

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

pub(crate) fn run(rx: Receiver<ApplyMsg>, shared: Arc<Shared>, mut applied: u64) {
    let mut last_durable = Instant::now();
    // The applied index the state database was last made durable at.
    let mut durable_index = applied;
    loop {
        let first = match rx.recv_timeout(DURABLE_EVERY) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                // Idle: make the last batches durable now rather than at the next write, so an
                // idle member's log is compacted (and its replay after a crash stays short).
                if applied > durable_index {
                    if let Err(e) = make_durable(&shared.state_db.db()) {
                        shared.fail(format!("making the state durable at {applied}: {e}"));
                        return;
                    }
                    last_durable = Instant::now();
                    durable_index = applied;
                    let _ = shared.to_raft.send(RaftMsg::Durable(applied));
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = match first {
            ApplyMsg::Entries(entries) => entries,
            ApplyMsg::Snapshot { index, path } => {
                match swap_in_snapshot(&shared, index, &path, applied) {
                    Some(state_index) => {
                        // Installed durably.
                        applied = state_index;
                        durable_index = applied;
                    }
                    None => return,
                }
                continue;
            }
        };
        let mut pending_snapshot = None;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ApplyMsg::Entries(more)) => batch.extend(more),
                Ok(snap @ ApplyMsg::Snapshot { .. }) => {
                    pending_snapshot = Some(snap);
                    break;
                }
                Err(_) => break,
            }
        }
        let durable = last_durable.elapsed() >= DURABLE_EVERY;
        match apply_batch(&shared, &batch, applied, durable) {
            Ok((index, outcomes)) => {
                applied = index;
                for (id, outcome) in outcomes {
                    shared.waits.trigger(id, outcome);
                }
                shared.publish_applied(applied);
                if durable {
                    last_durable = Instant::now();
                    durable_index = applied;
                    let _ = shared.to_raft.send(RaftMsg::Durable(applied));
                }
            }
            Err(e) => {
                shared.fail(format!("apply stopped at index {}: {}", applied + 1, Chain(&e)));
                return;
            }
        }
        if let Some(ApplyMsg::Snapshot { index, path }) = pending_snapshot {
            // It came right behind this batch: handle it now, in order.
            match swap_in_snapshot(&shared, index, &path, applied) {
                Some(state_index) => {
                    // Installed durably.
                    applied = state_index;
                    durable_index = applied;
                }
                None => return,
            }
        }
    }
    // Shutting down: make what was applied durable so a restart replays nothing.
    if let Err(e) = make_durable(&shared.state_db.db()) {
        tracing::warn!("final state commit failed (the log will replay it): {e}");
    }
}

/// One empty transaction committed with fsync makes every earlier one durable.
fn make_durable(db: &redb::Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}
