//! Runtime reconfiguration, both ends of it:
//!
//! - **proposing** ([`Cluster::change_membership`](super::Cluster::change_membership)): etcd 3.4's strict reconfiguration checks
//!   (`mayAddMember`, `mayRemoveMember`, `mayPromoteMember`: a quorum of started members after
//!   the change, every voter connected for the last 5 s, a learner in sync before promotion),
//!   then the conf change goes through raft and the caller waits for its apply;
//! - **applying** ([`apply_entry`]), on the apply thread, in the batch's transaction: etcd's
//!   validation against the members as of the entry, then raft's configuration (through the
//!   raft thread, before the transaction commits, so raft's conf state is never older than the
//!   state a snapshot carries), then the members tables; after the commit ([`after_commit`]) the
//!   transport learns added and updated peers and forgets removed ones, and a member that
//!   applied its own removal stops.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use raft::eraftpb::Entry;
use redb::WriteTransaction;
use tokio::sync::oneshot;

use super::{Cluster, NodeError, NodeHandle, RaftMsg, Shared};
use crate::conf_change::Change;
use crate::error_chain::Chain;
use crate::membership::{Member, MembershipError, Staged};

/// etcd's `HealthInterval`: a voter must have been connected this long for a reconfiguration
/// to be considered safe.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// etcd's `readyPercent`: a learner whose log matches at least this share of the leader's may
/// be promoted.
const READY_PERCENT: f64 = 0.9;

/// What etcd logs when a member applies its own removal, and the reason it stops.
pub const REMOVED_TEXT: &str = "the member has been permanently removed from the cluster";

/// Why a conf change entry could not be applied. Fatal to the apply thread: raft's
/// configuration and the members tables would no longer agree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconfigureError {
    #[error("the raft thread has stopped")]
    RaftStopped,
    #[error(transparent)]
    Raft(#[from] RaftConfError),
    /// Writing the members tables failed.
    #[error(transparent)]
    Db(#[from] redb::Error),
}

/// The raft thread's answer to [`RaftMsg::ApplyConfChange`] when it could not take the change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RaftConfError {
    /// raft-rs refused a change the members' validation let through.
    #[error("{0}")]
    Refused(raft::Error),
    /// raft took the change, but the raft log could not record the new conf state.
    #[error("persisting the conf state")]
    Persist(#[source] wasmraft_storage::LogError),
}

/// What the proposer of an applied entry is told: its wait id and outcome.
pub(crate) type Answer = (u64, Result<Vec<u8>, NodeError>);

/// Transport changes to make once the transaction that applied them has committed.
#[derive(Default)]
pub(crate) struct PeerChanges {
    changes: Vec<Change>,
    removed_self: bool,
}

/// Applies one committed conf change entry inside the apply transaction. Returns the wait id
/// and outcome for the proposer. An `Err` is a failure the member cannot continue after.
pub(crate) fn apply_entry(
    shared: &Shared,
    txn: &WriteTransaction,
    e: &Entry,
    staged: &mut Staged,
    peers: &mut PeerChanges,
) -> Result<Option<Answer>, ReconfigureError> {
    let decoded = match Change::from_entry(e) {
        Ok(d) => d,
        Err(err) => {
            // Deterministic: every member reads the same bytes and skips the same entry.
            tracing::error!("skipping undecodable conf change entry {}: {}", e.index, Chain(&err));
            return Ok(None);
        }
    };
    let change = decoded.change;
    if let Err(refused) = shared.replicated.membership.validate(&change, staged) {
        tracing::warn!("refused conf change {change:?} at index {}: {refused}", e.index);
        return Ok(Some((decoded.request_id, Err(NodeError::Membership(refused)))));
    }
    if let Some(cc) = change.raft_change() {
        let (tx, rx) = mpsc::channel();
        shared.to_raft.send(RaftMsg::ApplyConfChange { cc, reply: tx }).map_err(|_| ReconfigureError::RaftStopped)?;
        let cs = rx.recv().map_err(|_| ReconfigureError::RaftStopped)??;
        tracing::info!("raft: applied conf change at {}: voters {:?} learners {:?}", e.index, cs.voters, cs.learners);
    }
    shared.replicated.membership.apply_change(txn, &change, staged)?;
    log_change(shared, &change);
    if matches!(change, Change::Remove(id) if id == shared.member_id) {
        peers.removed_self = true;
    } else if change.id() != shared.member_id {
        peers.changes.push(change);
    }
    Ok(Some((decoded.request_id, Ok(Vec::new()))))
}

fn log_change(shared: &Shared, change: &Change) {
    let cluster = shared.cluster_id;
    match change {
        Change::Add(m) if m.is_learner => {
            tracing::info!(
                "etcdserver/membership: added member {:x} [{}] to cluster {cluster:x} as learner",
                m.id,
                m.peer_urls.join(" ")
            )
        }
        Change::Add(m) => tracing::info!(
            "etcdserver/membership: added member {:x} [{}] to cluster {cluster:x}",
            m.id,
            m.peer_urls.join(" ")
        ),
        Change::Remove(id) => tracing::info!("etcdserver/membership: removed member {id:x} from cluster {cluster:x}"),
        Change::Update { id, .. } => {
            tracing::info!("etcdserver/membership: updated member {id:x} in cluster {cluster:x}")
        }
        Change::Promote(id) => tracing::info!("etcdserver/membership: promote member {id:x} in cluster {cluster:x}"),
    }
}

/// Once the changes are committed: the transport's peer set follows them, and a member that
/// was removed stops (after a second, as etcd does, so the leader hears its acknowledgement).
pub(crate) fn after_commit(shared: &std::sync::Arc<Shared>, peers: PeerChanges) {
    if let Some(transport) = shared.peers.get() {
        for change in &peers.changes {
            match change {
                Change::Add(m) => transport.add_peer(m.id, &m.peer_urls),
                Change::Update { id, peer_urls } => transport.update_peer(*id, peer_urls),
                Change::Remove(id) => transport.remove_peer(*id),
                Change::Promote(_) => {}
            }
        }
    }
    if peers.removed_self {
        stop_removed(shared);
    }
}

/// Stops this member because the cluster removed it (its own removal applied, or a peer
/// answered that it was removed).
pub(crate) fn stop_removed(shared: &std::sync::Arc<Shared>) {
    if shared.life.removed.swap(true, Ordering::SeqCst) {
        return;
    }
    let shared = shared.clone();
    let _ = std::thread::Builder::new().name("removed".into()).spawn(move || {
        // A peer may have told us before our own removal reached our log (the leader stops
        // replicating to a removed member): record it, so a restart of this data dir refuses
        // to run as it does when the removal was applied, instead of starting to be told again.
        if let Err(e) = record_removed(&shared) {
            tracing::warn!("recording this member's removal in the state database: {e}");
        }
        std::thread::sleep(Duration::from_secs(1));
        shared.fail(REMOVED_TEXT.to_string());
    });
}

/// Adds this member to the removed members, durably (waits for the apply thread's batch).
fn record_removed(shared: &Shared) -> Result<(), redb::Error> {
    let mut txn = shared.state_db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    txn.open_table(wasmraft_storage::tables::REMOVED_MEMBERS)?.insert(shared.member_id, [].as_slice())?;
    txn.commit()?;
    Ok(())
}

impl NodeHandle {
    /// etcd 3.4's `--strict-reconfig-check` (on by default): refuses a change that would leave
    /// the cluster without a started, connected quorum. Off, only a promotion still waits for
    /// its learner to catch up (etcd checks that whatever the flag).
    async fn may_change(&self, change: &Change) -> Result<(), NodeError> {
        if !self.inner.limits.strict_reconfig_check {
            if let Change::Promote(id) = change {
                self.learner_ready(*id).await?;
            }
            return Ok(());
        }
        let members = self.cluster().members();
        let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
        let started = |m: &Member| !m.client_urls.is_empty();
        let refuse = |e| Err(NodeError::Membership(e));
        match change {
            Change::Add(m) => {
                // IsReadyToAddVotingMember: the new voter counts as a member not yet started.
                let nmembers = voters.len() + 1;
                let nstarted = voters.iter().filter(|m| started(m)).count();
                let ready = (nstarted == 1 && nmembers == 2) || nstarted > nmembers / 2;
                if !m.is_learner && !ready {
                    return refuse(MembershipError::NotEnoughStartedMembers);
                }
                if self.connected_since(&voters) < voters.len() {
                    return refuse(MembershipError::Unhealthy);
                }
            }
            Change::Remove(id) => {
                if members.iter().any(|m| m.id == *id && m.is_learner) {
                    return Ok(());
                }
                // IsReadyToRemoveVotingMember: the others must still have a started quorum.
                let rest: Vec<&&Member> = voters.iter().filter(|m| m.id != *id).collect();
                let nstarted = rest.iter().filter(|m| started(m)).count();
                if nstarted < rest.len() / 2 + 1 {
                    return refuse(MembershipError::NotEnoughStartedMembers);
                }
                // A member that is down is safe to remove: it is not part of the active quorum.
                if *id != self.member_id() && self.active_since(*id).is_none() {
                    return Ok(());
                }
                let active = self.connected_since(&voters);
                if active.saturating_sub(1) < 1 + (voters.len().saturating_sub(1)) / 2 {
                    return refuse(MembershipError::Unhealthy);
                }
            }
            Change::Promote(id) => {
                self.learner_ready(*id).await?;
                // IsReadyToPromoteMember: the learner counts as started.
                let nmembers = voters.len() + 1;
                let nstarted = voters.iter().filter(|m| started(m)).count() + 1;
                if nstarted < nmembers / 2 + 1 {
                    return refuse(MembershipError::NotEnoughStartedMembers);
                }
            }
            Change::Update { .. } => {}
        }
        Ok(())
    }

    /// etcd's `numConnectedSince`: this member, plus the voters the transport has been connected
    /// to for at least [`HEALTH_INTERVAL`].
    fn connected_since(&self, voters: &[&Member]) -> usize {
        let since = SystemTime::now() - HEALTH_INTERVAL;
        voters
            .iter()
            .filter(|m| m.id == self.member_id() || self.active_since(m.id).is_some_and(|t| t <= since))
            .count()
    }

    fn active_since(&self, id: u64) -> Option<SystemTime> {
        self.inner.peers.get().and_then(|p| p.active_since(id))
    }

    /// etcd's `isLearnerReady`, asked of raft on this member: only a leader knows its
    /// followers' progress ("not leader" otherwise).
    async fn learner_ready(&self, id: u64) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner.to_raft.send(RaftMsg::LearnerReady { id, reply: tx }).map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
}

impl<'a> Cluster<'a> {
    /// Changes the membership through raft (etcd's AddMember, RemoveMember, UpdateMember,
    /// PromoteMember) and returns the members once this member has applied the change.
    pub async fn change_membership(self, change: Change) -> Result<Vec<Member>, NodeError> {
        self.h.may_change(&change).await?;
        let s = &self.h.inner;
        if s.life.stopped.load(Ordering::Relaxed) {
            return Err(NodeError::Stopped);
        }
        let is_learner = s.replicated.membership.get(change.id()).is_some_and(|m| m.is_learner);
        let (id, rx) = s.waits.register();
        let proposal = match change.to_raft(id, is_learner) {
            Ok(p) => p,
            Err(e) => {
                s.waits.cancel(id);
                return Err(NodeError::Internal(e.to_string()));
            }
        };
        if s.to_raft.send(RaftMsg::ProposeConfChange { id, proposal }).is_err() {
            s.waits.cancel(id);
            return Err(NodeError::Stopped);
        }
        match tokio::time::timeout(s.limits.request_timeout, rx).await {
            Ok(Ok(outcome)) => outcome.map(|_| self.h.cluster().members()),
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => {
                s.waits.cancel(id);
                Err(NodeError::Timeout)
            }
        }
    }

    /// etcd's `PromoteMember` on a follower: the leader decides (through its peer port's
    /// `/members/promote/<id>`), retried until the request timeout while there is no leader or
    /// it cannot be reached; the answer is the leader's member list.
    pub async fn promote_on_leader(self, id: u64) -> Result<Vec<Member>, NodeError> {
        let deadline = tokio::time::Instant::now() + self.h.inner.limits.request_timeout;
        let tls = self.h.dial_tls().peers;
        while tokio::time::Instant::now() < deadline {
            let leader = self.h.status().leader();
            let urls = self.h.inner.replicated.membership.get(leader).map(|m| m.peer_urls).unwrap_or_default();
            if leader == self.h.member_id() {
                return self.h.cluster().change_membership(Change::Promote(id)).await;
            }
            for url in &urls {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match wasmraft_transport::members::promote_member(url, id, left, tls.clone()).await {
                    Ok(json) => {
                        let members: Vec<crate::conf_change::EtcdMember> = serde_json::from_slice(&json)
                            .map_err(|e| NodeError::Internal(format!("the leader's answer: {e}")))?;
                        return Ok(members.into_iter().map(crate::conf_change::EtcdMember::into_member).collect());
                    }
                    Err((404, _)) => return Err(NodeError::Membership(MembershipError::IdNotFound)),
                    Err((412, body)) if body.contains("in sync with leader") => {
                        return Err(NodeError::Membership(MembershipError::LearnerNotReady));
                    }
                    Err((412, body)) if body.contains("can only promote a learner member") => {
                        return Err(NodeError::Membership(MembershipError::NotLearner));
                    }
                    Err((status, body)) => {
                        tracing::debug!("promoting {id:x} through the leader at {url}: {status} {body}")
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(NodeError::Timeout)
    }

    /// Whether this member is a learner, as the members it applied say.
    pub fn is_learner(self) -> bool {
        self.h.inner.replicated.membership.get(self.h.inner.member_id).is_some_and(|m| m.is_learner)
    }

    /// Whether `id` was removed from the cluster (the transport refuses its messages).
    pub fn is_removed(self, id: u64) -> bool {
        self.h.inner.replicated.membership.is_removed(id)
    }

    /// Whether this member stopped because it was removed.
    pub fn was_removed(self) -> bool {
        self.h.inner.life.removed.load(Ordering::SeqCst)
    }

    /// A peer said this member was removed (rafthttp's 410): stop, as etcd does.
    pub fn removed_by_peer(self) {
        stop_removed(&self.h.inner);
    }
}

/// The raft thread's answer to [`RaftMsg::LearnerReady`] (etcd's `isLearnerReady`).
pub(crate) fn learner_ready(node: &raft::RawNode<super::log_store::LogStore>, id: u64) -> Result<(), NodeError> {
    if node.raft.state != raft::StateRole::Leader {
        return Err(NodeError::NotLeader);
    }
    let prs = node.raft.prs();
    let Some(learner) = prs.get(id) else { return Ok(()) };
    let leader = prs.get(node.raft.id).map(|p| p.matched).unwrap_or(0);
    if (learner.matched as f64) < (leader as f64) * READY_PERCENT {
        return Err(NodeError::Membership(MembershipError::LearnerNotReady));
    }
    Ok(())
}
