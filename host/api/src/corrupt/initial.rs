//! `--experimental-initial-corrupt-check` (etcd's `CheckInitialHashKV`): before the member
//! serves peers or clients, its keyspace hash at its current revision against every peer's at
//! the same revision. Only a different hash with the same compaction counts: a peer that is
//! behind, ahead past a compaction, or unreachable is logged and passed over, as in etcd.

use wasmraft_node::NodeHandle;
use wasmraft_proto::contract::ETCD_KV_API;
use wasmraft_transport::hashkv::HashKvError;

use super::{CheckConfig, local_hash, peer_hashes, quoted_list};

/// Why the start is refused: etcd's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitialCheckError {
    #[error("{member:x} failed to fetch hash ({error})")]
    LocalHash { member: u64, error: String },
    #[error("{member:x} found data inconsistency with peers")]
    Inconsistent { member: u64 },
}

/// Runs the check; Ok when no peer's hash differs at the same compaction.
pub async fn check(node: &NodeHandle, cfg: &CheckConfig) -> Result<(), InitialCheckError> {
    let me = node.member_id();
    if !node.guests().guest_serves(ETCD_KV_API) {
        // A new member before its first deploy has an empty keyspace; another guest has no
        // HashKV. Either way there is nothing of etcd's to compare.
        tracing::info!("etcdserver: {me:x} skipped the initial corruption check: no etcd KV guest is active here");
        return Ok(());
    }
    tracing::info!(
        "etcdserver: {me:x} starting initial corruption check with timeout {}...",
        wasmraft_proto::go::format_duration(cfg.request_timeout)
    );
    let local = local_hash(node, cfg.native_guest, 0)
        .await
        .map_err(|error| InitialCheckError::LocalHash { member: me, error })?;
    let (h, rev, crev) = (local.hash, local.revision, local.compact_revision);
    let mut mismatch = 0;
    for p in peer_hashes(node, cfg, rev).await {
        match p.hash {
            Ok(peer) if peer.hash != h => {
                if peer.compact_revision == crev {
                    tracing::error!(
                        "etcdserver: {me:x}'s hash {h} != {:x}'s hash {} (revision {rev}, peer revision {}, compact revision {crev})",
                        p.id,
                        peer.hash,
                        peer.revision
                    );
                    mismatch += 1;
                } else {
                    tracing::warn!(
                        "etcdserver: {me:x} cannot check hash of peer({:x}): peer has a different compact revision {} (revision:{rev})",
                        p.id,
                        peer.compact_revision
                    );
                }
            }
            Ok(_) => {}
            Err(e @ HashKvError::FutureRev) => tracing::warn!(
                "etcdserver: {me:x} cannot check the hash of peer({}) at revision {rev}: peer is lagging behind({:?})",
                quoted_list(&p.urls),
                e.to_string()
            ),
            Err(e @ HashKvError::Compacted) => tracing::warn!(
                "etcdserver: {me:x} cannot check the hash of peer({}) at revision {rev}: local node is lagging behind({:?})",
                quoted_list(&p.urls),
                e.to_string()
            ),
            // Already logged per URL; etcd passes over a peer it cannot reach.
            Err(_) => {}
        }
    }
    if mismatch > 0 {
        return Err(InitialCheckError::Inconsistent { member: me });
    }
    tracing::info!("etcdserver: {me:x} succeeded on initial corruption checking: no corruption");
    Ok(())
}
