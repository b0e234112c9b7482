//! A client's guest command: through the refusal rules, then into the active guest; and an
//! entry of several commands (proposal batching), each as if it had the entry to itself.

use std::time::Instant;

use redb::WriteTransaction;
use wasmraft_proto::contract::ETCD_KV_API;

use super::super::NodeError;
use super::super::guest_store::GuestKv;
use super::super::wait::Outcome;
use super::batch::Batch;
use super::failure::ApplyFailure;
use super::rules;
use wasmraft_proto::wasmraft::v1 as pb;
use wasmraft_runtime::{ApplyContext, ApplyError, EntryRun};

/// Applies `command`, checked by its proposer against the auth store at `auth_revision`. A
/// refusal or the guest's `Err` is the client's outcome and the log goes on; `Err` here is a
/// failure of this member (storage, the runtime) that it cannot go on after. `run` is the
/// entry's run of commands when the entry carries several (a [`pb::GuestBatch`]), made from
/// the active guest.
pub(super) fn apply(
    b: &mut Batch,
    txn: &WriteTransaction,
    ctx: ApplyContext,
    auth_revision: u64,
    command: Vec<u8>,
    run: Option<&mut EntryRun<'_>>,
) -> Result<Outcome, ApplyFailure> {
    let started = Instant::now();
    let active = b.staged.guest.active.as_deref();
    let etcd_kv = active.is_some_and(|a| a.record.apis.iter().any(|api| api == ETCD_KV_API));
    let (result, events) = if let Some(refused) = rules::refusal(b, active, &command, auth_revision) {
        (Err(refused), Vec::new())
    } else if let Some(active) = active {
        let mut kv = GuestKv::recording(txn, &mut b.uncommitted.kv);
        let applied = match run {
            Some(run) => run.apply(&mut kv, ctx, &command),
            None => active.guest.apply(&mut kv, ctx, &command),
        };
        match applied {
            Ok(applied) => {
                b.staged.kv_size.add(kv.size_delta());
                for (name, update) in applied.metrics {
                    wasmraft_runtime::MetricUpdate::merge(&mut b.metrics, name, update);
                }
                (Ok(applied.output), applied.events)
            }
            Err(ApplyError::Guest(text)) => (Err(NodeError::Guest(text)), Vec::new()),
            Err(source) => return Err(ApplyFailure::Command { index: ctx.index, source }),
        }
    } else {
        (Err(NodeError::NoGuest), Vec::new())
    };
    crate::slow::check(b.shared.limits.apply.warning_apply_duration, started, etcd_kv, &command, &result);
    // Before the first deploy there is nothing to observe (as before: no guest, no observers'
    // business).
    if b.observing() && !matches!(result, Err(NodeError::NoGuest)) {
        let events = if result.is_ok() { events } else { Vec::new() };
        let observed = match &result {
            Ok(output) => Ok(output.clone()),
            Err(NodeError::Guest(text)) => Err(text.clone()),
            Err(refused) => Err(refused.to_string()),
        };
        b.observe(ctx.index, command, observed, events);
    }
    Ok(result)
}

/// Applies the commands of one batched entry in order, each with its own id, proposer time and
/// auth check, sharing one guest instance where the guest allows it; appends each waiting
/// client's outcome to `outcomes`.
pub(super) fn apply_batch(
    b: &mut Batch,
    txn: &WriteTransaction,
    index: u64,
    term: u64,
    batch: pb::GuestBatch,
    outcomes: &mut Vec<(u64, Outcome)>,
) -> Result<(), ApplyFailure> {
    // The entry cannot change the active guest (only a deploy entry does), so its run is made
    // from the one active now.
    let active = b.staged.guest.active.clone();
    let mut run = active.as_ref().map(|a| a.guest.entry_run());
    for c in batch.commands {
        let ctx = ApplyContext { index, term, time_unix_ms: c.time_unix_ms };
        let outcome = apply(b, txn, ctx, c.auth_revision, c.command, run.as_mut())?;
        if c.id != 0 {
            outcomes.push((c.id, outcome));
        }
    }
    Ok(())
}
