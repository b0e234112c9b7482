//! The convergence check after a fault run has healed: every member reports the same raft
//! index, applied index and revision, the same HashKV at that revision (Maintenance.HashKV: the
//! MVCC key space up to it, so also the same history of revisions, not only the same latest
//! values), the same member list, and — wasmraft only — the same active guest (name, version,
//! module hash, since-index) and guest state hash.

use std::time::Duration;

use crate::{Cluster, Flavor};

/// What the members agreed on.
#[derive(Clone, Debug)]
pub struct Converged {
    pub revision: i64,
    pub hash: u32,
    pub compact_revision: i64,
    pub members: usize,
    /// `name version` of the active guest (wasmraft).
    pub guest: Option<String>,
}

/// Waits (up to `timeout`) for every member to reach the same indexes, then compares. Blocking;
/// `rt` runs the clients.
pub fn check_convergence(
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    timeout: Duration,
) -> Result<Converged, String> {
    if cluster.running().len() != cluster.size() {
        return Err(format!("only members {:?} of {} are running", cluster.running(), cluster.size()));
    }
    let statuses = cluster.try_wait_converged(timeout)?;
    let revision = statuses.first().map_or(0, |(_, s)| s.revision as i64);

    let mut hashes = Vec::new();
    let mut lists = Vec::new();
    for i in 0..cluster.size() {
        let (hash, list) = rt.block_on(async {
            let mut c = cluster.client(i, Duration::from_secs(5)).await;
            let h = c.hash_kv(revision).await.map_err(|e| format!("member {i}: HashKV at {revision}: {e}"))?;
            let m = c.member_list().await.map_err(|e| format!("member {i}: MemberList: {e}"))?;
            let mut list: Vec<(u64, String, Vec<String>, Vec<String>, bool)> = m
                .members()
                .iter()
                .map(|m| (m.id(), m.name().to_string(), sorted(m.peer_urls()), sorted(m.client_urls()), m.is_learner()))
                .collect();
            list.sort();
            Ok::<_, String>(((h.hash(), h.compact_version()), list))
        })?;
        hashes.push(hash);
        lists.push(list);
    }
    if hashes.iter().any(|h| *h != hashes[0]) {
        return Err(format!("HashKV at revision {revision} differs: (hash, compact revision) per member {hashes:?}"));
    }
    if lists.iter().any(|l| *l != lists[0]) || lists[0].len() != cluster.size() {
        return Err(format!("member lists differ or are incomplete: {lists:#?}"));
    }
    let guest = if cluster.flavor() == Flavor::Wasmraft {
        let st = cluster.wait_same_state(timeout)?;
        Some(st[0].guest())
    } else {
        None
    };
    Ok(Converged { revision, hash: hashes[0].0, compact_revision: hashes[0].1, members: lists[0].len(), guest })
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}
