//! Response headers and request ids, as etcd's server makes them.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmraft_proto::etcdserverpb::ResponseHeader;

use crate::node::NodeHandle;

/// etcd's `header.fill` (v3rpc/header.go): cluster id, member id and raft term come from the
/// member answering; the revision is the one the guest put in (the host knows no revisions).
///
/// Only the top-level header is filled. The responses nested in a txn carry the header the guest
/// gave them, which for etcd's semantics is a header holding only the revision, as etcd's apply
/// code leaves them.
pub fn fill(node: &NodeHandle, header: &mut Option<ResponseHeader>) {
    let h = header.get_or_insert_with(ResponseHeader::default);
    h.cluster_id = node.cluster_id();
    h.member_id = node.member_id();
    h.raft_term = node.raft_term();
}

/// etcd's request id generator (`pkg/idutil`): the low 16 bits of the member id, then 40 bits of
/// the start time in milliseconds and an 8-bit counter, the last 48 bits counting up from there.
/// The ids are unique per member across restarts (unless a member issues more than 256 requests
/// per millisecond for longer than it was down), and distinct between members whose ids differ
/// in their low 16 bits.
///
/// wasmraft's node matches proposals to results with its own ids; this one goes into the
/// `InternalRaftRequest` header only so that the entries in the log look like etcd's.
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
