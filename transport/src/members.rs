//! The peer port's `/members` (etcd's `peerMembersHandler`, `etcdserver/api/etcdhttp/peer.go`)
//! and its client (`getClusterFromRemotePeers`, `etcdserver/cluster_util.go`): a member joining
//! an existing cluster asks the other members who is in it, and the cluster ID comes back in
//! the `X-Etcd-Cluster-ID` header.
//!
//! The handler answers with whatever JSON the host gives ([`crate::Raft::members_json`]); this
//! crate knows HTTP, not members.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use rustls::ClientConfig;

use crate::body::ChannelBody;
use crate::ctx::Ctx;
use crate::dial::Dialer;
use crate::util::{id_str, method_not_allowed, text_error};

pub const MEMBERS_PATH: &str = "/members";

/// `GET /members`: the members as etcd's JSON, a newline (Go's `json.Encoder`), and the
/// cluster ID header. 405 for other methods, as etcd's `allowMethod`; 404 when the host does
/// not serve members.
pub(crate) fn members_handler(ctx: &Ctx, req: &Request<Incoming>) -> Response<ChannelBody> {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let Some(json) = ctx.raft.members_json() else {
        return text_error(StatusCode::NOT_FOUND, "404 page not found");
    };
    let mut r = Response::new(ChannelBody::full(format!("{json}\n")));
    if let Ok(v) = HeaderValue::from_str(&id_str(ctx.cfg.cluster_id)) {
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
/// The error is etcd's text for when none did. `tls` dials https URLs (the member's peer TLS).
pub async fn fetch_members(
    peer_urls: &[String],
    timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
) -> Result<RemoteMembers, String> {
    let client = Dialer::new(tls, timeout).client();
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

async fn get(client: &Client<Dialer, ChannelBody>, url: &str) -> Result<RemoteMembers, String> {
    let req = Request::get(url).body(ChannelBody::empty()).map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let cluster_id = resp
        .headers()
        .get("X-Etcd-Cluster-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| u64::from_str_radix(s, 16).ok());
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("could not read the body of cluster response: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!("unexpected status {status}"));
    }
    let cluster_id = cluster_id.ok_or("could not parse the cluster ID from cluster res")?;
    Ok(RemoteMembers { cluster_id, json: body.to_vec() })
}

pub const MEMBER_PROMOTE_PREFIX: &str = "/members/promote/";

/// `POST /members/promote/<id, decimal>` (etcd's `peerMemberPromoteHandler`): a follower asked
/// to promote a learner hands the request to the leader, the only member that knows whether
/// the learner caught up. Answers the host's outcome: 200 and the members' JSON, or the status
/// and text the host chose (etcd: 404 unknown member, 412 not a learner / not in sync).
pub(crate) async fn promote_handler(ctx: &Ctx, req: &Request<Incoming>) -> Response<ChannelBody> {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let id_str = req.uri().path().trim_start_matches(MEMBER_PROMOTE_PREFIX);
    let Ok(id) = id_str.parse::<u64>() else {
        return with_cluster_id(
            ctx,
            text_error(StatusCode::NOT_FOUND, &format!("member {id_str} not found in cluster")),
        );
    };
    let r = match ctx.raft.promote_member(id).await {
        Ok(json) => {
            let mut r = Response::new(ChannelBody::full(format!("{json}\n")));
            r.headers_mut().insert("Content-Type", HeaderValue::from_static("application/json"));
            r
        }
        Err((code, text)) => text_error(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &text),
    };
    with_cluster_id(ctx, r)
}

fn with_cluster_id(ctx: &Ctx, mut r: Response<ChannelBody>) -> Response<ChannelBody> {
    if let Ok(v) = HeaderValue::from_str(&id_str(ctx.cfg.cluster_id)) {
        r.headers_mut().insert("X-Etcd-Cluster-ID", v);
    }
    r
}

/// Asks the member at `peer_url` (the leader) to promote learner `id` (etcd's
/// `promoteMemberHTTP`). Ok: the members' JSON. Err: the status (0 when there was no answer)
/// and the body or error text. `tls` dials an https URL (the member's peer TLS).
pub async fn promote_member(
    peer_url: &str,
    id: u64,
    timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
) -> Result<Vec<u8>, (u16, String)> {
    let client = Dialer::new(tls, timeout).client();
    let url = format!("{}{MEMBER_PROMOTE_PREFIX}{id}", peer_url.trim_end_matches('/'));
    let call = async {
        let req = Request::post(&url).body(ChannelBody::empty()).map_err(|e| (0, e.to_string()))?;
        let resp = client.request(req).await.map_err(|e| (0, e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| (0, e.to_string()))?.to_bytes().to_vec();
        if status == 200 { Ok(body) } else { Err((status, String::from_utf8_lossy(&body).into_owned())) }
    };
    tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| Err((0, "timed out".into())))
}
