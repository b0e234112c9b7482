//! A follower's keep-alives and TimeToLive go to the leader, whose lessor alone knows the
//! deadlines (etcd's `LeaseRenew`/`LeaseTimeToLive` forwarding).
//!
//! etcd forwards over the leader's *peer* URL (`POST /leases`, `/leases/internal`, protobuf
//! bodies). wasmraft forwards over the leader's *client* URL, with etcd's own gRPC Lease
//! service: the peer listener belongs to the rafthttp transport crate, which knows raft and
//! HTTP and nothing of leases, and the client API already is a complete, tested lease endpoint
//! (the leader answers a forwarded call exactly as it answers a client). The price: members'
//! client URLs (which they publish) must be reachable from the other members, and a keep-alive
//! is forwarded over HTTP/2 on a kept-open stream rather than one POST each (cheaper).
//! wasmraft members only ever peer with wasmraft members, so no etcd member needs the routes.
//!
//! https client URLs are dialed as the member's own clients would reach it: presenting its
//! --cert-file certificate (which needs the client-auth usage when the leader requires client
//! certificates), verifying the leader against its --trusted-ca-file (the system's roots without
//! one), or verifying nothing when it runs on --auto-tls (`wasmraft_transport::dial::DialTls`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Status, Streaming};
use wasmraft_proto::etcdserverpb::lease_client::LeaseClient;
use wasmraft_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use wasmraft_transport::dial::Dialer;

use super::errors;
use wasmraft_node::NodeHandle;

/// How long to wait before asking again when there is no leader or it cannot be reached
/// (etcd waits an election timeout; this is shorter, the request deadline bounds it).
const RETRY: Duration = Duration::from_millis(100);

/// How long dialing the leader (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections to the members' client URLs, opened on first use and kept.
#[derive(Default)]
pub(super) struct Leaders {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Leaders {
    /// A Lease client for the current leader (not this member), or None while there is none
    /// or it has not published a client URL yet.
    fn client(&self, node: &NodeHandle) -> Option<(u64, LeaseClient<Channel>)> {
        let leader = node.status().leader();
        if leader == 0 || leader == node.member_id() {
            return None;
        }
        let url = node.cluster().members().into_iter().find(|m| m.id == leader)?.client_urls.into_iter().next()?;
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(&url) {
            Some(c) => c.clone(),
            None => {
                let endpoint = Endpoint::from_shared(url.clone()).ok()?.connect_timeout(CONNECT_TIMEOUT);
                let c = endpoint.connect_with_connector_lazy(Dialer::new(node.dial_tls().clients, CONNECT_TIMEOUT));
                channels.insert(url, c.clone());
                c
            }
        };
        Some((leader, LeaseClient::new(channel)))
    }

    /// Asks the leader for a lease's TimeToLive, retrying across leader changes until
    /// `timeout` (then etcd's "request timed out").
    pub async fn time_to_live(
        &self,
        node: &NodeHandle,
        req: LeaseTimeToLiveRequest,
        timeout: Duration,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((_, mut client)) = self.client(node) {
                let call = client.lease_time_to_live(req);
                match tokio::time::timeout_at(deadline, call).await {
                    Ok(Ok(resp)) => return Ok(resp.into_inner()),
                    Ok(Err(e)) => tracing::debug!(error = %e, "forwarding TimeToLive to the leader failed"),
                    Err(_) => return Err(errors::TIMEOUT.into()),
                }
            }
            if tokio::time::Instant::now() + RETRY >= deadline {
                return Err(errors::TIMEOUT.into());
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// One client stream's keep-alives on their way to the leader: a keep-alive stream to it,
/// opened on the first forwarded request and reopened when the leader changes or the stream
/// breaks. Requests go one at a time (the client stream is served in order), so each response
/// read is the answer to the request just sent.
#[derive(Default)]
pub(super) struct KeepAliveUpstream {
    open: Option<Upstream>,
}

struct Upstream {
    leader: u64,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAliveUpstream {
    /// The leader's TTL for lease `id` (0: not found, as the leader answers it).
    pub async fn renew(
        &mut self,
        leaders: &Leaders,
        node: &NodeHandle,
        id: i64,
        timeout: Duration,
    ) -> Result<i64, Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.try_renew(leaders, node, id)).await {
                Err(_) => {
                    self.open = None;
                    return Err(errors::TIMEOUT.into());
                }
                Ok(Some(ttl)) => return Ok(ttl),
                Ok(None) => {
                    self.open = None;
                    if tokio::time::Instant::now() + RETRY >= deadline {
                        return Err(errors::TIMEOUT.into());
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// One attempt; None when there is no leader to ask or the stream to it failed.
    async fn try_renew(&mut self, leaders: &Leaders, node: &NodeHandle, id: i64) -> Option<i64> {
        let leader = node.status().leader();
        if self.open.as_ref().is_some_and(|u| u.leader != leader) {
            self.open = None;
        }
        if self.open.is_none() {
            let (leader, mut client) = leaders.client(node)?;
            let (tx, rx) = mpsc::channel(1);
            let responses = match client.lease_keep_alive(ReceiverStream::new(rx)).await {
                Ok(r) => r.into_inner(),
                Err(e) => {
                    tracing::debug!(error = %e, "opening a keep-alive stream to the leader failed");
                    return None;
                }
            };
            self.open = Some(Upstream { leader, requests: tx, responses });
        }
        let up = self.open.as_mut()?;
        up.requests.send(LeaseKeepAliveRequest { id }).await.ok()?;
        match up.responses.message().await {
            Ok(Some(resp)) => Some(resp.ttl),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "the leader's keep-alive stream failed");
                None
            }
        }
    }
}
