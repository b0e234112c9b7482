//! The Cluster service: the membership the log defines (host/src/membership.rs). Membership
//! changes (add, remove, update, promote) are not served yet.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
    ResponseHeader, cluster_server::Cluster,
};

use super::{Api, not_supported_yet};

pub struct ClusterService {
    api: Arc<Api>,
}

impl ClusterService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_supported_yet("MemberAdd"))
    }

    async fn member_remove(&self, _request: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_supported_yet("MemberRemove"))
    }

    async fn member_update(&self, _request: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_supported_yet("MemberUpdate"))
    }

    /// etcd's MemberList: every member with its peer URLs, and the name and client URLs it
    /// published (empty, "unstarted", until it has).
    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        self.api.check_member(&request, true)?;
        let node = &self.api.node;
        let members = node
            .members()
            .into_iter()
            .map(|m| Member { id: m.id, name: m.name, peer_ur_ls: m.peer_urls, client_ur_ls: m.client_urls, is_learner: m.is_learner })
            .collect();
        let header = ResponseHeader {
            cluster_id: node.cluster_id(),
            member_id: node.member_id(),
            revision: self.api.current_revision().await,
            raft_term: node.raft_term(),
        };
        Ok(Response::new(MemberListResponse { header: Some(header), members }))
    }

    async fn member_promote(&self, _request: Request<MemberPromoteRequest>) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_supported_yet("MemberPromote"))
    }
}
