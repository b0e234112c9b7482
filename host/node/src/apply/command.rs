//! A client's guest command: through the refusal rules, then into the active guest.

use redb::WriteTransaction;

use super::super::NodeError;
use super::super::guest_store::GuestKv;
use super::super::wait::Outcome;
use super::batch::Batch;
use super::failure::ApplyFailure;
use super::rules;
use wasmraft_runtime::{ApplyContext, ApplyError};

/// Applies `command`, checked by its proposer against the auth store at `auth_revision`. A
/// refusal or the guest's `Err` is the client's outcome and the log goes on; `Err` here is a
/// failure of this member (storage, the runtime) that it cannot go on after.
pub(super) fn apply(
    b: &mut Batch,
    txn: &WriteTransaction,
    ctx: ApplyContext,
    auth_revision: u64,
    command: Vec<u8>,
) -> Result<Outcome, ApplyFailure> {
    if let Some(refused) = rules::refusal(b, b.staged.guest.active.as_deref(), &command, auth_revision) {
        if b.observing() {
            b.observe(ctx.index, command, Err(refused.to_string()), Vec::new());
        }
        return Ok(Err(refused));
    }
    let Some(active) = &b.staged.guest.active else {
        return Ok(Err(NodeError::NoGuest));
    };
    let mut kv = GuestKv::new(txn);
    let (result, events) = match active.guest.apply(&mut kv, ctx, &command) {
        Ok(applied) => {
            b.staged.kv_size.add(kv.size_delta());
            (Ok(applied.output), applied.events)
        }
        Err(ApplyError::Guest(text)) => (Err(text), Vec::new()),
        Err(source) => return Err(ApplyFailure::Command { index: ctx.index, source }),
    };
    if b.observing() {
        b.observe(ctx.index, command, result.clone(), events);
    }
    Ok(result.map_err(NodeError::Guest))
}
