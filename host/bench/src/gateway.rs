//! `--gateway`: the bench as a client of etcd's JSON gateway (`POST /v3/kv/put` and its
//! siblings, base64 bytes in JSON) instead of gRPC — how Patroni, APISIX, etcd3gw and curl
//! scripts reach etcd, so that what the gateway costs can be measured against etcd's own with
//! the same load.
//!
//! Each connection is one HTTP/1.1 keep-alive connection (hyper's, dialed with the same
//! connector and TLS flags as the gRPC channels, but offering `http/1.1` over TLS). HTTP/1.1
//! carries one request at a time, so the clients sharing a connection take turns on it (a fair
//! queue): `--conns` bounds the requests in flight, where a gRPC channel multiplexes them. A
//! connection that broke or timed out is dialed again by its next request, so one failure
//! stays one counted error.
//!
//! What counts as success is strict, because the bug that motivated the gateway was a member
//! answering 200 with an empty body: only a 200 whose body is a JSON object with an etcd
//! response `header` and no `error` succeeds. etcd's error body (`{"error","message","code"}`)
//! is counted by its gRPC code and message exactly as the gRPC mode counts a status
//! (`InvalidArgument: etcdserver: user name is empty`), so the two modes' error distributions
//! read the same.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use serde_json::Value;
use tokio::sync::Mutex;
use tower_service::Service as _;
use wasmraft_client::{
    CliError, ConnFlags, EXIT_BAD_CONNECTION, EXIT_INVALID_INPUT, EXIT_IO, EXIT_SERVER_ERROR, error_chain, secs,
};
use wasmraft_transport::dial::Dialer;

/// A request that did not succeed, by what the client saw.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// etcd's error body: the gRPC status the gateway translated (text as the gRPC mode's).
    #[error("{code:?}: {message}")]
    Status { code: tonic::Code, message: String },
    /// An answer that is not 200 and not etcd's error body (a 404 from a server without the
    /// gateway, a proxy's page).
    #[error("HTTP {status}: {body}")]
    Http { status: StatusCode, body: String },
    /// A 200 whose body is not an etcd response.
    #[error("HTTP 200 without an etcd response: {0}")]
    NotEtcd(String),
    /// The connection failed (dial, TLS, reset, closed by the server).
    #[error("connection: {0}")]
    Connection(String),
    /// No whole answer within --command-timeout (the connection is dropped and redialed).
    #[error("DeadlineExceeded: no answer within {0:?} (--command-timeout)")]
    Timeout(Duration),
}

/// One keep-alive connection to a member's gateway, shared by the clients dealt to it. Cheap
/// to clone.
#[derive(Clone)]
pub struct Conn(Arc<Shared>);

struct Shared {
    /// scheme://authority of the endpoint, dialed again after a failure.
    uri: Uri,
    host: HeaderValue,
    dialer: Dialer,
    call: Duration,
    token: Option<HeaderValue>,
    /// The open connection; None before the first dial and after a failure.
    sender: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Conn {
    /// POSTs `body` (JSON) to `path` and returns the answer's JSON object, or why it is not a
    /// success.
    pub async fn post(&self, path: &'static str, body: Vec<u8>) -> Result<Value, GatewayError> {
        let s = &self.0;
        let mut sender = s.sender.lock().await;
        let exchange = async {
            let open = match sender.take() {
                Some(open) if !open.is_closed() => open,
                _ => dial(&s.dialer, &s.uri).await?,
            };
            let open = sender.insert(open);
            open.ready().await.map_err(|e| GatewayError::Connection(error_chain(&e)))?;
            let mut request = Request::post(path)
                .header(HOST, s.host.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Some(t) = &s.token {
                request = request.header(AUTHORIZATION, t.clone());
            }
            let request =
                request.body(Full::new(Bytes::from(body))).map_err(|e| GatewayError::Connection(e.to_string()))?;
            let answer = open.send_request(request).await.map_err(|e| GatewayError::Connection(error_chain(&e)))?;
            let status = answer.status();
            // Read to the end: the connection carries the next request only after this answer.
            let body =
                answer.into_body().collect().await.map_err(|e| GatewayError::Connection(error_chain(&e)))?.to_bytes();
            Ok::<_, GatewayError>((status, body))
        };
        let result = match tokio::time::timeout(s.call, exchange).await {
            Ok(r) => r,
            Err(_) => Err(GatewayError::Timeout(s.call)),
        };
        match result {
            Ok((status, body)) => judge(status, &body),
            Err(e) => {
                // A connection in an unknown state (half an answer read) must not carry the
                // next request.
                *sender = None;
                Err(e)
            }
        }
    }
}

/// Whether an answer is a success: 200 with an etcd response object, as above.
fn judge(status: StatusCode, body: &[u8]) -> Result<Value, GatewayError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status != StatusCode::OK {
        if let Some(e) = json.as_ref().and_then(etcd_error) {
            return Err(e);
        }
        return Err(GatewayError::Http { status, body: excerpt(body) });
    }
    match json {
        Some(v) if v.get("error").is_some() => {
            Err(etcd_error(&v).unwrap_or_else(|| GatewayError::NotEtcd(excerpt(body))))
        }
        Some(v) if v.get("header").is_some_and(Value::is_object) => Ok(v),
        _ if body.is_empty() => Err(GatewayError::NotEtcd("empty body".into())),
        _ => Err(GatewayError::NotEtcd(excerpt(body))),
    }
}

/// grpc-gateway's error body as the status it carries.
fn etcd_error(v: &Value) -> Option<GatewayError> {
    let code = v.get("code")?.as_i64().and_then(|c| i32::try_from(c).ok())?;
    let message = v.get("message").or_else(|| v.get("error")).and_then(Value::as_str).unwrap_or_default();
    Some(GatewayError::Status { code: tonic::Code::from_i32(code), message: message.to_string() })
}

/// The start of a body, for an error text that stays one readable line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let text = text.trim().replace(['\r', '\n'], " ");
    if body.len() > 120 { format!("{text}…") } else { text }
}

async fn dial(dialer: &Dialer, uri: &Uri) -> Result<SendRequest<Full<Bytes>>, GatewayError> {
    let mut dialer = dialer.clone();
    poll_fn(|cx| dialer.poll_ready(cx)).await.map_err(|e| GatewayError::Connection(error_chain(e.as_ref())))?;
    let io = dialer.call(uri.clone()).await.map_err(|e| GatewayError::Connection(error_chain(e.as_ref())))?;
    let (sender, connection) = http1::handshake(io).await.map_err(|e| GatewayError::Connection(error_chain(&e)))?;
    // The connection's I/O runs on its own task; when it ends (closed, reset), the sender says
    // so (`is_closed`, a failed `ready`) and the next request dials again.
    tokio::spawn(connection);
    Ok(sender)
}

/// `n` connections (`--conns`) dealt round-robin over the endpoints, all dialed before anything
/// is measured, and one login through the gateway (`/v3/auth/authenticate`) whose token every
/// connection presents in `Authorization`, as etcd's gateway clients do.
pub async fn connect(conn: &ConnFlags, n: usize) -> Result<Vec<Conn>, CliError> {
    if n == 0 {
        return Err(CliError::new(EXIT_INVALID_INPUT, "--conns must be at least 1"));
    }
    let endpoints: Vec<&str> = conn.endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
    if endpoints.is_empty() {
        return Err(CliError::new(EXIT_INVALID_INPUT, "--endpoints names no endpoint"));
    }
    let files = wasmraft_client::tls::DialFiles {
        cert_file: conn.cert.as_deref(),
        key_file: conn.key.as_deref(),
        trusted_ca_file: conn.cacert.as_deref(),
        skip_verify: conn.insecure_skip_tls_verify,
        policy: None,
    };
    // http/1.1 only: a server that saw h2 offered would pick it.
    let tls = wasmraft_client::tls::client_config(files, &[b"http/1.1"])
        .map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("TLS: {e:#}")))?;
    let dialer = Dialer::new(Some(tls), secs(conn.dial_timeout, "dial-timeout")?);
    let call = secs(conn.command_timeout, "command-timeout")?;
    let mut targets = Vec::with_capacity(endpoints.len());
    for ep in &endpoints {
        let url = if ep.contains("://") { ep.to_string() } else { format!("http://{ep}") };
        let uri: Uri = url.parse().map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("{url}: {e}")))?;
        let host = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .ok_or_else(|| CliError::new(EXIT_INVALID_INPUT, format!("{url}: no host")))?;
        targets.push((url, uri, host));
    }
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let (url, uri, host) = &targets[i % targets.len()];
        let sender = tokio::time::timeout(dialer_budget(conn), dial(&dialer, uri))
            .await
            .unwrap_or_else(|_| Err(GatewayError::Connection("timed out".into())))
            .map_err(|e| {
                let why = match e {
                    GatewayError::Connection(why) => why,
                    other => other.to_string(),
                };
                CliError::new(EXIT_BAD_CONNECTION, format!("cannot connect to {url}: {why}"))
            })?;
        conns.push(Shared {
            uri: uri.clone(),
            host: host.clone(),
            dialer: dialer.clone(),
            call,
            token: None,
            sender: Mutex::new(Some(sender)),
        });
    }
    let token = login(conn, &conns[0]).await?;
    Ok(conns.into_iter().map(|s| Conn(Arc::new(Shared { token: token.clone(), ..s }))).collect())
}

/// How long a first dial may take: the TCP connect (--dial-timeout) and a TLS handshake.
fn dialer_budget(conn: &ConnFlags) -> Duration {
    Duration::try_from_secs_f64(conn.dial_timeout).unwrap_or(Duration::ZERO)
        + wasmraft_transport::dial::TLS_HANDSHAKE_TIMEOUT
}

/// `--user`'s token from the gateway's Authenticate (none without `--user`); a refusal is the
/// gRPC mode's error, with its exit code.
async fn login(conn: &ConnFlags, first: &Shared) -> Result<Option<HeaderValue>, CliError> {
    let Some(user) = &conn.user else {
        return Ok(None);
    };
    let (name, password) = match user.split_once(':') {
        Some((n, p)) => (n.to_string(), p.to_string()),
        None => (user.clone(), password_prompt(&format!("Password for {user}: "))?),
    };
    let body = serde_json::json!({ "name": name, "password": password }).to_string().into_bytes();
    let probe = Conn(Arc::new(Shared {
        uri: first.uri.clone(),
        host: first.host.clone(),
        dialer: first.dialer.clone(),
        call: first.call,
        token: None,
        sender: Mutex::new(None),
    }));
    let answer =
        probe.post("/v3/auth/authenticate", body).await.map_err(|e| CliError::new(EXIT_SERVER_ERROR, e.to_string()))?;
    let token = answer.get("token").and_then(Value::as_str).unwrap_or_default();
    HeaderValue::from_str(token)
        .ok()
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| CliError::new(EXIT_SERVER_ERROR, "the member answered Authenticate without a usable token"))
}

/// A password from stdin (one line), as etcdctl asks for one when --user has none.
fn password_prompt(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| CliError::new(EXIT_IO, format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_etcd_response_is_a_success() {
        let header = br#"{"header":{"cluster_id":"1","revision":"2"}}"#;
        assert!(judge(StatusCode::OK, header).is_ok());
        for (status, body, says) in [
            (StatusCode::OK, &b""[..], "HTTP 200 without an etcd response: empty body"),
            (StatusCode::OK, b"{}", "HTTP 200 without an etcd response: {}"),
            (StatusCode::OK, br#"{"header":"x"}"#, "HTTP 200 without an etcd response"),
            (
                StatusCode::BAD_REQUEST,
                br#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#,
                "InvalidArgument: etcdserver: user name is empty",
            ),
            (
                StatusCode::OK,
                br#"{"error":{"grpc_code":14,"http_code":503,"message":"x"}}"#,
                "HTTP 200 without an etcd response",
            ),
            (StatusCode::NOT_FOUND, b"404 page not found\n", "HTTP 404 Not Found: 404 page not found"),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"code":14,"message":"etcdserver: no leader"}"#,
                "Unavailable: etcdserver: no leader",
            ),
        ] {
            let e = judge(status, body).expect_err(says);
            assert!(e.to_string().starts_with(says), "{status} {:?}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn long_bodies_are_cut_to_one_line() {
        let body = format!("line one\n{}", "x".repeat(300));
        let text = excerpt(body.as_bytes());
        assert!(!text.contains('\n') && text.ends_with('…') && text.chars().count() <= 121, "{text}");
    }
}
