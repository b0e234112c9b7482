//! Being the primary lessor: promotion when this member leads, demotion when it stops,
//! proposing the revoke of every lease that runs out (etcd's `Promote`, `Demote`,
//! `revokeExpiredLeases` and `EtcdServer.revokeExpiredLeases`) and, with
//! `--experimental-enable-lease-checkpoint`, the checkpoints of remaining TTLs
//! (`checkpointScheduledLeases`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmraft_proto::etcdserverpb::{
    InternalRaftRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest, RequestHeader,
};

use super::Lessor;
use wasmraft_node::NodeError;

/// How often the clock looks at leadership and deadlines. etcd's loop runs every 500 ms; a
/// shorter period only makes expiry and promotion more punctual.
const TICK: Duration = Duration::from_millis(100);

/// etcd's `leaseRevokeRate`: at most this many revokes are proposed per second.
const REVOKE_RATE: usize = 1000;

/// etcd's `maxPendingRevokes`: revoke proposals in flight at once.
const MAX_PENDING_REVOKES: usize = 16;

/// etcd's `maxLeaseCheckpointBatchSize`: checkpoints in one log entry.
const MAX_CHECKPOINT_BATCH: usize = 1000;

impl Lessor {
    /// etcd's `Promote(extend)`: every lease's deadline becomes now + its remaining TTL +
    /// `extend`, and this lessor is primary for `term`.
    fn promote(&self, term: u64) {
        let mut st = self.lock();
        let now = Instant::now();
        for lease in st.leases.values_mut() {
            lease.refresh(now, self.cfg.promote_extension);
            if let Some(every) = self.cfg.checkpoint_interval {
                lease.schedule_checkpoint(now, every);
            }
        }
        st.primary = Some(term);
        tracing::info!(term, leases = st.leases.len(), "lessor: promoted to primary");
        drop(st);
        self.changed.notify_waiters();
    }

    /// etcd's `Demote`: no deadlines are tracked any more; waiting keep-alives are told to try
    /// the new leader.
    fn demote(&self) {
        let mut st = self.lock();
        for lease in st.leases.values_mut() {
            lease.expiry = None;
            lease.revoke_retry = None;
            lease.checkpoint_at = None;
        }
        st.primary = None;
        drop(st);
        tracing::info!("lessor: demoted");
        self.changed.notify_waiters();
    }

    /// Up to `limit` leases past their deadline and not already being revoked; each is marked
    /// to be retried after `revoke_retry` if its revoke does not get applied.
    fn take_expired(&self, limit: usize) -> Vec<i64> {
        let mut st = self.lock();
        if st.primary.is_none() {
            return Vec::new();
        }
        let now = Instant::now();
        let retry = now + self.cfg.revoke_retry;
        let mut expired = Vec::new();
        for (id, lease) in st.leases.iter_mut() {
            if expired.len() == limit {
                break;
            }
            if lease.expired(now) && lease.revoke_retry.is_none_or(|r| r <= now) {
                lease.revoke_retry = Some(retry);
                expired.push(*id);
            }
        }
        expired
    }
}

impl Lessor {
    /// Up to `limit` leases whose checkpoint is due, with the remaining TTL to record.
    fn take_due_checkpoints(&self, limit: usize) -> Vec<LeaseCheckpoint> {
        let mut st = self.lock();
        if st.primary.is_none() || st.checkpoint_interval.is_none() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut due = Vec::new();
        for (id, lease) in st.leases.iter_mut() {
            if due.len() == limit {
                break;
            }
            if let Some(remaining_ttl) = lease.take_due_checkpoint(now) {
                due.push(LeaseCheckpoint { id: *id, remaining_ttl });
            }
        }
        due
    }

    /// Proposes a checkpoint of 0 for `id`: its recorded remainder no longer holds (renewed).
    pub(super) fn clear_checkpoint(&self, id: i64) {
        if let Some(node) = self.node() {
            tokio::spawn(propose_checkpoints(node, vec![LeaseCheckpoint { id, remaining_ttl: 0 }]));
        }
    }
}

/// etcd's checkpointer: the remaining TTLs go through the log, so every member (and so the next
/// leader) has them; the KV guest records them in its lease table.
async fn propose_checkpoints(node: wasmraft_node::NodeHandle, checkpoints: Vec<LeaseCheckpoint>) {
    let count = checkpoints.len();
    if !still_leads(&node).await {
        tracing::warn!(
            local_member_id = %format!("{:x}", node.member_id()),
            "Ignore the checkpoint request because current member isn't a leader"
        );
        return;
    }
    let req = InternalRaftRequest {
        header: Some(RequestHeader::default()),
        lease_checkpoint: Some(LeaseCheckpointRequest { checkpoints }),
        ..Default::default()
    };
    match node.proposals().propose(prost::Message::encode_to_vec(&req)).await {
        Ok(_) => tracing::debug!("lessor: checkpointed {count} leases"),
        // The next leader schedules its own; a lost checkpoint only means an older remainder.
        Err(e) => tracing::warn!(error = %e, "failed to checkpoint {count} leases"),
    }
}

/// etcd 3.4.31's `ensureLeadership` (etcd#17465): a member that only believes it leads (its
/// raft loop was stalled, say, and a new leader was elected meanwhile) must not revoke leases
/// by its own clock, since its proposal would be forwarded to the new leader and commit. A read
/// barrier needs a quorum's answer to a leader of the current term, and afterwards this member
/// must still be the leader.
async fn still_leads(node: &wasmraft_node::NodeHandle) -> bool {
    node.reads().read_barrier().await.is_ok() && node.status().leader() == node.member_id()
}

/// The lessor's clock: follows leadership (promoting once this member leads and has applied
/// the old terms' entries, which a read barrier guarantees) and proposes revokes for expired
/// leases, rate-limited. Ends when the lessor or the member is gone.
pub(super) async fn clock_task(lessor: Weak<Lessor>) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_REVOKES));
    let per_tick = (REVOKE_RATE as u128 * TICK.as_millis() / 1000).max(1) as usize;
    let mut promoting: Option<tokio::task::JoinHandle<()>> = None;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(l) = lessor.upgrade() else { return };
        let Some(node) = l.node() else { return };
        let (primary, loaded) = {
            let st = l.lock();
            (st.primary, st.loaded)
        };
        let leads = node.status().leader() == node.member_id();
        let term = node.status().raft_term();
        if primary.is_some() && (!leads || primary != Some(term)) {
            l.demote();
        }
        if leads && loaded && primary != Some(term) && promoting.as_ref().is_none_or(|t| t.is_finished()) {
            let weak = Arc::downgrade(&l);
            let node = node.clone();
            promoting = Some(tokio::spawn(async move {
                // Returns once everything committed before it (all of the old terms, since a
                // new leader's barrier waits for an entry of its own term) is applied.
                if node.reads().read_barrier().await.is_err() {
                    return;
                }
                let Some(l) = weak.upgrade() else { return };
                if node.status().leader() == node.member_id() && node.status().raft_term() == term {
                    l.promote(term);
                }
            }));
        }
        let due = l.take_due_checkpoints(MAX_CHECKPOINT_BATCH);
        if !due.is_empty() {
            tokio::spawn(propose_checkpoints(node.clone(), due));
        }
        for id in l.take_expired(per_tick) {
            let Ok(permit) = pending.clone().try_acquire_owned() else {
                // Too many in flight: forget the mark so the next tick picks it up again.
                if let Some(lease) = l.lock().leases.get_mut(&id) {
                    lease.revoke_retry = None;
                }
                continue;
            };
            let node = node.clone();
            let weak = Arc::downgrade(&l);
            tokio::spawn(async move {
                if !still_leads(&node).await {
                    tracing::warn!(
                        local_member_id = %format!("{:x}", node.member_id()),
                        "Ignore the lease revoking request because current member isn't a leader"
                    );
                    // Forget the mark, so that the next tick (as leader, or never) looks again.
                    if let Some(l) = weak.upgrade()
                        && let Some(lease) = l.lock().leases.get_mut(&id)
                    {
                        lease.revoke_retry = None;
                    }
                    drop(permit);
                    return;
                }
                let req = InternalRaftRequest {
                    header: Some(RequestHeader::default()),
                    lease_revoke: Some(LeaseRevokeRequest { id }),
                    ..Default::default()
                };
                match node.proposals().propose(prost::Message::encode_to_vec(&req)).await {
                    Ok(_) => tracing::debug!("lessor: revoked expired lease {id:016x}"),
                    // Revoked meanwhile (by a client, or by an earlier attempt).
                    Err(NodeError::Guest(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "failed to revoke lease {id:016x}"),
                }
                drop(permit);
            });
        }
    }
}
