//! The seam between the transport and the host (etcd's `rafthttp.Raft` and the values that cross
//! it): what the host must provide, and what the roles hand it or take from it. Everything
//! above this file reaches the host only through [`Raft`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use hyper::body::Incoming;
use raft::SnapshotStatus;
use raft::eraftpb::Message;

use crate::body::BodyReader;

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

/// A member's keyspace hash at a revision (etcd's `kv.HashByRev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    /// The member's current revision (not the one asked for), as etcd answers it.
    pub revision: i64,
    pub compact_revision: i64,
}

/// A future of a [`PeerHashKv`] answer.
pub type HashKvFuture<'a> = Pin<Box<dyn Future<Output = Result<HashKv, String>> + Send + 'a>>;

/// The host side of `/members/hashkv`: the hash of this member's keyspace at `revision` (0: the
/// current one), or the error's text (etcd's mvcc texts for a compacted or future revision).
/// (`/members/hashkv`, see `hashkv.rs`.)
pub trait PeerHashKv: Send + Sync + 'static {
    fn hash_kv(&self, revision: i64) -> HashKvFuture<'_>;
}

/// The state data of an incoming snapshot, streamed from the request body.
pub struct SnapshotData {
    pub(crate) reader: BodyReader<Incoming>,
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
