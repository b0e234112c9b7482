//! The commands of one raft entry, applied one after another in one guest instance.
//!
//! A proposer packs the client commands that queue up while its previous proposal is in flight
//! into one entry (proposal batching, in the node). Instantiating a guest and resetting its
//! memory afterwards was a fifth of the apply thread's time when every command had its own
//! instance; an entry's commands share one instead, which stays deterministic because the
//! grouping is in the log: every member, and every replay, runs the same commands in the same
//! instance in the same order.
//!
//! Each command still has its own fuel budget, writes, events, metrics and result: an `Err`
//! drops only that command's writes (they are in the call's overlay, `host_store.rs`), and the
//! instance goes on to the next command, since the guest returned normally. A command that
//! traps, runs out of fuel or memory, or breaks a host limit in an instance that already ran a
//! command is run again in a fresh instance, whose outcome is the one that counts: what a
//! command gets never depends on the garbage an earlier one left in linear memory. After any
//! failure the next command starts in a fresh instance too.
//!
//! Only a guest that declares [`SHARED_ENTRY_INSTANCE`] shares instances (every guest built
//! on the SDK does: the SDK keeps no state between calls); for any other, each command gets a
//! fresh instance as before.

use wasmtime::Store;

use crate::bindings::StateMachine;
use crate::bindings::wasmraft::guest::types as wit;
use crate::call::{Applied, ApplyContext};
use crate::error::ApplyError;
use crate::host_store::{HostState, Lent};
use crate::runtime::{Guest, finish_classified};
use crate::slots::SlotPermit;
use crate::store::{StoreWrite, Writes};
use wasmraft_metrics::{GuestFailure, metrics};

/// The api a guest lists in its `info` to say that the commands of one entry may run in one
/// instance, one after another. A guest that says so keeps nothing in linear memory (statics
/// included) from one `apply` to the next that could change a later command's outcome.
pub const SHARED_ENTRY_INSTANCE: &str = "wasmraft.shared-entry-instance";

/// One entry's run of commands. Dropping it returns its instance to the pool.
pub struct EntryRun<'g> {
    guest: &'g Guest,
    kept: Option<Kept<'g>>,
}

/// The instance the entry's earlier commands ran in, and the pool slot it holds.
struct Kept<'g> {
    store: Store<HostState>,
    sm: StateMachine,
    _slot: SlotPermit<'g>,
}

impl Guest {
    /// A run for the commands of one entry (see the module's documentation).
    pub fn entry_run(&self) -> EntryRun<'_> {
        EntryRun { guest: self, kept: None }
    }
}

impl<'g> EntryRun<'g> {
    /// Applies one command of the entry, like [`Guest::apply`] (the same outcomes, the same
    /// contract for `store`), in the entry's instance when the guest allows it.
    pub fn apply(&mut self, kv: &mut dyn StoreWrite, ctx: ApplyContext, command: &[u8]) -> Result<Applied, ApplyError> {
        let guest = self.guest;
        if !guest.shares_instances() {
            return guest.apply(kv, ctx, command);
        }
        let reused = self.kept.is_some();
        let mut kept = match self.kept.take() {
            Some(k) => k,
            None => self.fresh()?,
        };
        let limits = *guest.limits();
        kept.store.data_mut().reset_for_next_call();
        kept.store
            .set_fuel(limits.fuel_per_entry)
            .map_err(|e| ApplyError::Host(format!("wasmraft: cannot set guest fuel: {e:#}")))?;
        let started = std::time::Instant::now();
        let wit_ctx = wit::ApplyContext { index: ctx.index, term: ctx.term, time_unix_ms: ctx.time_unix_ms };
        let (result, fuel_left) = {
            let mut lent = Lent::new(&mut kept.store, &*kv, true);
            let result = kept.sm.call_apply(&mut *lent, wit_ctx, command);
            (result, lent.get_fuel().unwrap_or(0))
        };
        let m = metrics();
        m.guest_apply_duration.observe(started.elapsed().as_secs_f64());
        m.guest_fuel_consumed.inc_by(limits.fuel_per_entry.saturating_sub(fuel_left));
        let returned = result.is_ok();
        let state = kept.store.data_mut();
        match finish_classified(result, state, &limits) {
            Ok((output, state)) => {
                let writes = Writes(std::mem::take(&mut state.overlay));
                let applied = Applied {
                    output,
                    events: std::mem::take(&mut state.events),
                    metrics: std::mem::take(&mut state.metrics),
                };
                if !writes.is_empty() {
                    kv.write(&writes)?;
                }
                self.kept = Some(kept);
                Ok(applied)
            }
            // The guest's own answer: the instance returned normally and serves the next one.
            Err((e, Some(GuestFailure::Err))) if returned => {
                m.guest_failed(GuestFailure::Err);
                self.kept = Some(kept);
                Err(e)
            }
            // Storage or the host: the caller stops; nothing to retry.
            Err((e, None)) => Err(e),
            // The guest failed in an instance an earlier command had used: what it left there
            // must not decide this command's fate, so the command runs again alone.
            Err(_) if reused => {
                drop(kept);
                guest.apply(kv, ctx, command)
            }
            Err((e, Some(kind))) => {
                m.guest_failed(kind);
                Err(e)
            }
        }
    }

    /// A fresh instance with its pool slot, or the failure to make one (counted as
    /// [`Guest::apply`] counts it).
    fn fresh(&self) -> Result<Kept<'g>, ApplyError> {
        let guest = self.guest;
        let slot = guest.slots().acquire();
        let limits = *guest.limits();
        let mut store = guest.new_store(&limits)?;
        let sm = guest.instantiate_in(&mut store, &limits).map_err(|(e, kind)| {
            if let Some(kind) = kind {
                metrics().guest_failed(kind);
            }
            e
        })?;
        Ok(Kept { store, sm, _slot: slot })
    }
}
