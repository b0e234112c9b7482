//! Member and cluster IDs, derived exactly as etcd derives them, so the same flags give the same
//! IDs on wasmraft and on etcd (and tooling that prints them sees familiar values).

use std::sync::atomic::{AtomicU64, Ordering};

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

/// etcd's request id generator (`pkg/idutil`): the low 16 bits of the member id, then 40 bits of
/// the start time in milliseconds and an 8-bit counter, the last 48 bits counting up from there.
/// The ids are unique per member across restarts (unless a member issues more than 256 requests
/// per millisecond for longer than it was down), and distinct between members whose ids differ
/// in their low 16 bits.
///
/// The node keys its wait registry with these ids, and the API layer puts one into each
/// `InternalRaftRequest` header so that the entries in the log look like etcd's.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    suffix: AtomicU64,
}

const COUNT_BITS: u32 = 8;
const SUFFIX_BITS: u32 = 40 + COUNT_BITS;
const SUFFIX_MASK: u64 = (1 << SUFFIX_BITS) - 1;

impl RequestIds {
    pub fn new(member_id: u64, now_unix_ms: u64) -> Self {
        Self {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((now_unix_ms << COUNT_BITS) & SUFFIX_MASK),
        }
    }

    /// Starts from the system clock. A clock before 1970 starts the counter at zero: the ids are
    /// still unique within this run.
    pub fn from_clock(member_id: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self::new(member_id, now)
    }

    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        self.prefix | (suffix & SUFFIX_MASK)
    }
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

    #[test]
    fn ids_are_laid_out_as_etcds() {
        // etcd's idutil test: member 0x12, start 0x3456 ms → first id 0x12000000345601.
        let ids = RequestIds::new(0x12, 0x3456);
        assert_eq!(ids.next(), 0x0012_0000_0034_5601);
        assert_eq!(ids.next(), 0x0012_0000_0034_5602);
    }

    #[test]
    fn only_the_low_16_bits_of_the_member_id_are_used() {
        let ids = RequestIds::new(0xdead_beef_cafe_0012, 0x3456);
        assert_eq!(ids.next(), 0x0012_0000_0034_5601);
    }

    #[test]
    fn the_suffix_wraps_within_48_bits() {
        let ids = RequestIds::new(0x1, (1 << 40) - 1);
        let first = ids.next();
        assert_eq!(first, (1 << 48) | 0xffff_ffff_ff01);
        for _ in 0..0xfe {
            ids.next();
        }
        // The 48-bit suffix overflows into zero; the member bits are untouched.
        assert_eq!(ids.next(), 1 << 48);
    }
}
