//! Streams (`stream.go`): long-lived GETs that carry raft messages one way. The member that
//! *receives* dials `GET /raft/stream/{msgapp,message}/<its own id>` to the sender; the sender's
//! handler hands the response body to its [`StreamWriter`], which writes frames into it.
//!
//! - `StreamWriter` (one per type per peer): accepts a connection, encodes queued messages into
//!   the body (batched into one chunk while the queue has more), and every `read_timeout / 3`
//!   writes a link heartbeat so the reader's read timeout never fires on an idle stream. A write
//!   that cannot complete within the write timeout (or a gone connection) deactivates the peer,
//!   closes the stream and reports the message's target unreachable; messages still queued at
//!   close are dropped and reported as etcd does.
//! - `StreamReader` (one per type per peer): dials, checks the answer (410 removed → critical
//!   error, 404, 412 with etcd's bodies), decodes frames with a read timeout and hands messages
//!   to the peer's bounded receive queues (MsgProp to its own queue), dropping when full. Dials
//!   are retried no more often than the dial retry interval (etcd's rate limiter, 100 ms).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::body::{BodyReader, ChannelBody};
use crate::ctx::Ctx;
use crate::fault::CUT_REFUSAL;
use crate::host::CriticalError;
use crate::msg_codec::{self, CodecError};
use crate::msgappv2_codec::{self, MsgAppV2Decoder, MsgAppV2Encoder};
use crate::status::PeerStatus;
use crate::urlpick::UrlPicker;
use crate::util::{check_cluster_compat_answer, header_version, id_str, read_small_body, set_common_headers};

/// etcd's `streamBufSize`: a stream writer's queue.
pub const STREAM_BUF_SIZE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// `msgappv2`: MsgApp only, on `/raft/stream/msgapp/`.
    MsgAppV2,
    /// `message`: everything else, on `/raft/stream/message/`.
    Message,
}

impl StreamType {
    pub fn endpoint(self) -> &'static str {
        match self {
            StreamType::MsgAppV2 => "/raft/stream/msgapp",
            StreamType::Message => "/raft/stream/message",
        }
    }
    fn name(self) -> &'static str {
        match self {
            StreamType::MsgAppV2 => "stream MsgApp v2",
            StreamType::Message => "stream Message",
        }
    }
}

/// A stream response body handed from the handler to the writer.
pub(crate) struct OutgoingConn {
    pub typ: StreamType,
    pub tx: mpsc::Sender<io::Result<Bytes>>,
}

enum Encoder {
    V2(MsgAppV2Encoder),
    Msg,
}

impl Encoder {
    fn encode(&mut self, m: &Message, out: &mut Vec<u8>) {
        match self {
            Encoder::V2(e) => e.encode(m, out),
            Encoder::Msg => msg_codec::encode_frame(m, out),
        }
    }
}

#[derive(Default)]
struct WriterState {
    msgc: Option<mpsc::Sender<Message>>,
}

pub(crate) struct StreamWriter {
    state: Mutex<WriterState>,
    connc: mpsc::Sender<OutgoingConn>,
}

impl StreamWriter {
    pub(crate) fn start(ctx: Arc<Ctx>, peer_id: u64, status: Arc<PeerStatus>) -> (Arc<StreamWriter>, JoinHandle<()>) {
        let (connc, conn_rx) = mpsc::channel(1);
        let w = Arc::new(StreamWriter { state: Mutex::new(WriterState::default()), connc });
        let task = tokio::spawn(run_writer(w.clone(), ctx, peer_id, status, conn_rx));
        (w, task)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue to write to, if the stream is working.
    pub(crate) fn writec(&self) -> Option<mpsc::Sender<Message>> {
        self.lock().msgc.clone()
    }

    pub(crate) async fn attach(&self, conn: OutgoingConn) -> bool {
        self.connc.send(conn).await.is_ok()
    }
}

async fn run_writer(
    w: Arc<StreamWriter>,
    ctx: Arc<Ctx>,
    peer_id: u64,
    status: Arc<PeerStatus>,
    mut conn_rx: mpsc::Receiver<OutgoingConn>,
) {
    let heartbeat_every = (ctx.cfg.conn_read_timeout / 3).max(Duration::from_millis(1));
    let write_timeout = ctx.cfg.conn_write_timeout;
    let mut next_conn = None;
    loop {
        let conn = match next_conn.take() {
            Some(c) => c,
            None => match conn_rx.recv().await {
                Some(c) => c,
                None => return,
            },
        };
        let OutgoingConn { typ, tx } = conn;
        if ctx.faults.is_cut(peer_id) {
            continue; // dropping `tx` ends the response at once
        }
        let (mtx, mut mrx) = mpsc::channel(STREAM_BUF_SIZE);
        w.lock().msgc = Some(mtx);
        status.activate();
        tracing::info!(peer = %id_str(peer_id), "established TCP streaming connection with remote peer ({})", typ.name());
        let mut enc = match typ {
            StreamType::MsgAppV2 => Encoder::V2(MsgAppV2Encoder::new()),
            StreamType::Message => Encoder::Msg,
        };
        let mut ticker = tokio::time::interval(heartbeat_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                c = conn_rx.recv() => {
                    match c {
                        Some(c) => next_conn = Some(c),
                        None => { close(&w, &ctx, peer_id, &mrx); return; }
                    }
                    break;
                }
                m = mrx.recv() => {
                    let Some(m) = m else { break };
                    let to = m.to;
                    let mut buf = Vec::new();
                    enc.encode(&m, &mut buf);
                    let mut batched = 0;
                    while batched < STREAM_BUF_SIZE / 2 {
                        match mrx.try_recv() {
                            Ok(m) => { enc.encode(&m, &mut buf); batched += 1; }
                            Err(_) => break,
                        }
                    }
                    let len = buf.len();
                    if let Err(e) = write(&tx, buf, write_timeout).await {
                        status.deactivate(typ.name(), "write", &e);
                        close(&w, &ctx, peer_id, &mrx);
                        tracing::warn!(peer = %id_str(peer_id), "lost TCP streaming connection with remote peer ({})", typ.name());
                        ctx.raft.report_unreachable(to);
                        break;
                    }
                    status.sent(len);
                }
                _ = ctx.faults.until_cut(peer_id) => {
                    status.deactivate(typ.name(), "write", CUT_REFUSAL);
                    close(&w, &ctx, peer_id, &mrx);
                    tracing::warn!(peer = %id_str(peer_id), "closed TCP streaming connection with remote peer ({}): {}", typ.name(), CUT_REFUSAL);
                    break;
                }
                _ = ticker.tick() => {
                    let mut buf = Vec::new();
                    enc.encode(&msgappv2_codec::link_heartbeat(), &mut buf);
                    let len = buf.len();
                    if let Err(e) = write(&tx, buf, write_timeout).await {
                        status.deactivate(typ.name(), "heartbeat", &e);
                        close(&w, &ctx, peer_id, &mrx);
                        tracing::warn!(peer = %id_str(peer_id), "lost TCP streaming connection with remote peer ({})", typ.name());
                        break;
                    }
                    status.sent(len);
                }
            }
        }
        if next_conn.is_some() {
            close(&w, &ctx, peer_id, &mrx);
        }
        // `tx` drops here: the response body ends and the reader redials.
    }
}

async fn write(tx: &mpsc::Sender<io::Result<Bytes>>, buf: Vec<u8>, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tx.send(Ok(Bytes::from(buf)))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("connection closed".into()),
        Err(_) => Err("write timeout".into()),
    }
}

fn close(w: &StreamWriter, ctx: &Ctx, peer_id: u64, pending: &mpsc::Receiver<Message>) {
    w.lock().msgc = None;
    if !pending.is_empty() {
        ctx.raft.report_unreachable(peer_id);
    }
}

/// The receive side's queues (the peer's `recvc` and `propc`).
#[derive(Clone)]
pub(crate) struct RecvQueues {
    pub recvc: mpsc::Sender<Message>,
    pub propc: mpsc::Sender<Message>,
}

pub(crate) fn start_reader(
    ctx: Arc<Ctx>,
    peer_id: u64,
    typ: StreamType,
    picker: Arc<UrlPicker>,
    status: Arc<PeerStatus>,
    queues: RecvQueues,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            ctx.faults.until_healed(peer_id).await;
            let started = tokio::time::Instant::now();
            let u = picker.pick();
            match dial(&ctx, peer_id, typ, &u).await {
                Ok(Some(body)) => {
                    status.activate();
                    let err = tokio::select! {
                        err = decode_loop(&ctx, peer_id, typ, body, &status, &queues) => err,
                        // Dropping the body closes the connection.
                        _ = ctx.faults.until_cut(peer_id) => CodecError::Io(io::Error::other(CUT_REFUSAL)),
                    };
                    tracing::warn!(peer = %id_str(peer_id), "lost TCP streaming connection with remote peer ({}): {err}", typ.name());
                    if !matches!(&err, CodecError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof) {
                        status.deactivate(typ.name(), "read", &err.to_string());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    picker.unreachable(&u);
                    status.deactivate(typ.name(), "dial", &e);
                }
            }
            tokio::time::sleep_until(started + ctx.cfg.dial_retry_interval).await;
        }
    })
}

/// `Ok(None)`: the remote does not support this stream type (etcd 2.0).
async fn dial(ctx: &Ctx, peer_id: u64, typ: StreamType, base: &str) -> Result<Option<hyper::body::Incoming>, String> {
    let uri = format!("{base}{}/{}", typ.endpoint(), id_str(ctx.cfg.member_id));
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(&uri)
        .body(ChannelBody::empty())
        .map_err(|e| format!("failed to make http request to {base} ({e})"))?;
    set_common_headers(req.headers_mut(), &ctx.cfg);
    if let Ok(v) = http::HeaderValue::from_str(&id_str(peer_id)) {
        req.headers_mut().insert("X-Raft-To", v);
    }
    let resp = tokio::time::timeout(ctx.cfg.dial_timeout + ctx.cfg.conn_read_timeout, ctx.client.request(req))
        .await
        .map_err(|_| "dial timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let rv = header_version(resp.headers(), "X-Server-Version");
    if rv.is_some_and(|v| (v.major, v.minor) == (2, 0)) {
        return Ok(None);
    }
    match resp.status() {
        StatusCode::OK => Ok(Some(resp.into_body())),
        StatusCode::GONE => {
            ctx.raft.report_critical_error(CriticalError::MemberRemoved);
            Err("the member has been permanently removed from the cluster".into())
        }
        StatusCode::NOT_FOUND => {
            Err(format!("peer {} failed to find local node {}", id_str(peer_id), id_str(ctx.cfg.member_id)))
        }
        StatusCode::PRECONDITION_FAILED => {
            let body = read_small_body(resp.into_body(), ctx.cfg.conn_read_timeout).await.map_err(|e| e.to_string())?;
            Err(check_cluster_compat_answer(&body))
        }
        s => Err(format!("unhandled http status {}", s.as_u16())),
    }
}

async fn decode_loop(
    ctx: &Ctx,
    peer_id: u64,
    typ: StreamType,
    body: hyper::body::Incoming,
    status: &PeerStatus,
    q: &RecvQueues,
) -> CodecError {
    let limit = ctx.cfg.max_message_bytes;
    let mut r = BodyReader::new(body, Some(ctx.cfg.conn_read_timeout));
    let mut v2 = MsgAppV2Decoder::new(ctx.cfg.member_id, peer_id, limit);
    let mut counted = 0;
    loop {
        let m = match typ {
            StreamType::MsgAppV2 => v2.decode(&mut r).await,
            StreamType::Message => msg_codec::decode_frame(&mut r, limit).await,
        };
        status.received(r.bytes_read() - counted);
        counted = r.bytes_read();
        let m = match m {
            Ok(m) => m,
            Err(e) => return e,
        };
        if msgappv2_codec::is_link_heartbeat(&m) {
            continue;
        }
        let queue = if m.msg_type == MessageType::MsgPropose { &q.propc } else { &q.recvc };
        if queue.try_send(m).is_err() {
            tracing::warn!(peer = %id_str(peer_id), active = status.is_active(), "dropped Raft message since receiving buffer is full (overloaded network)");
        }
    }
}
