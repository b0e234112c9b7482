//! The Maintenance service: `Status` (what `etcdctl endpoint status` shows) and `MoveLeader`
//! (`etcdctl move-leader`). Alarms, defrag, hashes and snapshots are not served yet and say so.

use std::sync::Arc;

use futures::stream::BoxStream;
use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    ResponseHeader, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse, maintenance_server::Maintenance,
};

use super::{Api, ETCD_VERSION, errors};

pub struct MaintenanceService {
    api: Arc<Api>,
}

impl MaintenanceService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

}


#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        Err(super::not_supported_yet("Alarm"))
    }

    /// etcd's `maintenanceServer.Status`. A learner answers it too (etcd allows Status on
    /// learners). The size in use is reported as the whole size: redb does not tell free pages
    /// apart cheaply, and etcdctl only prints it.
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.api.check_member(&request, true)?;
        let revision = self.api.current_revision().await;
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
        Err(super::not_supported_yet("Defragment"))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(super::not_supported_yet("Hash"))
    }

    async fn hash_kv(
        &self,
        _request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Err(super::not_supported_yet("HashKV"))
    }

    type SnapshotStream = BoxStream<'static, Result<SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(super::not_supported_yet("Snapshot"))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        // etcd's maintenanceServer.MoveLeader: only the leader moves leadership, and the answer
        // comes once the transferee leads (or the transfer timed out).
        self.api.check_member(&request, false)?;
        let node = &self.api.node;
        if node.leader() != node.member_id() {
            return Err(errors::NOT_LEADER.into());
        }
        node.move_leader(request.get_ref().target_id).await.map_err(errors::node_error)?;
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }
}
