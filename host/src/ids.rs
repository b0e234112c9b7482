//! Member and cluster IDs, derived exactly as etcd derives them, so the same flags give the same
//! IDs on wasmraft and on etcd (and tooling that prints them sees familiar values).

use sha1::{Digest, Sha1};

/// etcd's `membership.NewMember` for a member of the initial cluster: the first 8 bytes
/// (big-endian) of sha1(sorted peer URLs concatenated + cluster token).
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(cluster_token.as_bytes());
    first_u64(&h.finalize())
}

/// etcd's `RaftCluster.genID`: sha1 over the sorted member IDs, each 8 bytes big-endian.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IDs real etcd 3.4 prints for `etcd` with all defaults
    /// (member 8e9e05c52164694d in cluster cdf818194e3a8c32).
    #[test]
    fn defaults_match_etcd() {
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}
