//! What both ends of the peer port share (etcd's `util.go`, and the route constants of
//! `http.go`): the routes, member ids as etcd prints and parses them, Go's `http.Error` bodies,
//! version headers, and the sending roles' request headers and answer checks.
//!
//! Kept at the bottom of the crate (it knows only the configuration and body plumbing), so the
//! router, the sending roles and the fault switch all use it without needing each other.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{BodyReader, ChannelBody};
use crate::config::TransportConfig;

// The routes the sending roles post and dial to; the peer port's router (`http.rs`) serves them.
pub const RAFT_PREFIX: &str = "/raft";
pub const PROBING_PREFIX: &str = "/raft/probing";
pub const RAFT_STREAM_PREFIX: &str = "/raft/stream";
pub const RAFT_SNAPSHOT_PREFIX: &str = "/raft/snapshot";

// The 412 bodies, written by the router and read back by the senders.
pub(crate) const ERR_INCOMPATIBLE_VERSION: &str = "incompatible version";
pub(crate) const ERR_CLUSTER_ID_MISMATCH: &str = "cluster ID mismatch";

/// etcd's `types.ID.String()`: lowercase hex without padding.
pub(crate) fn id_str(id: u64) -> String {
    format!("{id:x}")
}

/// etcd's `types.IDFromString`: base-16 `ParseUint` (no sign, no prefix).
pub(crate) fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Go's `http.Error`.
pub(crate) fn text_error(code: StatusCode, msg: &str) -> Response<ChannelBody> {
    let mut r = Response::new(ChannelBody::full(format!("{msg}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    r
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<ChannelBody> {
    let mut r = text_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut().insert("Allow", HeaderValue::from_static(allow));
    r
}

/// A semantic version as go-semver reads it (major.minor.patch, optional -pre / +build).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub major: u64,
    pub minor: u64,
}

impl Version {
    pub(crate) fn parse(s: &str) -> Option<Version> {
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let _patch: u64 = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Version { major, minor })
    }
    pub(crate) fn mm(self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Missing version headers mean etcd 2.0 (`serverVersion` / `minClusterVersion`).
pub(crate) fn header_version(h: &HeaderMap, name: &str) -> Option<Version> {
    let s = header_str(h, name);
    Version::parse(if s.is_empty() { "2.0.0" } else { s })
}

/// Why a POST (pipeline or snapshot) was not accepted (`checkPostResponse`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    #[error("incompatible version")]
    IncompatibleVersion,
    #[error("cluster ID mismatch")]
    ClusterIdMismatch,
    #[error("the member has been permanently removed from the cluster")]
    MemberRemoved,
    #[error("{0}")]
    Other(String),
}

pub(crate) fn check_post_response(status: StatusCode, body: &[u8], url: &str) -> Result<(), PostError> {
    match status {
        StatusCode::PRECONDITION_FAILED => {
            let b = String::from_utf8_lossy(body);
            match b.trim_end_matches('\n') {
                ERR_INCOMPATIBLE_VERSION => Err(PostError::IncompatibleVersion),
                ERR_CLUSTER_ID_MISMATCH => Err(PostError::ClusterIdMismatch),
                other => Err(PostError::Other(format!("unhandled error {other:?} when precondition failed"))),
            }
        }
        StatusCode::FORBIDDEN => Err(PostError::MemberRemoved),
        StatusCode::NO_CONTENT => Ok(()),
        s => Err(PostError::Other(format!("unexpected http status {s} while posting to {url:?}"))),
    }
}

/// etcd's `createPostRequest` headers (and the stream dial's, minus `X-Raft-To`).
pub(crate) fn set_common_headers(h: &mut HeaderMap, shared_cfg: &TransportConfig) {
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("X-Server-From", id_str(shared_cfg.member_id));
    put("X-Server-Version", shared_cfg.server_version.clone());
    put("X-Min-Cluster-Version", shared_cfg.min_cluster_version.clone());
    put("X-Etcd-Cluster-ID", id_str(shared_cfg.cluster_id));
    if !shared_cfg.peer_urls.is_empty() {
        put("X-PeerURLs", shared_cfg.peer_urls.join(","));
    }
}

/// Reads a (small) response body, bounded in size and time.
pub(crate) async fn read_small_body(body: Incoming, timeout: std::time::Duration) -> std::io::Result<Vec<u8>> {
    const MAX: usize = 64 * 1024;
    let mut r = BodyReader::new(body, Some(timeout));
    let mut out = Vec::new();
    while let Some(c) = r.chunk().await? {
        if out.len() + c.len() > MAX {
            break;
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

pub(crate) fn bytes_of(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}

/// Classifies a 412 answer's body the way etcd's stream dial does.
pub(crate) fn check_cluster_compat_answer(body: &[u8]) -> String {
    let b = String::from_utf8_lossy(body);
    match b.trim_end_matches('\n') {
        ERR_INCOMPATIBLE_VERSION => ERR_INCOMPATIBLE_VERSION.to_string(),
        ERR_CLUSTER_ID_MISMATCH => ERR_CLUSTER_ID_MISMATCH.to_string(),
        other => format!("unhandled error {other:?} when precondition failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_ids() {
        assert_eq!(Version::parse("3.4.23"), Some(Version { major: 3, minor: 4 }));
        assert_eq!(Version::parse("3.5.0-alpha.0+git"), Some(Version { major: 3, minor: 5 }));
        assert_eq!(Version::parse("3.4"), None);
        assert_eq!(Version::parse("x.y.z"), None);
        assert_eq!(parse_id("8e9e05c52164694d"), Some(0x8e9e05c52164694d));
        assert_eq!(parse_id("+1"), None);
        assert_eq!(parse_id(""), None);
        assert_eq!(parse_id("10000000000000000"), None);
        assert_eq!(id_str(0x8e9e05c52164694d), "8e9e05c52164694d");
    }
}
