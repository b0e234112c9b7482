//! The raft thread: one loop, read top to bottom, that owns raft-rs's `RawNode`.
//!
//! Each turn: take every queued message (proposals, read requests, apply progress), tick if a
//! heartbeat interval passed, then handle the Ready:
//!
//! 1. messages a leader may send before persisting go out first, so followers write their logs
//!    while the leader writes its own (raft thesis 10.2.1);
//! 2. committed entries go to the apply thread (they are durable already);
//! 3. new entries and hard state are written with one fsync;
//! 4. messages that must follow persistence go out, read states are answered;
//! 5. `advance`, and the light Ready's commit index and entries are handled the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use raft::eraftpb::{Entry, Message, MessageType};
use raft::{RawNode, StateRole};
use tokio::sync::oneshot;

use super::conf_gate::ConfGate;
use super::log_store::LogStore;
use super::proposal_batch::{Batcher, Gathered};
use super::reconfigure::RaftConfError;
use super::{ApplyMsg, NodeError, RaftMsg, Shared};
use crate::error_chain::Chain;

/// Reads waiting for one ReadIndex round, keyed by the context we gave raft.
struct PendingReads {
    next_ctx: u64,
    /// Requests that arrived this turn; they share the next ReadIndex (batching).
    queued: Vec<ReadWaiter>,
    /// When the oldest queued read arrived (reads queue while there is no leader).
    queued_since: Option<Instant>,
    /// By request context: the reads waiting for its index.
    in_flight: HashMap<u64, InFlightRead>,
}

/// One ReadIndex request raft has not answered yet.
struct InFlightRead {
    /// When the oldest of its reads arrived (a retry keeps it: the timeout is the client's).
    since: Instant,
    /// When this request was made.
    asked: Instant,
    waiters: Vec<ReadWaiter>,
}

/// A ReadIndex unanswered this long is asked again, under a new context (etcd 3.5's
/// `readIndexRetryTime`): the leader it went to may have died or stepped down, or it may be a
/// new leader that dropped it before committing in its term; nobody tells the asker. Asking
/// again after a failover answers the read instead of failing it at the request timeout.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

/// Why the raft thread stopped handling Readies: the member cannot go on.
#[derive(Debug, thiserror::Error)]
enum ReadyError {
    /// The transport saves a snapshot's state before raft sees the message; raft took one
    /// whose file is gone.
    #[error("raft accepted snapshot {index} but its state file {} is missing", path.display())]
    SnapshotFileMissing { index: u64, path: std::path::PathBuf },
    /// Writing entries, the hard state or the snapshot's place to the raft log failed.
    #[error(transparent)]
    Log(#[from] wasmraft_storage::LogError),
    #[error("the apply thread has stopped")]
    ApplyStopped,
}

/// A read barrier waiting for the index a ReadIndex confirms.
type ReadWaiter = oneshot::Sender<Result<u64, NodeError>>;

pub(crate) fn run(
    mut node: RawNode<LogStore>,
    rx: Receiver<RaftMsg>,
    to_apply: Sender<ApplyMsg>,
    shared: Arc<Shared>,
    tick: Duration,
) {
    let mut reads = PendingReads { next_ctx: 0, queued: Vec::new(), queued_since: None, in_flight: HashMap::new() };
    let mut held = HeldProposals::default();
    let mut batcher = Batcher::new(shared.limits.proposal_batch_limit, shared.limits.max_request_bytes);
    let mut conf_gate = ConfGate::default();
    let mut heartbeats = HeartbeatWatch::new(2 * tick);
    let mut next_tick = Instant::now() + tick;
    // Another turn at once: the applied index moved while a conf change waited on it.
    let mut again = false;
    loop {
        let wait = if again { Duration::ZERO } else { next_tick.saturating_duration_since(Instant::now()) };
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        catch_up_applied(&mut node, *shared.progress.applied.borrow());
        let mut stop = false;
        for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                RaftMsg::ProposeCommand(command) => {
                    if let Some(full) = batcher.push(command) {
                        propose_gathered(&mut node, &shared, &mut held, full);
                    }
                }
                RaftMsg::Propose { id, data } => {
                    // The commands gathered so far came first.
                    if let Some(gathered) = batcher.take() {
                        propose_gathered(&mut node, &shared, &mut held, gathered);
                    }
                    if !may_propose(&node) {
                        // Like etcd, a proposal waits for a leader (until its client's timeout)
                        // rather than failing during an election or a leader transfer.
                        held.hold(id, data, &shared);
                    } else if let Err(e) = node.propose(Vec::new(), data) {
                        tracing::debug!("proposal {id:x} dropped: {e}");
                        shared.waits.trigger(id, Err(NodeError::NoLeader));
                    }
                }
                RaftMsg::TransferLeader { to, reply } => {
                    let result = if node.raft.leader_id != shared.member_id {
                        Err(NodeError::NotLeader)
                    } else if !node.raft.prs().conf().voters().contains(to) {
                        Err(NodeError::BadLeaderTransferee)
                    } else {
                        tracing::info!("leadership transfer from {:x} to {to:x} starting", shared.member_id);
                        node.transfer_leader(to);
                        Ok(())
                    };
                    let _ = reply.send(result);
                }
                RaftMsg::ProposeConfChange { id, proposal } => conf_gate.propose(&mut node, &shared, id, proposal),
                RaftMsg::ApplyConfChange { cc, reply } => {
                    let applied = node.apply_conf_change(&cc).map_err(RaftConfError::Refused).and_then(|cs| {
                        node.mut_store().set_conf_state(&cs).map(|_| cs).map_err(RaftConfError::Persist)
                    });
                    let _ = reply.send(applied);
                }
                RaftMsg::LearnerReady { id, reply } => {
                    let _ = reply.send(super::reconfigure::learner_ready(&node, id));
                }
                RaftMsg::ReadIndex { reply } => {
                    reads.queued_since.get_or_insert_with(Instant::now);
                    reads.queued.push(reply);
                }
                RaftMsg::Applied(index) => {
                    catch_up_applied(&mut node, index);
                }
                RaftMsg::AdvanceTicks(n) => {
                    for _ in 0..n {
                        node.tick();
                    }
                }
                RaftMsg::CommitState(reply) => {
                    // Behind every entry handed over so far; if the apply thread is gone the
                    // reply is dropped and the asker told the member stops.
                    let _ = to_apply.send(ApplyMsg::Commit(reply));
                }
                RaftMsg::Durable(index) => {
                    if let Err(e) = compact(&mut node, &shared, index) {
                        shared.fail(format!("compacting the raft log: {}", Chain(&e)));
                        break;
                    }
                }
                RaftMsg::Step(m) if super::conf_gate::is_forwarded_conf_change(&m) => {
                    conf_gate.step(&mut node, &shared, m)
                }
                RaftMsg::Step(m) if m.get_msg_type() == MessageType::MsgPropose && !may_propose(&node) => {
                    // Another member's forwarded proposals, which raft would drop while this
                    // member hands leadership over or knows no leader (it stepped down, or
                    // campaigns): held, then proposed or forwarded to the new leader.
                    held.hold_forwarded(m);
                }
                RaftMsg::Step(m) => {
                    let (from, kind) = (m.from, m.get_msg_type());
                    if let Err(e) = node.step(m) {
                        tracing::debug!("dropping {kind:?} from {from:x}: {e}");
                    }
                }
                RaftMsg::StepSnapshot { m, file } => {
                    if let Err(e) = step_snapshot(&mut node, &shared.snap_dir, m, &file) {
                        shared.fail(format!("keeping a received snapshot: {}", Chain(&e)));
                        break;
                    }
                }
                RaftMsg::Unreachable(id) => node.report_unreachable(id),
                RaftMsg::SnapshotStatus(id, status) => node.report_snapshot(id, status),
                RaftMsg::Stop => stop = true,
            }
        }
        // Everything queued has been read: what was gathered goes into one entry now.
        if let Some(gathered) = batcher.take() {
            propose_gathered(&mut node, &shared, &mut held, gathered);
        }
        if stop {
            break;
        }
        if Instant::now() >= next_tick {
            node.tick();
            next_tick += tick;
            if next_tick < Instant::now() {
                // We fell behind (a long fsync): don't burst ticks, which would force elections.
                next_tick = Instant::now() + tick;
            }
            reads.expire(shared.limits.request_timeout);
            reads.retry_unanswered();
            held.forget_abandoned(&shared);
        }
        conf_gate.release(&mut node, &shared, shared.limits.request_timeout);
        if may_propose(&node) && !held.is_empty() {
            held.release(&mut node, &shared);
        }
        if !reads.queued.is_empty() {
            if node.raft.leader_id == raft::INVALID_ID {
                // Reads wait for a leader too (etcd's linearizable reads do); their clients give
                // up at the request timeout.
                reads.expire_queued(shared.limits.request_timeout);
            } else if node.raft.state == StateRole::Leader && !node.raft.commit_to_current_term() {
                // raft-rs drops a ReadIndex until the new leader has committed an entry of its
                // own term (its no-op, in a moment): hold the reads until then.
            } else {
                reads.next_ctx += 1;
                node.read_index(read_ctx(shared.member_id, reads.next_ctx));
                let waiters = std::mem::take(&mut reads.queued);
                let now = Instant::now();
                let since = reads.queued_since.take().unwrap_or(now);
                reads.in_flight.insert(reads.next_ctx, InFlightRead { since, asked: now, waiters });
            }
        }
        if let Err(e) = on_ready(&mut node, &to_apply, &shared, &mut reads, &mut heartbeats) {
            shared.fail(format!("raft loop stopped: {}", Chain(&e)));
            break;
        }
        publish_lone_leader(&node, &shared);
        again = wants_applied(&mut node, &shared, &conf_gate);
    }
    shared.progress.lone_leader.store(false, Ordering::Release);
    for (_, read) in reads.in_flight.drain() {
        for w in read.waiters {
            let _ = w.send(Err(NodeError::Stopped));
        }
    }
}

/// Proposes gathered guest commands as one entry, or holds them (one by one) while there is no
/// leader, as a single proposal is held.
fn propose_gathered(node: &mut RawNode<LogStore>, shared: &Shared, held: &mut HeldProposals, gathered: Gathered) {
    if !may_propose(node) {
        for (id, data) in gathered.into_singles() {
            held.hold(id, data, shared);
        }
        return;
    }
    let ids: Vec<u64> = gathered.ids().collect();
    if let Err(e) = node.propose(Vec::new(), gathered.encode()) {
        tracing::debug!("{} proposals dropped: {e}", ids.len());
        for id in ids {
            shared.waits.trigger(id, Err(NodeError::NoLeader));
        }
    }
}

/// Whether raft takes a proposal now: there is a leader, and it is not handing leadership
/// over (raft-rs drops proposals on a leader while a transfer is under way; they are held
/// until the new leader is known and then forwarded to it, instead of failing the client
/// with "no leader" for a change it asked for or that a rolling restart made).
fn may_propose(node: &RawNode<LogStore>) -> bool {
    node.raft.leader_id != raft::INVALID_ID && node.raft.lead_transferee.is_none()
}

/// etcd's heartbeat timeout detector (`contention.TimeoutDetector`): a leader whose heartbeats
/// to a member are more than two heartbeat intervals apart failed to send one on time (a slow
/// fsync or an overloaded raft thread held the loop), counted as
/// `etcd_server_heartbeat_send_failures_total`.
struct HeartbeatWatch {
    max_gap: Duration,
    last: HashMap<u64, Instant>,
}

impl HeartbeatWatch {
    fn new(max_gap: Duration) -> Self {
        HeartbeatWatch { max_gap, last: HashMap::new() }
    }

    fn reset(&mut self) {
        self.last.clear();
    }

    /// Records a heartbeat to `to` at `now`; false (and counted) when it came late.
    fn sent(&mut self, to: u64, now: Instant) -> bool {
        let late = self.last.insert(to, now).is_some_and(|prev| now.saturating_duration_since(prev) > self.max_gap);
        if late {
            wasmraft_metrics::metrics().heartbeat_send_failures.inc();
            tracing::warn!(
                "leader failed to send out heartbeat to {to:x} on time; took too long, leader is overloaded likely from slow disk"
            );
        }
        !late
    }
}

/// Proposals that arrived while there was no leader, in arrival order. Bounded: past the
/// bound, new ones fail at once with "no leader" instead of piling up.
#[derive(Default)]
struct HeldProposals {
    queue: std::collections::VecDeque<(u64, Vec<u8>)>,
    /// Proposals other members forwarded here while raft would have dropped them (see
    /// [`may_propose`]), with when they came (their clients wait elsewhere: they are dropped after a request
    /// timeout).
    forwarded: Vec<(Instant, Message)>,
}

const MAX_HELD_PROPOSALS: usize = 4096;

impl HeldProposals {
    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.forwarded.is_empty()
    }

    fn hold_forwarded(&mut self, m: Message) {
        if self.forwarded.len() < MAX_HELD_PROPOSALS {
            self.forwarded.push((Instant::now(), m));
        }
    }

    fn hold(&mut self, id: u64, data: Vec<u8>, shared: &Shared) {
        if self.queue.len() >= MAX_HELD_PROPOSALS {
            shared.waits.trigger(id, Err(NodeError::NoLeader));
        } else {
            self.queue.push_back((id, data));
        }
    }

    /// Drops proposals whose clients stopped waiting (they timed out during a long election).
    fn forget_abandoned(&mut self, shared: &Shared) {
        if !self.queue.is_empty() {
            self.queue.retain(|(id, _)| shared.waits.is_waiting(*id));
        }
        if !self.forwarded.is_empty() {
            self.forwarded.retain(|(at, _)| at.elapsed() < shared.limits.request_timeout);
        }
    }

    /// Proposes what is still wanted (a client that timed out has cancelled its wait).
    fn release(&mut self, node: &mut RawNode<LogStore>, shared: &Shared) {
        // The leader now takes them; a follower forwards them to it.
        for (_, m) in self.forwarded.drain(..) {
            let from = m.from;
            if let Err(e) = node.step(m) {
                tracing::debug!("held proposal forwarded by {from:x} dropped: {e}");
            }
        }
        for (id, data) in self.queue.drain(..) {
            if !shared.waits.is_waiting(id) {
                continue;
            }
            if let Err(e) = node.propose(Vec::new(), data) {
                tracing::debug!("held proposal {id:x} dropped: {e}");
                shared.waits.trigger(id, Err(NodeError::NoLeader));
            }
        }
    }
}

impl PendingReads {
    /// Fails queued reads once the oldest has waited a request timeout for a leader.
    fn expire_queued(&mut self, timeout: Duration) {
        if self.queued_since.is_some_and(|t| t.elapsed() >= timeout) {
            // No leader to ask for a read index: etcd's failed read index.
            wasmraft_metrics::metrics().read_indexes_failed.inc();
            for r in self.queued.drain(..) {
                let _ = r.send(Err(NodeError::Timeout));
            }
            self.queued_since = None;
        }
    }

    /// Forgets reads whose ReadIndex was lost (a leader change drops them); their clients have
    /// timed out by now.
    fn expire(&mut self, timeout: Duration) {
        let expired: Vec<u64> =
            self.in_flight.iter().filter(|(_, r)| r.since.elapsed() >= timeout).map(|(ctx, _)| *ctx).collect();
        for ctx in expired {
            if let Some(read) = self.in_flight.remove(&ctx) {
                // Asked but never answered: etcd's slow (timed out) read index.
                wasmraft_metrics::metrics().slow_read_indexes.inc();
                for w in read.waiters {
                    let _ = w.send(Err(NodeError::Timeout));
                }
            }
        }
    }

    /// Queues again the reads of every request unanswered for [`READ_INDEX_RETRY`], to be
    /// asked under a new context; an answer to the old one, if it ever comes, is ignored.
    fn retry_unanswered(&mut self) {
        let stale: Vec<u64> =
            self.in_flight.iter().filter(|(_, r)| r.asked.elapsed() >= READ_INDEX_RETRY).map(|(ctx, _)| *ctx).collect();
        for ctx in stale {
            if let Some(read) = self.in_flight.remove(&ctx) {
                self.queued.extend(read.waiters);
                self.queued_since = Some(self.queued_since.map_or(read.since, |q| q.min(read.since)));
            }
        }
    }
}

/// The context of a ReadIndex request: this member's id, then its counter. The leader keys
/// pending ReadIndex requests by context and ignores one whose context is already pending, so
/// a counter alone (which every member starts at 1) would make concurrent first reads on two
/// followers collide and one of them time out.
fn read_ctx(member_id: u64, counter: u64) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(16);
    ctx.extend_from_slice(&member_id.to_be_bytes());
    ctx.extend_from_slice(&counter.to_be_bytes());
    ctx
}

/// The counter of a ReadIndex context this member made, or None for anything else.
fn parse_read_ctx(member_id: u64, ctx: &[u8]) -> Option<u64> {
    let (id, counter) = ctx.split_at_checked(8)?;
    if id != member_id.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(counter.try_into().ok()?))
}

fn on_ready(
    node: &mut RawNode<LogStore>,
    to_apply: &Sender<ApplyMsg>,
    shared: &Shared,
    reads: &mut PendingReads,
    heartbeats: &mut HeartbeatWatch,
) -> Result<(), ReadyError> {
    if !node.has_ready() {
        return Ok(());
    }
    let mut rd = node.ready();
    if let Some(ss) = rd.ss() {
        // A new role or leader starts the heartbeat timing afresh (etcd resets its detector).
        heartbeats.reset();
        let leader = ss.leader_id;
        if shared.progress.leader.swap(leader, Ordering::Relaxed) != leader {
            if leader != raft::INVALID_ID {
                wasmraft_metrics::metrics().leader_changes.inc();
            }
            if leader == raft::INVALID_ID {
                tracing::info!("raft.node: {:x} lost leader", shared.member_id);
            } else {
                tracing::info!(
                    "raft.node: {:x} elected leader {:x} at term {}",
                    shared.member_id,
                    leader,
                    node.raft.term
                );
            }
        }
        if ss.raft_state == StateRole::Leader {
            tracing::debug!("{:x} is the leader", shared.member_id);
        }
    }
    send(node, shared, heartbeats, rd.take_messages());
    if !rd.snapshot().is_empty() {
        // The leader's snapshot, whose state the transport saved before handing raft the
        // message: the log restarts after it, and the apply thread swaps the state in, after
        // whatever it is still applying.
        let meta = rd.snapshot().get_metadata().clone();
        let path = wasmraft_storage::snapshot::path_for(&shared.snap_dir, meta.index);
        if !path.is_file() {
            return Err(ReadyError::SnapshotFileMissing { index: meta.index, path });
        }
        node.mut_store().apply_snapshot(&meta)?;
        tracing::info!("raft: installing snapshot at index {} term {} from the leader", meta.index, meta.term);
        to_apply.send(ApplyMsg::Snapshot { index: meta.index, path }).map_err(|_| ReadyError::ApplyStopped)?;
    }
    hand_to_apply(to_apply, rd.take_committed_entries())?;
    let sync = rd.must_sync();
    let started = Instant::now();
    node.mut_store().append(rd.entries(), rd.hs(), sync)?;
    if sync {
        // etcd's WAL fsync: here the WAL batch's fdatasync, inside `append`.
        wasmraft_metrics::metrics().wal_fsync.observe(started.elapsed().as_secs_f64());
    }
    if let Some(hs) = rd.hs() {
        shared.progress.term.store(hs.term, Ordering::Relaxed);
        shared.progress.commit_index.fetch_max(hs.commit, Ordering::Relaxed);
    }
    send(node, shared, heartbeats, rd.take_persisted_messages());
    for rs in rd.take_read_states() {
        let Some(ctx) = parse_read_ctx(shared.member_id, &rs.request_ctx) else { continue };
        if let Some(read) = reads.in_flight.remove(&ctx) {
            for w in read.waiters {
                let _ = w.send(Ok(rs.index));
            }
        }
    }
    let mut light = node.advance_append(rd);
    if let Some(commit) = light.commit_index() {
        node.mut_store().set_commit(commit);
        shared.progress.commit_index.fetch_max(commit, Ordering::Relaxed);
    }
    send(node, shared, heartbeats, light.take_messages());
    hand_to_apply(to_apply, light.take_committed_entries())?;
    Ok(())
}

/// Steps a MsgSnap whose state was received into `file`. If raft takes the snapshot, the file
/// becomes the snapshot's (`<index>.snap`, durably: the log will say the snapshot replaced it,
/// and a restart reinstalls the file); if not (it is stale, or from an old term), the file goes.
fn step_snapshot(
    node: &mut RawNode<LogStore>,
    snap_dir: &std::path::Path,
    m: Message,
    file: &std::path::Path,
) -> Result<(), wasmraft_storage::IoError> {
    let (from, index) = (m.from, m.get_snapshot().get_metadata().index);
    if let Err(e) = node.step(m) {
        tracing::debug!("dropping a snapshot from {from:x}: {e}");
    }
    let taken = node.raft.raft_log.unstable_snapshot().as_ref().is_some_and(|s| s.get_metadata().index == index);
    if taken {
        return wasmraft_storage::durable::rename(file, &wasmraft_storage::snapshot::path_for(snap_dir, index));
    }
    tracing::info!("raft did not take snapshot {index} from {from:x}; removing its file {}", file.display());
    if let Err(e) = std::fs::remove_file(file) {
        tracing::warn!("removing {}: {e}", file.display());
    }
    Ok(())
}

/// Tells raft the apply thread has applied up to `index`. The state may be ahead of what this
/// raft knows is committed (a snapshot's state is newer than its index); raft only accepts what
/// it committed. Returns whether raft's applied index moved.
fn catch_up_applied(node: &mut RawNode<LogStore>, index: u64) -> bool {
    let index = index.min(node.raft.raft_log.committed);
    let moved = index > node.raft.raft_log.applied;
    if moved {
        node.advance_apply_to(index);
    }
    moved
}

/// Says whether this thread is waiting on the applied index (see [`Shared::publish_applied`]):
/// a held conf change waits for raft to have applied the previous one. When it is, the index
/// is read once more after saying so (an apply that finished just before saw no request), and
/// true is returned if that moved it: the caller takes another turn at once.
fn wants_applied(node: &mut RawNode<LogStore>, shared: &Shared, conf_gate: &ConfGate) -> bool {
    let wants = conf_gate.is_holding() || (node.raft.state == StateRole::Leader && node.raft.has_pending_conf());
    if shared.progress.raft_wants_applied.load(Ordering::Relaxed) != wants {
        shared.progress.raft_wants_applied.store(wants, Ordering::Relaxed);
    }
    if !wants {
        return false;
    }
    std::sync::atomic::fence(Ordering::SeqCst);
    catch_up_applied(node, *shared.progress.applied.borrow()) && conf_gate.is_holding()
}

/// Tells read barriers whether they may skip this thread: when this member leads alone and has
/// committed an entry of its term, raft-rs answers a ReadIndex with its commit index on the
/// spot (`step_leader`, `MsgReadIndex`), so a barrier that takes the published commit index
/// gets the same answer. Without an entry of its term committed, raft-rs refuses, as a commit
/// index loaded after a restart may be behind writes already acknowledged.
fn publish_lone_leader(node: &RawNode<LogStore>, shared: &Shared) {
    let raft = &node.raft;
    let lone = raft.state == StateRole::Leader && raft.prs().is_singleton() && raft.commit_to_current_term();
    if lone {
        // Published before the flag, which is stored with release ordering: a barrier that sees
        // the flag sees at least this index.
        shared.progress.commit_index.fetch_max(raft.raft_log.committed, Ordering::Release);
    }
    if shared.progress.lone_leader.load(Ordering::Relaxed) != lone {
        shared.progress.lone_leader.store(lone, Ordering::Release);
    }
}

/// Passes committed entries, in order, to the apply thread. Conf changes are applied to raft
/// by the apply thread (through [`RaftMsg::ApplyConfChange`]), after etcd's validation against
/// the members as of their entry, as etcd does.
fn hand_to_apply(to_apply: &Sender<ApplyMsg>, entries: Vec<Entry>) -> Result<(), ReadyError> {
    if entries.is_empty() {
        return Ok(());
    }
    to_apply.send(ApplyMsg::Entries(entries)).map_err(|_| ReadyError::ApplyStopped)
}

/// Sends raft messages to peers through the transport. Without one (a member alone), a message
/// to another member is reported unreachable, which makes raft back off instead of assuming
/// delivery.
fn send(node: &mut RawNode<LogStore>, shared: &Shared, heartbeats: &mut HeartbeatWatch, mut msgs: Vec<Message>) {
    if msgs.is_empty() {
        return;
    }
    for m in msgs.iter().filter(|m| m.get_msg_type() == MessageType::MsgHeartbeat) {
        heartbeats.sent(m.to, Instant::now());
    }
    match shared.peers.get() {
        Some(peers) => {
            if msgs.iter().any(|m| m.get_msg_type() == MessageType::MsgSnapshot) {
                let (snaps, rest): (Vec<_>, Vec<_>) =
                    msgs.into_iter().partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
                msgs = rest;
                for m in snaps {
                    // The committed state: at or past the compaction point the snapshot names
                    // (the log is compacted only behind durable commits).
                    match shared.state_db.try_begin_read() {
                        Some(Ok(state)) => peers.send_snapshot(m, state),
                        Some(Err(e)) => {
                            tracing::warn!("cannot read the state for a snapshot to {:x}: {e}", m.to);
                            node.report_snapshot(m.to, raft::SnapshotStatus::Failure);
                        }
                        None => {
                            // A defragmentation holds the state database; raft retries later.
                            tracing::info!(
                                "snapshot to {:x} postponed: the state database is being defragmented",
                                m.to
                            );
                            node.report_snapshot(m.to, raft::SnapshotStatus::Failure);
                        }
                    }
                }
            }
            peers.send(msgs)
        }
        None => {
            for m in msgs {
                tracing::debug!("no transport to {:x}; dropping {:?}", m.to, m.get_msg_type());
                node.report_unreachable(m.to);
            }
        }
    }
}

/// Compacts the raft log once the state database is durable far enough past the last
/// compaction: every `--snapshot-count` entries, keeping `--snapshot-catchup-entries` entries
/// behind the durable index so a follower a little behind catches up from the log.
fn compact(node: &mut RawNode<LogStore>, shared: &Shared, durable: u64) -> Result<(), wasmraft_storage::LogError> {
    let store = node.mut_store();
    let first = store.log().snapshot_index();
    let target = durable.saturating_sub(shared.limits.snapshot_catchup_entries).min(store.log().last_index());
    if target <= first || durable < first + shared.limits.snapshot_count {
        return Ok(());
    }
    store.compact(target)?;
    tracing::info!("raft: compacted the log up to index {target} (state durable at {durable})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_more_than_the_gap_apart_are_late() {
        let mut w = HeartbeatWatch::new(Duration::from_millis(200));
        let t0 = Instant::now();
        assert!(w.sent(1, t0));
        assert!(w.sent(1, t0 + Duration::from_millis(150)));
        assert!(w.sent(2, t0 + Duration::from_millis(400)), "the first heartbeat to a member is never late");
        assert!(!w.sent(1, t0 + Duration::from_millis(400)));
        w.reset();
        assert!(w.sent(1, t0 + Duration::from_secs(5)), "a new term starts afresh");
    }

    /// A received snapshot's file becomes `<index>.snap` when raft takes the snapshot, and is
    /// removed when raft does not (here: older than what it already has).
    #[test]
    fn a_snapshot_raft_takes_is_kept_and_one_it_ignores_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = wasmraft_storage::RaftLog::open(&dir.path().join("wal")).unwrap();
        log.bootstrap(wasmraft_storage::Identity { member_id: 1, cluster_id: 9 }, vec![1, 2, 3], Vec::new()).unwrap();
        let cfg = raft::Config { id: 1, ..Default::default() };
        let mut node = RawNode::new(&cfg, LogStore::new(log), &super::super::raft_logger::raft_logger()).unwrap();
        let snap = |index: u64, name: &str| {
            let mut m = Message { msg_type: MessageType::MsgSnapshot, from: 2, to: 1, term: 2, ..Default::default() };
            let meta = m.mut_snapshot().mut_metadata();
            meta.index = index;
            meta.term = 2;
            meta.mut_conf_state().voters = vec![1, 2, 3];
            let file = dir.path().join(name);
            std::fs::write(&file, b"state").unwrap();
            (m, file)
        };
        let (m, file) = snap(10, "recv-a.part");
        step_snapshot(&mut node, dir.path(), m, &file).unwrap();
        assert!(!file.exists());
        assert_eq!(std::fs::read(wasmraft_storage::snapshot::path_for(dir.path(), 10)).unwrap(), b"state");
        let (m, file) = snap(5, "recv-b.part");
        step_snapshot(&mut node, dir.path(), m, &file).unwrap();
        assert!(!file.exists(), "an ignored snapshot's file is removed");
        assert!(!wasmraft_storage::snapshot::path_for(dir.path(), 5).exists());
    }

    #[test]
    fn read_contexts_name_their_member() {
        let ctx = read_ctx(0xabc, 7);
        assert_eq!(parse_read_ctx(0xabc, &ctx), Some(7));
        assert_eq!(parse_read_ctx(0xabd, &ctx), None);
    }
}
