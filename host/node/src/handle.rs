//! The handle ([`NodeHandle`]) and its types: the errors a request can get ([`NodeError`]),
//! the member's status, the active guest as the API sees it, and the weak handle long-lived
//! tasks hold.
//!
//! The handle itself says who the member is; what it can be asked is split by concern into
//! views, each a borrow of the handle: [`Proposals`] (writes through the log), [`Reads`] (read
//! barriers and guest queries), [`Cluster`] (membership and leadership), [`Guests`] (deploys and
//! the active guest), [`Status`] (status, alarms, maintenance) and [`Peers`] (what the peer
//! transport delivers). A caller names the concern it needs: `node.proposals().propose(..)`.

use std::sync::Arc;

/// Why a request did not get a guest's answer. The API layer turns these into etcd's errors.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    /// The guest returned `Err`, trapped, or ran out of fuel or memory; its text is for the client
    /// (for the KV guest it is etcd's error text, such as
    /// "etcdserver: mvcc: required revision has been compacted").
    #[error("{0}")]
    Guest(String),
    /// No result within the request timeout (etcd: "etcdserver: request timed out").
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Apply has fallen too far behind commit (etcd: "etcdserver: too many requests").
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// The encoded proposal is larger than --max-request-bytes.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// The member is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// There is no leader to order the request.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// Only the leader can do this (a leader transfer).
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A leader transfer to something that is not a voting member.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// The transferee did not become leader within the request timeout.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// No guest has been deployed yet (a new cluster before its first deploy entry applied).
    #[error("wasmraft: no guest is deployed yet")]
    NoGuest,
    /// A guest deploy or rollback was refused before anything was proposed (the module does not
    /// load, the name or version rules, an unknown rollback target): the reason.
    #[error("{0}")]
    DeployRefused(String),
    /// Refused by the auth store (etcd's auth errors).
    #[error("{0}")]
    Auth(crate::auth::AuthError),
    /// A membership change refused (etcd's membership and reconfiguration errors).
    #[error("{0}")]
    Membership(crate::membership::MembershipError),
    /// A local failure (storage, runtime) that is not the client's fault.
    #[error("wasmraft: internal error: {0}")]
    Internal(String),
}

/// A snapshot of the member's raft and storage state, for Maintenance.Status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    /// 0 when there is no known leader.
    pub leader: u64,
    pub raft_term: u64,
    /// The raft commit index.
    pub raft_index: u64,
    pub raft_applied_index: u64,
    /// Bytes on disk of the state database (etcd's backend size; the raft log, etcd's WAL, is
    /// not counted, as etcd does not count its WAL).
    pub db_size: u64,
    pub is_learner: bool,
}

/// The name, version and APIs of the guest that answers this member's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveGuest {
    pub name: String,
    pub version: String,
    pub apis: Vec<String>,
    /// sha256 of the component, hex.
    pub hash: String,
}

/// The member, as the client API uses it. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inner: Arc<super::Shared>,
}

/// A [`NodeHandle`] that does not keep the member alive (for what the member itself holds).
#[derive(Clone)]
pub struct WeakNodeHandle {
    inner: std::sync::Weak<super::Shared>,
}

impl NodeHandle {
    pub fn downgrade(&self) -> WeakNodeHandle {
        WeakNodeHandle { inner: Arc::downgrade(&self.inner) }
    }

    /// Writes through the log: guest commands, auth requests, alarms, the member's publish.
    pub fn proposals(&self) -> Proposals<'_> {
        Proposals { h: self }
    }

    /// Linearizable read barriers and the guest's queries.
    pub fn reads(&self) -> Reads<'_> {
        Reads { h: self }
    }

    /// The members, changes to them, and leadership transfer.
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster { h: self }
    }

    /// Guest deploys, rollbacks and the active guest.
    pub fn guests(&self) -> Guests<'_> {
        Guests { h: self }
    }

    /// The member's raft and storage status, alarms and maintenance (hash, snapshot, defrag).
    pub fn status(&self) -> Status<'_> {
        Status { h: self }
    }

    /// What the peer transport hands the member: raft messages, snapshots, reachability.
    pub fn peers(&self) -> Peers<'_> {
        Peers { h: self }
    }
}

macro_rules! views {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub struct $name<'a> {
                pub(crate) h: &'a NodeHandle,
            }
        )*
    };
}

views! {
    /// See [`NodeHandle::proposals`].
    Proposals,
    /// See [`NodeHandle::reads`].
    Reads,
    /// See [`NodeHandle::cluster`].
    Cluster,
    /// See [`NodeHandle::guests`].
    Guests,
    /// See [`NodeHandle::status`].
    Status,
    /// See [`NodeHandle::peers`].
    Peers,
}

impl WeakNodeHandle {
    /// The handle, unless the member is gone.
    pub fn upgrade(&self) -> Option<NodeHandle> {
        self.inner.upgrade().map(|inner| NodeHandle { inner })
    }
}
