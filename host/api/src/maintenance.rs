//! The Maintenance service, as etcd 3.4's `v3rpc/maintenance.go`: Status (`etcdctl endpoint
//! status`), Hash and HashKV (`endpoint hashkv`), Snapshot (`snapshot save`), Defragment
//! (`defrag`), Alarm (`alarm list|disarm`) and MoveLeader (`move-leader`).

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse, HashRequest,
    HashResponse, MoveLeaderRequest, MoveLeaderResponse, ResponseHeader, SnapshotRequest, SnapshotResponse,
    StatusRequest, StatusResponse, maintenance_server::Maintenance,
};

use super::errors::OrStatus as _;
use super::{Api, errors};
use wasmraft_node::maintenance::SnapshotPiece;

/// The request metadata that picks a snapshot's format: `etcd` (the default) or `wasmraft`.
pub const SNAPSHOT_FORMAT_HEADER: &str = "wasmraft-snapshot-format";

pub struct MaintenanceService {
    api: Arc<Api>,
}

impl MaintenanceService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// A response header as etcd's `header.fill` makes it, at `revision`.
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        super::header::at(&self.api.node, revision)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// etcd's `EtcdServer.Alarm`: every action, GET included, goes through the log. etcd 3.4
    /// answers with no header (its applier builds a bare `AlarmResponse` and the maintenance
    /// server does not fill one), which its JSON gateway shows as `{}`.
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_alarm_caller(&request)?;
        let mut resp = self.api.node.proposals().alarm(request.into_inner()).await.or_status()?;
        resp.header = None;
        Ok(Response::new(resp))
    }

    /// etcd's `maintenanceServer.Status`. A learner answers it too (etcd allows Status on
    /// learners). `db_size` is the state database's file (etcd's backend; the raft log, like
    /// etcd's WAL, is not counted). The size in use is the backend size the quota bounds,
    /// counted from the keyspace (`wasmraft_node::kv_size`): redb only tells its free pages
    /// apart by walking every tree, too slow for a status call.
    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.api.check_member(&request, true)?;
        let revision = self.api.current_revision().await;
        let st = self.api.node.status().current();
        let db_size = i64::try_from(st.db_size).unwrap_or(i64::MAX);
        let mut errs = Vec::new();
        if st.leader == 0 {
            // etcd lists its "no leader" error rather than failing the call.
            errs.push(errors::NO_LEADER.message.to_owned());
        }
        errs.extend(self.api.node.status().alarms().iter().map(wasmraft_node::alarms::status_text));
        Ok(Response::new(StatusResponse {
            header: Some(ResponseHeader {
                cluster_id: st.cluster_id,
                member_id: st.member_id,
                revision,
                raft_term: st.raft_term,
            }),
            version: self.api.limits.etcd_version.to_string(),
            db_size,
            leader: st.leader,
            raft_index: st.raft_index,
            raft_term: st.raft_term,
            raft_applied_index: st.raft_applied_index,
            errors: errs,
            db_size_in_use: i64::try_from(self.api.node.status().backend_size()).unwrap_or(i64::MAX),
            is_learner: st.is_learner,
        }))
    }

    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_maintenance_admin(&request)?;
        self.api.node.status().defragment().await.or_status()?;
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    /// A hash of this member's whole state database (see `NodeHandle::state_hash` for what it
    /// covers), with the store's revision in the header as etcd's `kvstore.Hash` gives it.
    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_maintenance_admin(&request)?;
        let hash = self.api.node.status().state_hash().await.or_status()?;
        let revision = self.api.current_revision().await;
        Ok(Response::new(HashResponse { header: self.header(revision), hash }))
    }

    /// The KV guest's hash of its keyspace at a revision (etcd's `kvstore.HashByRev`), from this
    /// member's state without a read barrier, as etcd answers it.
    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_maintenance_admin(&request)?;
        self.api.require_kv_guest()?;
        let native = self.api.limits.etcd_backend_guest;
        let mut resp = crate::hash_kv::hash_kv(&self.api.node, native, request.into_inner()).await.or_status()?;
        let revision = resp.header.map_or(0, |h| h.revision);
        resp.header = self.header(revision);
        Ok(Response::new(resp))
    }

    type SnapshotStream = BoxStream<'static, Result<SnapshotResponse, Status>>;

    /// etcd's `maintenanceServer.Snapshot`: the state in 32 KiB messages, `remaining_bytes`
    /// counting down to 0, then one last message with the sha256 of all of it, which
    /// `etcdctl snapshot restore` (and `wasmraft snapshot restore`) checks.
    ///
    /// The state is etcd's bbolt backend while the bundled KV guest is active — the file
    /// etcdctl's `snapshot status`/`restore` and etcd read. Any other guest's keyspace has no
    /// etcd form: the request is refused unless it asks for wasmraft's own format (metadata
    /// [`SNAPSHOT_FORMAT_HEADER`]` = wasmraft`, what `wasmraft snapshot save` sends), which
    /// carries any guest with its modules and deployment and which `wasmraft snapshot restore`
    /// also reads.
    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_maintenance_admin(&request)?;
        let wasmraft_format = match request.metadata().get(SNAPSHOT_FORMAT_HEADER).map(|v| v.to_str()) {
            None => false,
            Some(Ok("wasmraft")) => true,
            Some(Ok("etcd")) => false,
            Some(other) => {
                return Err(Status::invalid_argument(format!(
                    "wasmraft: {SNAPSHOT_FORMAT_HEADER} must be \"etcd\" or \"wasmraft\", not {:?}",
                    other.unwrap_or("(not text)")
                )));
            }
        };
        let status = self.api.node.status();
        let rx = if wasmraft_format {
            status.snapshot_stream().await.or_status()?
        } else {
            if crate::hash_kv::is_active(&self.api.node, self.api.limits.etcd_backend_guest) {
                let encoder = wasmraft_backup::EtcdBackend {
                    cluster_version: wasmraft_proto::contract::ETCD_CLUSTER_VERSION.to_string(),
                };
                status.encoded_snapshot_stream(Arc::new(encoder)).await.or_status()?
            } else {
                return Err(match self.api.node.guests().active_guest() {
                    Some(a) => Status::failed_precondition(format!(
                        "wasmraft: the active guest {} {} is not the bundled KV guest, so its state has no etcd backend form; \
                         `wasmraft snapshot save` writes wasmraft's snapshot format, which carries any guest",
                        a.name, a.version
                    )),
                    None => errors::node_error(wasmraft_node::NodeError::NoGuest),
                });
            }
        };
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|piece| match piece {
            Ok(SnapshotPiece::Data { bytes, remaining }) => {
                Ok(SnapshotResponse { header: None, remaining_bytes: remaining, blob: bytes })
            }
            Ok(SnapshotPiece::Digest(digest)) => {
                Ok(SnapshotResponse { header: None, remaining_bytes: 0, blob: digest.to_vec() })
            }
            Err(e) => Err(super::errors::node_error(e)),
        });
        Ok(Response::new(stream.boxed()))
    }

    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        // etcd's maintenanceServer.MoveLeader: only the leader moves leadership, and the answer
        // comes once the transferee leads (or the transfer timed out).
        self.api.check_member(&request, false)?;
        let node = &self.api.node;
        if node.status().leader() != node.member_id() {
            return Err(errors::NOT_LEADER.into());
        }
        node.cluster().move_leader(request.get_ref().target_id).await.map_err(errors::node_error)?;
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }
}
