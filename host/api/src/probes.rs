//! etcd's health endpoints as etcd 3.4.29+ serves them (etcdhttp/health.go), on every client URL
//! and on `--listen-metrics-urls`: Kubernetes' (and most operators') liveness and readiness
//! probes point at them.
//!
//! - `/health` (`?exclude=ALARM`, `?serializable=true`): false with an alarm not excluded,
//!   without a leader (unless serializable: then the member's own state is what is asked about),
//!   or when a one-key range (linearizable, or serializable as asked) fails within the request
//!   timeout. `{"health":"true"}` 200, or `{"health":"false"}` 503.
//! - `/livez`: the process serves: a serializable read of its own state.
//! - `/readyz`: it may serve clients: no CORRUPT alarm, a serializable read and a linearizable
//!   read (which needs a leader and a quorum). As in etcd, NOSPACE does not make a member
//!   unready: it still serves reads and deletes.
//! - Each check also at `/livez/<name>` and `/readyz/<name>`; `?exclude=<name>` leaves a check
//!   out of the root path (an unknown name is only warned about); `?verbose` lists every check
//!   on success too. A failure always lists them: `[+]name ok` / `[-]name failed: reason`, then
//!   503. The checks run in the order etcd registers them (etcd walks a Go map, so its order
//!   varies from one request to the next).
//!
//! etcd's `etcd_server_healthcheck` and `etcd_server_healthchecks_total` (3.4.29) are not
//! exported.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use wasmraft_node::NodeHandle;
use wasmraft_proto::contract::ETCD_KV_API;
use wasmraft_proto::etcdserverpb::{AlarmType, RangeRequest};

use crate::errors;

/// What the probes need: the member and etcd's request timeout (each read's limit).
#[derive(Clone)]
struct Probes {
    node: NodeHandle,
    request_timeout: Duration,
}

/// The routes of `/health`, `/livez` and `/readyz` with their checks' sub-paths.
pub(crate) fn router(node: NodeHandle, request_timeout: Duration) -> axum::Router {
    let mut r = axum::Router::new().route("/health", axum::routing::any(health));
    for kind in [Kind::Livez, Kind::Readyz] {
        r = r.route(kind.root(), axum::routing::any(move |m, s, q| root(kind, m, s, q)));
        for &check in kind.checks() {
            let path = format!("{}/{}", kind.root(), check.name());
            r = r.route(&path, axum::routing::any(move |m, s, q| single(kind, check, m, s, q)));
        }
    }
    r.with_state(Arc::new(Probes { node, request_timeout }))
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Livez,
    Readyz,
}

impl Kind {
    fn root(self) -> &'static str {
        match self {
            Kind::Livez => "/livez",
            Kind::Readyz => "/readyz",
        }
    }

    fn checks(self) -> &'static [Check] {
        match self {
            Kind::Livez => &[Check::SerializableRead],
            Kind::Readyz => &[Check::DataCorruption, Check::SerializableRead, Check::LinearizableRead],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
        }
    }

    /// etcd's error text when the check fails.
    async fn run(self, p: &Probes) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if p.node.status().alarms().iter().any(|a| a.alarm == AlarmType::Corrupt as i32) {
                    Err("alarm activated: CORRUPT".to_string())
                } else {
                    Ok(())
                }
            }
            Check::SerializableRead => read(p, true).await,
            Check::LinearizableRead => read(p, false).await,
        }
    }
}

/// etcd's `readCheck`: a keys-only range of one key, as root. For a guest other than the KV
/// guest, which answers no range, the serializable read is the local state being there (a
/// query would mean nothing to it) and the linearizable one a read barrier.
async fn read(p: &Probes, serializable: bool) -> Result<(), String> {
    let node = &p.node;
    let work = async {
        if !serializable {
            node.reads().read_barrier().await?;
        }
        if node.guests().guest_serves(ETCD_KV_API) {
            let probe = RangeRequest { key: vec![0], keys_only: true, limit: 1, serializable, ..Default::default() };
            node.reads().query(prost::Message::encode_to_vec(&probe)).await?;
        }
        Ok(())
    };
    match tokio::time::timeout(p.request_timeout, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(errors::node_error(e).message().to_string()),
        Err(_) => Err(errors::node_error(wasmraft_node::NodeError::Timeout).message().to_string()),
    }
}

/// The checks' report: one line each, and whether all passed.
async fn run(p: &Probes, checks: &[Check]) -> (bool, String) {
    let mut ok = true;
    let mut report = String::new();
    for check in checks {
        match check.run(p).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", check.name())),
            Err(e) => {
                ok = false;
                report.push_str(&format!("[-]{} failed: {e}\n", check.name()));
            }
        }
    }
    (ok, report)
}

async fn root(
    kind: Kind,
    method: Method,
    State(p): State<Arc<Probes>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if method != Method::GET {
        return not_allowed(kind.root());
    }
    let excluded: Vec<&str> = q.iter().filter(|(k, _)| k == "exclude").map(|(_, v)| v.as_str()).collect();
    let unknown: Vec<&&str> = excluded.iter().filter(|e| !kind.checks().iter().any(|c| c.name() == **e)).collect();
    if !unknown.is_empty() {
        // etcd accepts these, for compatibility between versions, and warns.
        let names: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
        tracing::warn!(missing_health_checks = %names.join(","), "some health checks cannot be excluded");
    }
    let checks: Vec<Check> = kind.checks().iter().copied().filter(|c| !excluded.contains(&c.name())).collect();
    let verbose = q.iter().any(|(k, _)| k == "verbose");
    answer(kind.root(), run(&p, &checks).await, verbose)
}

async fn single(
    kind: Kind,
    check: Check,
    method: Method,
    State(p): State<Arc<Probes>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let path = format!("{}/{}", kind.root(), check.name());
    if method != Method::GET {
        return not_allowed(&path);
    }
    let verbose = q.iter().any(|(k, _)| k == "verbose");
    answer(&path, run(&p, &[check]).await, verbose)
}

/// etcd's `newHealthHandler`: the report always on failure (503, as Go's `http.Error` writes
/// it: the text and a newline), on success only when verbose, then `ok`.
fn answer(path: &str, (ok, report): (bool, String), verbose: bool) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
    if !ok {
        tracing::error!("Health check error path={path}, reason={report} (status code 503)");
        return (StatusCode::SERVICE_UNAVAILABLE, headers, format!("{report}\n")).into_response();
    }
    tracing::debug!("Health OK path={path}, reason={report} (status code 200)");
    let body = if verbose { format!("{report}ok\n") } else { "ok\n".to_string() };
    (StatusCode::OK, headers, body).into_response()
}

/// etcd's `/health` (3.4.29+: with `serializable`): alarms not excluded, then the leader (unless
/// serializable), then a read.
async fn health(method: Method, State(p): State<Arc<Probes>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    if method != Method::GET {
        tracing::warn!("/health error (status code 405)");
        return not_allowed("/health");
    }
    let excluded: Vec<&str> = q.iter().filter(|(k, _)| k == "exclude").map(|(_, v)| v.as_str()).collect();
    // Go's `Query().Get`: the first value.
    let serializable = q.iter().find(|(k, _)| k == "serializable").is_some_and(|(_, v)| v == "true");
    let node = &p.node;
    let alarm =
        node.status().alarms().into_iter().find(|a| !excluded.contains(&wasmraft_node::alarms::alarm_name(a.alarm)));
    let failure = if let Some(a) = alarm {
        Some(format!("ALARM {}", wasmraft_node::alarms::alarm_name(a.alarm)))
    } else if !serializable && node.status().leader() == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        read(&p, serializable).await.err().map(|e| format!("RANGE ERROR:{e}"))
    };
    let m = wasmraft_metrics::metrics();
    match failure {
        None => {
            m.health_success.inc();
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], r#"{"health":"true"}"#)
                .into_response()
        }
        Some(reason) => {
            m.health_failures.inc();
            tracing::warn!("/health error; {reason} (status code 503)");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
                "{\"health\":\"false\"}\n",
            )
                .into_response()
        }
    }
}

/// Go's `http.Error(w, "Method Not Allowed", 405)` with etcd's `Allow` header.
fn not_allowed(path: &str) -> Response {
    tracing::warn!("Health request error path={path} (status code 405)");
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::ALLOW, "GET"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "Method Not Allowed\n",
    )
        .into_response()
}
