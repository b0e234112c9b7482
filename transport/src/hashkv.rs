//! The peer port's `/members/hashkv` (etcd 3.4's `hashKVHandler`, `etcdserver/corrupt.go`) and
//! its client (`getPeerHashKVHTTP`): the corruption checks compare the hash of each member's
//! keyspace at one revision, asking the other members over the peer port.
//!
//! The wire is etcd's: `GET` with the JSON of `HashKVRequest` as its body (`{"revision":N}`,
//! Go's `encoding/json`), answered with the JSON of `HashKVResponse` (`{"header":{"revision":R},
//! "hash":H,"compact_revision":C}`, zero fields left out), `X-Etcd-Cluster-ID` and
//! `Content-Type: application/json`; a hash that cannot be made is a 400 with the error's text.
//! The host computes the hash ([`crate::PeerHashKv`], set with `Transport::set_hash_kv`); this crate
//! knows HTTP and JSON, not keyspaces. Without a host hash the route is not served (404), as
//! in an etcd without it.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::body::{BodyReader, ChannelBody};
use crate::ctx::Ctx;
use crate::dial::Dialer;
use crate::host::HashKv;
use crate::util::{ERR_CLUSTER_ID_MISMATCH, header_str, id_str, method_not_allowed, text_error};

/// etcd's `PeerHashKVPath`.
pub const PEER_HASHKV_PATH: &str = "/members/hashkv";

/// The largest request body read (a `{"revision":N}` is a few dozen bytes).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// etcd's `mvcc.ErrCompacted` and `mvcc.ErrFutureRev`, as its handler answers them.
const ERR_COMPACTED: &str = "mvcc: required revision has been compacted";
const ERR_FUTURE_REV: &str = "mvcc: required revision is a future revision";

#[derive(Serialize, Deserialize, Default)]
struct RequestJson {
    #[serde(default)]
    revision: i64,
}

#[derive(Serialize, Deserialize, Default)]
struct HeaderJson {
    #[serde(default, skip_serializing_if = "is_zero")]
    revision: i64,
}

#[derive(Serialize, Deserialize, Default)]
struct ResponseJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<HeaderJson>,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    hash: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    compact_revision: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `GET /members/hashkv`.
pub(crate) async fn handler(ctx: &Ctx, req: Request<Incoming>) -> Response<ChannelBody> {
    let Some(source) = ctx.hash_kv.get() else {
        return text_error(StatusCode::NOT_FOUND, "404 page not found");
    };
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    // etcd (since 3.4.28): a request from another cluster is refused.
    let gcid = header_str(req.headers(), "X-Etcd-Cluster-ID");
    if !gcid.is_empty() && gcid != id_str(ctx.cfg.cluster_id) {
        return text_error(StatusCode::PRECONDITION_FAILED, ERR_CLUSTER_ID_MISMATCH);
    }
    let mut body = BodyReader::new(req.into_body(), Some(ctx.cfg.conn_read_timeout));
    let mut buf = Vec::new();
    loop {
        match body.chunk().await {
            Ok(Some(c)) if buf.len() + c.len() <= MAX_REQUEST_BYTES => buf.extend_from_slice(&c),
            Ok(None) => break,
            Ok(Some(_)) | Err(_) => return text_error(StatusCode::BAD_REQUEST, "error reading body"),
        }
    }
    let request: RequestJson = match serde_json::from_slice(&buf) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("failed to unmarshal hashkv request: {e}");
            return text_error(StatusCode::BAD_REQUEST, "error unmarshalling request");
        }
    };
    let answer = match source.hash_kv(request.revision).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(requested_revision = request.revision, "failed to get hashKV: {e}");
            return text_error(StatusCode::BAD_REQUEST, &e);
        }
    };
    let json = ResponseJson {
        header: Some(HeaderJson { revision: answer.revision }),
        hash: answer.hash,
        compact_revision: answer.compact_revision,
    };
    let bytes = match serde_json::to_vec(&json) {
        Ok(b) => b,
        Err(e) => return text_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut r = Response::new(ChannelBody::full(bytes));
    if let Ok(v) = HeaderValue::from_str(&id_str(ctx.cfg.cluster_id)) {
        r.headers_mut().insert("X-Etcd-Cluster-ID", v);
    }
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("application/json"));
    r
}

/// Why a peer's hash could not be had (etcd's `getPeerHashKVHTTP` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashKvError {
    /// The peer has compacted past the revision: this member is behind (`rpctypes.ErrCompacted`).
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The peer has not reached the revision yet (`rpctypes.ErrFutureRev`).
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// Anything else: no answer, or an unexpected one.
    #[error("{0}")]
    Other(String),
}

/// Asks the member at `peer_url` for its keyspace hash at `revision` (etcd's
/// `getPeerHashKVHTTP`), within `timeout`. `cluster_id` goes in `X-Etcd-Cluster-ID`; `tls`
/// dials an https URL (the member's peer TLS).
pub async fn fetch_hash_kv(
    peer_url: &str,
    cluster_id: u64,
    revision: i64,
    timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
) -> Result<HashKv, HashKvError> {
    let client = Dialer::new(tls, timeout).client();
    let url = format!("{}{PEER_HASHKV_PATH}", peer_url.trim_end_matches('/'));
    let call = async {
        let body = serde_json::to_vec(&RequestJson { revision }).map_err(|e| HashKvError::Other(e.to_string()))?;
        let req = Request::get(&url)
            .header("Content-Type", "application/json")
            .header("X-Etcd-Cluster-ID", id_str(cluster_id))
            .body(ChannelBody::full(body))
            .map_err(|e| HashKvError::Other(e.to_string()))?;
        let resp = client.request(req).await.map_err(|e| HashKvError::Other(e.to_string()))?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| HashKvError::Other(e.to_string()))?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        if status == StatusCode::BAD_REQUEST {
            if text.contains(ERR_COMPACTED) {
                return Err(HashKvError::Compacted);
            }
            if text.contains(ERR_FUTURE_REV) {
                return Err(HashKvError::FutureRev);
            }
        }
        if status != StatusCode::OK {
            return Err(HashKvError::Other(format!("unknown error: {text}")));
        }
        let json: ResponseJson = serde_json::from_slice(&body).map_err(|e| HashKvError::Other(e.to_string()))?;
        Ok(HashKv {
            hash: json.hash,
            revision: json.header.map_or(0, |h| h.revision),
            compact_revision: json.compact_revision,
        })
    };
    tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| Err(HashKvError::Other("timed out".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bodies Go's `encoding/json` writes for etcd's messages (zero fields omitted).
    #[test]
    fn json_as_etcd_writes_it() {
        assert_eq!(serde_json::to_string(&RequestJson { revision: 5 }).unwrap(), r#"{"revision":5}"#);
        let full = ResponseJson { header: Some(HeaderJson { revision: 7 }), hash: 3_428_718_512, compact_revision: 2 };
        assert_eq!(
            serde_json::to_string(&full).unwrap(),
            r#"{"header":{"revision":7},"hash":3428718512,"compact_revision":2}"#
        );
        let sparse = ResponseJson { header: Some(HeaderJson { revision: 1 }), hash: 0, compact_revision: 0 };
        assert_eq!(serde_json::to_string(&sparse).unwrap(), r#"{"header":{"revision":1}}"#);
        let parsed: ResponseJson = serde_json::from_str(r#"{"header":{"revision":1}}"#).unwrap();
        assert_eq!((parsed.hash, parsed.compact_revision), (0, 0));
        // etcd's full header fields, which it may send, are ignored.
        let parsed: ResponseJson =
            serde_json::from_str(r#"{"header":{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4},"hash":9}"#)
                .unwrap();
        assert_eq!((parsed.header.map(|h| h.revision), parsed.hash), (Some(3), 9));
    }
}
