//! The KV service: etcd's `kvServer` (v3rpc/key.go) with the raft side of etcd's `EtcdServer`
//! (v3_server.go) replaced by the node and the guest.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, InternalRaftRequest, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse, kv_server::Kv,
};

use super::errors::OrStatus as _;
use super::{Api, errors, header, request_stats, validate};

pub struct KvService {
    api: Arc<Api>,
}

impl KvService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// Sets the member's fields of a response header, as etcd's `hdr.fill` does after every call.
    fn fill(&self, h: &mut Option<wasmraft_proto::etcdserverpb::ResponseHeader>) {
        header::fill(&self.api.node, h);
    }

    /// A checked range: the read barrier unless serializable, the caller's permission, the
    /// guest's answer.
    async fn range_checked(&self, caller: &super::authz::Caller, r: &RangeRequest) -> Result<RangeResponse, Status> {
        if !r.serializable {
            self.api.node.reads().read_barrier().await.or_status()?;
        }
        let checked_at = self.api.check_read(caller, &r.key, &r.range_end)?;
        let answer = self.api.node.reads().query(r.encode_to_vec()).await.or_status()?;
        self.api.finish_read(caller, checked_at)?;
        let mut resp =
            RangeResponse::decode(answer.as_slice()).map_err(|e| errors::bad_guest_response("RangeResponse", e))?;
        self.fill(&mut resp.header);
        Ok(resp)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        request_stats::logged(request_stats::range(&request), self.serve_range(request)).await
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        request_stats::logged(request_stats::put(&request), self.serve_put(request)).await
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        request_stats::logged(request_stats::delete_range(&request), self.serve_delete_range(request)).await
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        request_stats::logged(request_stats::txn(&request), self.serve_txn(request)).await
    }

    /// etcd makes no API-level checks on a compaction, permissions included (3.4 lets any user
    /// compact); the guest refuses a compacted or future revision. A "physical" compaction needs no extra wait here: the guest compacts inside the
    /// entry's apply, so it is done when the answer comes back.
    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let r = request.into_inner();
        let mut resp: CompactionResponse = self
            .api
            .propose(&caller, InternalRaftRequest { compaction: Some(r), ..Default::default() }, "CompactionResponse")
            .await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }
}

/// The calls etcd's debug log describes in full (`request_stats`).
impl KvService {
    /// A linearizable range waits for a ReadIndex barrier and then reads this member's state; a
    /// serializable one reads the state as it is, and is the only KV call a learner serves.
    async fn serve_range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.api.check_member(&request, request.get_ref().serializable)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let r = request.into_inner();
        validate::check_range(&r)?;
        // etcd times a range from here, its read barrier included, and warns when it was slow.
        let started = std::time::Instant::now();
        let result = self.range_checked(&caller, &r).await;
        let shown = match &result {
            Ok(resp) => Ok((resp.kvs.len(), resp.encoded_len())),
            Err(status) => Err(status.message()),
        };
        wasmraft_node::slow::check_range(self.api.limits.warning_apply_duration, started, &r, shown);
        Ok(Response::new(result?))
    }

    async fn serve_put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let r = request.into_inner();
        validate::check_put(&r)?;
        let mut resp: PutResponse = self
            .api
            .propose(&caller, InternalRaftRequest { put: Some(r), ..Default::default() }, "PutResponse")
            .await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn serve_delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let r = request.into_inner();
        validate::check_delete(&r)?;
        let mut resp: DeleteRangeResponse = self
            .api
            .propose(
                &caller,
                InternalRaftRequest { delete_range: Some(r), ..Default::default() },
                "DeleteRangeResponse",
            )
            .await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    /// Every txn goes through the log, read-only ones included. etcd answers a read-only txn
    /// locally after a ReadIndex barrier (or without one when all its ranges are serializable);
    /// the KV guest's `query` takes only a `RangeRequest`, so here such a txn costs a log entry.
    /// The result is the same (the txn reads the state as of its place in the log, which is at
    /// least as new as the barrier would give) and it does not change any revision.
    async fn serve_txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let caller = self.api.caller(&request)?;
        let r = request.into_inner();
        validate::check_txn(&r, self.api.limits.max_txn_ops)?;
        let mut resp: TxnResponse = self
            .api
            .propose(&caller, InternalRaftRequest { txn: Some(r), ..Default::default() }, "TxnResponse")
            .await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }
}
