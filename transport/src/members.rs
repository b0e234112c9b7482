//! The peer port's `/members` (etcd's `peerMembersHandler`, `etcdserver/api/etcdhttp/peer.go`)
//! and its client (`getClusterFromRemotePeers`, `etcdserver/cluster_util.go`): a member joining
//! an existing cluster asks the other members who is in it, and the cluster ID comes back in
//! the `X-Etcd-Cluster-ID` header.
//!
//! The handler answers with whatever JSON the host gives ([`crate::Raft::members_json`]); this
//! crate knows HTTP, not members.

use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::ChannelBody;
use crate::http::{id_str, method_not_allowed, text_error};
use crate::transport::Shared;

pub const MEMBERS_PATH: &str = "/members";

/// `GET /members`: the members as etcd's JSON, a newline (Go's `json.Encoder`), and the
/// cluster ID header. 405 for other methods, as etcd's `allowMethod`; 404 when the host does
/// not serve members.
pub(crate) fn members_handler(shared: &Shared, req: &Request<Incoming>) -> Response<ChannelBody> {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let Some(json) = shared.ctx.raft.members_json() else {
        return text_error(StatusCode::NOT_FOUND, "404 page not found");
    };
    let mut r = Response::new(ChannelBody::full(format!("{json}\n")));
    if let Ok(v) = HeaderValue::from_str(&id_str(shared.ctx.cfg.cluster_id)) {
        r.headers_mut().insert("X-Etcd-Cluster-ID", v);
    }
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("application/json"));
    r
}

/// What a member's `/members` answered: the cluster ID and the members' JSON.
#[derive(Debug, Clone)]
pub struct RemoteMembers {
    pub cluster_id: u64,
    pub json: Vec<u8>,
}

/// Asks the members at `peer_urls` for the cluster's members, in order, until one answers
/// (etcd's `getClusterFromRemotePeers`, which logs each failure and goes on to the next URL).
/// The error is etcd's text for when none did.
pub async fn fetch_members(peer_urls: &[String], timeout: Duration) -> Result<RemoteMembers, String> {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(timeout));
    let client: Client<HttpConnector, ChannelBody> = Client::builder(TokioExecutor::new()).build(conn);
    for u in peer_urls {
        let url = format!("{}{MEMBERS_PATH}", u.trim_end_matches('/'));
        match tokio::time::timeout(timeout, get(&client, &url)).await {
            Ok(Ok(m)) => return Ok(m),
            Ok(Err(e)) => tracing::warn!("could not get cluster response from {u}: {e}"),
            Err(_) => tracing::warn!("could not get cluster response from {u}: timed out"),
        }
    }
    Err("could not retrieve cluster information from the given URLs".into())
}

async fn get(client: &Client<HttpConnector, ChannelBody>, url: &str) -> Result<RemoteMembers, String> {
    let req = Request::get(url).body(ChannelBody::empty()).map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let cluster_id = resp
        .headers()
        .get("X-Etcd-Cluster-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| u64::from_str_radix(s, 16).ok());
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| format!("could not read the body of cluster response: {e}"))?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!("unexpected status {status}"));
    }
    let cluster_id = cluster_id.ok_or("could not parse the cluster ID from cluster res")?;
    Ok(RemoteMembers { cluster_id, json: body.to_vec() })
}
