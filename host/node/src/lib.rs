//! # wasmraft-node: a member's core
//!
//! Consensus and apply: the raft Ready loop over the storage crate's log, the apply loop that
//! drives the runtime crate's guest over the state database, the wait registry, read barriers,
//! and the host's replicated subsystems (membership and conf changes, guest deployment through
//! the log, etcd's auth store and alarms), plus the node's side of the peer transport
//! ([`peers`]). Client APIs reach it only through [`NodeHandle`].
//!
//! It must not know the client-facing protocol (gRPC services, watch, leases: the API crate
//! above it), flags, logging setup or listeners (the binary). It decodes etcd's
//! `InternalRaftRequest` in two places only, the auth store and the alarms' quota rules, because
//! those are replicated host state etcd defines (docs/decisions.md, "The node reads etcd's auth
//! and alarm requests").
//!
//! The member's threads:
//! Three kinds of threads meet here:
//! - the **raft thread** ([`ready_loop`]) owns raft-rs's `RawNode` and the raft log: it ticks,
//!   takes proposals, persists each Ready with one fsync and hands committed entries on;
//! - the **apply thread** ([`apply`]) runs committed entries through the guest in batches, one
//!   state transaction per batch, and wakes the clients waiting for them ([`wait`]);
//! - **client tasks** (tokio) call [`NodeHandle`]: they never touch raft or the log directly.
//!   The runtime's threads run a few nice levels below the other two ([`priority`]).
//!
//! Applying off the raft thread keeps a slow guest from delaying heartbeats and fsyncs; the gap
//! between commit and apply is bounded by refusing proposals when it grows (etcd's "too many
//! requests").

pub mod alarms;
pub mod auth;
pub mod conf_change;
mod deployment;
pub mod ids;
pub mod kv_size;
pub mod membership;
pub mod peers;

mod active;
mod apply;
mod conf_gate;
mod config;
mod error_chain;
mod force_new_cluster;
pub mod guest_metrics;
pub mod guest_store;
mod guests;
mod handle;
mod log_store;
pub mod maintenance;
mod observe;
pub mod priority;
mod proposal_batch;
mod raft_logger;
mod ready_loop;
mod reconfigure;
mod replicated;
pub mod slow;
mod start;
mod state_error;
#[cfg(test)]
mod tests;
mod tick_advance;
pub mod uncommitted;
mod wait;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use tokio::sync::{Notify, oneshot, watch};
use wasmraft_proto::wasmraft::v1 as pb;
use wasmraft_runtime::GuestRegistry;

pub use apply::load_applied;
pub use config::{ApplyOptions, DEFAULT_PROPOSAL_BATCH_LIMIT, NodeConfig, RaftOptions, request_timeout};
pub use deployment::{DeploymentError, MAX_MODULE_BYTES};
pub use guests::{DeployOptions, GuestStatus};
pub use handle::{
    ActiveGuest, Cluster, Guests, NodeError, NodeHandle, NodeStatus, Peers, Proposals, Reads, Status, WeakNodeHandle,
};
pub use observe::{AppliedCommand, ApplyObserver};
pub use reconfigure::REMOVED_TEXT;
pub use start::StartError;
pub use state_error::StateError;

use crate::membership::{Member, MemberAttributes};
use replicated::Subsystems;
use uncommitted::StateView;
use wait::WaitRegistry;

/// etcd's `maxGapBetweenApplyAndCommitIndex`: past this many committed-but-unapplied entries,
/// new proposals are refused instead of queueing without bound.
pub const MAX_APPLY_GAP: u64 = 5000;

/// Fuel a query may use on an async worker before it is moved to a blocking thread: about a
/// millisecond of guest code at most: a single-key or short range of the KV guest fits in a
/// tenth of it (`guest_store::tests`), a scan of a large keyspace does not.
pub const INLINE_QUERY_FUEL: u64 = 2_000_000;

/// Messages to the raft thread.
pub(crate) enum RaftMsg {
    Propose {
        id: u64,
        data: Vec<u8>,
    },
    /// A guest command, which the raft thread may pack with others into one entry
    /// (`proposal_batch.rs`).
    ProposeCommand(pb::BatchedCommand),
    /// A linearizable read wants the current commit index confirmed by a quorum.
    ReadIndex {
        reply: oneshot::Sender<Result<u64, NodeError>>,
    },
    /// The apply thread has applied everything up to this index.
    Applied(u64),
    /// etcd's `advanceTicks`: this many ticks at once, so that the first election comes
    /// sooner (`--initial-election-tick-advance`, `tick_advance.rs`).
    AdvanceTicks(usize),
    /// A raft message from another member, delivered by the peer transport.
    Step(raft::eraftpb::Message),
    /// A MsgSnap with the file its state was received into: renamed to the snapshot's place
    /// if raft takes the snapshot, removed if it does not.
    StepSnapshot {
        m: raft::eraftpb::Message,
        file: PathBuf,
    },
    /// The transport could not deliver to this member.
    Unreachable(u64),
    /// How sending a snapshot to this member went.
    SnapshotStatus(u64, raft::SnapshotStatus),
    /// The state database is durable up to this index: the log before it may be compacted.
    Durable(u64),
    /// Have the apply thread commit its open transaction, after the entries handed to it so
    /// far (passed on as [`ApplyMsg::Commit`]).
    CommitState(oneshot::Sender<()>),
    /// Hand leadership to this voter (etcd's MoveLeader); refused unless this member leads.
    TransferLeader {
        to: u64,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// A membership change to propose (`id` is its wait id).
    ProposeConfChange {
        id: u64,
        proposal: crate::conf_change::Proposal,
    },
    /// The apply thread applies a conf change: raft's configuration changes now, and the new
    /// conf state is persisted before the reply.
    ApplyConfChange {
        cc: raft::eraftpb::ConfChange,
        reply: mpsc::Sender<Result<raft::eraftpb::ConfState, reconfigure::RaftConfError>>,
    },
    /// Whether learner `id` is in sync enough to be promoted (answered by a leader only).
    LearnerReady {
        id: u64,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Stop,
}

/// Work for the apply thread, in log order.
pub(crate) enum ApplyMsg {
    Entries(Vec<raft::eraftpb::Entry>),
    /// Replace the state with the snapshot file raft accepted (its log index).
    Snapshot {
        index: u64,
        path: PathBuf,
    },
    /// Commit the open transaction now (a reader needs the file itself), then say so.
    Commit(oneshot::Sender<()>),
}

/// Where the raft thread sends messages addressed to other members. Implemented by the peer
/// transport; must never block (a slow peer must not stall the raft loop).
pub trait PeerSender: Send + Sync + 'static {
    fn send(&self, msgs: Vec<raft::eraftpb::Message>);
    /// Sends a MsgSnap with the state database attached, written from `state` (a consistent
    /// read of the state database). Reports the outcome to raft through the node.
    fn send_snapshot(&self, m: raft::eraftpb::Message, state: redb::ReadTransaction);
    /// Starts talking to a member added to the cluster.
    fn add_peer(&self, id: u64, peer_urls: &[String]);
    /// Stops talking to a removed member.
    fn remove_peer(&self, id: u64);
    /// Talks to a member at its new peer URLs.
    fn update_peer(&self, id: u64, peer_urls: &[String]);
    /// Since when the member has been reachable (None: not now, or unknown).
    fn active_since(&self, id: u64) -> Option<SystemTime>;
    /// Bytes carried to and from each peer so far (for `/metrics`; none if not counted).
    fn traffic(&self) -> Vec<wasmraft_transport::PeerTraffic> {
        Vec::new()
    }
}

/// State shared by the raft thread, the apply thread and client tasks.
pub(crate) struct Shared {
    pub member_id: u64,
    pub cluster_id: u64,
    pub to_raft: mpsc::Sender<RaftMsg>,
    pub waits: WaitRegistry,
    /// What the raft and apply threads publish for everyone else to read.
    pub progress: Progress,
    pub registry: Arc<GuestRegistry>,
    /// Who follows every applied command (see [`observe`]).
    pub observers: RwLock<Vec<Arc<dyn ApplyObserver>>>,
    /// The peer transport, once the server has connected one; until then (and in a cluster of
    /// one) messages to others are reported unreachable.
    pub peers: std::sync::OnceLock<Arc<dyn PeerSender>>,
    /// How this member dials TLS (https peer URLs for promotions, https client URLs for lease
    /// forwarding), once the server has set it up.
    pub dial_tls: std::sync::OnceLock<wasmraft_transport::dial::DialTls>,
    pub state_db: wasmraft_storage::StateDb,
    /// What the apply thread applied but has not committed yet, for readers
    /// ([`uncommitted`]).
    pub uncommitted: uncommitted::Published,
    /// Membership, the active guest, the auth store and the alarms, as the last applied batch
    /// left them (see [`replicated`]).
    pub replicated: Subsystems,
    /// The raft log's last index when this process started: entries up to it were proposed
    /// before a restart, and logins among them get no token now (tokens die with the process
    /// that handed them out, as in etcd).
    pub logged_before_start: u64,
    /// Where snapshot files are written and received (`member/snap`).
    pub snap_dir: PathBuf,
    /// The settings requests and snapshots are bounded by.
    pub limits: Limits,
    /// Whether the member is stopping, and why.
    pub life: Lifecycle,
}

/// Raft's and the apply thread's progress, published for the handle's readers.
pub(crate) struct Progress {
    pub term: AtomicU64,
    pub leader: AtomicU64,
    pub commit_index: AtomicU64,
    /// Set by the raft thread while this member is the leader and the only voter and has
    /// committed an entry of its term: raft would then answer a ReadIndex at once with its
    /// commit index, asking no one, so a read barrier takes that index itself (see
    /// [`Reads::read_barrier`]).
    pub lone_leader: AtomicBool,
    /// The applied index; client reads wait on it after a ReadIndex. The raft thread reads it
    /// too, whenever it wakes (see [`Shared::publish_applied`]).
    pub applied: watch::Sender<u64>,
    /// Set by the raft thread while it waits on the applied index (a conf change held until
    /// raft has applied the one before): only then does the apply thread wake it to say.
    pub raft_wants_applied: AtomicBool,
}

/// What a member's requests and snapshots are bounded by (from [`NodeConfig`]).
pub(crate) struct Limits {
    /// `--quota-backend-bytes`, resolved (0 → etcd's default).
    pub quota_bytes: u64,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--max-snapshots` (0: all).
    pub max_snapshots: u32,
    /// How entries are applied and the state made durable.
    pub apply: crate::ApplyOptions,
    /// Guest commands per raft entry at most (`proposal_batch.rs`).
    pub proposal_batch_limit: usize,
}

/// Whether the member is stopping, and why.
pub(crate) struct Lifecycle {
    pub stopped: AtomicBool,
    /// Set when this member learned it was removed from the cluster (it is stopping).
    pub removed: AtomicBool,
    /// Set when a thread hit an error the member cannot continue after (a failing disk).
    pub fatal: Mutex<Option<String>>,
    pub fatal_notify: Notify,
}

impl Shared {
    /// Publishes a new applied index to readers and the raft thread. The raft thread picks it
    /// up whenever it next wakes, which at any load is soon: a message per applied batch only
    /// woke it (a futex wake and a context switch per batch, a tenth of the apply thread's time
    /// at one client). A message goes to it only while it waits on the index; the fence pairs
    /// with the one in the raft thread after it sets [`Shared::raft_wants_applied`], so one of
    /// the two always sees the other's write.
    pub fn publish_applied(&self, index: u64) {
        self.progress.applied.send_replace(index);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.progress.raft_wants_applied.load(Ordering::Relaxed) {
            let _ = self.to_raft.send(RaftMsg::Applied(index));
        }
    }

    /// A view of everything applied so far: the committed state and the applied writes laid
    /// over it (see [`uncommitted`]).
    pub fn read_state(&self) -> Result<StateView, redb::TransactionError> {
        let uncommitted = self.uncommitted.take();
        Ok(StateView { txn: self.state_db.begin_read()?, uncommitted })
    }

    /// [`Shared::read_state`], unless a defragmentation holds the database (None).
    pub fn try_read_state(&self) -> Option<Result<StateView, redb::TransactionError>> {
        let uncommitted = self.uncommitted.take();
        Some(self.state_db.try_begin_read()?.map(|txn| StateView { txn, uncommitted }))
    }

    /// Has the apply thread commit what it applied so far, for readers that need the state
    /// database's file itself (they read the committed state only). Err when the member stops.
    pub async fn commit_state(&self) -> Result<(), NodeError> {
        let (reply, done) = oneshot::channel();
        self.to_raft.send(RaftMsg::CommitState(reply)).map_err(|_| NodeError::Stopped)?;
        done.await.map_err(|_| NodeError::Stopped)
    }

    /// Records an unrecoverable error; the process owner (main) shuts the member down.
    pub fn fail(&self, err: String) {
        tracing::error!("{err}");
        let mut f = self.life.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(err);
        }
        self.life.stopped.store(true, Ordering::SeqCst);
        self.life.fatal_notify.notify_waiters();
        self.waits.fail_all(NodeError::Stopped);
    }
}

/// What a member joining an existing cluster learned from it before starting.
pub struct Joined {
    pub cluster_id: u64,
    /// This member's id, as the cluster recorded it when it was added.
    pub member_id: u64,
    /// The cluster's members, this one included.
    pub members: Vec<Member>,
}

/// A running member: its handle plus the threads to join at shutdown.
pub struct Node {
    handle: NodeHandle,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A proposal waiting for its result, counted in `etcd_server_proposals_pending` for as long as
/// it lives. Its client may give up, dropping the future: the wait is then forgotten too, as
/// etcd forgets it when the request's context ends, so that a proposal still held for want of
/// a leader is dropped rather than proposed for nobody once a leader appears (and the registry
/// does not keep the waiter of an entry that is never applied).
struct Pending<'a> {
    gauge: &'a wasmraft_metrics::IntGauge,
    waits: &'a WaitRegistry,
    id: u64,
}

impl<'a> Pending<'a> {
    fn start(gauge: &'a wasmraft_metrics::IntGauge, waits: &'a WaitRegistry, id: u64) -> Self {
        gauge.inc();
        Pending { gauge, waits, id }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
        // A no-op once the apply thread has delivered the outcome.
        self.waits.cancel(self.id);
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Node {
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Connects the peer transport the raft thread sends through. Set once.
    pub fn set_peers(&self, peers: Arc<dyn PeerSender>) {
        if self.handle.inner.peers.set(peers).is_err() {
            tracing::warn!("the peer transport was already set");
        }
    }

    /// Sets how this member dials TLS. Set once, before serving.
    pub fn set_dial_tls(&self, dial: wasmraft_transport::dial::DialTls) {
        if self.handle.inner.dial_tls.set(dial).is_err() {
            tracing::warn!("the TLS dialing configuration was already set");
        }
    }

    /// Stops the threads, making the state database durable on the way out.
    pub fn stop(self) {
        let shared = &self.handle.inner;
        shared.life.stopped.store(true, Ordering::SeqCst);
        let _ = shared.to_raft.send(RaftMsg::Stop);
        for t in self.threads {
            let _ = t.join();
        }
        shared.waits.fail_all(NodeError::Stopped);
    }
}

impl NodeHandle {
    /// How this member dials TLS (not set up: https URLs are not dialed).
    pub fn dial_tls(&self) -> wasmraft_transport::dial::DialTls {
        self.inner.dial_tls.get().cloned().unwrap_or_default()
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    pub fn member_id(&self) -> u64 {
        self.inner.member_id
    }

    /// The auth store as this member has applied it.
    pub fn auth(&self) -> &crate::auth::AuthStore {
        &self.inner.replicated.auth
    }

    /// Registers `observer` to see every guest command applied from now on (see [`observe`]).
    pub fn observe(&self, observer: Arc<dyn ApplyObserver>) {
        self.inner.observers.write().unwrap_or_else(|p| p.into_inner()).push(observer);
    }

    async fn propose_entry(&self, kind: pb::entry::Kind, auth_revision: u64) -> Result<Vec<u8>, NodeError> {
        let s = &self.inner;
        if s.life.stopped.load(Ordering::Relaxed) {
            return Err(NodeError::Stopped);
        }
        let applied = *s.progress.applied.borrow();
        if s.progress.commit_index.load(Ordering::Relaxed) > applied + MAX_APPLY_GAP {
            return Err(NodeError::TooManyRequests);
        }
        let (id, rx) = s.waits.register();
        let time_unix_ms = now_unix_ms();
        let msg = match kind {
            pb::entry::Kind::GuestCommand(command) => {
                RaftMsg::ProposeCommand(pb::BatchedCommand { id, time_unix_ms, auth_revision, command })
            }
            kind => RaftMsg::Propose {
                id,
                data: pb::Entry { id, time_unix_ms, auth_revision, kind: Some(kind) }.encode_to_vec(),
            },
        };
        let metrics = wasmraft_metrics::metrics();
        let _pending = Pending::start(&metrics.proposals_pending, &s.waits, id);
        if s.to_raft.send(msg).is_err() {
            s.waits.cancel(id);
            metrics.proposals_failed.inc();
            return Err(NodeError::Stopped);
        }
        let outcome = match tokio::time::timeout(s.limits.request_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => {
                s.waits.cancel(id);
                Err(NodeError::Timeout)
            }
        };
        // etcd counts a proposal that never got its apply result (timed out, dropped during
        // a leader change, the member stopping), not one the state machine refused.
        if matches!(outcome, Err(NodeError::Timeout | NodeError::NoLeader | NodeError::Stopped)) {
            metrics.proposals_failed.inc();
        }
        outcome
    }

    /// [`Reads::query`] on the calling thread within [`INLINE_QUERY_FUEL`]; `None` when it
    /// must go to a blocking thread (see there).
    fn query_inline(&self, request: &[u8]) -> Option<Result<Vec<u8>, NodeError>> {
        let s = &self.inner;
        // Never wait here for a defragmentation to release the database: that takes seconds.
        let view = match s.try_read_state()? {
            Ok(view) => view,
            Err(e) => return Some(Err(NodeError::Internal(e.to_string()))),
        };
        let guest = match deployment::running_guest_in(&view.txn, s.replicated.guest.slot()) {
            Ok(Some(guest)) => guest,
            Ok(None) => return None,
            Err(e) => return Some(Err(NodeError::Internal(e.to_string()))),
        };
        guest_store::try_query(&guest, &view, request, INLINE_QUERY_FUEL).map(|r| r.map_err(apply::node_error))
    }
}

impl<'a> Status<'a> {
    pub fn raft_term(self) -> u64 {
        self.h.inner.progress.term.load(Ordering::Relaxed)
    }

    pub fn current(self) -> NodeStatus {
        let s = &self.h.inner;
        NodeStatus {
            cluster_id: s.cluster_id,
            member_id: s.member_id,
            leader: s.progress.leader.load(Ordering::Relaxed),
            raft_term: s.progress.term.load(Ordering::Relaxed),
            raft_index: s.progress.commit_index.load(Ordering::Relaxed),
            raft_applied_index: *s.progress.applied.borrow(),
            db_size: s.state_db.file_size(),
            is_learner: self.h.cluster().is_learner(),
        }
    }

    /// Bytes the peer transport carried to and from each peer (empty before it is connected).
    pub fn peer_traffic(self) -> Vec<wasmraft_transport::PeerTraffic> {
        self.h.inner.peers.get().map(|p| p.traffic()).unwrap_or_default()
    }

    /// The leader's member id, 0 when there is none. Cheap: for per-request checks.
    pub fn leader(self) -> u64 {
        self.h.inner.progress.leader.load(Ordering::Relaxed)
    }

    /// Resolves when the member hit an error it cannot continue after, with that error.
    pub async fn fatal(self) -> String {
        loop {
            let notified = self.h.inner.life.fatal_notify.notified();
            if let Some(e) = self.h.inner.life.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return e;
            }
            notified.await;
        }
    }
}

impl<'a> Proposals<'a> {
    /// Proposes `command` (the bytes handed to the guest's apply) through the log and waits for
    /// its apply result.
    pub async fn propose(self, command: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        // etcd limits the request it proposes; our envelope's few extra bytes don't count.
        if command.len() > self.h.inner.limits.max_request_bytes {
            return Err(NodeError::RequestTooLarge);
        }
        self.h.propose_entry(pb::entry::Kind::GuestCommand(command), 0).await
    }

    /// [`propose`](Self::propose) for a command whose permissions were checked against the auth
    /// store at `auth_revision`: refused at apply if the store has changed since (see
    /// `crate::auth`).
    pub async fn propose_checked(self, command: Vec<u8>, auth_revision: u64) -> Result<Vec<u8>, NodeError> {
        if command.len() > self.h.inner.limits.max_request_bytes {
            return Err(NodeError::RequestTooLarge);
        }
        self.h.propose_entry(pb::entry::Kind::GuestCommand(command), auth_revision).await
    }

    /// Proposes an auth request (user, role and auth management, Authenticate) and returns the
    /// encoded response the auth store applied it with.
    pub async fn propose_auth(
        self,
        request: wasmraft_proto::etcdserverpb::InternalRaftRequest,
    ) -> Result<Vec<u8>, NodeError> {
        self.h.propose_entry(pb::entry::Kind::Auth(request), 0).await
    }

    /// Announces this member's name and client URLs to the cluster through the log (etcd's
    /// publish), so `MemberList` on every member shows them.
    pub async fn publish(self, name: String, client_urls: Vec<String>) -> Result<(), NodeError> {
        let attrs = MemberAttributes { id: self.h.inner.member_id, name, client_urls };
        self.h.propose_entry(pb::entry::Kind::Publish(attrs), 0).await.map(|_| ())
    }
}

impl<'a> Peers<'a> {
    /// Hands a message from another member to the raft thread. Never blocks.
    pub fn step(self, m: raft::eraftpb::Message) -> Result<(), NodeError> {
        self.h.inner.to_raft.send(RaftMsg::Step(m)).map_err(|_| NodeError::Stopped)
    }

    /// Hands a MsgSnap to the raft thread with the file its state was received into (see
    /// [`RaftMsg::StepSnapshot`]). Never blocks.
    pub fn step_snapshot(self, m: raft::eraftpb::Message, file: PathBuf) -> Result<(), NodeError> {
        self.h.inner.to_raft.send(RaftMsg::StepSnapshot { m, file }).map_err(|_| NodeError::Stopped)
    }

    /// Tells raft the transport could not reach `id` (raft then probes it more gently).
    pub fn report_unreachable(self, id: u64) {
        let _ = self.h.inner.to_raft.send(RaftMsg::Unreachable(id));
    }

    /// Where snapshot files live (`member/snap`).
    pub fn snap_dir(self) -> PathBuf {
        self.h.inner.snap_dir.clone()
    }

    /// Tells raft how sending a snapshot to `id` went.
    pub fn report_snapshot(self, id: u64, status: raft::SnapshotStatus) {
        let _ = self.h.inner.to_raft.send(RaftMsg::SnapshotStatus(id, status));
    }
}

impl<'a> Cluster<'a> {
    /// The cluster's members as this member has applied them, ordered by id.
    pub fn members(self) -> Vec<Member> {
        self.h.inner.replicated.membership.list()
    }

    /// Moves leadership to voter `to` (etcd's `MoveLeader`): only the leader may, and the call
    /// returns once this member sees `to` as leader, or fails after the request timeout with
    /// etcd's "leader transfer took too long".
    pub async fn move_leader(self, to: u64) -> Result<(), NodeError> {
        let s = &self.h.inner;
        let (tx, rx) = oneshot::channel();
        s.to_raft.send(RaftMsg::TransferLeader { to, reply: tx }).map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)??;
        let deadline = tokio::time::Instant::now() + s.limits.request_timeout;
        while s.progress.leader.load(Ordering::Relaxed) != to {
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::LeaderTransferTimeout);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

impl<'a> Reads<'a> {
    /// Linearizable read barrier (ReadIndex): returns once this member has applied everything
    /// committed before the call.
    pub async fn read_barrier(self) -> Result<(), NodeError> {
        let s = &self.h.inner;
        let wait = async {
            let index = if s.progress.lone_leader.load(Ordering::Acquire) {
                // What raft would answer, without the round trip through the raft thread (two
                // thread wake-ups, a third of a small read's cost). The flag is stored after
                // the commit index it vouches for, so this index is at least that one.
                s.progress.commit_index.load(Ordering::Acquire)
            } else {
                let (tx, rx) = oneshot::channel();
                s.to_raft.send(RaftMsg::ReadIndex { reply: tx }).map_err(|_| NodeError::Stopped)?;
                rx.await.map_err(|_| NodeError::Stopped)??
            };
            if *s.progress.applied.borrow() < index {
                let mut applied = s.progress.applied.subscribe();
                applied.wait_for(|a| *a >= index).await.map_err(|_| NodeError::Stopped)?;
            }
            Ok(())
        };
        tokio::time::timeout(s.limits.request_timeout, wait).await.unwrap_or(Err(NodeError::Timeout))
    }

    /// Runs the guest's read-only `query` on this member's current state, with the guest that
    /// state records as active (so a query racing a swap never runs one guest on the other's
    /// state).
    /// Runs `f` on a blocking thread over the state a query would read: for native code that
    /// reads what a guest's query reads (the bundled KV guest's HashKV, which over a large
    /// keyspace needs more than a query's fuel, runs natively through this).
    /// The state database's file is read as committed: what was applied before the call is
    /// committed first (`Shared::commit_state`).
    pub async fn with_state<R: Send + 'static>(
        self,
        f: impl FnOnce(&redb::ReadTransaction) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let s = self.h.inner.clone();
        s.commit_state().await?;
        tokio::task::spawn_blocking(move || {
            let txn = s.state_db.begin_read().map_err(|e| NodeError::Internal(e.to_string()))?;
            Ok(f(&txn))
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
    }

    pub async fn query(self, request: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        // Most queries are small (a key, a short range) and take tens of microseconds: handing
        // each to a blocking thread and back cost more than the query (two thread wake-ups, the
        // largest item in a read-load profile). So a query first runs right here, with a fuel
        // budget that keeps this async worker from being held long; one that needs more, or
        // finds every query slot busy, runs again on a blocking thread with the full budget.
        if let Some(answer) = self.h.query_inline(&request) {
            return answer;
        }
        let s = self.h.inner.clone();
        tokio::task::spawn_blocking(move || {
            let internal = |e: &dyn std::fmt::Display| NodeError::Internal(e.to_string());
            let view = s.read_state().map_err(|e| internal(&e))?;
            let guest = deployment::guest_in(&view.txn, s.replicated.guest.slot(), &s.registry)
                .map_err(|e| internal(&error_chain::Chain(&e)))?
                .ok_or(NodeError::NoGuest)?;
            guest_store::query(&guest, &view, &request).map_err(apply::node_error)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
    }
}

impl<'a> Guests<'a> {
    /// Whether the active guest lists `api` in its info. Cheap: for per-request checks.
    pub fn guest_serves(self, api: &str) -> bool {
        let active = self.h.inner.replicated.guest.slot().read().unwrap_or_else(|p| p.into_inner());
        active.as_ref().is_some_and(|a| a.record.apis.iter().any(|x| x == api))
    }

    /// The active guest, or None before the first deploy.
    pub fn active_guest(self) -> Option<ActiveGuest> {
        let active = self.h.inner.replicated.guest.slot().read().unwrap_or_else(|p| p.into_inner());
        active.as_ref().map(|a| ActiveGuest {
            name: a.record.name.clone(),
            version: a.record.version.clone(),
            apis: a.record.apis.clone(),
            hash: a.hash_hex(),
        })
    }

    /// The metrics the active guest exported, as of the last applied batch.
    pub fn exported_metrics(self) -> Result<Vec<guest_metrics::GuestMetric>, NodeError> {
        let view = self.h.inner.read_state().map_err(|e| NodeError::Internal(e.to_string()))?;
        guest_metrics::read_view(&view).map_err(|e| NodeError::Internal(e.to_string()))
    }
}
