//! The Cluster service: the membership the log defines (host/node/src/membership.rs) and changes to
//! it through raft conf changes (host/node/src/conf_change.rs, host/node/src/reconfigure.rs), with
//! etcd 3.4's checks and errors. Like every etcd RPC but Status and serializable Range, none is
//! served by a learner. With auth on, changes take the root role (`authz.rs`); the list takes
//! nothing.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
    ResponseHeader, cluster_server::Cluster,
};

use super::errors::OrStatus as _;
use super::{Api, errors};
use wasmraft_node::conf_change::Change;
use wasmraft_node::membership::Member as Record;

pub struct ClusterService {
    api: Arc<Api>,
}

impl ClusterService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// etcd's `ClusterServer.header`: no revision in membership responses.
    fn header(&self) -> ResponseHeader {
        let node = &self.api.node;
        ResponseHeader {
            cluster_id: node.cluster_id(),
            member_id: node.member_id(),
            revision: 0,
            raft_term: node.status().raft_term(),
        }
    }
}

fn to_proto(members: Vec<Record>) -> Vec<Member> {
    members
        .into_iter()
        .map(|m| Member {
            id: m.id,
            name: m.name,
            peer_ur_ls: m.peer_urls,
            client_ur_ls: m.client_urls,
            is_learner: m.is_learner,
        })
        .collect()
}

/// etcd's `types.NewURLs`: http(s)/unix(s) URLs with an explicit host:port and no path,
/// sorted; anything else is "given member URLs are invalid".
fn peer_urls(input: &[String]) -> Result<Vec<String>, Status> {
    if input.is_empty() {
        return Err(errors::MEMBER_BAD_URLS.into());
    }
    let mut out = Vec::with_capacity(input.len());
    for s in input {
        let s = s.trim();
        if !valid_peer_url(s) {
            return Err(errors::MEMBER_BAD_URLS.into());
        }
        out.push(s.to_string());
    }
    out.sort();
    Ok(out)
}

fn valid_peer_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") || rest.contains(['/', '?', '#']) {
        return false;
    }
    // Go's net.SplitHostPort: a port separator after the host (bracketed for IPv6).
    let has_port = rest
        .rsplit_once(':')
        .is_some_and(|(host, port)| !port.contains(']') && (!host.starts_with('[') || host.ends_with(']')));
    has_port && url::Url::parse(s).is_ok()
}

fn now_unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    /// etcd's MemberAdd: the new member's id from its peer URLs and the time (etcd's
    /// `NewMember` with an empty cluster name), then a conf change adding it as a voter or a
    /// learner; the response lists every member after the change.
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        self.api.check_member(&request, false)?;
        let urls = peer_urls(&request.get_ref().peer_ur_ls)?;
        // After the URLs, as etcd: a bad URL is reported whoever asks.
        self.api.check_membership_change(&request)?;
        let r = request.into_inner();
        let id = wasmraft_node::ids::member_id(&urls, &now_unix_secs().to_string());
        let added = Record { id, peer_urls: urls.clone(), is_learner: r.is_learner, ..Default::default() };
        let members = self.api.node.cluster().change_membership(Change::Add(added)).await.or_status()?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.header()),
            member: Some(Member { id, peer_ur_ls: urls, is_learner: r.is_learner, ..Default::default() }),
            members: to_proto(members),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_membership_change(&request)?;
        let id = request.into_inner().id;
        let members = self.api.node.cluster().change_membership(Change::Remove(id)).await.or_status()?;
        Ok(Response::new(MemberRemoveResponse { header: Some(self.header()), members: to_proto(members) }))
    }

    /// etcd's MemberUpdate: new peer URLs for a member (taken as given, as etcd does).
    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_membership_change(&request)?;
        let r = request.into_inner();
        let members = self
            .api
            .node
            .cluster()
            .change_membership(Change::Update { id: r.id, peer_urls: r.peer_ur_ls })
            .await
            .or_status()?;
        Ok(Response::new(MemberUpdateResponse { header: Some(self.header()), members: to_proto(members) }))
    }

    /// etcd's MemberList: every member with its peer URLs, and the name and client URLs it
    /// published (empty, "unstarted", until it has).
    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        self.api.check_member(&request, false)?;
        Ok(Response::new(MemberListResponse {
            header: Some(self.header()),
            members: to_proto(self.api.node.cluster().members()),
        }))
    }

    /// etcd's MemberPromote: only the leader knows whether the learner has caught up, so a
    /// follower hands the request to the leader, as etcd does over its peer port.
    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.api.check_member(&request, false)?;
        self.api.check_membership_change(&request)?;
        let id = request.into_inner().id;
        let members = match self.api.node.cluster().change_membership(Change::Promote(id)).await {
            Err(wasmraft_node::NodeError::NotLeader) => {
                self.api.node.cluster().promote_on_leader(id).await.or_status()?
            }
            other => other.or_status()?,
        };
        Ok(Response::new(MemberPromoteResponse { header: Some(self.header()), members: to_proto(members) }))
    }
}
