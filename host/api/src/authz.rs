//! Who is calling, and may they: the API side of `wasmraft_node::auth`.
//!
//! Every service resolves the caller once per call ([`Api::caller`], etcd's `AuthInfoFromCtx`:
//! the `token` metadata, else with `--client-cert-auth` the verified client certificate's CN)
//! and checks it here before proposing or reading. Writes are stamped with the auth revision
//! they were checked at (see `wasmraft_node::auth` for why that is as strong as etcd's apply-time
//! check).

use std::sync::Arc;

use prost::Message as _;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use wasmraft_proto::etcdserverpb::{
    InternalRaftRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, RequestHeader, RequestOp, TxnRequest,
    request_op,
};
use wasmraft_proto::wasmraft::v1::{KvQuery, kv_query};

use super::conn::ClientConnInfo;
use super::errors::{OrStatus as _, auth_error};
use super::{Api, errors};
use wasmraft_node::auth::{Access, AuthError, AuthInfo, AuthState};

/// etcd's metadata keys for the token (rpctypes.TokenFieldNameGRPC, TokenFieldNameSwagger).
const TOKEN_KEY: &str = "token";
const TOKEN_KEY_SWAGGER: &str = "authorization";

/// A request's token (`Err` when it is not text) and its verified client certificate's CN
/// (only with `--client-cert-auth`).
#[derive(Debug, Clone, Default)]
pub(super) struct Credentials {
    token: Option<Result<String, ()>>,
    common_name: Option<String>,
}

/// The caller of one request: `info` is `None` when it gave no credentials. `system` marks the
/// member's own requests made for no client (a lock recipe cleaning up after a session ended),
/// which etcd makes as root (`WithRoot`).
#[derive(Debug, Clone, Default)]
pub(super) struct Caller {
    info: Option<AuthInfo>,
    system: bool,
}

impl Caller {
    pub fn system() -> Caller {
        Caller { info: None, system: true }
    }

    fn user(info: AuthInfo) -> Caller {
        Caller { info: Some(info), system: false }
    }

    pub fn info(&self) -> Option<&AuthInfo> {
        self.info.as_ref()
    }

    /// The request header etcd fills from the caller (`processInternalRaftRequestOnce`).
    pub fn header(&self, id: u64) -> RequestHeader {
        RequestHeader {
            id,
            username: self.info.as_ref().map_or_else(String::new, |i| i.user.clone()),
            auth_revision: self.info.as_ref().map_or(0, |i| i.revision),
        }
    }
}

impl Api {
    /// etcd's `AuthInfoFromCtx`: a token must be live ("invalid auth token" otherwise, auth on
    /// or off); without one, with `--client-cert-auth`, the client certificate's CN.
    pub(super) fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.resolve(&self.credentials(request)).or_status()
    }

    /// What a request presents, kept by streams that check each of their requests later (watch).
    pub(super) fn credentials<T>(&self, request: &Request<T>) -> Credentials {
        let md = request.metadata();
        let token = md
            .get(TOKEN_KEY)
            .or_else(|| md.get(TOKEN_KEY_SWAGGER))
            .map(|t| t.to_str().map(str::to_string).map_err(|_| ()));
        let common_name = if self.client_cert_auth {
            request.extensions().get::<ClientConnInfo>().and_then(|c| c.common_name.clone())
        } else {
            None
        };
        Credentials { token, common_name }
    }

    pub(super) fn resolve(&self, creds: &Credentials) -> Result<Caller, AuthError> {
        match &creds.token {
            Some(Ok(token)) => match self.node.auth().info_from_token(token) {
                Ok(info) => Ok(Caller::user(info)),
                Err(e) => {
                    tracing::warn!("invalid auth token");
                    Err(e)
                }
            },
            Some(Err(())) => Err(AuthError::InvalidAuthToken),
            None => Ok(match &creds.common_name {
                Some(cn) => Caller::user(AuthInfo { user: cn.clone(), revision: self.node.auth().revision() }),
                None => Caller::default(),
            }),
        }
    }

    /// etcd's `IsAdminPermitted` for calls outside the log.
    fn check_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = self.caller(request)?;
        self.node.auth().state().check_admin(caller.info()).or_status()
    }

    /// etcd's `checkMembershipOperationPermission`: adding, removing, updating or promoting a
    /// member takes the root role. Checked here, when the request arrives, as etcd does (its
    /// comment: a root role revoked between this check and the conf change's apply is an
    /// admin's own doing). Listing members takes nothing, not even a valid token.
    pub(super) fn check_membership_change<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.check_admin(request)
    }

    /// etcd's `authMaintenanceServer.isAuthenticated` (defragment, snapshot, hash, hashkv): the
    /// same admin check, but etcd returns the auth store's errors untranslated.
    pub(super) fn check_maintenance_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = self.resolve(&self.credentials(request)).map_err(untranslated)?;
        self.node.auth().state().check_admin(caller.info()).map_err(untranslated)
    }

    /// etcd's Alarm: anyone may list or disarm alarms, but the request goes through the log,
    /// which resolves the caller first (`processInternalRaftRequestOnce`), so a token that is not
    /// live is refused, untranslated like every maintenance error.
    pub(super) fn check_alarm_caller<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.resolve(&self.credentials(request)).map(drop).map_err(untranslated)
    }

    /// Checks what a KV or lease write touches (etcd's `authApplierV3`) and returns the auth
    /// revision the check ran at, for the entry's stamp.
    pub(super) async fn check_write(&self, caller: &Caller, req: &InternalRaftRequest) -> Result<u64, Status> {
        // etcd's authApplierV3 checks these; a lease grant or a compaction applies whoever asks.
        let checked =
            req.put.is_some() || req.delete_range.is_some() || req.txn.is_some() || req.lease_revoke.is_some();
        if caller.system || !checked {
            return Ok(0);
        }
        let state = self.node.auth().state();
        if state.enabled {
            let who = caller.info();
            if let Some(p) = &req.put {
                state.check(who, Access::Write, &p.key, b"").or_status()?;
                if p.prev_kv {
                    state.check(who, Access::Read, &p.key, b"").or_status()?;
                }
                if p.lease != 0 {
                    self.check_lease_keys(&state, who, p.lease).await?;
                }
            }
            if let Some(d) = &req.delete_range {
                state.check(who, Access::Write, &d.key, &d.range_end).or_status()?;
                if d.prev_kv {
                    state.check(who, Access::Read, &d.key, &d.range_end).or_status()?;
                }
            }
            if let Some(t) = &req.txn {
                check_txn(&state, who, t).or_status()?;
            }
            if let Some(r) = &req.lease_revoke {
                self.check_lease_keys(&state, who, r.id).await?;
            }
        }
        Ok(state.revision)
    }

    /// etcd's `checkLeasePuts`: a user who could not write every key attached to a lease may not
    /// revoke it, nor attach more keys to it.
    async fn check_lease_keys(&self, state: &AuthState, who: Option<&AuthInfo>, lease: i64) -> Result<(), Status> {
        let q = KvQuery {
            request: Some(kv_query::Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id: lease, keys: true })),
        };
        let Ok(answer) = self.node.reads().query(q.encode_to_vec()).await else {
            // No such lease (or no record of it here): nothing attached to check.
            return Ok(());
        };
        let resp = LeaseTimeToLiveResponse::decode(answer.as_slice())
            .map_err(|e| errors::bad_guest_response("LeaseTimeToLiveResponse", e))?;
        for key in &resp.keys {
            state.check(who, Access::Write, key, b"").or_status()?;
        }
        Ok(())
    }

    /// wasmraft's generic API (see `wasmraft_node::auth`): with the KV guest active only admins may use
    /// it (its commands are opaque here and would bypass key permissions); with another guest,
    /// read (query) or write (propose) on [`wasmraft_node::auth::GENERIC_KEY`]. Returns the stamp.
    pub(super) fn check_generic(&self, caller: &Caller, access: Access) -> Result<u64, Status> {
        let state = self.node.auth().state();
        if self.node.guests().guest_serves(wasmraft_proto::contract::ETCD_KV_API) {
            state.check_admin(caller.info()).or_status()?;
        } else {
            state.check(caller.info(), access, wasmraft_node::auth::GENERIC_KEY, b"").or_status()?;
        }
        Ok(state.revision)
    }

    /// A read of `[key, range_end)`: checked before it runs; `finish_read` refuses it if the
    /// auth store changed while it ran (etcd's `doSerialize`).
    pub(super) fn check_read(&self, caller: &Caller, key: &[u8], range_end: &[u8]) -> Result<u64, Status> {
        let state = self.node.auth().state();
        state.check(caller.info(), Access::Read, key, range_end).or_status()?;
        Ok(state.revision)
    }

    /// etcd compares the caller's revision (a simple token's or a CN's: the store's when the
    /// call came in; a JWT's: the one it was issued at) with the store's after the read, auth
    /// on or off: a JWT from before any auth change, even `auth disable`, reads nothing.
    pub(super) fn finish_read(&self, caller: &Caller, checked_at: u64) -> Result<(), Status> {
        let state = self.node.auth().state();
        let changed = |i: &AuthInfo| i.revision != state.revision || (state.enabled && state.revision != checked_at);
        if caller.info().is_some_and(|i| i.revision != 0 && changed(i)) {
            return Err(auth_error(AuthError::AuthOldRevision));
        }
        Ok(())
    }
}

/// An auth store error as etcd's maintenance server returns it: its internal text, code Unknown.
fn untranslated(e: AuthError) -> Status {
    Status::unknown(e.internal_text())
}

/// Every call of wasmraft's `GuestAdmin` takes the root role: deploy and rollback replace the
/// state machine, status hashes the whole keyspace, list names every stored module.
///
/// An interceptor, not a check in each handler: tonic runs it on the request's headers before
/// it reads and decodes the body, and a deploy's body is a whole module (up to 64 MiB). A caller
/// who may not deploy is answered at once, and its body is never buffered.
#[derive(Clone)]
pub(super) struct GuestAdminGate(pub(super) Arc<Api>);

impl Interceptor for GuestAdminGate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0.check_admin(&request).map(|()| request)
    }
}

/// etcd's `checkTxnAuth`: read on every compare, and each op as the KV call it stands for.
pub(super) fn check_txn(state: &AuthState, who: Option<&AuthInfo>, t: &TxnRequest) -> Result<(), AuthError> {
    for c in &t.compare {
        state.check(who, Access::Read, &c.key, &c.range_end)?;
    }
    check_ops(state, who, &t.success)?;
    check_ops(state, who, &t.failure)
}

fn check_ops(state: &AuthState, who: Option<&AuthInfo>, ops: &[RequestOp]) -> Result<(), AuthError> {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => state.check(who, Access::Read, &r.key, &r.range_end)?,
            Some(request_op::Request::RequestPut(p)) => state.check(who, Access::Write, &p.key, b"")?,
            Some(request_op::Request::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    state.check(who, Access::Read, &d.key, &d.range_end)?;
                }
                state.check(who, Access::Write, &d.key, &d.range_end)?;
            }
            // etcd 3.4 leaves nested txns unchecked here; wasmraft checks them like the outer one.
            Some(request_op::Request::RequestTxn(t)) => check_txn(state, who, t)?,
            None => {}
        }
    }
    Ok(())
}
