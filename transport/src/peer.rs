//! Peer (`peer.go`, and `remote.go`'s pipeline-only remote): everything we hold for one other
//! member. `send` never blocks: it picks a queue and `try_send`s —
//! MsgSnap → pipeline; MsgApp → msgappv2 stream writer if that stream works; anything else →
//! message stream writer if it works; otherwise (streams down) → pipeline. A full queue drops the
//! message and reports the target unreachable (and a MsgSnap's snapshot as failed), exactly
//! etcd's behaviour, so a slow or dead peer costs the raft loop nothing and other peers nothing.
//! Messages arriving on our stream readers go through two bounded queues (`recvc` 4096, and
//! `propc` 4096 for MsgProp so proposals cannot starve raft traffic), each drained by its own
//! task into `Raft::process`. Snapshots with data go through the snapshot sender, one task each.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use raft::SnapshotStatus;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ctx::Ctx;
use crate::host::OutgoingSnapshot;
use crate::pipeline::Pipeline;
use crate::probing::{ProbeStatus, Prober};
use crate::snapshot_sender;
use crate::status::PeerStatus;
use crate::stream::{self, OutgoingConn, RecvQueues, StreamType, StreamWriter};
use crate::urlpick::UrlPicker;
use crate::util::id_str;

/// etcd's `recvBufSize`.
pub const RECV_BUF_SIZE: usize = 4096;
/// etcd's `maxPendingProposals`.
pub const MAX_PENDING_PROPOSALS: usize = 4096;

/// Which channel a message went to (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    StreamMsgAppV2,
    StreamMsg,
    Pipeline,
}

pub(crate) struct Peer {
    id: u64,
    ctx: Arc<Ctx>,
    pub(crate) status: Arc<PeerStatus>,
    picker: Arc<UrlPicker>,
    msgapp_writer: Arc<StreamWriter>,
    writer: Arc<StreamWriter>,
    pipeline: Pipeline,
    tasks: Vec<JoinHandle<()>>,
    snap_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Probes `/raft/probing` (etcd's `addPeerToProber`); replaced on `update`.
    prober: Mutex<Prober>,
}

impl Peer {
    pub(crate) fn start(ctx: Arc<Ctx>, id: u64, urls: Vec<String>) -> Peer {
        let status = Arc::new(PeerStatus::new(ctx.cfg.member_id, id));
        let prober = Mutex::new(Prober::start(ctx.clone(), id, urls.clone()));
        let picker = Arc::new(UrlPicker::new(urls));
        let pipeline = Pipeline::start(ctx.clone(), id, picker.clone(), status.clone());
        let (msgapp_writer, t1) = StreamWriter::start(ctx.clone(), id, status.clone());
        let (writer, t2) = StreamWriter::start(ctx.clone(), id, status.clone());
        let (recvc, recv_rx) = mpsc::channel(RECV_BUF_SIZE);
        let (propc, prop_rx) = mpsc::channel(MAX_PENDING_PROPOSALS);
        let drain = |ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Message>| {
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if let Err(e) = ctx.raft.process(m) {
                        tracing::warn!("failed to process Raft message: {e}");
                    }
                }
            })
        };
        let t3 = drain(ctx.clone(), recv_rx);
        let t4 = drain(ctx.clone(), prop_rx);
        let q = RecvQueues { recvc, propc };
        let t5 = stream::start_reader(ctx.clone(), id, StreamType::MsgAppV2, picker.clone(), status.clone(), q.clone());
        let t6 = stream::start_reader(ctx.clone(), id, StreamType::Message, picker.clone(), status.clone(), q);
        Peer {
            id,
            ctx,
            status,
            picker,
            msgapp_writer,
            writer,
            pipeline,
            tasks: vec![t1, t2, t3, t4, t5, t6],
            snap_tasks: Mutex::new(Vec::new()),
            prober,
        }
    }

    pub(crate) fn pick(&self, m: &Message) -> (mpsc::Sender<Message>, Picked) {
        if m.msg_type == MessageType::MsgSnapshot {
            return (self.pipeline.msgc.clone(), Picked::Pipeline);
        }
        if m.msg_type == MessageType::MsgAppend
            && let Some(w) = self.msgapp_writer.writec()
        {
            return (w, Picked::StreamMsgAppV2);
        }
        if let Some(w) = self.writer.writec() {
            return (w, Picked::StreamMsg);
        }
        (self.pipeline.msgc.clone(), Picked::Pipeline)
    }

    pub(crate) fn send(&self, m: Message) -> Option<Picked> {
        let (q, picked) = self.pick(&m);
        let (to, is_snap) = (m.to, m.msg_type == MessageType::MsgSnapshot);
        match q.try_send(m) {
            Ok(()) => Some(picked),
            Err(_) => {
                self.ctx.raft.report_unreachable(to);
                if is_snap {
                    self.ctx.raft.report_snapshot(to, SnapshotStatus::Failure);
                }
                tracing::warn!(peer = %id_str(self.id), active = self.status.is_active(), "dropped internal Raft message since sending buffer is full (overloaded network)");
                None
            }
        }
    }

    pub(crate) fn send_snapshot(&self, snap: OutgoingSnapshot) {
        let t = tokio::spawn(snapshot_sender::send(self.ctx.clone(), self.picker.clone(), self.status.clone(), snap));
        let mut g = self.snap_tasks.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|t| !t.is_finished());
        g.push(t);
    }

    /// New URLs; the prober restarts on them with a fresh status, as etcd's `UpdatePeer`.
    pub(crate) fn update(&self, urls: Vec<String>) {
        let prober = Prober::start(self.ctx.clone(), self.id, urls.clone());
        *self.prober.lock().unwrap_or_else(|p| p.into_inner()) = prober;
        self.picker.update(urls);
    }

    pub(crate) fn probe_status(&self) -> ProbeStatus {
        self.prober.lock().unwrap_or_else(|p| p.into_inner()).status()
    }

    pub(crate) async fn attach_outgoing(&self, typ: StreamType, tx: mpsc::Sender<std::io::Result<bytes::Bytes>>) {
        let w = match typ {
            StreamType::MsgAppV2 => &self.msgapp_writer,
            StreamType::Message => &self.writer,
        };
        w.attach(OutgoingConn { typ, tx }).await;
    }

    pub(crate) fn active_since(&self) -> Option<SystemTime> {
        self.status.active_since()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.snap_tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.abort();
        }
    }
}

/// A member we only know from its requests (`remote.go`): pipeline only, so that a member that
/// is behind on membership can still answer a newly joined one.
pub(crate) struct Remote {
    pipeline: Pipeline,
    ctx: Arc<Ctx>,
}

impl Remote {
    pub(crate) fn start(ctx: Arc<Ctx>, id: u64, urls: Vec<String>) -> Remote {
        let status = Arc::new(PeerStatus::new(ctx.cfg.member_id, id));
        let pipeline = Pipeline::start(ctx.clone(), id, Arc::new(UrlPicker::new(urls)), status);
        Remote { pipeline, ctx }
    }

    pub(crate) fn send(&self, m: Message) {
        if self.pipeline.msgc.try_send(m).is_err() {
            let _ = &self.ctx;
            tracing::warn!("dropped Raft message since sending buffer is full (overloaded network)");
        }
    }
}
