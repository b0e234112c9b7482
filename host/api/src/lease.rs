//! The Lease service: etcd's `LeaseServer` (v3rpc/lease.go) over the member's lessor
//! (`crate::lessor`, the timing) and the KV guest (the leases themselves).
//!
//! Grant and Revoke go through the log. KeepAlive and TimeToLive are answered by the leader's
//! lessor, the only one tracking deadlines: a follower forwards them (`lease_forward.rs`).
//! Leases lists what this member's lessor knows, as etcd does on any member.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wasmraft_proto::etcdserverpb::lease_server::Lease;
use wasmraft_proto::etcdserverpb::{
    InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader,
};
use wasmraft_proto::wasmraft::v1::{KvQuery, kv_query};

use super::errors::OrStatus as _;
use super::lease_forward::{KeepAliveUpstream, Leaders};
use super::{Api, errors, header};
use crate::lessor::{Lessor, RenewError};
use wasmraft_node::auth::{Access, AuthError};

/// How long a keep-alive header's revision may be reused. etcd fills the header *before* the
/// renewal so that its revision is never newer than the keep-alive; an older one is just as
/// correct, and reading the revision costs a guest query, too much for every keep-alive.
const REVISION_REUSE: Duration = Duration::from_millis(50);

pub struct LeaseService {
    api: Arc<Api>,
    lessor: Arc<Lessor>,
    leaders: Arc<Leaders>,
    revision: Arc<Mutex<Option<(Instant, i64)>>>,
}

impl LeaseService {
    pub(super) fn new(api: Arc<Api>, lessor: Arc<Lessor>) -> Self {
        Self { api, lessor, leaders: Arc::default(), revision: Arc::default() }
    }

    fn fill(&self, h: &mut Option<ResponseHeader>) {
        header::fill(&self.api.node, h);
    }

    fn timeout(&self) -> Duration {
        self.lessor.config().revoke_retry
    }

    /// A clone for the keep-alive task of one stream.
    fn share(&self) -> LeaseService {
        LeaseService {
            api: self.api.clone(),
            lessor: self.lessor.clone(),
            leaders: self.leaders.clone(),
            revision: self.revision.clone(),
        }
    }

    /// The store's revision for a keep-alive header (see [`REVISION_REUSE`]).
    async fn recent_revision(&self) -> i64 {
        let cached = *self.revision.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, rev)) = cached
            && at.elapsed() < REVISION_REUSE
        {
            return rev;
        }
        let at = Instant::now();
        let rev = self.api.current_revision().await;
        *self.revision.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, rev));
        rev
    }

    /// etcd's `LeaseRenew` on the leader: waits (within the request timeout) for the lessor to
    /// be promoted if this member leads but has not promoted yet; `Ok(None)` if this member
    /// does not lead, and the caller forwards.
    async fn renew_here(&self, id: i64) -> Result<Option<i64>, Status> {
        let node = &self.api.node;
        if node.status().leader() != node.member_id() {
            return Ok(None);
        }
        if !self.lessor.wait_primary(self.timeout()).await {
            return if node.status().leader() == node.member_id() { Err(errors::TIMEOUT.into()) } else { Ok(None) };
        }
        match self.lessor.renew(id).await {
            Ok(ttl) => Ok(Some(ttl)),
            // etcd waits for the applied index first; a grant this member has not applied yet
            // would otherwise be reported as not found.
            Err(RenewError::NotFound) => {
                node.reads().read_barrier().await.or_status()?;
                match self.lessor.renew(id).await {
                    Ok(ttl) => Ok(Some(ttl)),
                    Err(RenewError::NotFound) => Ok(Some(0)),
                    Err(RenewError::NotPrimary) => Ok(None),
                }
            }
            Err(RenewError::NotPrimary) => Ok(None),
        }
    }

    /// One keep-alive: the TTL, 0 when the lease is not found (etcd answers that, not an error).
    async fn keep_alive_once(&self, id: i64, upstream: &mut KeepAliveUpstream) -> Result<i64, Status> {
        let deadline = tokio::time::Instant::now() + self.timeout();
        loop {
            if let Some(ttl) = self.renew_here(id).await? {
                return Ok(ttl);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(errors::TIMEOUT.into());
            }
            if self.api.node.status().leader() != self.api.node.member_id() {
                return upstream.renew(&self.leaders, &self.api.node, id, left).await;
            }
        }
    }

    /// Serves one client's keep-alive stream until it ends.
    async fn keep_alive_stream(
        self,
        mut requests: Streaming<LeaseKeepAliveRequest>,
        out: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
    ) {
        let mut upstream = KeepAliveUpstream::default();
        loop {
            let req = match requests.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "failed to receive lease keepalive request from gRPC stream");
                    return;
                }
            };
            // The header is made before the renewal, as etcd makes it.
            let mut header = Some(ResponseHeader { revision: self.recent_revision().await, ..Default::default() });
            self.fill(&mut header);
            let answer = match self.keep_alive_once(req.id, &mut upstream).await {
                Ok(ttl) => Ok(LeaseKeepAliveResponse { header, id: req.id, ttl }),
                Err(e) => Err(e),
            };
            let failed = answer.is_err();
            if out.send(answer).await.is_err() || failed {
                return;
            }
        }
    }

    /// TimeToLive from this member's lessor (it leads and is primary) and the guest's record.
    /// The keys attached to a lease, from this member's state after a read barrier.
    async fn attached_keys(&self, r: &LeaseTimeToLiveRequest) -> Result<Vec<Vec<u8>>, Status> {
        let node = &self.api.node;
        node.reads().read_barrier().await.or_status()?;
        let q = KvQuery { request: Some(kv_query::Request::LeaseTimeToLive(*r)) };
        let answer = node.reads().query(q.encode_to_vec()).await.or_status()?;
        let resp = LeaseTimeToLiveResponse::decode(answer.as_slice())
            .map_err(|e| errors::bad_guest_response("LeaseTimeToLiveResponse", e))?;
        Ok(resp.keys)
    }

    async fn time_to_live_here(&self, r: &LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse, Status> {
        let node = &self.api.node;
        if self.lessor.time_to_live(r.id).is_none() {
            node.reads().read_barrier().await.or_status()?;
        }
        let Some(ttl) = self.lessor.time_to_live(r.id) else {
            return Err(errors::LEASE_NOT_FOUND.into());
        };
        let q = KvQuery { request: Some(kv_query::Request::LeaseTimeToLive(*r)) };
        let answer = node.reads().query(q.encode_to_vec()).await.or_status()?;
        let mut resp = LeaseTimeToLiveResponse::decode(answer.as_slice())
            .map_err(|e| errors::bad_guest_response("LeaseTimeToLiveResponse", e))?;
        resp.ttl = ttl.remaining.unwrap_or(ttl.granted);
        resp.granted_ttl = ttl.granted;
        Ok(resp)
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    /// The id is chosen here when the client leaves it 0 (etcd: a request id, made positive),
    /// and the TTL raised to the minimum; the guest refuses an existing id or a too large TTL.
    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let mut r = request.into_inner();
        while r.id == 0 {
            r.id = (self.api.request_ids.next() & (i64::MAX as u64)) as i64;
        }
        r.ttl = self.lessor.clamp_ttl(r.ttl);
        let mut resp: LeaseGrantResponse = self
            .api
            .propose(&caller, InternalRaftRequest { lease_grant: Some(r), ..Default::default() }, "LeaseGrantResponse")
            .await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let r = request.into_inner();
        let mut resp: LeaseRevokeResponse = self
            .api
            .propose(
                &caller,
                InternalRaftRequest { lease_revoke: Some(r), ..Default::default() },
                "LeaseRevokeResponse",
            )
            .await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(self.share().keep_alive_stream(request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// An unknown lease is not an error here: etcd answers TTL -1.
    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        // etcd 3.4.26+ (etcd#15814): with auth on, the attached keys are told only to a caller
        // who may read every one of them, checked at one auth revision.
        let checked = if request.get_ref().keys && self.api.node.auth().state().enabled {
            let caller = self.api.caller(&request)?;
            if caller.info().is_none() {
                return Err(errors::auth_error(AuthError::UserEmpty));
            }
            Some((caller, self.api.node.auth().state().revision))
        } else {
            None
        };
        let r = request.into_inner();
        let node = &self.api.node;
        let result = if node.status().leader() == node.member_id() && self.lessor.wait_primary(self.timeout()).await {
            self.time_to_live_here(&r).await
        } else {
            // The leader answers a forwarded call as one from no user, which may not see keys
            // with auth on; the keys are replicated state, so this member (which checked its
            // caller above) reads them itself, after a barrier, and the leader tells the TTL.
            let forwarded = LeaseTimeToLiveRequest { keys: false, ..r };
            match self.leaders.time_to_live(node, forwarded, self.timeout()).await {
                Ok(mut resp) if r.keys && resp.ttl != -1 => {
                    resp.keys = self.attached_keys(&r).await?;
                    Ok(resp)
                }
                other => other,
            }
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) if e.message() == errors::LEASE_NOT_FOUND.message => LeaseTimeToLiveResponse {
                header: Some(ResponseHeader::default()),
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(e),
        };
        if let Some((caller, revision)) = checked {
            let state = self.api.node.auth().state();
            for key in &resp.keys {
                state.check(caller.info(), Access::Read, key, b"").map_err(errors::auth_error)?;
            }
            if state.revision != revision {
                return Err(errors::auth_error(AuthError::AuthOldRevision));
            }
        }
        if resp.header.as_ref().is_none_or(|h| h.revision == 0) {
            resp.header = Some(ResponseHeader { revision: self.api.current_revision().await, ..Default::default() });
        }
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let leases = self.lessor.leases().into_iter().map(|id| LeaseStatus { id }).collect();
        let mut header = Some(ResponseHeader { revision: self.api.current_revision().await, ..Default::default() });
        self.fill(&mut header);
        Ok(Response::new(LeaseLeasesResponse { header, leases }))
    }
}
