//! The seam between the member and the peer transport: the transport hands received messages
//! to the raft thread through [`NodeHandle`], and the raft thread sends through the transport.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use raft::eraftpb::{Message, MessageType};
use tokio::io::AsyncWriteExt;
use wasmraft_transport::{
    CriticalError, OutgoingSnapshot, ProcessError, PromoteFuture, Raft, SnapshotData, SnapshotStatus, Transport,
};

use crate::error_chain::Chain;
use crate::{NodeHandle, PeerSender, WeakNodeHandle};

/// The member as the transport sees it.
pub struct RaftInbox {
    /// Weak: the node holds the transport (through its peer sender), which holds this inbox;
    /// a strong handle would keep a stopped member's databases open.
    node: WeakNodeHandle,
    snap_dir: std::path::PathBuf,
    /// The most a received snapshot may take (see [`max_snapshot_bytes`]).
    max_snapshot: u64,
    /// Received snapshot files waiting for their message to reach raft, by (sender, term,
    /// index): the transport saves the state, then hands over the message.
    received: Mutex<HashMap<(u64, u64, u64), Vec<PathBuf>>>,
}

/// Free disk space a received snapshot must leave: a WAL segment, so the member can still roll
/// its log.
const DISK_RESERVE: u64 = wasmraft_storage::WAL_SEGMENT_BYTES;
/// How often (in bytes received) the free space is checked again.
const DISK_CHECK_EVERY: u64 = 8 << 20;

/// The largest snapshot a member with `quota` (`--quota-backend-bytes`) accepts: a snapshot is
/// the state database's contents, which the quota bounds, in a denser form; half again and
/// 64 MiB more is room for a database somewhat over its quota and for the leader's quota
/// being set a little higher.
pub fn max_snapshot_bytes(quota: u64) -> u64 {
    quota.saturating_add(quota / 2).saturating_add(64 << 20)
}

/// Bytes free for an unprivileged writer on the file system of `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs(3) fills the struct it is given; both pointers are valid for the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Removes `recv-*` (received, never handed to raft), `out-*` (written to send) and `*.part`,
/// `*.tmp` files from the snapshot directory. `<index>.snap` files stay: the newest may be the
/// one a restart must reinstall.
fn remove_unfinished_transfers(snap_dir: &Path) {
    let Ok(dir) = std::fs::read_dir(snap_dir) else { return };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("recv-") || name.starts_with("out-") || name.ends_with(".part") || name.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!("removed {name}, left in {} by an unfinished snapshot transfer", snap_dir.display())
                }
                Err(e) => tracing::warn!("removing {}: {e}", entry.path().display()),
            }
        }
    }
}

/// A file receiving a snapshot that refuses to grow past `max` bytes or to leave less than
/// `reserve` bytes free on its disk, so a peer (buggy, or an attacker on the peer port) cannot
/// fill the disk the member's log lives on.
struct BoundedFile {
    file: tokio::fs::File,
    path: PathBuf,
    written: u64,
    max: u64,
    reserve: u64,
    next_check: u64,
}

impl BoundedFile {
    async fn create(path: &Path, max: u64, reserve: u64) -> Result<BoundedFile, String> {
        let file = tokio::fs::File::create(path).await.map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(BoundedFile { file, path: path.to_path_buf(), written: 0, max, reserve, next_check: 0 })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        let after = self.written + chunk.len() as u64;
        if after > self.max {
            return Err(format!(
                "the snapshot is larger than {} bytes, the most this member accepts (--quota-backend-bytes and a margin)",
                self.max
            ));
        }
        if after >= self.next_check {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            let free = free_bytes(dir).map_err(|e| format!("checking free space in {}: {e}", dir.display()))?;
            if free < self.reserve.saturating_add(DISK_CHECK_EVERY) {
                return Err(format!(
                    "not enough disk space for the snapshot in {} ({free} bytes free, {} must stay free)",
                    dir.display(),
                    self.reserve
                ));
            }
            self.next_check = after + DISK_CHECK_EVERY;
        }
        self.file.write_all(chunk).await.map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.written = after;
        Ok(())
    }
}

impl RaftInbox {
    /// The inbox of `node`. Files an earlier run left half done in `member/snap/` (snapshots
    /// being received or sent when it stopped) are removed first: no transfer is running yet.
    pub fn new(node: &NodeHandle) -> Arc<RaftInbox> {
        remove_unfinished_transfers(&node.peers().snap_dir());
        Arc::new(RaftInbox {
            node: node.downgrade(),
            snap_dir: node.peers().snap_dir(),
            max_snapshot: max_snapshot_bytes(node.status().quota_bytes()),
            received: Mutex::new(HashMap::new()),
        })
    }

    fn received(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64, u64), Vec<PathBuf>>> {
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Raft for RaftInbox {
    fn process(&self, m: Message) -> Result<(), ProcessError> {
        let node = self.node.upgrade().ok_or_else(|| ProcessError::Other("etcdserver: server stopped".into()))?;
        if m.get_msg_type() == MessageType::MsgSnapshot {
            let key = (m.from, m.term, m.get_snapshot().get_metadata().index);
            let file = {
                let mut received = self.received();
                let file = received.get_mut(&key).and_then(Vec::pop);
                if received.get(&key).is_some_and(Vec::is_empty) {
                    received.remove(&key);
                }
                file
            };
            let Some(file) = file else {
                // Its state never arrived (a MsgSnap sent on the message path): raft must not
                // take a snapshot whose state it cannot install.
                tracing::warn!("dropping snapshot {} from {:x}: its state was not received with it", key.2, m.from);
                return Ok(());
            };
            return node.peers().step_snapshot(m, file.clone()).map_err(|e| {
                let _ = std::fs::remove_file(&file);
                ProcessError::Other(e.to_string())
            });
        }
        node.peers().step(m).map_err(|e| ProcessError::Other(e.to_string()))
    }

    fn is_id_removed(&self, id: u64) -> bool {
        self.node.upgrade().is_some_and(|n| n.cluster().is_removed(id))
    }

    /// The members as etcd's peer `/members` lists them, for members joining the cluster.
    fn members_json(&self) -> Option<String> {
        let node = self.node.upgrade()?;
        crate::conf_change::members_json(&node.cluster().members()).ok()
    }

    fn report_unreachable(&self, id: u64) {
        if let Some(node) = self.node.upgrade() {
            node.peers().report_unreachable(id);
        }
    }

    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        if let Some(node) = self.node.upgrade() {
            node.peers().report_snapshot(id, status);
        }
    }

    /// Streams an incoming snapshot's state into a file of its own in `member/snap/`, bounded
    /// in size and by the free disk space, synced and verified; [`RaftInbox::process`] then
    /// hands it to raft with the message, which keeps it as `<index>.snap` or removes it.
    fn save_snapshot<'a>(
        &'a self,
        m: &'a Message,
        mut data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let index = m.get_snapshot().get_metadata().index;
            let part = self.snap_dir.join(format!("recv-{index:016x}-{:x}.part", SEQ.fetch_add(1, Ordering::Relaxed)));
            let result = async {
                let mut file = BoundedFile::create(&part, self.max_snapshot, DISK_RESERVE).await?;
                while let Some(chunk) =
                    data.chunk().await.map_err(|e| format!("receiving snapshot {index} from {:x}: {e}", m.from))?
                {
                    file.write(&chunk).await.map_err(|e| format!("snapshot {index} from {:x}: {e}", m.from))?;
                }
                file.file.sync_all().await.map_err(|e| format!("syncing {}: {e}", part.display()))?;
                let check = part.clone();
                tokio::task::spawn_blocking(move || wasmraft_storage::snapshot::verify(&check))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("snapshot {index} from {:x} is damaged: {}", m.from, Chain(&e)))?;
                Ok(file.written)
            }
            .await;
            match &result {
                Ok(size) => {
                    tracing::info!("received snapshot {index} ({size} bytes) from {:x}", m.from);
                    self.received().entry((m.from, m.term, index)).or_default().push(part);
                }
                Err(_) => {
                    let _ = tokio::fs::remove_file(&part).await;
                }
            }
            result
        })
    }

    /// A follower forwarded a promotion here (etcd's `peerMemberPromoteHandler`): answer with
    /// etcd's statuses and texts, which the follower maps back to its errors.
    fn promote_member(&self, id: u64) -> PromoteFuture<'_> {
        use crate::NodeError;
        use crate::membership::MembershipError as M;
        Box::pin(async move {
            let node = self.node.upgrade().ok_or((500, NodeError::Stopped.to_string()))?;
            match node.cluster().change_membership(crate::conf_change::Change::Promote(id)).await {
                Ok(members) => crate::conf_change::members_json(&members).map_err(|e| (500, e.to_string())),
                Err(NodeError::Membership(M::IdNotFound | M::IdRemoved)) => {
                    Err((404, "membership: ID not found".into()))
                }
                Err(NodeError::Membership(M::NotLearner)) => {
                    Err((412, "membership: can only promote a learner member".into()))
                }
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
                    node.cluster().removed_by_peer();
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
            let path = node.peers().snap_dir().join(format!("out-{to:016x}-{index:016x}.snap"));
            let written = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let written = wasmraft_storage::snapshot::write(&state, &path);
                    if written.is_ok() {
                        wasmraft_metrics::metrics().backend_snapshot.observe(started.elapsed().as_secs_f64());
                    }
                    written
                })
                .await
            };
            let size = match written {
                Ok(Ok(size)) => size,
                Ok(Err(e)) => {
                    tracing::warn!("writing a snapshot for {to:x}: {}", Chain(&e));
                    node.peers().report_snapshot(to, SnapshotStatus::Failure);
                    return;
                }
                Err(e) => {
                    tracing::warn!("writing a snapshot for {to:x}: {e}");
                    node.peers().report_snapshot(to, SnapshotStatus::Failure);
                    return;
                }
            };
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("opening snapshot {}: {e}", path.display());
                    node.peers().report_snapshot(to, SnapshotStatus::Failure);
                    return;
                }
            };
            let _ = tokio::fs::remove_file(&path).await;
            tracing::info!("sending snapshot {index} ({size} bytes) to {to:x}");
            transport.send_snapshot(OutgoingSnapshot { message: m, data: Box::new(file), size });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_received_snapshot_is_bounded_in_size_and_by_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recv-1-0.part");
        let mut f = BoundedFile::create(&path, 10_000, 0).await.unwrap();
        f.write(&[1u8; 6000]).await.unwrap();
        let err = f.write(&[1u8; 6000]).await.unwrap_err();
        assert!(err.contains("larger than 10000 bytes"), "{err}");
        assert_eq!(f.written, 6000);

        // A reserve the disk cannot leave free: refused before anything is written.
        let free = free_bytes(dir.path()).unwrap();
        let mut f = BoundedFile::create(&path, u64::MAX, free + (1 << 30)).await.unwrap();
        let err = f.write(&[1u8; 10]).await.unwrap_err();
        assert!(err.contains("not enough disk space"), "{err}");
        assert_eq!(f.written, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);

        assert_eq!(max_snapshot_bytes(2 << 30), (3 << 30) + (64 << 20));
    }

    #[test]
    fn unfinished_transfers_are_removed_and_snapshots_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "recv-0000000000000005-3.part",
            "out-0000000000000002-0000000000000005.snap",
            "0000000000000005.snap.tmp",
            "0000000000000005.snap",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_unfinished_transfers(dir.path());
        let left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, ["0000000000000005.snap"]);
    }
}
