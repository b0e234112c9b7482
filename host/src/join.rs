//! Joining an existing cluster (`--initial-cluster-state existing`), as etcd 3.4's
//! `NewServer` does for a member without data: ask the other members listed in
//! `--initial-cluster` for the cluster's members (their peer port's `GET /members`), check that
//! the flags describe exactly that cluster (the member must have been added with
//! `member add` first), and take this member's id from the record whose peer URLs are ours.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, trim_url};
use wasmraft_node::Joined;
use wasmraft_node::conf_change::EtcdMember;
use wasmraft_node::membership::Member;

/// Learns the cluster from its members, dialing https peer URLs with `tls` (the member's peer
/// TLS). The errors are etcd's texts.
pub async fn discover(cfg: &Config, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Joined> {
    let own_urls = cfg
        .initial_cluster
        .get(&cfg.name)
        .with_context(|| format!("couldn't find local name {:?} in the initial cluster configuration", cfg.name))?;
    let own_urls = sorted(own_urls.iter().map(trim_url).collect());
    let mut remote_urls: Vec<String> = cfg
        .initial_cluster
        .iter()
        .filter(|(name, _)| **name != cfg.name)
        .flat_map(|(_, urls)| urls.iter().map(trim_url))
        .collect();
    remote_urls.sort();
    // etcd's per-peer timeout in getClusterFromRemotePeers.
    let fetched = wasmraft_transport::members::fetch_members(&remote_urls, Duration::from_secs(2), Some(tls))
        .await
        .map_err(|e| anyhow::anyhow!("cannot fetch cluster info from peer urls: {e}"))?;
    let remote: Vec<EtcdMember> = serde_json::from_slice(&fetched.json).map_err(|e| {
        anyhow::anyhow!("cannot fetch cluster info from peer urls: could not unmarshal cluster response: {e}")
    })?;
    let members: Vec<Member> = remote.into_iter().map(EtcdMember::into_member).collect();
    let local: Vec<Vec<String>> =
        cfg.initial_cluster.values().map(|urls| sorted(urls.iter().map(trim_url).collect())).collect();
    validate(fetched.cluster_id, &members, &local)?;
    let member_id =
        members.iter().find(|m| sorted(m.peer_urls.clone()) == own_urls).map(|m| m.id).with_context(|| {
            format!("member with peer URLs {own_urls:?} is not in cluster {:x}", fetched.cluster_id)
        })?;
    Ok(Joined { cluster_id: fetched.cluster_id, member_id, members })
}

/// etcd's `ValidateClusterAndAssignIDs`: the flags' members and the cluster's must match one to
/// one by peer URLs.
fn validate(cluster_id: u64, members: &[Member], local: &[Vec<String>]) -> anyhow::Result<()> {
    let problem = if members.len() != local.len() {
        Some("member count is unequal".to_string())
    } else {
        members.iter().find(|m| !local.contains(&sorted(m.peer_urls.clone()))).map(|m| {
            format!(
                "PeerURLs: no match found for existing member ({:x}, [{}]), last resolver error (<nil>)",
                m.id,
                m.peer_urls.join(" ")
            )
        })
    };
    match problem {
        None => Ok(()),
        Some(p) => anyhow::bail!("error validating peerURLs {}: {p}", describe(cluster_id, members)),
    }
}

/// etcd's `RaftCluster.String()`, as its error messages print a cluster.
fn describe(cluster_id: u64, members: &[Member]) -> String {
    let ms: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "&{{ID:{:x} RaftAttributes:{{PeerURLs:[{}] IsLearner:{}}} Attributes:{{Name:{} ClientURLs:[{}]}}}}",
                m.id,
                m.peer_urls.join(" "),
                m.is_learner,
                m.name,
                m.client_urls.join(" ")
            )
        })
        .collect();
    format!("{{ClusterID:{cluster_id:x} Members:[{}] RemovedMemberIDs:[]}}", ms.join(" "))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str) -> Member {
        Member { id, peer_urls: vec![url.into()], ..Default::default() }
    }

    #[test]
    fn a_member_not_added_first_is_refused_with_etcds_text() {
        let cluster = [member(1, "http://a:1"), member(2, "http://b:2")];
        let local =
            vec![vec!["http://a:1".to_string()], vec!["http://b:2".to_string()], vec!["http://c:3".to_string()]];
        let err = validate(9, &cluster, &local).unwrap_err().to_string();
        assert!(err.starts_with("error validating peerURLs {ClusterID:9 Members:[&{ID:1 "), "{err}");
        assert!(err.ends_with(": member count is unequal"), "{err}");
        let local = vec![vec!["http://a:1".to_string()], vec!["http://x:2".to_string()]];
        let err = validate(9, &cluster, &local).unwrap_err().to_string();
        assert!(err.contains("PeerURLs: no match found for existing member (2, [http://b:2])"), "{err}");
        let local = vec![vec!["http://b:2".to_string()], vec!["http://a:1".to_string()]];
        validate(9, &cluster, &local).unwrap();
    }
}
