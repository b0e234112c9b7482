//! wasmraft's generic client API (`wasmraft.v1.Generic`): bytes in, bytes out, for any guest.
//!
//! `Propose` goes through the raft log and answers with the guest's `apply` result; `Query` runs
//! the guest's read-only `query`, after a ReadIndex barrier (linearizable, the default) or on this
//! member's state as it is (serializable); `Info` names the active guest. The bytes are never
//! looked at, so this works for the bundled KV guest too (its commands are etcd's
//! `InternalRaftRequest`, its queries `RangeRequest`).
//!
//! Errors: a guest's `Err` text (also a trap, out-of-fuel or memory cap: the node reports those as
//! guest errors) comes back as ABORTED with the guest's text unchanged: the entry was applied and
//! rolled back, or the query failed, and nothing changed. ABORTED rather than the etcd API's
//! UNKNOWN-or-etcd-code mapping because this API promises nothing about a guest's texts, and a
//! client must be able to tell "the guest refused" from a member failure. Everything else (request
//! too large, no leader, timeout, stopped) keeps the etcd API's codes and texts.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmraft_proto::wasmraft::v1::{
    Consistency, InfoRequest, InfoResponse, ProposeRequest, ProposeResponse, QueryRequest, QueryResponse,
    generic_server::Generic,
};

use super::{Api, errors};
use wasmraft_node::NodeError;

pub struct GenericService {
    api: Arc<Api>,
}

impl GenericService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

/// A node error as this API reports it (see the module comment).
pub fn generic_error(err: NodeError) -> Status {
    match err {
        NodeError::Guest(text) => Status::aborted(text),
        other => errors::node_error(other),
    }
}

#[tonic::async_trait]
impl Generic for GenericService {
    async fn propose(&self, request: Request<ProposeRequest>) -> Result<Response<ProposeResponse>, Status> {
        self.api.check_member(&request, false)?;
        let caller = self.api.caller(&request)?;
        let stamp = self.api.check_generic(&caller, wasmraft_node::auth::Access::Write)?;
        let command = request.into_inner().command;
        // The same limit the etcd API applies to its encoded proposals.
        if command.len() > self.api.limits.max_request_bytes {
            return Err(errors::REQUEST_TOO_LARGE.into());
        }
        let result = self.api.node.proposals().propose_checked(command, stamp).await.map_err(generic_error)?;
        Ok(Response::new(ProposeResponse { result }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        let consistency = Consistency::try_from(request.get_ref().consistency).map_err(|_| {
            Status::invalid_argument(format!("wasmraft: unknown consistency {}", request.get_ref().consistency))
        })?;
        let serializable = consistency == Consistency::Serializable;
        self.api.check_member(&request, serializable)?;
        let caller = self.api.caller(&request)?;
        let query = request.into_inner().request;
        if query.len() > self.api.limits.max_request_bytes {
            return Err(errors::REQUEST_TOO_LARGE.into());
        }
        if !serializable {
            self.api.node.reads().read_barrier().await.map_err(generic_error)?;
        }
        let checked_at = self.api.check_generic(&caller, wasmraft_node::auth::Access::Read)?;
        let result = self.api.node.reads().query(query).await.map_err(generic_error)?;
        self.api.finish_read(&caller, checked_at)?;
        Ok(Response::new(QueryResponse { result }))
    }

    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let guest = self.api.node.guests().active_guest().ok_or(NodeError::NoGuest).map_err(generic_error)?;
        Ok(Response::new(InfoResponse {
            guest_name: guest.name,
            guest_version: guest.version,
            guest_apis: guest.apis,
            guest_hash: guest.hash,
            member_id: self.api.node.member_id(),
            cluster_id: self.api.node.cluster_id(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn guest_errors_are_aborted_with_the_guest_text() {
        let s = generic_error(NodeError::Guest("counter: overflow".into()));
        assert_eq!(s.code(), Code::Aborted);
        assert_eq!(s.message(), "counter: overflow");
        // An etcd text from a guest is not translated here: this API does not speak etcd.
        let s = generic_error(NodeError::Guest("etcdserver: key not found".into()));
        assert_eq!(s.code(), Code::Aborted);
    }

    #[test]
    fn member_errors_keep_etcd_codes() {
        let s = generic_error(NodeError::RequestTooLarge);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: request is too large");
        assert_eq!(generic_error(NodeError::NoLeader).code(), Code::Unavailable);
        assert_eq!(generic_error(NodeError::Timeout).code(), Code::Unavailable);
    }
}
