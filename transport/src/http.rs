//! The peer port's router and its handlers (`http.go`), the top of the crate below the
//! [`Transport`](crate::Transport) API: it reaches every role's receiving side, and nothing but
//! `transport.rs` reaches it. Routes, headers, status codes and bodies are etcd 3.4's:
//!
//! | route | method | success | failures |
//! |---|---|---|---|
//! | `/raft` (pipeline) | POST | 204 | 405 (+`Allow`), 412 version/cluster ID, 400 read/unmarshal, 403 JSON from a removed member, 500 |
//! | `/raft/stream/{msgapp,message}/<from hex>` | GET | 200, then the stream | 405, 412, 404 `invalid path` / `invalid from` / `error sender not found`, 410 `removed member`, 412 `to field mismatch` |
//! | `/raft/snapshot` | POST | 204 | 405, 412, 400 decode / wrong type, 403, 500 save / process |
//! | `/raft/probing` | any | 200 `{"OK":true,"Now":...}` | |
//! | `/members` | GET | 200, the host's member JSON, `X-Etcd-Cluster-ID` | 405 (+`Allow`) (see `members.rs`) |
//! | `/members/promote/<id>` | POST | 200, the members' JSON | 405, 404, 412, 500: the host's status and text |
//! | `/members/hashkv` | GET, JSON body | 200, `HashKVResponse` JSON, `X-Etcd-Cluster-ID` | 405, 412 cluster ID, 400 body / the hash's error, 404 without a host hash (see `hashkv.rs`) |
//! | anything else | | | 404 `404 page not found` |
//! | unclean paths, `/raft/stream` | | | 301 to the clean path / `/raft/stream/` (Go's `ServeMux`) |
//!
//! Error bodies are Go's `http.Error`: `text/plain; charset=utf-8`, `X-Content-Type-Options:
//! nosniff`, the message and a newline. Differences from etcd, on purpose: an unparseable
//! `X-Server-Version`/`X-Min-Cluster-Version` (etcd panics in `semver.Must` and drops the
//! connection) is answered 412 `incompatible version`; a pipeline body over the configured limit
//! is a 400 `error reading raft message` (etcd reads any size); a snapshot head over the limit is
//! a 400 (etcd allows 2^63); a sender that is removed is refused with 403 by the transport itself
//! (etcd does that in `EtcdServer.Process`, same code and body); the probing answer's `Now` is
//! always UTC (`...Z`; etcd writes its local zone, e.g. `+05:30`: the same instant).
//!
//! `tests/etcd_interop.rs` sends the same requests to a real etcd 3.4 member and to us and
//! compares status, body and etcd's headers.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use raft::eraftpb::MessageType;

use crate::body::{BodyReader, ChannelBody};
use crate::fault::FAULTS_PATH;
use crate::hashkv::PEER_HASHKV_PATH;
use crate::host::{ProcessError, SnapshotData};
use crate::members::{MEMBER_PROMOTE_PREFIX, MEMBERS_PATH, members_handler, promote_handler};
use crate::shared::Shared;
use crate::stream::StreamType;
use crate::util::{
    ERR_CLUSTER_ID_MISMATCH, ERR_INCOMPATIBLE_VERSION, Version, header_str, header_version, id_str, method_not_allowed,
    parse_id, text_error,
};
use crate::{msg_codec, pb, probing};

// The routes' public paths, where they were before the senders' helpers moved to `util.rs`.
pub use crate::util::{PROBING_PREFIX, RAFT_PREFIX, RAFT_SNAPSHOT_PREFIX, RAFT_STREAM_PREFIX};

const REMOVED_SENDER: &str = "cannot process message from removed member";

/// etcd's `httptypes.HTTPError.WriteTo`: JSON `{"message":...}`.
fn json_error(code: u16, msg: &str) -> Response<ChannelBody> {
    let mut escaped = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    let mut r = Response::new(ChannelBody::full(format!("{{\"message\":\"{escaped}\"}}")));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("application/json"));
    r
}

fn with_header(mut r: Response<ChannelBody>, name: &'static str, v: &str) -> Response<ChannelBody> {
    if let Ok(v) = HeaderValue::from_str(v) {
        r.headers_mut().insert(name, v);
    }
    r
}

/// etcd's `checkClusterCompatibilityFromHeader`: the error string is the 412 body.
pub(crate) fn check_cluster_compatibility(shared: &Shared, h: &HeaderMap) -> Result<(), &'static str> {
    let cfg = &shared.ctx.cfg;
    let local_server = Version::parse(&cfg.server_version);
    let local_min = Version::parse(&cfg.min_cluster_version);
    let (Some(remote), Some(remote_min), Some(local_server), Some(local_min)) =
        (header_version(h, "X-Server-Version"), header_version(h, "X-Min-Cluster-Version"), local_server, local_min)
    else {
        tracing::warn!(remote = header_str(h, "X-Server-From"), "unparseable version header");
        return Err(ERR_INCOMPATIBLE_VERSION);
    };
    if remote.mm() < local_min.mm() || remote_min.mm() > local_server.mm() {
        tracing::warn!(
            remote = header_str(h, "X-Server-From"),
            version = header_str(h, "X-Server-Version"),
            "failed to check version compatibility"
        );
        return Err(ERR_INCOMPATIBLE_VERSION);
    }
    let gcid = header_str(h, "X-Etcd-Cluster-ID");
    if gcid != id_str(shared.ctx.cfg.cluster_id) {
        tracing::warn!(
            remote = header_str(h, "X-Server-From"),
            remote_cluster_id = gcid,
            "request cluster ID mismatch"
        );
        return Err(ERR_CLUSTER_ID_MISMATCH);
    }
    Ok(())
}

fn peer_urls_header(h: &HeaderMap) -> Vec<String> {
    let s = header_str(h, "X-PeerURLs");
    if s.is_empty() { Vec::new() } else { s.split(',').map(str::to_string).collect() }
}

/// etcd's `addRemoteFromRequest`.
fn add_remote_from_request(shared: &Shared, h: &HeaderMap) {
    if let Some(from) = parse_id(header_str(h, "X-Server-From")) {
        let urls = peer_urls_header(h);
        if !urls.is_empty() {
            shared.add_remote(from, &urls);
        }
    }
}

/// The whole handler: route, then the role's handler.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ChannelBody> {
    let path = req.uri().path().to_string();
    if let Some(r) = mux_redirect(req.method(), &path, req.uri().query()) {
        return r;
    }
    if path == RAFT_PREFIX {
        pipeline_handler(&shared, req).await
    } else if path == RAFT_SNAPSHOT_PREFIX {
        snapshot_handler(&shared, req).await
    } else if path == PROBING_PREFIX {
        probing::handler()
    } else if path.starts_with("/raft/stream/") {
        stream_handler(&shared, req).await
    } else if path == MEMBERS_PATH {
        members_handler(&shared.ctx, &req)
    } else if path == PEER_HASHKV_PATH {
        crate::hashkv::handler(&shared.ctx, req).await
    } else if path.starts_with(MEMBER_PROMOTE_PREFIX) {
        promote_handler(&shared.ctx, &req).await
    } else if path == FAULTS_PATH && shared.ctx.faults.enabled() {
        shared.ctx.faults.handle(req).await
    } else {
        text_error(StatusCode::NOT_FOUND, "404 page not found")
    }
}

/// Go's `ServeMux` redirects, as etcd's peer muxes answer them: a path that is not clean
/// (`//`, `.`, `..`) is sent to its clean form, and `/raft/stream` (a subtree registered only
/// as `/raft/stream/`) to `/raft/stream/`; 301 either way (CONNECT is left alone, as Go does).
fn mux_redirect(method: &Method, path: &str, query: Option<&str>) -> Option<Response<ChannelBody>> {
    if method == Method::CONNECT {
        return None;
    }
    let clean = clean_path(path);
    let target = if clean != path {
        clean
    } else if path == RAFT_STREAM_PREFIX {
        format!("{RAFT_STREAM_PREFIX}/")
    } else {
        return None;
    };
    let url = match query {
        Some(q) if !q.is_empty() => format!("{target}?{q}"),
        _ => target,
    };
    // Go's `http.Redirect`: an HTML body for GET, its Content-Type for GET and HEAD.
    let body = if method == Method::GET {
        let esc = url
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;");
        format!("<a href=\"{esc}\">Moved Permanently</a>.\n\n")
    } else {
        String::new()
    };
    let mut r = Response::new(ChannelBody::full(body));
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert("Location", v);
    }
    if method == Method::GET || method == Method::HEAD {
        r.headers_mut().insert("Content-Type", HeaderValue::from_static("text/html; charset=utf-8"));
    }
    Some(r)
}

/// Go's `net/http.cleanPath`: `path.Clean` of the rooted path, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut np = format!("/{}", parts.join("/"));
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

fn process_error_response(e: ProcessError, snapshot: bool) -> Response<ChannelBody> {
    match e {
        ProcessError::Http { code, message } => json_error(code, &message),
        ProcessError::Other(msg) => {
            tracing::warn!("failed to process raft message: {msg}");
            let body = if snapshot {
                format!("failed to process raft message ({msg})")
            } else {
                "error processing raft message".to_string()
            };
            // etcd panics here to drop the connection; we answer and close it.
            let mut r = text_error(StatusCode::INTERNAL_SERVER_ERROR, &body);
            r.headers_mut().insert("Connection", HeaderValue::from_static("close"));
            r
        }
    }
}

async fn pipeline_handler(shared: &Shared, req: Request<Incoming>) -> Response<ChannelBody> {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let cid = id_str(shared.ctx.cfg.cluster_id);
    let resp = pipeline_inner(shared, req).await;
    with_header(resp, "X-Etcd-Cluster-ID", &cid)
}

async fn pipeline_inner(shared: &Shared, req: Request<Incoming>) -> Response<ChannelBody> {
    let (parts, body) = req.into_parts();
    if let Err(e) = check_cluster_compatibility(shared, &parts.headers) {
        return text_error(StatusCode::PRECONDITION_FAILED, e);
    }
    add_remote_from_request(shared, &parts.headers);
    let limit = shared.ctx.cfg.max_message_bytes;
    let mut r = BodyReader::new(body, Some(shared.ctx.cfg.conn_read_timeout));
    let mut buf = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => {
                if (buf.len() + c.len()) as u64 > limit {
                    tracing::warn!("raft message over {limit} bytes on the pipeline");
                    return text_error(StatusCode::BAD_REQUEST, "error reading raft message");
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("failed to read raft message: {e}");
                return text_error(StatusCode::BAD_REQUEST, "error reading raft message");
            }
        }
    }
    let m = match pb::decode_message(&buf) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("failed to unmarshal raft message: {e}");
            return text_error(StatusCode::BAD_REQUEST, "error unmarshalling raft message");
        }
    };
    if shared.ctx.raft.is_id_removed(m.from) {
        return json_error(403, REMOVED_SENDER);
    }
    if let Some(refused) = shared.ctx.faults.refuse(m.from) {
        return refused;
    }
    if let Some(peer) = shared.peer(m.from) {
        peer.status.received(buf.len() as u64);
    }
    match shared.ctx.raft.process(m) {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => process_error_response(e, false),
    }
}

fn empty(code: StatusCode) -> Response<ChannelBody> {
    let mut r = Response::new(ChannelBody::empty());
    *r.status_mut() = code;
    r
}

async fn snapshot_handler(shared: &Shared, req: Request<Incoming>) -> Response<ChannelBody> {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let cid = id_str(shared.ctx.cfg.cluster_id);
    let resp = snapshot_inner(shared, req).await;
    with_header(resp, "X-Etcd-Cluster-ID", &cid)
}

async fn snapshot_inner(shared: &Shared, req: Request<Incoming>) -> Response<ChannelBody> {
    let (parts, body) = req.into_parts();
    if let Err(e) = check_cluster_compatibility(shared, &parts.headers) {
        return text_error(StatusCode::PRECONDITION_FAILED, e);
    }
    add_remote_from_request(shared, &parts.headers);
    let mut r = BodyReader::new(body, Some(shared.ctx.cfg.conn_read_timeout));
    let m = match msg_codec::decode_frame(&mut r, shared.ctx.cfg.max_message_bytes).await {
        Ok(m) => m,
        Err(e) => {
            let msg = format!("failed to decode raft message ({e})");
            tracing::warn!("{msg}");
            return text_error(StatusCode::BAD_REQUEST, &msg);
        }
    };
    if m.msg_type != MessageType::MsgSnapshot {
        tracing::warn!("unexpected raft message type {:?} on snapshot path", m.msg_type);
        return text_error(StatusCode::BAD_REQUEST, "wrong raft message type");
    }
    if shared.ctx.raft.is_id_removed(m.from) {
        return json_error(403, REMOVED_SENDER);
    }
    if let Some(refused) = shared.ctx.faults.refuse(m.from) {
        return refused;
    }
    tracing::info!(from = %id_str(m.from), index = m.get_snapshot().get_metadata().index, "receiving database snapshot");
    let data = SnapshotData { reader: r };
    if let Err(e) = shared.ctx.raft.save_snapshot(&m, data).await {
        let msg = format!("failed to save KV snapshot ({e})");
        tracing::warn!("{msg}");
        return text_error(StatusCode::INTERNAL_SERVER_ERROR, &msg);
    }
    match shared.ctx.raft.process(m) {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => process_error_response(e, true),
    }
}

async fn stream_handler(shared: &Shared, req: Request<Incoming>) -> Response<ChannelBody> {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let cfg = &shared.ctx.cfg;
    let resp = stream_inner(shared, req).await;
    let resp = with_header(resp, "X-Server-Version", &cfg.server_version);
    with_header(resp, "X-Etcd-Cluster-ID", &id_str(cfg.cluster_id))
}

async fn stream_inner(shared: &Shared, req: Request<Incoming>) -> Response<ChannelBody> {
    let h = req.headers();
    if let Err(e) = check_cluster_compatibility(shared, h) {
        return text_error(StatusCode::PRECONDITION_FAILED, e);
    }
    let path = req.uri().path();
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    let typ = match dir {
        "/raft/stream/msgapp" => StreamType::MsgAppV2,
        "/raft/stream/message" => StreamType::Message,
        _ => return text_error(StatusCode::NOT_FOUND, "invalid path"),
    };
    let Some(from) = parse_id(base) else {
        return text_error(StatusCode::NOT_FOUND, "invalid from");
    };
    if shared.ctx.raft.is_id_removed(from) {
        tracing::warn!(from = %id_str(from), "rejected stream from remote peer because it was removed");
        return text_error(StatusCode::GONE, "removed member");
    }
    if let Some(refused) = shared.ctx.faults.refuse(from) {
        return refused;
    }
    let Some(peer) = shared.peer(from) else {
        let urls = peer_urls_header(h);
        if !urls.is_empty() {
            shared.add_remote(from, &urls);
        }
        tracing::warn!(from = %id_str(from), "failed to find remote peer in cluster");
        return text_error(StatusCode::NOT_FOUND, "error sender not found");
    };
    let want = id_str(shared.ctx.cfg.member_id);
    if header_str(h, "X-Raft-To") != want {
        tracing::warn!(got = header_str(h, "X-Raft-To"), want, "ignored streaming request; ID mismatch");
        return text_error(StatusCode::PRECONDITION_FAILED, "to field mismatch");
    }
    let (tx, body) = ChannelBody::channel(STREAM_BODY_CHUNKS);
    // If the writer is gone (peer stopped), `tx` drops and the response ends at once.
    peer.attach_outgoing(typ, tx).await;
    Response::new(body)
}

/// Chunks buffered between a stream writer and the connection.
const STREAM_BODY_CHUNKS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_as_go_does() {
        for (p, want) in [
            ("", "/"),
            ("/", "/"),
            ("/raft", "/raft"),
            ("/raft/", "/raft/"),
            ("//raft", "/raft"),
            ("/raft/stream/message/../msgapp/1", "/raft/stream/msgapp/1"),
            ("/raft/./probing", "/raft/probing"),
            ("/../..", "/"),
            ("/a//b/", "/a/b/"),
            ("raft", "/raft"),
        ] {
            assert_eq!(clean_path(p), want, "{p}");
        }
        assert!(mux_redirect(&Method::GET, "/raft/stream/message/1", None).is_none());
        assert!(mux_redirect(&Method::CONNECT, "/raft/stream", None).is_none());
        let r = mux_redirect(&Method::POST, "/raft/stream", Some("a=1"));
        let loc = r.as_ref().and_then(|r| r.headers().get("Location"));
        assert_eq!(loc.and_then(|v| v.to_str().ok()), Some("/raft/stream/?a=1"));
    }
}
