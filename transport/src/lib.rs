//! # wasmraft-transport
//!
//! etcd 3.4's peer transport (rafthttp), rebuilt on hyper 1 and tokio: the pipeline, stream and
//! snapshot roles, their codecs, headers and status codes, byte-compatible with etcd 3.4.23.
//! One file per role, as etcd has them:
//!
//! | file | role |
//! |---|---|
//! | `transport.rs` | [`Transport`]: peers, remotes, the handler, the host-facing API |
//! | `peer.rs` | one member: picks a channel per message, bounded queues, receive queues |
//! | `stream.rs` | stream writer / reader (`/raft/stream/{msgapp,message}/<id>`), link heartbeats |
//! | `pipeline.rs` | `POST /raft`, four workers |
//! | `snapshot_sender.rs` | `POST /raft/snapshot` with streamed state data |
//! | `msg_codec.rs`, `msgappv2_codec.rs` | the two stream framings |
//! | `pb.rs` | the raft protobuf, hand-written: etcd's exact bytes, and a decoder safe on hostile input |
//! | `http.rs` | routes, header checks, etcd's status codes and bodies |
//! | `members.rs` | the peer port's `GET /members` and its client, for joining members |
//! | `dial.rs` | dialing http and https peer URLs (TLS configured by the host) |
//! | `cork.rs` | write coalescing for HTTP/2 connections (the host's client API, the CLI's dials) |
//! | `listener_tls.rs`, `san.rs` | TLS on https peer listeners; the client certificate's SAN check |
//! | `status.rs`, `urlpick.rs` | peer status / active-since, URL picking |
//! | `probing.rs` | the peer prober (`GET /raft/probing`): RTT, health, clock drift warnings |
//! | `body.rs` | HTTP body plumbing (bounded channels, timed reads) |
//! | `fault.rs` | tests only: partitions cut in the transport, switched on the peer URL |
//!
//! Peer bytes never reach protobuf 2's parser (RUSTSEC-2024-0437): see `pb.rs`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod body;
pub mod cork;
pub mod dial;
pub mod fault;
pub mod http;
mod listener_tls;
pub mod members;
pub mod msg_codec;
pub mod msgappv2_codec;
pub mod pb;
mod peer;
mod pipeline;
pub mod probing;
mod san;
mod snapshot_sender;
mod status;
pub mod stream;
mod transport;
mod urlpick;

pub use listener_tls::PeerListenerTls;
pub use peer::Picked;
pub use probing::ProbeStatus;
pub use raft::SnapshotStatus;
pub use transport::Transport;

use bytes::Bytes;
use hyper::body::Incoming;
use raft::eraftpb::Message;

/// What the transport carried to and from one peer ([`Transport::traffic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTraffic {
    pub id: u64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

/// An error `Raft::process` returns.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProcessError {
    /// Answered with this status and etcd's JSON body `{"message": ...}` (etcd's `HTTPError`).
    #[error("{message}")]
    Http { code: u16, message: String },
    /// Anything else: 500 and the connection is closed.
    #[error("{0}")]
    Other(String),
}

/// Errors the transport reports to the host as fatal for this member (etcd's `ErrorC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriticalError {
    /// A peer answered 410/403: this member was removed from the cluster.
    MemberRemoved,
}

/// A forwarded promotion's outcome: the members' JSON, or an HTTP status and text.
pub type PromoteFuture<'a> = Pin<Box<dyn Future<Output = Result<String, (u16, String)>> + Send + 'a>>;

/// The host side, as etcd's `rafthttp.Raft`. Every method is called from transport tasks and
/// must return promptly (hand off to the raft loop; never block on it).
pub trait Raft: Send + Sync + 'static {
    /// Hands a received message to the raft loop.
    fn process(&self, m: Message) -> Result<(), ProcessError>;
    /// Whether `id` was removed from the cluster (its streams get 410, its messages 403).
    fn is_id_removed(&self, id: u64) -> bool;
    fn report_unreachable(&self, id: u64);
    fn report_snapshot(&self, id: u64, status: SnapshotStatus);
    /// Receives the state data of an incoming MsgSnap (before `process(m)` is called with it).
    /// Read `data` to its end; return the number of bytes saved, or an error (answered 500).
    fn save_snapshot<'a>(
        &'a self,
        m: &'a Message,
        data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>>;
    /// The cluster's members as etcd's JSON array, for the peer port's `GET /members` (None:
    /// not served, 404).
    fn members_json(&self) -> Option<String> {
        None
    }
    /// Promotes learner `id` for a member that forwarded the request here (the peer port's
    /// `POST /members/promote/<id>`): the members' JSON, or an HTTP status and text (default:
    /// 404, not served).
    fn promote_member(&self, id: u64) -> PromoteFuture<'_> {
        Box::pin(async move { Err((404, format!("member {id} not found in cluster"))) })
    }
    /// A fatal condition (default: logged only).
    fn report_critical_error(&self, err: CriticalError) {
        tracing::error!("rafthttp critical error: {err:?}");
    }
}

/// The state data of an incoming snapshot, streamed from the request body.
pub struct SnapshotData {
    pub(crate) reader: body::BodyReader<Incoming>,
}

impl SnapshotData {
    /// The next chunk (`None` at the end). Each wait is bounded by the read timeout.
    pub async fn chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        self.reader.chunk().await
    }
}

/// An outgoing MsgSnap and its state data (`size` bytes exactly).
pub struct OutgoingSnapshot {
    pub message: Message,
    pub data: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid peer URL: {0}")]
    InvalidUrl(String),
    #[error("invalid server or minimum cluster version")]
    InvalidVersion,
    #[error("transport stopped")]
    Stopped,
}

/// Configuration (etcd's `Transport` fields and rafthttp constants).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub member_id: u64,
    pub cluster_id: u64,
    /// This member's advertised peer URLs (sent as `X-PeerURLs`).
    pub peer_urls: Vec<String>,
    /// `X-Server-Version`: "3.4.23".
    pub server_version: String,
    /// `X-Min-Cluster-Version`: "3.0.0".
    pub min_cluster_version: String,
    /// etcd: 1 s + election timeout (`peerDialTimeout`), 2 s with the defaults.
    pub dial_timeout: Duration,
    /// etcd's `ConnReadTimeout` (5 s): stream reads, server reads; heartbeats every third of it.
    pub conn_read_timeout: Duration,
    /// etcd's `ConnWriteTimeout` (5 s): a stream write that cannot complete in this time fails.
    pub conn_write_timeout: Duration,
    /// Bound on one pipeline request's response (etcd has none; beyond dialing).
    pub pipeline_timeout: Duration,
    /// etcd's `DialRetryFrequency` (one dial per 100 ms per stream).
    pub dial_retry_interval: Duration,
    /// Largest message accepted from the network (etcd's 512 MB `readBytesLimit`).
    pub max_message_bytes: u64,
    /// How often each peer is probed on `/raft/probing` (etcd's `proberInterval`,
    /// `ConnReadTimeout - 1s`: 4 s).
    pub probe_interval: Duration,
    /// How https peer URLs are dialed (etcd's `PeerTLSInfo.ClientConfig()`); None: they are not.
    pub client_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Tests only: serve `/wasmraft/faults` on the peer URL and obey its cuts (see `fault.rs`).
    pub fault_injection: bool,
}

impl TransportConfig {
    /// etcd 3.4.23's defaults for the given member.
    pub fn new(member_id: u64, cluster_id: u64, peer_urls: Vec<String>) -> Self {
        TransportConfig {
            member_id,
            cluster_id,
            peer_urls,
            server_version: "3.4.23".into(),
            min_cluster_version: "3.0.0".into(),
            dial_timeout: Duration::from_secs(2),
            conn_read_timeout: Duration::from_secs(5),
            conn_write_timeout: Duration::from_secs(5),
            pipeline_timeout: Duration::from_secs(30),
            dial_retry_interval: Duration::from_millis(100),
            max_message_bytes: msg_codec::READ_BYTES_LIMIT,
            probe_interval: Duration::from_secs(4),
            client_tls: None,
            fault_injection: false,
        }
    }
}
