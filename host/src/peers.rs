//! The seam between the member and the peer transport: the transport hands received messages
//! to the raft thread through [`NodeHandle`], and the raft thread sends through the transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use raft::eraftpb::Message;
use wasmraft_transport::{CriticalError, ProcessError, Raft, SnapshotData, SnapshotStatus, Transport};

use crate::node::{NodeHandle, PeerSender};

/// The member as the transport sees it.
pub struct RaftInbox {
    node: NodeHandle,
}

impl RaftInbox {
    pub fn new(node: NodeHandle) -> Arc<RaftInbox> {
        Arc::new(RaftInbox { node })
    }
}

impl Raft for RaftInbox {
    fn process(&self, m: Message) -> Result<(), ProcessError> {
        self.node.step(m).map_err(|e| ProcessError::Other(e.to_string()))
    }

    fn is_id_removed(&self, _id: u64) -> bool {
        // Members are never removed yet (membership changes arrive with the Cluster API).
        false
    }

    fn report_unreachable(&self, id: u64) {
        self.node.report_unreachable(id);
    }

    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        self.node.report_snapshot(id, status);
    }

    fn save_snapshot<'a>(&'a self, m: &'a Message, _data: SnapshotData) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        // The log is never compacted yet, so no member ever needs a snapshot; refuse one rather
        // than pretend to install it.
        let from = m.from;
        Box::pin(async move { Err(format!("wasmraft: receiving a snapshot (from {from:x}) is not supported yet")) })
    }

    fn report_critical_error(&self, err: CriticalError) {
        tracing::error!("rafthttp: {err:?}: this member was removed from the cluster");
    }
}

/// The transport as the raft thread sees it. The raft thread is a plain thread, and the
/// transport's queues are served by tokio tasks, so sends enter the runtime the transport lives
/// in.
pub struct TransportSender {
    transport: Transport,
    runtime: tokio::runtime::Handle,
}

impl TransportSender {
    pub fn new(transport: Transport, runtime: tokio::runtime::Handle) -> Arc<TransportSender> {
        Arc::new(TransportSender { transport, runtime })
    }
}

impl PeerSender for TransportSender {
    fn send(&self, msgs: Vec<Message>) {
        let _entered = self.runtime.enter();
        self.transport.send(msgs);
    }
}
