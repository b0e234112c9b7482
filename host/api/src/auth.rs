//! The Auth service: etcd's `AuthServer` (v3rpc/auth.go) over `wasmraft_node::auth`.
//!
//! Every call goes through the log, reads included (etcd 3.4 does the same: a user or role
//! list is answered at its place in the log, after the admin check of that moment). Two calls
//! do work before proposing, on the member the client asked: UserAdd and UserChangePassword
//! hash the password, so only the hash is proposed; Authenticate checks the password, then
//! proposes the user name and a token prefix (etcd's `Authenticate`).

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use wasmraft_proto::etcdserverpb::{
    self as pb, InternalAuthenticateRequest, InternalRaftRequest, ResponseHeader, auth_server::Auth,
};

use super::authz::Caller;
use super::errors::{OrStatus as _, auth_error};
use super::{Api, errors, header};
use wasmraft_node::auth::{AuthError, hash_password, verify_password};

pub struct AuthService {
    api: Arc<Api>,
}

impl AuthService {
    pub(super) fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// Proposes an auth request for `caller` and decodes the store's answer, with a header at
    /// the store's current KV revision (etcd's `newHeader`).
    async fn call<R: Message + Default>(
        &self,
        caller: &Caller,
        mut req: InternalRaftRequest,
        header_of: impl FnOnce(&mut R) -> &mut Option<ResponseHeader>,
    ) -> Result<Response<R>, Status> {
        req.header = Some(caller.header(self.api.request_ids.next()));
        let answer = self.api.node.proposals().propose_auth(req).await.or_status()?;
        let name = std::any::type_name::<R>().rsplit("::").next().unwrap_or("response");
        let mut resp = R::decode(answer.as_slice()).map_err(|e| errors::bad_guest_response(name, e))?;
        let revision = self.api.current_revision().await;
        *header_of(&mut resp) = header::at(&self.api.node, revision);
        Ok(Response::new(resp))
    }

    /// A call whose request goes into its `InternalRaftRequest` field as it is.
    async fn pass<Q, R: Message + Default>(
        &self,
        request: Request<Q>,
        field: impl FnOnce(&mut InternalRaftRequest) -> &mut Option<Q>,
        header_of: impl FnOnce(&mut R) -> &mut Option<ResponseHeader>,
    ) -> Result<Response<R>, Status> {
        let caller = self.caller(&request)?;
        let mut req = InternalRaftRequest::default();
        *field(&mut req) = Some(request.into_inner());
        self.call(&caller, req, header_of).await
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.api.check_member(request, false)?;
        self.api.caller(request)
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        self.pass(request, |r| &mut r.auth_enable, |r: &mut pb::AuthEnableResponse| &mut r.header).await
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        self.pass(request, |r| &mut r.auth_disable, |r: &mut pb::AuthDisableResponse| &mut r.header).await
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        self.pass(request, |r| &mut r.auth_user_get, |r: &mut pb::AuthUserGetResponse| &mut r.header).await
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        self.pass(request, |r| &mut r.auth_user_list, |r: &mut pb::AuthUserListResponse| &mut r.header).await
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        self.pass(request, |r| &mut r.auth_user_delete, |r: &mut pb::AuthUserDeleteResponse| &mut r.header).await
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        self.pass(request, |r| &mut r.auth_user_grant_role, |r: &mut pb::AuthUserGrantRoleResponse| &mut r.header).await
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        self.pass(request, |r| &mut r.auth_user_revoke_role, |r: &mut pb::AuthUserRevokeRoleResponse| &mut r.header)
            .await
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        self.pass(request, |r| &mut r.auth_role_add, |r: &mut pb::AuthRoleAddResponse| &mut r.header).await
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        self.pass(request, |r| &mut r.auth_role_get, |r: &mut pb::AuthRoleGetResponse| &mut r.header).await
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        self.pass(request, |r| &mut r.auth_role_list, |r: &mut pb::AuthRoleListResponse| &mut r.header).await
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        self.pass(request, |r| &mut r.auth_role_delete, |r: &mut pb::AuthRoleDeleteResponse| &mut r.header).await
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        self.pass(
            request,
            |r| &mut r.auth_role_grant_permission,
            |r: &mut pb::AuthRoleGrantPermissionResponse| &mut r.header,
        )
        .await
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        self.pass(
            request,
            |r| &mut r.auth_role_revoke_permission,
            |r: &mut pb::AuthRoleRevokePermissionResponse| &mut r.header,
        )
        .await
    }

    /// etcd's `Authenticate`: after a ReadIndex barrier, the password is checked against this
    /// member's store, and the token is made through the log. If the store changed meanwhile
    /// (the password may have), it starts over.
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        self.api.check_member(&request, false)?;
        let credentials = self.api.credentials(&request);
        let r = request.into_inner();
        self.api.node.reads().read_barrier().await.or_status()?;
        loop {
            let state = self.api.node.auth().state();
            if !state.enabled {
                return Err(auth_error(AuthError::AuthNotEnabled));
            }
            let hash = state.password_hash(&r.name).or_status()?;
            if !verify_password(r.password.clone(), hash).await {
                tracing::info!(user_name = %r.name, "invalid password");
                return Err(auth_error(AuthError::AuthFailed));
            }
            // The token is made through the log, and etcd's proposal path resolves the caller
            // first: a login that presents a token that is not live fails after the password
            // check.
            self.api.resolve(&credentials).or_status()?;
            let prefix = self.api.node.auth().tokens.gen_prefix().map_err(Status::internal)?;
            let req = InternalRaftRequest {
                authenticate: Some(InternalAuthenticateRequest {
                    name: r.name.clone(),
                    password: String::new(),
                    simple_token: prefix,
                }),
                ..Default::default()
            };
            let resp = self.call(&Caller::default(), req, |r: &mut pb::AuthenticateResponse| &mut r.header).await?;
            if self.api.node.auth().revision() == state.revision {
                return Ok(resp);
            }
        }
    }

    /// The password is hashed here; the log sees only the hash.
    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let caller = self.caller(&request)?;
        let mut r = request.into_inner();
        if !r.options.is_some_and(|o| o.no_password) {
            r.hashed_password =
                hash_password(self.api.hasher, std::mem::take(&mut r.password)).await.map_err(Status::internal)?;
        }
        r.password.clear();
        let req = InternalRaftRequest { auth_user_add: Some(r), ..Default::default() };
        self.call(&caller, req, |r: &mut pb::AuthUserAddResponse| &mut r.header).await
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let caller = self.caller(&request)?;
        let mut r = request.into_inner();
        r.hashed_password =
            hash_password(self.api.hasher, std::mem::take(&mut r.password)).await.map_err(Status::internal)?;
        let req = InternalRaftRequest { auth_user_change_password: Some(r), ..Default::default() };
        self.call(&caller, req, |r: &mut pb::AuthUserChangePasswordResponse| &mut r.header).await
    }
}
