//! How every member's lessor learns the set of leases: it follows each applied grant, revoke
//! and checkpoint (whoever proposed it), and reads the whole table from the guest when it
//! starts and after a snapshot replaced the state.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prost::Message;
use prost::bytes::Buf;
use wasmraft_proto::etcdserverpb::{
    InternalRaftRequest, LeaseCheckpointRequest, LeaseGrantResponse, LeaseRevokeRequest,
};
use wasmraft_proto::wasmraft::v1::{KvQuery, LeaseTableRequest, LeaseTableResponse, kv_query};

use super::lease::Lease;
use super::{Lessor, State};
use wasmraft_node::{AppliedCommand, ApplyObserver};
use wasmraft_proto::contract::ETCD_KV_API;

/// A change to the lease set, as an applied command made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    Granted { id: i64, ttl: i64 },
    Revoked(i64),
    Checkpointed { id: i64, remaining_ttl: i64 },
}

impl State {
    /// Applies one change. Replaying a change the set already reflects is harmless, which is
    /// what lets a reload replay its journal onto a table that may already include it.
    pub(super) fn apply(&mut self, change: &Change) {
        let now = Instant::now();
        match *change {
            Change::Granted { id, ttl } => {
                if let std::collections::hash_map::Entry::Vacant(v) = self.leases.entry(id) {
                    let mut lease = Lease::new(ttl, 0);
                    if self.primary.is_some() {
                        // etcd's Grant on the primary: refresh(0), the full TTL from now.
                        lease.refresh(now, Duration::ZERO);
                        if let Some(every) = self.checkpoint_interval {
                            lease.schedule_checkpoint(now, every);
                        }
                    }
                    v.insert(lease);
                }
            }
            Change::Revoked(id) => {
                self.leases.remove(&id);
            }
            Change::Checkpointed { id, remaining_ttl } => {
                if let Some(l) = self.leases.get_mut(&id) {
                    // Only the remainder: a promotion turns it into a deadline.
                    l.remaining_ttl = remaining_ttl;
                    if let (Some(every), Some(_)) = (self.checkpoint_interval, self.primary) {
                        l.schedule_checkpoint(now, every);
                    }
                }
            }
        }
    }
}

/// The InternalRaftRequest fields that change leases (raft_internal.proto).
const LEASE_GRANT: u32 = 8;
const LEASE_REVOKE: u32 = 9;
const LEASE_CHECKPOINT: u32 = 11;

/// The lease change an applied command made, if any. Most commands are puts and txns: their
/// top-level field tags are looked at without decoding (and copying) their values.
fn change_of(cmd: &AppliedCommand) -> Option<Vec<Change>> {
    let output = cmd.result.as_ref().ok()?;
    if !touches_leases(&cmd.command) {
        return None;
    }
    let req = InternalRaftRequest::decode(cmd.command.as_slice()).ok()?;
    if req.lease_grant.is_some() {
        let resp = LeaseGrantResponse::decode(output.as_slice()).ok()?;
        return Some(vec![Change::Granted { id: resp.id, ttl: resp.ttl }]);
    }
    if let Some(LeaseRevokeRequest { id }) = req.lease_revoke {
        return Some(vec![Change::Revoked(id)]);
    }
    let LeaseCheckpointRequest { checkpoints } = req.lease_checkpoint?;
    Some(checkpoints.into_iter().map(|c| Change::Checkpointed { id: c.id, remaining_ttl: c.remaining_ttl }).collect())
}

/// Whether an encoded InternalRaftRequest sets a lease field (false if it does not decode).
fn touches_leases(mut buf: &[u8]) -> bool {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    while buf.has_remaining() {
        let Ok((tag, wire_type)) = decode_key(&mut buf) else { return false };
        if matches!(tag, LEASE_GRANT | LEASE_REVOKE | LEASE_CHECKPOINT) {
            return true;
        }
        if skip_field(wire_type, tag, &mut buf, DecodeContext::default()).is_err() {
            return false;
        }
    }
    false
}

/// The lessor's [`ApplyObserver`]. Weak, because the node holds its observers for its lifetime.
pub(super) struct LeaseObserver {
    lessor: Weak<Lessor>,
}

impl LeaseObserver {
    pub fn new(lessor: &Arc<Lessor>) -> Self {
        LeaseObserver { lessor: Arc::downgrade(lessor) }
    }
}

impl ApplyObserver for LeaseObserver {
    fn applied(&self, commands: &[AppliedCommand]) {
        let Some(lessor) = self.lessor.upgrade() else { return };
        let changes: Vec<Change> = commands.iter().filter_map(change_of).flatten().collect();
        if changes.is_empty() {
            return;
        }
        let revoked = changes.iter().any(|c| matches!(c, Change::Revoked(_)));
        {
            let mut st = lessor.lock();
            for c in &changes {
                st.apply(c);
            }
            if let Some(journal) = st.journal.as_mut() {
                journal.extend(changes);
            }
        }
        if revoked {
            lessor.changed.notify_waiters();
        }
    }

    fn state_replaced(&self) {
        if let Some(lessor) = self.lessor.upgrade() {
            lessor.request_reload();
        }
    }
}

impl Lessor {
    /// Starts journaling applied changes and wakes the reload task.
    pub(super) fn request_reload(&self) {
        let mut st = self.lock();
        if st.journal.is_none() {
            st.journal = Some(Vec::new());
        }
        drop(st);
        self.reload.notify_one();
    }

    /// Replaces the lease set with the guest's table plus the changes applied since the reload
    /// began. Deadlines of leases that stay are kept; new ones start from their remaining TTL if
    /// this lessor is primary, as a promotion would give them.
    fn install_table(&self, table: LeaseTableResponse) {
        let mut st = self.lock();
        let now = Instant::now();
        let mut old = std::mem::take(&mut st.leases);
        let mut leases = HashMap::with_capacity(table.leases.len());
        for rec in table.leases {
            let lease = old.remove(&rec.id).unwrap_or_else(|| {
                let mut l = Lease::new(self.clamp_ttl(rec.ttl), rec.remaining_ttl);
                if st.primary.is_some() {
                    l.refresh(now, self.cfg.promote_extension);
                    if let Some(every) = self.cfg.checkpoint_interval {
                        l.schedule_checkpoint(now, every);
                    }
                }
                l
            });
            leases.insert(rec.id, lease);
        }
        st.leases = leases;
        for c in st.journal.take().unwrap_or_default() {
            st.apply(&c);
        }
        st.loaded = true;
        tracing::debug!(leases = st.leases.len(), "lessor: loaded the lease table");
        drop(st);
        self.changed.notify_waiters();
    }
}

/// Reads the lease table from the guest whenever asked (at start, after a snapshot), retrying
/// while the guest cannot answer (not deployed yet). A guest that does not serve etcd's KV API
/// has no leases.
pub(super) async fn reload_task(lessor: Weak<Lessor>) {
    const RETRY: Duration = Duration::from_millis(200);
    loop {
        let Some(l) = lessor.upgrade() else { return };
        let requested = l.lock().journal.is_some();
        if !requested {
            // Wait without keeping the lessor alive: a timeout re-checks that it still exists.
            let wait = l.reload.notified();
            let _ = tokio::time::timeout(RETRY * 5, wait).await;
            continue;
        }
        let Some(node) = l.node() else { return };
        if !node.guests().guest_serves(ETCD_KV_API) {
            drop((l, node));
            tokio::time::sleep(RETRY).await;
            continue;
        }
        let q = KvQuery { request: Some(kv_query::Request::LeaseTable(LeaseTableRequest {})) };
        match node.reads().query(q.encode_to_vec()).await {
            Ok(bytes) => match LeaseTableResponse::decode(bytes.as_slice()) {
                Ok(table) => l.install_table(table),
                Err(e) => {
                    tracing::warn!(error = %e, "lessor: the guest's lease table does not decode");
                    drop((l, node));
                    tokio::time::sleep(RETRY).await;
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "lessor: reading the lease table failed, retrying");
                drop((l, node));
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(req: InternalRaftRequest, result: Result<Vec<u8>, String>) -> AppliedCommand {
        AppliedCommand { index: 1, command: req.encode_to_vec(), result, events: Vec::new() }
    }

    #[test]
    fn only_successful_lease_commands_change_leases() {
        use wasmraft_proto::etcdserverpb::*;
        let put = InternalRaftRequest {
            put: Some(PutRequest { key: b"k".to_vec(), value: vec![7; 300], lease: 5, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(change_of(&cmd(put, Ok(Vec::new()))), None);
        let grant =
            InternalRaftRequest { lease_grant: Some(LeaseGrantRequest { ttl: 1, id: 5 }), ..Default::default() };
        let answer = LeaseGrantResponse { id: 5, ttl: 3, ..Default::default() }.encode_to_vec();
        assert_eq!(change_of(&cmd(grant.clone(), Ok(answer))), Some(vec![Change::Granted { id: 5, ttl: 3 }]));
        assert_eq!(change_of(&cmd(grant, Err("etcdserver: lease already exists".into()))), None);
        let revoke = InternalRaftRequest { lease_revoke: Some(LeaseRevokeRequest { id: 5 }), ..Default::default() };
        assert_eq!(change_of(&cmd(revoke, Ok(Vec::new()))), Some(vec![Change::Revoked(5)]));
    }
}
