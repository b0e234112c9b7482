//! The plain HTTP endpoints etcd serves next to gRPC on every client URL (and so behind the same
//! TLS): `/version` and `/metrics` (etcdhttp's `HandleVersion` and `HandleMetricsHealth`'s
//! Prometheus handler), and the health probes of `probes.rs`. HTTP/1.1 requests reach them on the
//! same port as gRPC: the server accepts both protocols. `--listen-metrics-urls` listeners serve
//! `/metrics` and the probes only ([`metrics_router`]), as etcd's do.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use wasmraft_node::NodeHandle;

/// The routes, to merge with the gRPC services'; `/version` reports `etcd_version`. The health
/// probes are `probes.rs`'.
pub(super) fn router(node: NodeHandle, etcd_version: std::sync::Arc<str>, request_timeout: Duration) -> axum::Router {
    axum::Router::new()
        .route("/version", axum::routing::any(move |method| version(method, etcd_version)))
        .route("/metrics", axum::routing::any(metrics))
        .with_state(node.clone())
        .merge(crate::probes::router(node, request_timeout))
}

/// What answers a path nothing else serves: a gRPC call gets gRPC's Unimplemented (as tonic
/// answers), a plain HTTP request Go's mux's 404, as etcd's client port does (so, for instance,
/// `/debug/pprof/` without `--enable-pprof` is 404 on both).
pub(super) async fn fallback(req: axum::extract::Request) -> Response {
    if crate::grpc_metrics::is_grpc(req.headers()) {
        return tonic::Status::unimplemented("").into_http();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        "404 page not found\n",
    )
        .into_response()
}

/// What a `--listen-metrics-urls` listener serves: `/metrics` and the health probes.
pub fn metrics_router(node: NodeHandle, request_timeout: Duration) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::any(metrics))
        .with_state(node.clone())
        .merge(crate::probes::router(node, request_timeout))
        .fallback(fallback)
}

/// etcd's `--metrics=extensive` (its `serveMetrics`): adds go-grpc-prometheus's handling-time
/// histogram, `grpc_server_handling_seconds`, to what `/metrics` serves from now on. etcd 3.4
/// adds nothing else at that level.
pub fn enable_extensive_metrics() {
    wasmraft_metrics::metrics().enable_handling_time_histogram();
}

/// Every metric in Prometheus' text format (see `wasmraft_metrics`), with the state gauges read
/// from the member now.
async fn metrics(State(node): State<NodeHandle>) -> Response {
    let status = node.status().current();
    let active = node.guests().active_guest();
    // The guest's numbers are one small read of the state database; if it fails the host's
    // own metrics are still served, and the failure is logged rather than hidden.
    let guest_export = match (&active, node.guests().exported_metrics()) {
        (Some(g), Ok(samples)) => Some(wasmraft_metrics::GuestExport {
            guest_name: g.name.clone(),
            guest_version: g.version.clone(),
            etcd_kv: g.apis.iter().any(|a| a == wasmraft_proto::contract::ETCD_KV_API),
            samples: samples
                .into_iter()
                .map(|m| wasmraft_metrics::GuestSample { name: m.name, value: m.value, added: m.added })
                .collect(),
        }),
        (Some(_), Err(e)) => {
            tracing::warn!("reading the guest's metrics for /metrics: {e}");
            None
        }
        (None, _) => None,
    };
    let state = wasmraft_metrics::MemberState {
        member_id: status.member_id,
        leader: status.leader,
        is_learner: status.is_learner,
        committed_index: status.raft_index,
        applied_index: status.raft_applied_index,
        quota_bytes: node.status().quota_bytes(),
        db_size: status.db_size,
        peers: node
            .status()
            .peer_traffic()
            .into_iter()
            .map(|t| wasmraft_metrics::PeerBytes { id: t.id, sent: t.sent_bytes, received: t.received_bytes })
            .collect(),
        guest: active.as_ref().map(|g| (g.name.clone(), g.version.clone(), g.hash.clone())),
        guest_export,
    };
    let body = wasmraft_metrics::render(&state);
    (StatusCode::OK, [(header::CONTENT_TYPE, wasmraft_metrics::CONTENT_TYPE)], body).into_response()
}

async fn version(method: axum::http::Method, etcd_version: std::sync::Arc<str>) -> Response {
    if method != axum::http::Method::GET {
        return not_allowed("GET");
    }
    let cluster = wasmraft_proto::contract::cluster_version(&etcd_version);
    let body = format!(r#"{{"etcdserver":"{etcd_version}","etcdcluster":"{cluster}"}}"#);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Go's `http.Error(w, "Method Not Allowed", 405)` with etcd's `Allow` header.
fn not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, allow), (header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Method Not Allowed\n",
    )
        .into_response()
}
