//! The gateway's routes: every method etcd 3.4's `rpc.proto`, `v3lock.proto` and
//! `v3election.proto` annotate with a `google.api.http` POST, at etcd's paths, under `/v3/` and
//! (as etcd 3.4 still serves it) `/v3beta/`. Where etcd annotates two methods with one path
//! (`/v3/maintenance/hash` for Hash and HashKV), grpc-gateway's mux serves the first one
//! registered, Hash (etcd's answer there has no `compact_revision`), and so does this table.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::any;
use wasmraft_proto::etcdserverpb::auth_server::Auth as _;
use wasmraft_proto::etcdserverpb::cluster_server::Cluster as _;
use wasmraft_proto::etcdserverpb::kv_server::Kv as _;
use wasmraft_proto::etcdserverpb::lease_server::Lease as _;
use wasmraft_proto::etcdserverpb::maintenance_server::Maintenance as _;
use wasmraft_proto::etcdserverpb::watch_server::Watch as _;
use wasmraft_proto::v3electionpb::election_server::Election as _;
use wasmraft_proto::v3lockpb::lock_server::Lock as _;

use super::{Gateway, errors, stream, unary};

/// The prefixes the gateway is mounted at.
const PREFIXES: [&str; 2] = ["/v3/", "/v3beta/"];

/// The gateway's part of the client listener's router.
pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    let mut router = axum::Router::new()
        .route("/v3", any(|| async { errors::moved("/v3/") }))
        .route("/v3beta", any(|| async { errors::moved("/v3beta/") }));
    for prefix in PREFIXES {
        router = router.route(prefix, any(dispatch)).route(&format!("{prefix}{{*path}}"), any(dispatch));
    }
    router.with_state(gw)
}

async fn dispatch(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    serve(gw, req).await
}

/// What the gateway answers `req` with (a path under one of [`PREFIXES`]).
pub(super) async fn serve(gw: Arc<Gateway>, req: Request) -> Response {
    let path = req.uri().path();
    let Some(route) = PREFIXES.iter().find_map(|p| path.strip_prefix(p)) else {
        return errors::not_found();
    };
    let route = route.to_string();
    if !is_route(&route) {
        return errors::not_found();
    }
    if req.method() != Method::POST {
        return errors::method_not_allowed();
    }
    call(gw, &route, req).await
}

/// Each route with how it is called: `unary`, `server` (server streaming) or `bidi`, the
/// service that serves it and the method.
macro_rules! routes {
    ($($path:literal => $kind:ident $svc:ident . $method:ident),* $(,)?) => {
        fn is_route(path: &str) -> bool {
            matches!(path, $($path)|*)
        }

        async fn call(gw: Arc<Gateway>, path: &str, req: Request) -> Response {
            match path {
                $($path => {
                    let svc = gw.$svc.clone();
                    routes!(@call $kind, gw, req, svc, $method)
                })*
                _ => errors::not_found(),
            }
        }
    };
    (@call unary, $gw:ident, $req:ident, $svc:ident, $method:ident) => {
        unary::call(&$gw, $req, move |r| async move { $svc.$method(r).await }).await
    };
    (@call server, $gw:ident, $req:ident, $svc:ident, $method:ident) => {
        stream::server(&$gw, $req, move |r| async move { $svc.$method(r).await }).await
    };
    (@call bidi, $gw:ident, $req:ident, $svc:ident, $method:ident) => {
        stream::bidi(&$gw, $req, move |r| async move { $svc.$method(r).await }).await
    };
}

routes! {
    "kv/range" => unary kv.range,
    "kv/put" => unary kv.put,
    "kv/deleterange" => unary kv.delete_range,
    "kv/txn" => unary kv.txn,
    "kv/compaction" => unary kv.compact,
    "watch" => bidi watch.watch,
    "lease/grant" => unary lease.lease_grant,
    "lease/revoke" => unary lease.lease_revoke,
    "kv/lease/revoke" => unary lease.lease_revoke,
    "lease/keepalive" => bidi lease.lease_keep_alive,
    "lease/timetolive" => unary lease.lease_time_to_live,
    "kv/lease/timetolive" => unary lease.lease_time_to_live,
    "lease/leases" => unary lease.lease_leases,
    "kv/lease/leases" => unary lease.lease_leases,
    "cluster/member/add" => unary cluster.member_add,
    "cluster/member/remove" => unary cluster.member_remove,
    "cluster/member/update" => unary cluster.member_update,
    "cluster/member/list" => unary cluster.member_list,
    "cluster/member/promote" => unary cluster.member_promote,
    "maintenance/alarm" => unary maintenance.alarm,
    "maintenance/status" => unary maintenance.status,
    "maintenance/defragment" => unary maintenance.defragment,
    "maintenance/hash" => unary maintenance.hash,
    "maintenance/snapshot" => server maintenance.snapshot,
    "maintenance/transfer-leadership" => unary maintenance.move_leader,
    "auth/enable" => unary auth.auth_enable,
    "auth/disable" => unary auth.auth_disable,
    "auth/authenticate" => unary auth.authenticate,
    "auth/user/add" => unary auth.user_add,
    "auth/user/get" => unary auth.user_get,
    "auth/user/list" => unary auth.user_list,
    "auth/user/delete" => unary auth.user_delete,
    "auth/user/changepw" => unary auth.user_change_password,
    "auth/user/grant" => unary auth.user_grant_role,
    "auth/user/revoke" => unary auth.user_revoke_role,
    "auth/role/add" => unary auth.role_add,
    "auth/role/get" => unary auth.role_get,
    "auth/role/list" => unary auth.role_list,
    "auth/role/delete" => unary auth.role_delete,
    "auth/role/grant" => unary auth.role_grant_permission,
    "auth/role/revoke" => unary auth.role_revoke_permission,
    "lock/lock" => unary lock.lock,
    "lock/unlock" => unary lock.unlock,
    "election/campaign" => unary election.campaign,
    "election/proclaim" => unary election.proclaim,
    "election/leader" => unary election.leader,
    "election/observe" => server election.observe,
    "election/resign" => unary election.resign,
}
