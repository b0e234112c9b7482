//! The peer port's HTTP handler (`transport/src/http.rs`, reached through
//! `Transport::handle`), driven in process: a fresh `Transport` per input (member 1 of cluster
//! `c1a5`, with one peer, member 2), a hyper HTTP/1.1 server on one end of an in-memory duplex
//! pipe and a hyper client sending the fuzzed request on the other.
//!
//! Input: one flags byte (how the fake raft behaves, how the body is chunked), then
//! `METHOD PATH\n`, header lines `Name: value\n`, an empty line, and the body: a text request,
//! so seeds are readable. Checks: the handler answers (no panic, within a few seconds), with a
//! status code the route can have (the table in `http.rs`'s docs, or hyper's 431 for too many
//! headers), 405s carry `Allow`, and the answer (unless it is a stream) is small.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use raft::eraftpb::Message;
use wasmraft_transport::{ProcessError, PromoteFuture, Raft, SnapshotData, SnapshotStatus, Transport, TransportConfig};

use crate::Chunked;

const MEMBER: u64 = 1;
const CLUSTER: u64 = 0xc1a5;
const PEER: u64 = 2;
/// A member the fake raft says was removed (403 / 410 paths).
const REMOVED: u64 = 3;
/// Well below the real 512 MB, so the over-limit paths are reachable.
const MAX_MESSAGE: u64 = 4 << 10;
/// How long one request may take before it counts as a hang. Nothing in a request from this
/// target waits on the network, so a healthy handler answers in milliseconds.
const HANG: Duration = Duration::from_secs(5);
/// More than any error or redirect body; the handler's answers are all small.
const MAX_ANSWER: usize = 64 << 10;

/// The host side, as the flags byte makes it behave.
struct FuzzRaft {
    flags: u8,
}

/// A status the fake raft answers `process` or a promotion with (including invalid codes, which
/// the handler must map to 500).
fn host_code(flags: u8) -> u16 {
    [400, 403, 409, 500, 503, 99, 1000, 0][usize::from(flags >> 5)]
}

impl Raft for FuzzRaft {
    fn process(&self, _m: Message) -> Result<(), ProcessError> {
        match self.flags & 3 {
            0 | 1 => Ok(()),
            2 => Err(ProcessError::Http { code: host_code(self.flags), message: "fuzz \"refusal\" <&>\u{1}".into() }),
            _ => Err(ProcessError::Other("fuzz failure".into())),
        }
    }
    fn is_id_removed(&self, id: u64) -> bool {
        id == REMOVED
    }
    fn report_unreachable(&self, _id: u64) {}
    fn report_snapshot(&self, _id: u64, _status: SnapshotStatus) {}
    fn save_snapshot<'a>(
        &'a self,
        _m: &'a Message,
        mut data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut n = 0u64;
            while let Some(c) = data.chunk().await.map_err(|e| e.to_string())? {
                n += c.len() as u64;
            }
            if self.flags & 4 != 0 {
                return Err("fuzz: cannot save".into());
            }
            Ok(n)
        })
    }
    fn members_json(&self) -> Option<String> {
        (self.flags & 8 != 0).then(|| "[{\"id\":1}]".to_string())
    }
    fn promote_member(&self, id: u64) -> PromoteFuture<'_> {
        let flags = self.flags;
        Box::pin(async move {
            if flags & 16 != 0 {
                Ok(format!("[{{\"id\":{id}}}]"))
            } else {
                Err((host_code(flags), format!("member {id} not promoted")))
            }
        })
    }
}

/// The parsed input.
struct Fuzzed<'a> {
    flags: u8,
    method: &'a [u8],
    target: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

fn parse(data: &[u8]) -> Option<Fuzzed<'_>> {
    let (&flags, rest) = data.split_first()?;
    let mut lines = rest.splitn(2, |&b| b == b'\n');
    let first = lines.next()?;
    let mut rest = lines.next().unwrap_or(b"");
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let mut headers = Vec::new();
    loop {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        rest = after;
        if line.is_empty() {
            break;
        }
        if let Some(i) = line.iter().position(|&b| b == b':') {
            let value = &line[i + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            headers.push((&line[..i], value));
        }
    }
    Some(Fuzzed { flags, method, target, headers, body: rest })
}

/// Headers the client sets itself from the body, or that change the connection: a fuzzed one
/// would only make hyper's client refuse or mis-frame the request, which is not the handler's
/// business (hyper's server parser is not what this target is about).
fn framing_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "upgrade"
            | "te"
            | "host"
            | "expect"
            | "keep-alive"
            | "proxy-connection"
    )
}

fn build_request(f: &Fuzzed<'_>) -> Option<Request<Chunked>> {
    let method = Method::from_bytes(f.method).ok()?;
    let target = std::str::from_utf8(f.target).ok()?;
    if !target.starts_with('/') {
        return None; // an origin-form target; absolute and authority forms are hyper's business
    }
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "fuzz")
        .body(Chunked::new(f.body, f.flags.rotate_right(3)))
        .ok()?;
    for (name, value) in &f.headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        if !framing_header(&name) {
            req.headers_mut().append(name, value);
        }
    }
    Some(req)
}

/// Whether Go's `ServeMux` would redirect this path (it is not clean, or is `/raft/stream`):
/// an independent check of `clean_path`.
fn redirected(path: &str) -> bool {
    if path == "/raft/stream" {
        return true;
    }
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    !path.starts_with('/') || (path != "/" && inner.split('/').any(|s| s.is_empty() || s == "." || s == ".."))
}

/// The statuses `http.rs` documents for this request.
fn allowed(method: &Method, path: &str, flags: u8) -> Vec<u16> {
    if method != Method::CONNECT && redirected(path) {
        return vec![301];
    }
    let host = host_code(flags);
    let host = if (100..1000).contains(&host) { host } else { 500 };
    let post = |ok: &[u16]| {
        if method == Method::POST { ok.to_vec() } else { vec![405] }
    };
    match path {
        "/raft" | "/raft/snapshot" => post(&[204, 400, 403, 412, 500, host]),
        "/raft/probing" => vec![200],
        "/members" => {
            if method == Method::GET {
                vec![200, 404]
            } else {
                vec![405]
            }
        }
        p if p.starts_with("/raft/stream/") => {
            if method == Method::GET {
                vec![200, 404, 410, 412]
            } else {
                vec![405]
            }
        }
        p if p.starts_with("/members/promote/") => post(&[200, 404, host]),
        _ => vec![404],
    }
}

pub fn peer_http(data: &[u8]) {
    let Some(f) = parse(data) else { return };
    let Some(req) = build_request(&f) else { return };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let flags = f.flags;
    crate::block_on(async move {
        let mut cfg = TransportConfig::new(MEMBER, CLUSTER, vec!["http://127.0.0.1:2380".into()]);
        cfg.max_message_bytes = MAX_MESSAGE;
        cfg.conn_read_timeout = Duration::from_secs(1);
        let tr = Transport::new(cfg, Arc::new(FuzzRaft { flags })).expect("transport");
        // Port 9 (discard): nothing listens, so the peer's dials fail at once.
        tr.add_peer(PEER, &["http://127.0.0.1:9".into()]).expect("peer");

        let (client_io, server_io) = tokio::io::duplex(64 << 10);
        let server_tr = tr.clone();
        let server = tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let tr = server_tr.clone();
                async move { Ok::<_, std::convert::Infallible>(tr.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server_io), svc).await;
        });
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake::<_, Chunked>(TokioIo::new(client_io)).await {
                Ok(x) => x,
                Err(e) => panic!("client handshake on a duplex pipe: {e}"),
            };
        let client = tokio::spawn(conn);

        let resp = tokio::time::timeout(HANG, sender.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("the handler did not answer {method} {path} in {HANG:?}"));
        // The client refusing what it was given to send is not the handler's doing.
        let Ok(resp) = resp else {
            tr.stop();
            return;
        };
        let status = resp.status();
        let want = allowed(&method, &path, flags);
        // hyper's own answer to more headers than it parses (100), before any handler runs;
        // a member's peer listener (Transport::serve) gives the same.
        let hyper_limit = status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        assert!(
            hyper_limit || want.contains(&status.as_u16()),
            "{method} {path}: status {status}, the route allows {want:?}"
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(resp.headers().contains_key("allow"), "405 without Allow");
        }
        let streaming = path.starts_with("/raft/stream/") && status == StatusCode::OK;
        if !streaming {
            let mut body = resp.into_body();
            let mut n = 0usize;
            let read = tokio::time::timeout(HANG, async {
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Some(d) = frame.data_ref() {
                        n += d.len();
                        assert!(n <= MAX_ANSWER, "{method} {path}: an answer over {MAX_ANSWER} bytes");
                    }
                }
            })
            .await;
            assert!(read.is_ok(), "{method} {path}: the answer's body did not end in {HANG:?}");
        }
        tr.stop();
        server.abort();
        client.abort();
    });
}
