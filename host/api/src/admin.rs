//! wasmraft's guest administration API (`wasmraft.v1.GuestAdmin`): deploy, roll back, status,
//! list. The work is the node's (`node.guests()`: deploy and friends); this layer maps requests and
//! errors: a refused deploy is FAILED_PRECONDITION with the reason, member errors keep etcd's
//! codes and texts. Who may call it is decided before a request's body is read, by
//! `authz::GuestAdminGate` around this service (every call takes the root role).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmraft_proto::wasmraft::v1::{
    DeployRequest, DeployResponse, GuestStatusRequest, GuestStatusResponse, ListRequest, ListResponse, RollbackRequest,
    guest_admin_server::GuestAdmin,
};

use super::{Api, errors};
use wasmraft_node::DeployOptions;

pub struct AdminService {
    api: Arc<Api>,
}

impl AdminService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

#[tonic::async_trait]
impl GuestAdmin for AdminService {
    async fn deploy(&self, request: Request<DeployRequest>) -> Result<Response<DeployResponse>, Status> {
        self.api.check_member(&request, false)?;
        let r = request.into_inner();
        let opts = DeployOptions {
            force: r.force,
            fuel_per_entry: r.fuel_per_entry,
            memory_bytes: r.memory_bytes,
            stack_bytes: r.stack_bytes,
        };
        let deployment = self.api.node.guests().deploy(r.module, opts).await.map_err(errors::node_error)?;
        Ok(Response::new(DeployResponse { deployment: Some(deployment) }))
    }

    async fn rollback(&self, request: Request<RollbackRequest>) -> Result<Response<DeployResponse>, Status> {
        self.api.check_member(&request, false)?;
        let r = request.into_inner();
        let opts = DeployOptions { force: r.force, ..Default::default() };
        let deployment = self.api.node.guests().rollback(&r.target, opts).await.map_err(errors::node_error)?;
        Ok(Response::new(DeployResponse { deployment: Some(deployment) }))
    }

    async fn status(&self, request: Request<GuestStatusRequest>) -> Result<Response<GuestStatusResponse>, Status> {
        let node = &self.api.node;
        let status = node.guests().guest_status(request.get_ref().state_hash).await.map_err(errors::node_error)?;
        let member_name =
            node.cluster().members().into_iter().find(|m| m.id == node.member_id()).map(|m| m.name).unwrap_or_default();
        Ok(Response::new(GuestStatusResponse {
            member_id: node.member_id(),
            member_name,
            active: status.active,
            applied_index: status.applied_index,
            state_sha256: status.state_sha256,
        }))
    }

    async fn list(&self, _request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let modules = self.api.node.guests().stored_modules().await.map_err(errors::node_error)?;
        Ok(Response::new(ListResponse { modules }))
    }
}
