//! `--experimental-corrupt-check-time` (etcd's `monitorKVHash` and `checkHashKV`): every
//! interval the leader takes its hash, its followers' at the same revision, waits for a
//! linearizable read barrier and takes its own again, and raises the CORRUPT alarm (for member
//! 0: which member diverged is not known, as in etcd 3.4.23) when
//! - its own hash changed between the two while its revision and compaction did not;
//! - a follower is at a later revision, or compacted further, than the leader;
//! - a follower at the leader's compaction has another hash.
//!
//! Followers run the loop too but check nothing, so a new leader takes over at its next tick.

use std::time::Duration;

use wasmraft_node::NodeHandle;
use wasmraft_proto::etcdserverpb::{AlarmRequest, AlarmType, alarm_request::AlarmAction};

use super::{CheckConfig, local_hash, peer_hashes};

/// The running check. Stops when dropped.
pub struct Monitor {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts checking every `interval` (etcd starts it with the server, on every member).
pub fn start(node: NodeHandle, cfg: CheckConfig, interval: Duration) -> Monitor {
    tracing::info!(
        "etcdserver: enabled corruption checking with {} interval",
        wasmraft_proto::go::format_duration(interval)
    );
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if node.status().leader() != node.member_id() {
                continue;
            }
            if let Err(e) = check(&node, &cfg).await {
                tracing::debug!("etcdserver: check hash kv failed {e}");
            }
        }
    });
    Monitor { task }
}

/// One pass (etcd's `checkHashKV`). Err: the pass could not be made (no hash here, no barrier).
pub async fn check(node: &NodeHandle, cfg: &CheckConfig) -> Result<(), String> {
    if !node.guests().guest_serves(wasmraft_proto::contract::ETCD_KV_API) {
        return Err("the active guest has no etcd keyspace to hash".into());
    }
    let first = local_hash(node, cfg.native_guest, 0).await?;
    let (h, rev, crev) = (first.hash, first.revision, first.compact_revision);
    let peers = peer_hashes(node, cfg, rev).await;
    tokio::time::timeout(cfg.request_timeout, node.reads().read_barrier())
        .await
        .map_err(|_| "etcdserver: request timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let second = local_hash(node, cfg.native_guest, 0).await?;
    let (h2, rev2, crev2) = (second.hash, second.revision, second.compact_revision);

    let mut mismatch = false;
    if h2 != h && rev2 == rev && crev == crev2 {
        tracing::warn!("etcdserver: mismatched hashes {h} and {h2} for revision {rev}");
        mismatch = true;
    }
    for p in &peers {
        let Ok(peer) = &p.hash else { continue };
        // The leader expects its followers at or behind its own revision and compaction.
        if peer.revision > rev2 {
            tracing::warn!("etcdserver: revision {} from member {:x}, expected at most {rev2}", peer.revision, p.id);
            mismatch = true;
        }
        if peer.compact_revision > crev2 {
            tracing::warn!(
                "etcdserver: compact revision {} from member {:x}, expected at most {crev2}",
                peer.compact_revision,
                p.id
            );
            mismatch = true;
        }
        // At the leader's first compaction, the hashes must match.
        if peer.compact_revision == crev && peer.hash != h {
            tracing::warn!(
                "etcdserver: hash {} at revision {rev} from member {:x}, expected hash {h}",
                peer.hash,
                p.id
            );
            mismatch = true;
        }
    }
    if mismatch {
        let raise =
            AlarmRequest { member_id: 0, action: AlarmAction::Activate as i32, alarm: AlarmType::Corrupt as i32 };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = node.proposals().alarm(raise).await {
                tracing::warn!("etcdserver: raising the CORRUPT alarm failed: {e}");
            }
        });
    }
    tracing::info!("etcdserver: finished peer corruption check");
    Ok(())
}
