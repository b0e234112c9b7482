//! The apply thread: committed entries → the guest → the state database → waiting clients.
//!
//! Entries arrive in the order raft committed them and are applied in batches: one redb write
//! transaction per batch, in which each entry runs in a fresh guest instance, and the applied
//! index is written in the same transaction, so the state and the index it reflects can never
//! disagree. Waiters are woken only after the transaction commits, so a client that got its
//! answer can read its own write at once.
//!
//! The state database is committed without fsync (the raft log, fsynced, can replay anything a
//! crash loses), except once a second (after a second without work, too), which bounds replay
//! work after a crash and lets the raft log be compacted behind it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType};
use redb::{Durability, ReadableDatabase};
use wasmraft_proto::wasmraft::v1 as pb;

use wasmraft_runtime::{ApplyContext, ApplyError};

use super::guest_store::GuestKv;
use super::wait::Outcome;
use super::{AppliedCommand, ApplyMsg, NodeError, RaftMsg, Shared};
use crate::deployment::{self, Deployed};
use crate::storage::tables::{GUEST_KV, META, META_APPLIED_INDEX, META_APPLIED_TERM};

/// Entries applied in one transaction at most, so waiters of the first entries aren't held back
/// by a huge backlog.
const MAX_BATCH: usize = 4096;
/// How often the state database is made durable.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Reads the applied index and term recorded with the state (0, 0 for a new member), creating
/// the state tables if needed.
pub fn load_applied(db: &redb::Database) -> anyhow::Result<(u64, u64)> {
    let txn = db.begin_write()?;
    txn.open_table(GUEST_KV)?;
    txn.open_table(META)?;
    deployment::create_tables(&txn)?;
    txn.commit()?;
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let read = |k: &str| -> anyhow::Result<u64> {
        Ok(match meta.get(k)? {
            Some(v) => u64::from_be_bytes(v.value().try_into().context("corrupt applied index")?),
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
                        shared.fail(format!("making the state durable at {applied}: {e:#}"));
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
                shared.fail(format!("apply stopped at index {}: {e:#}", applied + 1));
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
        tracing::warn!("final state commit failed (the log will replay it): {e:#}");
    }
}

/// Installs the snapshot raft accepted at `index` unless the state is already newer; returns
/// the applied index of the state, or None after recording a fatal error.
fn swap_in_snapshot(shared: &Shared, index: u64, path: &std::path::Path, applied: u64) -> Option<u64> {
    // Two snapshots can arrive back to back, the first carrying state newer than the second:
    // the state we have is then already consistent with the log after the second snapshot's
    // index, and installing the older one would only rewind it.
    match crate::storage::snapshot::applied_index_of(path) {
        Ok(file_index) if file_index <= applied => {
            tracing::info!(
                "snapshot {index} carries state at {file_index}; the state is already at {applied}, keeping it"
            );
            let _ = shared.to_raft.send(RaftMsg::Applied(applied));
            return Some(applied);
        }
        Ok(_) => {}
        Err(e) => {
            shared.fail(format!("reading snapshot {}: {e:#}{}", path.display(), drop_if_damaged(path)));
            return None;
        }
    }
    let state_index = match install_snapshot(&shared.state_db.db(), path) {
        Ok(i) => i,
        Err(e) => {
            shared.fail(format!("installing snapshot {}: {e:#}{}", path.display(), drop_if_damaged(path)));
            return None;
        }
    };
    match crate::membership::Membership::load(&shared.state_db.db()) {
        Ok(m) => shared.membership.replace_with(m),
        Err(e) => {
            shared.fail(format!("reloading membership after snapshot {index}: {e:#}"));
            return None;
        }
    }
    match crate::alarms::Alarms::load(&shared.state_db.db()) {
        Ok(a) => shared.alarms.replace(a.list()),
        Err(e) => {
            shared.fail(format!("reloading alarms after snapshot {index}: {e:#}"));
            return None;
        }
    }
    if let Err(e) = shared.auth.reload(&shared.state_db.db()) {
        shared.fail(format!("reloading the auth store after snapshot {index}: {e:#}"));
        return None;
    }
    // The snapshot carries the deployment record and the modules: run what it says is active.
    match deployment::load_active(&shared.state_db.db(), &shared.registry) {
        Ok(active) => {
            shared.deployed.send_replace(active.as_ref().map(|a| a.record.clone()));
            *shared.active.write().unwrap_or_else(|p| p.into_inner()) = active.map(Arc::new);
        }
        Err(e) => {
            shared.fail(format!("loading the active guest after snapshot {index}: {e:#}"));
            return None;
        }
    }
    tracing::info!("applied snapshot {index}: the state is now at index {state_index}");
    for o in shared.observers.read().unwrap_or_else(|p| p.into_inner()).iter() {
        o.state_replaced();
    }
    remove_older_snapshots(shared, index);
    shared.applied.send_replace(state_index);
    let _ = shared.to_raft.send(RaftMsg::Applied(state_index));
    let _ = shared.to_raft.send(RaftMsg::Durable(state_index));
    Some(state_index)
}

/// After a snapshot failed to install: removes its file if the file itself is damaged (it can
/// never install; the member needs the cluster's help), and keeps it otherwise (a full disk,
/// say: the log already says the snapshot replaced it, and a restart installs the file again).
/// Says which, for the error.
fn drop_if_damaged(path: &std::path::Path) -> String {
    match crate::storage::snapshot::verify(path) {
        Ok(()) => "; the file is intact and kept, a restart installs it again".into(),
        Err(damage) => match std::fs::remove_file(path) {
            Ok(()) => format!("; the file is damaged ({damage:#}) and was removed"),
            Err(e) => format!("; the file is damaged ({damage:#}), and removing it failed: {e}"),
        },
    }
}

/// Replaces the state database's tables with a snapshot file's, durably, and returns the
/// applied index the snapshot's state reflects.
pub(crate) fn install_snapshot(db: &redb::Database, path: &std::path::Path) -> anyhow::Result<u64> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let index = crate::storage::snapshot::install(&txn, path)?;
    txn.commit()?;
    Ok(index)
}

/// Removes received snapshot files older than the one just installed. Newer ones stay: raft
/// may already have accepted one that the apply thread has yet to install.
fn remove_older_snapshots(shared: &Shared, installed: u64) {
    if let Ok(dir) = std::fs::read_dir(&shared.snap_dir) {
        for entry in dir.flatten() {
            let p = entry.path();
            let older = p.extension().is_some_and(|e| e == "snap")
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .is_some_and(|i| i < installed);
            if older {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn make_durable(db: &redb::Database) -> anyhow::Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

/// Applies `entries` past `applied` in one transaction. Returns the new applied index and the
/// outcomes for waiting clients. An `Err` is a storage failure: the member cannot go on.
fn apply_batch(
    shared: &Arc<Shared>,
    entries: &[Entry],
    applied: u64,
    durable: bool,
) -> anyhow::Result<(u64, Vec<(u64, Outcome)>)> {
    // The guest for this batch's entries; a deploy entry in the batch replaces it for the
    // entries after it.
    let mut active = shared.active.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut switched = false;
    let mut txn = shared.state_db.begin_write()?;
    txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
    let mut outcomes = Vec::new();
    let mut members = crate::membership::Staged::default();
    let mut peer_changes = super::reconfigure::PeerChanges::default();
    // The alarms as this batch changes them: an entry sees the alarms raised before it.
    let mut alarms = shared.alarms.list();
    let alarms_before = alarms.clone();
    let mut auth = crate::auth::Staged::default();
    let observers = shared.observers.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut observed = Vec::new();
    let (mut index, mut term) = (applied, 0);
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
            if let Some((id, outcome)) =
                super::reconfigure::apply_entry(shared, &txn, e, &mut members, &mut peer_changes)?
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
        let ctx = ApplyContext { index: e.index, term: e.term, time_unix_ms: envelope.time_unix_ms };
        let outcome = match envelope.kind {
            Some(pb::entry::Kind::Publish(attrs)) => {
                shared.membership.apply_publish(&txn, &attrs, &mut members)?;
                Ok(Vec::new())
            }
            Some(pb::entry::Kind::Alarm(req)) => Ok(crate::alarms::apply(&txn, &mut alarms, &req)?.encode_to_vec()),
            Some(pb::entry::Kind::Auth(req)) => auth
                .apply(&shared.auth, &txn, e.index, e.index > shared.logged_before_start, &req)?
                .map_err(NodeError::Auth),
            Some(pb::entry::Kind::GuestCommand(command)) if auth.is_stale(&shared.auth, envelope.auth_revision) => {
                // Checked against an auth store that has changed since: etcd's refusal, on
                // every member at this index.
                let refused = crate::auth::AuthError::AuthOldRevision;
                if !observers.is_empty() {
                    observed.push(AppliedCommand {
                        index: e.index,
                        command,
                        result: Err(refused.to_string()),
                        events: Vec::new(),
                    });
                }
                Err(NodeError::Auth(refused))
            }
            Some(pb::entry::Kind::GuestCommand(command)) => match &active {
                Some(a)
                    if crate::alarms::is_capped(&alarms)
                        && a.record.apis.iter().any(|x| x == wasmraft_proto::contract::ETCD_KV_API)
                        && crate::alarms::refused_when_capped(&command) =>
                {
                    // etcd's applierV3Capped: the same refusal on every member, at this index.
                    if !observers.is_empty() {
                        observed.push(AppliedCommand {
                            index: e.index,
                            command,
                            result: Err(crate::alarms::NO_SPACE.to_string()),
                            events: Vec::new(),
                        });
                    }
                    Err(NodeError::Guest(crate::alarms::NO_SPACE.to_string()))
                }
                Some(a) => {
                    let result = a.guest.apply(&mut GuestKv::new(&txn), ctx, &command);
                    let (result, events) = match result {
                        Ok(applied) => (Ok(applied.output), applied.events),
                        Err(ApplyError::Guest(text)) => (Err(text), Vec::new()),
                        Err(err) => return Err(anyhow::Error::new(err).context(format!("applying entry {}", e.index))),
                    };
                    if !observers.is_empty() {
                        observed.push(AppliedCommand { index: e.index, command, result: result.clone(), events });
                    }
                    result.map_err(NodeError::Guest)
                }
                None => Err(NodeError::NoGuest),
            },
            Some(pb::entry::Kind::GuestModuleChunk(chunk)) => match deployment::apply_chunk(&txn, &chunk, e.index)? {
                Ok(stored) => {
                    if let Some(module) = stored {
                        // The swap to it is likely next: compile now, off this thread.
                        let stack = active
                            .as_ref()
                            .map_or(wasmraft_runtime::limits::DEFAULT_STACK_BYTES, |a| a.guest.limits().stack_bytes);
                        shared.registry.prepare(module, stack);
                    }
                    Ok(Vec::new())
                }
                Err(refused) => Err(NodeError::DeployRefused(refused.to_string())),
            },
            Some(pb::entry::Kind::GuestDeploy(deploy)) => {
                let started = Instant::now();
                let (t, result) = deployment::apply_deploy(txn, &deploy, e.index, active.as_deref(), &shared.registry);
                txn = t;
                match result {
                    Ok(Deployed::Switched(a, events)) => {
                        // The migration's writes are the entry's: watchers get their events.
                        if !observers.is_empty() && !events.is_empty() {
                            observed.push(AppliedCommand {
                                index: e.index,
                                command: Vec::new(),
                                result: Ok(Vec::new()),
                                events,
                            });
                        }
                        tracing::info!(
                            "wasmraft: switched to guest {} {} (sha256 {}) at index {}; the swap entry took {:.1} ms to apply",
                            a.record.name,
                            a.record.version,
                            a.hash_hex(),
                            e.index,
                            started.elapsed().as_secs_f64() * 1000.0
                        );
                        wasmraft_metrics::metrics().guest_swaps.inc();
                        let out = a.record.encode_to_vec();
                        active = Some(Arc::new(a));
                        switched = true;
                        Ok(out)
                    }
                    Ok(Deployed::Unchanged(record)) => Ok(record.encode_to_vec()),
                    Err(ApplyError::Guest(text)) => {
                        tracing::warn!("wasmraft: guest swap at index {} refused: {text}", e.index);
                        Err(NodeError::DeployRefused(text))
                    }
                    Err(err) => return Err(anyhow::Error::new(err).context(format!("applying guest swap {}", e.index))),
                }
            }
            None => Err(NodeError::Internal(format!("entry {} has no command", e.index))),
        };
        if envelope.id != 0 {
            outcomes.push((envelope.id, outcome));
        }
    }
    if index > applied {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_APPLIED_INDEX, index.to_be_bytes().as_slice())?;
        meta.insert(META_APPLIED_TERM, term.to_be_bytes().as_slice())?;
    }
    let committing = Instant::now();
    txn.commit()?;
    wasmraft_metrics::metrics().backend_commit.observe(committing.elapsed().as_secs_f64());
    shared.membership.commit(members);
    auth.commit(&shared.auth);
    super::reconfigure::after_commit(shared, peer_changes);
    if alarms != alarms_before {
        shared.alarms.replace(alarms);
    }
    if !observed.is_empty() {
        for o in &observers {
            o.applied(&observed);
        }
    }
    if switched {
        shared.deployed.send_replace(active.as_ref().map(|a| a.record.clone()));
        *shared.active.write().unwrap_or_else(|p| p.into_inner()) = active;
    }
    Ok((index, outcomes))
}
