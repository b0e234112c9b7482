//! Pipeline (`pipeline.go`): one `POST /raft` per message, four workers per peer sharing a queue
//! of 64. Used for MsgSnap-without-data, for everything while the streams are down, and for
//! remotes (members not yet in our peer set). A failed post deactivates the peer, moves the URL
//! picker on and reports the target unreachable (and a MsgSnap's snapshot as failed); a 403
//! (we were removed) is a critical error.

use std::sync::Arc;

use http::{Method, Request};
use raft::SnapshotStatus;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::body::ChannelBody;
use crate::ctx::Ctx;
use crate::fault::CUT_REFUSAL;
use crate::host::CriticalError;
use crate::pb;
use crate::status::PeerStatus;
use crate::urlpick::UrlPicker;
use crate::util::{PostError, RAFT_PREFIX, bytes_of, check_post_response, read_small_body, set_common_headers};

/// etcd's `connPerPipeline`.
pub const CONN_PER_PIPELINE: usize = 4;
/// etcd's `pipelineBufSize`.
pub const PIPELINE_BUF_SIZE: usize = 64;

pub(crate) struct Pipeline {
    pub msgc: mpsc::Sender<Message>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    pub(crate) fn start(ctx: Arc<Ctx>, peer_id: u64, picker: Arc<UrlPicker>, status: Arc<PeerStatus>) -> Pipeline {
        let (msgc, rx) = mpsc::channel::<Message>(PIPELINE_BUF_SIZE);
        let rx = Arc::new(Mutex::new(rx));
        let tasks = (0..CONN_PER_PIPELINE)
            .map(|_| {
                let (ctx, picker, status, rx) = (ctx.clone(), picker.clone(), status.clone(), rx.clone());
                tokio::spawn(async move {
                    loop {
                        let m = match rx.lock().await.recv().await {
                            Some(m) => m,
                            None => return,
                        };
                        let is_snap = m.msg_type == MessageType::MsgSnapshot;
                        let data = pb::encode_message(&m);
                        let res = if ctx.faults.is_cut(m.to) {
                            Err(PostError::Other(CUT_REFUSAL.into()))
                        } else {
                            post(&ctx, &picker, &data).await
                        };
                        match res {
                            Ok(()) => {
                                status.sent(data.len());
                                status.activate();
                                if is_snap {
                                    ctx.raft.report_snapshot(m.to, SnapshotStatus::Finish);
                                }
                            }
                            Err(e) => {
                                status.deactivate("pipeline", "write", &e.to_string());
                                ctx.raft.report_unreachable(m.to);
                                if is_snap {
                                    ctx.raft.report_snapshot(m.to, SnapshotStatus::Failure);
                                }
                                let _ = peer_id;
                            }
                        }
                    }
                })
            })
            .collect();
        Pipeline { msgc, tasks }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn post(ctx: &Ctx, picker: &UrlPicker, data: &[u8]) -> Result<(), PostError> {
    let u = picker.pick();
    let res = post_to(ctx, &u, data).await;
    if let Err(e) = &res {
        picker.unreachable(&u);
        if matches!(e, PostError::MemberRemoved) {
            ctx.raft.report_critical_error(CriticalError::MemberRemoved);
        }
    }
    res
}

async fn post_to(ctx: &Ctx, base: &str, data: &[u8]) -> Result<(), PostError> {
    let url = format!("{base}{RAFT_PREFIX}");
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header("Content-Type", "application/protobuf")
        .body(ChannelBody::full(bytes_of(data.to_vec())))
        .map_err(|e| PostError::Other(e.to_string()))?;
    set_common_headers(req.headers_mut(), &ctx.cfg);
    let resp = tokio::time::timeout(ctx.cfg.dial_timeout + ctx.cfg.pipeline_timeout, ctx.client.request(req))
        .await
        .map_err(|_| PostError::Other(format!("timeout posting to {url:?}")))?
        .map_err(|e| PostError::Other(e.to_string()))?;
    let status = resp.status();
    let body = read_small_body(resp.into_body(), ctx.cfg.conn_read_timeout)
        .await
        .map_err(|e| PostError::Other(e.to_string()))?;
    check_post_response(status, &body, &url)
}
