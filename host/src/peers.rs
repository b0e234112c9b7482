//! The seam between the member and the peer transport: the transport hands received messages
//! to the raft thread through [`NodeHandle`], and the raft thread sends through the transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use raft::eraftpb::Message;
use tokio::io::AsyncWriteExt;
use wasmraft_transport::{CriticalError, OutgoingSnapshot, ProcessError, PromoteFuture, Raft, SnapshotData, SnapshotStatus, Transport};

use crate::node::{NodeHandle, PeerSender, WeakNodeHandle};

/// The member as the transport sees it.
pub struct RaftInbox {
    /// Weak: the node holds the transport (through its peer sender), which holds this inbox;
    /// a strong handle would keep a stopped member's databases open.
    node: WeakNodeHandle,
    snap_dir: std::path::PathBuf,
}

impl RaftInbox {
    pub fn new(node: &NodeHandle) -> Arc<RaftInbox> {
        Arc::new(RaftInbox { node: node.downgrade(), snap_dir: node.snap_dir() })
    }
}

impl Raft for RaftInbox {
    fn process(&self, m: Message) -> Result<(), ProcessError> {
        let node = self.node.upgrade().ok_or_else(|| ProcessError::Other("etcdserver: server stopped".into()))?;
        node.step(m).map_err(|e| ProcessError::Other(e.to_string()))
    }

    fn is_id_removed(&self, id: u64) -> bool {
        self.node.upgrade().is_some_and(|n| n.is_removed(id))
    }

    /// The members as etcd's peer `/members` lists them, for members joining the cluster.
    fn members_json(&self) -> Option<String> {
        let node = self.node.upgrade()?;
        crate::conf_change::members_json(&node.members()).ok()
    }

    fn report_unreachable(&self, id: u64) {
        if let Some(node) = self.node.upgrade() {
            node.report_unreachable(id);
        }
    }

    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        if let Some(node) = self.node.upgrade() {
            node.report_snapshot(id, status);
        }
    }

    /// Streams an incoming snapshot's state into `member/snap/<index>.snap` (through a partial
    /// file, verified before it is renamed into place), where the raft thread finds it when raft
    /// accepts the message.
    fn save_snapshot<'a>(&'a self, m: &'a Message, mut data: SnapshotData) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            let index = m.get_snapshot().get_metadata().index;
            let path = crate::storage::snapshot::path_for(&self.snap_dir, index);
            let part = path.with_extension("snap.part");
            let result = async {
                let mut file = tokio::fs::File::create(&part).await.map_err(|e| format!("creating {}: {e}", part.display()))?;
                let mut size = 0u64;
                while let Some(chunk) = data.chunk().await.map_err(|e| format!("receiving snapshot {index} from {:x}: {e}", m.from))? {
                    file.write_all(&chunk).await.map_err(|e| format!("writing {}: {e}", part.display()))?;
                    size += chunk.len() as u64;
                }
                file.sync_all().await.map_err(|e| format!("syncing {}: {e}", part.display()))?;
                let check = part.clone();
                tokio::task::spawn_blocking(move || crate::storage::snapshot::verify(&check))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("snapshot {index} from {:x} is damaged: {e:#}", m.from))?;
                tokio::fs::rename(&part, &path).await.map_err(|e| format!("renaming {}: {e}", part.display()))?;
                Ok(size)
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&part).await;
            }
            if let Ok(size) = result {
                tracing::info!("received snapshot {index} ({size} bytes) from {:x}", m.from);
            }
            result
        })
    }

    /// A follower forwarded a promotion here (etcd's `peerMemberPromoteHandler`): answer with
    /// etcd's statuses and texts, which the follower maps back to its errors.
    fn promote_member(&self, id: u64) -> PromoteFuture<'_> {
        use crate::membership::MembershipError as M;
        use crate::node::NodeError;
        Box::pin(async move {
            let node = self.node.upgrade().ok_or((500, NodeError::Stopped.to_string()))?;
            match node.change_membership(crate::conf_change::Change::Promote(id)).await {
                Ok(members) => crate::conf_change::members_json(&members).map_err(|e| (500, e.to_string())),
                Err(NodeError::Membership(M::IdNotFound | M::IdRemoved)) => Err((404, "membership: ID not found".into())),
                Err(NodeError::Membership(M::NotLearner)) => Err((412, "membership: can only promote a learner member".into())),
                Err(NodeError::Membership(e @ M::LearnerNotReady)) => Err((412, e.to_string())),
                Err(e) => Err((500, e.to_string())),
            }
        })
    }

    /// A peer answered that this member was removed: stop, as etcd does.
    fn report_critical_error(&self, err: CriticalError) {
        match err {
            CriticalError::MemberRemoved => {
                tracing::error!("rafthttp: a peer says this member was removed from the cluster");
                if let Some(node) = self.node.upgrade() {
                    node.removed_by_peer();
                }
            }
        }
    }
}

/// The transport as the raft thread sees it. The raft thread is a plain thread, and the
/// transport's queues are served by tokio tasks, so sends enter the runtime the transport lives
/// in.
pub struct TransportSender {
    transport: Transport,
    runtime: tokio::runtime::Handle,
    /// Weak: the node keeps this sender, so a strong handle would keep the node (and its
    /// databases) alive after it stopped.
    node: WeakNodeHandle,
}

impl TransportSender {
    pub fn new(transport: Transport, runtime: tokio::runtime::Handle, node: &NodeHandle) -> Arc<TransportSender> {
        Arc::new(TransportSender { transport, runtime, node: node.downgrade() })
    }
}

impl PeerSender for TransportSender {
    fn send(&self, msgs: Vec<Message>) {
        let _entered = self.runtime.enter();
        self.transport.send(msgs);
    }

    fn add_peer(&self, id: u64, peer_urls: &[String]) {
        let _entered = self.runtime.enter();
        if let Err(e) = self.transport.add_peer(id, peer_urls) {
            tracing::warn!("cannot add peer {id:x} at {peer_urls:?}: {e}");
        }
    }

    fn remove_peer(&self, id: u64) {
        let _entered = self.runtime.enter();
        self.transport.remove_peer(id);
        tracing::info!("rafthttp: removed remote peer {id:x}");
    }

    fn update_peer(&self, id: u64, peer_urls: &[String]) {
        let _entered = self.runtime.enter();
        if let Err(e) = self.transport.update_peer(id, peer_urls) {
            tracing::warn!("cannot update peer {id:x} to {peer_urls:?}: {e}");
        }
    }

    fn active_since(&self, id: u64) -> Option<std::time::SystemTime> {
        self.transport.active_since(id)
    }

    /// Writes the state into a file off the raft thread, then streams it; the file is unlinked
    /// once open, so it disappears when the transfer ends however it ends.
    fn traffic(&self) -> Vec<wasmraft_transport::PeerTraffic> {
        self.transport.traffic()
    }

    fn send_snapshot(&self, m: Message, state: redb::ReadTransaction) {
        let transport = self.transport.clone();
        let Some(node) = self.node.upgrade() else { return };
        self.runtime.spawn(async move {
            let to = m.to;
            let index = m.get_snapshot().get_metadata().index;
            let path = node.snap_dir().join(format!("out-{to:016x}-{index:016x}.snap"));
            let written = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let written = crate::storage::snapshot::write(&state, &path);
                    if written.is_ok() {
                        crate::metrics::metrics().backend_snapshot.observe(started.elapsed().as_secs_f64());
                    }
                    written
                })
                .await
            };
            let size = match written {
                Ok(Ok(size)) => size,
                Ok(Err(e)) => {
                    tracing::warn!("writing a snapshot for {to:x}: {e:#}");
                    node.report_snapshot(to, SnapshotStatus::Failure);
                    return;
                }
                Err(e) => {
                    tracing::warn!("writing a snapshot for {to:x}: {e}");
                    node.report_snapshot(to, SnapshotStatus::Failure);
                    return;
                }
            };
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("opening snapshot {}: {e}", path.display());
                    node.report_snapshot(to, SnapshotStatus::Failure);
                    return;
                }
            };
            let _ = tokio::fs::remove_file(&path).await;
            tracing::info!("sending snapshot {index} ({size} bytes) to {to:x}");
            transport.send_snapshot(OutgoingSnapshot { message: m, data: Box::new(file), size });
        });
    }
}
