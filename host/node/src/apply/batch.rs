//! One apply batch: every entry of it in the state database's open transaction
//! ([`super::open`]), committed at its end only when the loop asks or the batch changed what
//! readers do not see through the overlay.
//!
//! The entry's kind decides who applies it: conf changes go to `reconfigure`, guest commands
//! (one, or a batch of several clients') to [`command`](super::command) (behind the refusal
//! [`rules`](super::rules)), guest modules
//! and swaps to [`deploy`](super::deploy), and the host subsystems' own requests (publish,
//! alarms, auth) to the subsystem. What each changes is staged in [`Staged`] and published to
//! readers after the batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message as _;
use raft::eraftpb::{Entry, EntryType};
use redb::WriteTransaction;
use wasmraft_proto::wasmraft::v1 as pb;

use super::super::reconfigure::{self, PeerChanges};
use super::super::replicated::Staged;
use super::super::wait::Outcome;
use super::super::{AppliedCommand, NodeError, Shared};
use super::failure::ApplyFailure;
use super::open::{MAX_UNCOMMITTED_ROWS, OpenTxn};
use crate::uncommitted::Uncommitted;
use wasmraft_runtime::{ApplyContext, MetricUpdate};
use wasmraft_storage::tables::{META, META_APPLIED_INDEX, META_APPLIED_TERM};

/// What the entries of one batch share while it is applied.
pub(super) struct Batch<'a> {
    pub shared: &'a Shared,
    /// Each subsystem as the entries before this one left it.
    pub staged: Staged,
    /// The guest commands applied so far, for the observers (None when nothing observes).
    pub observed: Option<Vec<AppliedCommand>>,
    /// The guest metric updates of the successful commands so far, merged per name.
    pub metrics: BTreeMap<String, MetricUpdate>,
    /// What the open transaction changed since its last commit, this batch included.
    pub uncommitted: Uncommitted,
}

impl Batch<'_> {
    /// Whether anything observes applied commands (so that what only they need is not built).
    pub fn observing(&self) -> bool {
        self.observed.is_some()
    }

    /// Records a command's outcome for the observers.
    pub fn observe(&mut self, index: u64, command: Vec<u8>, result: Result<Vec<u8>, String>, events: Vec<Vec<u8>>) {
        if let Some(observed) = &mut self.observed {
            observed.push(AppliedCommand { index, command, result, events });
        }
    }
}

/// What a batch did.
pub(super) struct Applied {
    /// The applied index after it.
    pub index: u64,
    /// The outcomes for waiting clients.
    pub outcomes: Vec<(u64, Outcome)>,
}

/// Applies `entries` past `applied` in the open transaction, and commits it when `commit` asks
/// (`durable`: with fsync) or the batch needs it. An `Err` is a storage failure: the member
/// cannot go on.
pub(super) fn apply_batch(
    shared: &Arc<Shared>,
    open: &mut OpenTxn,
    entries: &[Entry],
    applied: u64,
    commit: Commit,
) -> Result<Applied, ApplyFailure> {
    let (mut txn, uncommitted) = open.take(shared)?;
    let observers = shared.observers.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut b = Batch {
        shared,
        staged: shared.replicated.stage(),
        observed: (!observers.is_empty()).then(Vec::new),
        metrics: BTreeMap::new(),
        uncommitted,
    };
    let mut peer_changes = PeerChanges::default();
    let mut outcomes = Vec::new();
    let (mut index, mut term) = (applied, 0);
    // Whether an entry changed a table readers take from the file alone.
    let mut host_tables = false;
    for e in entries {
        // Raft may hand over entries this database already reflects (after a restart it
        // replays from its own applied index); applying them twice would not be idempotent.
        if e.index <= applied {
            continue;
        }
        index = e.index;
        term = e.term;
        if e.data.is_empty() {
            // New leaders' no-ops (and conf changes raft dropped).
            continue;
        }
        if e.get_entry_type() != EntryType::EntryNormal {
            host_tables = true;
            if let Some((id, outcome)) =
                reconfigure::apply_entry(shared, &txn, e, &mut b.staged.membership, &mut peer_changes)?
                && id != 0
            {
                outcomes.push((id, outcome));
            }
            continue;
        }
        let envelope = match pb::Entry::decode(&e.data[..]) {
            Ok(env) => env,
            Err(err) => {
                // Every member decodes the same bytes the same way, so skipping is deterministic.
                tracing::error!("skipping undecodable entry {}: {err}", e.index);
                continue;
            }
        };
        match envelope.kind {
            Some(pb::entry::Kind::GuestBatch(batch)) => {
                super::command::apply_batch(&mut b, &txn, e.index, e.term, batch, &mut outcomes)?;
                continue;
            }
            Some(pb::entry::Kind::GuestCommand(_)) => {}
            _ => host_tables = true,
        }
        let id = envelope.id;
        let (t, outcome) = apply_entry(&mut b, txn, e, envelope)?;
        txn = t;
        if id != 0 {
            outcomes.push((id, outcome));
        }
    }
    for metric in crate::guest_metrics::write(&txn, &b.metrics)? {
        b.uncommitted.metrics.insert(metric.name.clone(), metric);
    }
    if index > applied {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_APPLIED_INDEX, index.to_be_bytes().as_slice())?;
        meta.insert(META_APPLIED_TERM, term.to_be_bytes().as_slice())?;
        b.staged.kv_size.record(&mut meta)?;
    }
    let committed = match commit {
        Commit::Durable => Some(true),
        Commit::IfNeeded
            if host_tables || b.uncommitted.kv.len() > MAX_UNCOMMITTED_ROWS || shared.state_db.compaction_waiting() =>
        {
            Some(false)
        }
        Commit::IfNeeded => None,
    };
    match committed {
        Some(durable) => open.commit_taken(shared, txn, durable)?,
        None => open.keep(shared, txn, b.uncommitted),
    }
    shared.replicated.commit(b.staged);
    reconfigure::after_commit(shared, peer_changes);
    if let Some(observed) = b.observed
        && !observed.is_empty()
    {
        for o in &observers {
            o.applied(&observed);
        }
    }
    Ok(Applied { index, outcomes })
}

/// Whether a batch commits the open transaction at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Commit {
    /// Commit with fsync: the durable schedule is due.
    Durable,
    /// Only if the batch needs it (see [`apply_batch`]).
    IfNeeded,
}

/// Applies one normal entry by its kind; hands the transaction back for the next one.
fn apply_entry(
    b: &mut Batch,
    txn: WriteTransaction,
    e: &Entry,
    envelope: pb::Entry,
) -> Result<(WriteTransaction, Outcome), ApplyFailure> {
    let ctx = ApplyContext { index: e.index, term: e.term, time_unix_ms: envelope.time_unix_ms };
    let shared = b.shared;
    let outcome = match envelope.kind {
        Some(pb::entry::Kind::GuestCommand(command)) => {
            super::command::apply(b, &txn, ctx, envelope.auth_revision, command, None)?
        }
        // Taken apart by `apply_batch` before it gets here.
        Some(pb::entry::Kind::GuestBatch(_)) => Err(NodeError::Internal(format!("entry {} is a batch", e.index))),
        Some(pb::entry::Kind::GuestDeploy(deploy)) => return super::deploy::swap(b, txn, &deploy, e.index),
        Some(pb::entry::Kind::GuestModuleChunk(chunk)) => super::deploy::store_chunk(b, &txn, &chunk, e.index)?,
        Some(pb::entry::Kind::Publish(attrs)) => {
            shared.replicated.membership.apply_publish(&txn, &attrs, &mut b.staged.membership)?;
            Ok(Vec::new())
        }
        Some(pb::entry::Kind::Alarm(req)) => {
            Ok(crate::alarms::apply(&txn, &mut b.staged.alarms.list, &req)?.encode_to_vec())
        }
        Some(pb::entry::Kind::Auth(req)) => b
            .staged
            .auth
            .apply(&shared.replicated.auth, &txn, e.index, e.index > shared.logged_before_start, &req)?
            .map_err(NodeError::Auth),
        None => Err(NodeError::Internal(format!("entry {} has no command", e.index))),
    };
    Ok((txn, outcome))
}
