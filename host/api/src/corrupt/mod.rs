//! etcd 3.4's corruption checks (`etcdserver/corrupt.go`): members compare the hash of their
//! keyspace at the same revision (HashKV), asking each other over the peer port.
//!
//! - [`initial`] (`--experimental-initial-corrupt-check`): before the member serves peers or
//!   clients, its hash against every peer's; a mismatch at the same compaction refuses the start.
//! - [`monitor`] (`--experimental-corrupt-check-time`): every interval, the leader compares its
//!   hash with its followers' and raises the CORRUPT alarm through the log on a mismatch; from
//!   then on every member refuses writes (`wasmraft_node`'s `corrupt` apply rule), as etcd's
//!   corrupt applier does.
//! - [`peer`]: this member's side of the peer port's `/members/hashkv`, which both ask.
//!
//! This file holds what they share: this member's hash ([`local_hash`]) and the peers' answers
//! ([`peer_hashes`]), with etcd's log lines.

pub mod initial;
pub mod monitor;
pub mod peer;

use std::time::Duration;

use wasmraft_node::NodeHandle;
use wasmraft_proto::etcdserverpb::HashKvRequest;
use wasmraft_transport::HashKv;
use wasmraft_transport::hashkv::{HashKvError, fetch_hash_kv};

/// What the checks need besides the member (which says how it dials https peer URLs).
#[derive(Debug, Clone, Copy)]
pub struct CheckConfig {
    /// How long a peer's hash and the leader's read barrier may take (etcd's `ReqTimeout`).
    pub request_timeout: Duration,
    /// The guest whose HashKV runs natively (`ApiLimits::etcd_backend_guest`).
    pub native_guest: Option<[u8; 32]>,
}

/// This member's keyspace hash at `revision` (0: the current one), from its own state (etcd's
/// `kv.HashByRev`); Err is the guest's text (etcd's mvcc errors for a compacted or future
/// revision).
pub async fn local_hash(node: &NodeHandle, native: Option<[u8; 32]>, revision: i64) -> Result<HashKv, String> {
    let resp = crate::hash_kv::hash_kv(node, native, HashKvRequest { revision }).await.map_err(|e| e.to_string())?;
    Ok(HashKv {
        hash: resp.hash,
        revision: resp.header.map_or(0, |h| h.revision),
        compact_revision: resp.compact_revision,
    })
}

/// One peer's answer (etcd's `peerHashKVResp`).
pub(crate) struct PeerAnswer {
    pub id: u64,
    pub urls: Vec<String>,
    /// Its hash, or the error of its last URL.
    pub hash: Result<HashKv, HashKvError>,
}

/// Every other member's hash at `revision` (etcd's `getPeerHashKVs`): each member's peer URLs
/// in turn until one answers, logging each failure. The members are asked all at once (etcd
/// asks one after the other), so a start is held up by one request timeout at most.
pub(crate) async fn peer_hashes(node: &NodeHandle, cfg: &CheckConfig, revision: i64) -> Vec<PeerAnswer> {
    let me = node.member_id();
    let tls = node.dial_tls().peers;
    let tls = &tls;
    let asks =
        node.cluster().members().into_iter().filter(|m| m.id != me && !m.peer_urls.is_empty()).map(|m| async move {
            let mut last = HashKvError::Other("no peer URL".into());
            for url in &m.peer_urls {
                match fetch_hash_kv(url, node.cluster_id(), revision, cfg.request_timeout, tls.clone()).await {
                    Ok(hash) => return PeerAnswer { id: m.id, urls: m.peer_urls.clone(), hash: Ok(hash) },
                    Err(e) => {
                        tracing::warn!(
                            "etcdserver: {me:x} hash-kv error {:?} on peer {url:?} with revision {revision}",
                            e.to_string()
                        );
                        last = e;
                    }
                }
            }
            PeerAnswer { id: m.id, urls: m.peer_urls.clone(), hash: Err(last) }
        });
    futures::future::join_all(asks).await
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn quoted_list(urls: &[String]) -> String {
    format!("[{}]", urls.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(" "))
}
