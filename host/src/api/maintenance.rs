//! The Maintenance service: `Status` (what `etcdctl endpoint status` shows). Alarms, defrag,
//! hashes, snapshots and leader transfer are not served yet and say so.

use std::sync::Arc;

use futures::stream::BoxStream;
use prost::Message;
use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, RangeRequest,
    RangeResponse, ResponseHeader, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse, maintenance_server::Maintenance,
};

use super::{Api, ETCD_KV_API, ETCD_VERSION, errors};

pub struct MaintenanceService {
    api: Arc<Api>,
}

impl MaintenanceService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// The store's current revision for the Status header, which etcd fills from its MVCC store.
    /// The host has no revision of its own, so it asks a KV guest with the cheapest read there is
    /// (a count of one key, serializable). 0 when the guest is not a KV guest or cannot answer:
    /// Status is what operators use on a sick member, so it must not fail for this.
    async fn current_revision(&self) -> i64 {
        if !self
            .api
            .node
            .active_guest()
            .apis
            .iter()
            .any(|a| a == ETCD_KV_API)
        {
            return 0;
        }
        let probe = RangeRequest {
            key: vec![0],
            count_only: true,
            serializable: true,
            ..Default::default()
        };
        match self.api.node.query(probe.encode_to_vec()).await {
            Ok(answer) => match RangeResponse::decode(answer.as_slice()) {
                Ok(resp) => resp.header.map_or(0, |h| h.revision),
                Err(e) => {
                    tracing::debug!(error = %e, "the guest's answer to the revision probe is not a RangeResponse");
                    0
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "the guest did not answer the revision probe");
                0
            }
        }
    }
}

fn not_supported_yet(name: &str) -> Status {
    Status::unimplemented(format!("wasmraft: {name} is not supported yet"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        Err(not_supported_yet("Alarm"))
    }

    /// etcd's `maintenanceServer.Status`. A learner answers it too (etcd allows Status on
    /// learners). The size in use is reported as the whole size: redb does not tell free pages
    /// apart cheaply, and etcdctl only prints it.
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.api.check_member(&request, true)?;
        let revision = self.current_revision().await;
        let st = self.api.node.status();
        let db_size = i64::try_from(st.db_size).unwrap_or(i64::MAX);
        let mut errs = Vec::new();
        if st.leader == 0 {
            // etcd lists its "no leader" error rather than failing the call.
            errs.push(errors::NO_LEADER.message.to_owned());
        }
        Ok(Response::new(StatusResponse {
            header: Some(ResponseHeader {
                cluster_id: st.cluster_id,
                member_id: st.member_id,
                revision,
                raft_term: st.raft_term,
            }),
            version: ETCD_VERSION.to_owned(),
            db_size,
            leader: st.leader,
            raft_index: st.raft_index,
            raft_term: st.raft_term,
            raft_applied_index: st.raft_applied_index,
            errors: errs,
            db_size_in_use: db_size,
            is_learner: st.is_learner,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(not_supported_yet("Defragment"))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(not_supported_yet("Hash"))
    }

    async fn hash_kv(
        &self,
        _request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Err(not_supported_yet("HashKV"))
    }

    type SnapshotStream = BoxStream<'static, Result<SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_supported_yet("Snapshot"))
    }

    async fn move_leader(
        &self,
        _request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(not_supported_yet("MoveLeader"))
    }
}
