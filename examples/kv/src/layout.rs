//! Where everything lives in the guest's keyspace. See the crate docs for the table of prefixes;
//! this module is the only place that builds or parses stored keys (the previous layout's keys,
//! which only the migration reads, are in [`crate::legacy`]).
//!
//! User keys appear raw after `k/`, where nothing follows them, so byte order of the stored keys
//! is byte order of the user keys and a user range is a stored range. History rows are keyed by
//! revision alone (`h/<main><sub>`), so the history table is etcd's `key` bucket in its order.

use wasmraft_guest_sdk::prefix_end;

use crate::revision::Revision;

/// The store's revision when it is above the newest `h/` row's (a compaction dropped the newest
/// row, a deletion; an import ended at a compaction newer than its last row): i64 BE. It sorts
/// after every `h/<revision>` row (a main revision's first byte is at most 0x7f), so the one
/// reverse step that finds the newest change finds it first; the next write deletes it.
pub const REVISION_FLOOR: &[u8] = b"h/\xff";
/// The layout before issue 26 kept the current revision here ([`crate::legacy`]).
pub const META_REVISION: &[u8] = b"m/revision";
/// Meta: the revision of the last compaction. Absent until the first one.
pub const META_COMPACTED: &[u8] = b"m/compacted";

/// `k/<key>` → the key's row ([`crate::record::KeyRow`]): its live `mvccpb.KeyValue` (or that
/// it is deleted) and where its history is.
pub const KEYS: &[u8] = b"k/";
/// `h/<revision>` → one change ([`crate::record::Change`]): the KeyValue written (or the key
/// deleted) and links to the key's earlier changes.
pub const HISTORY: &[u8] = b"h/";
/// `L/<lease id, 8 bytes BE>` → a granted lease (`wasmraft.v1.LeaseRecord`: id, granted TTL,
/// last checkpointed remaining TTL): etcd's `lease` bucket.
pub const LEASES: &[u8] = b"L/";
/// `K/<lease id, 8 bytes BE><key>` → empty: `key` is attached to the lease. etcd keeps this in
/// memory (the lessor's `itemSet`, rebuilt from the keys' `lease` fields at start); here it is
/// stored so that a revoke and TimeToLive's key list read one prefix instead of every key.
pub const LEASE_KEYS: &[u8] = b"K/";

/// The keys a request names, after etcd's conventions for `range_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Span {
    /// `range_end` empty: exactly `key`.
    Single(Vec<u8>),
    /// `range_end == "\0"`: every key `>= key`.
    From(Vec<u8>),
    /// `key <= k < end` (empty when `end <= key`).
    Range(Vec<u8>, Vec<u8>),
}

impl Span {
    /// `key` and `range_end` as they come in a request (etcd's `mkGteRange`: a lone zero byte
    /// means "to the end of the keyspace").
    pub fn new(key: &[u8], range_end: &[u8]) -> Span {
        match range_end {
            [] => Span::Single(key.to_vec()),
            [0] => Span::From(key.to_vec()),
            end => Span::Range(key.to_vec(), end.to_vec()),
        }
    }

    /// Whether `key` (a user key) lies in the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Span::Single(k) => k.as_slice() == key,
            Span::From(start) => key >= start.as_slice(),
            Span::Range(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }

    /// The stored range of `k/` rows for the span.
    pub fn key_range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Span::Single(k) => {
                let start = key_row(k);
                let end = successor(&start);
                (start, end)
            }
            Span::From(start) => (key_row(start), prefix_end(KEYS)),
            Span::Range(start, end) => (key_row(start), key_row(end)),
        }
    }
}

/// The smallest byte string greater than `key`.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

pub(crate) fn prefixed(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + rest.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(rest);
    out
}

/// `k/<key>`.
pub fn key_row(key: &[u8]) -> Vec<u8> {
    prefixed(KEYS, key)
}

/// The user key of a `k/` row.
pub fn parse_key_row(stored: &[u8]) -> Option<&[u8]> {
    stored.strip_prefix(KEYS)
}

/// `h/<revision>`.
pub fn history_key(rev: Revision) -> Vec<u8> {
    prefixed(HISTORY, &rev.encode())
}

pub fn parse_history_key(stored: &[u8]) -> Option<Revision> {
    Revision::decode(stored.strip_prefix(HISTORY)?)
}

/// The end of the `h/<revision>` rows (the revision floor, past them).
pub fn history_end() -> Vec<u8> {
    REVISION_FLOOR.to_vec()
}

/// The first `h/` key of main revision `main` (every change of revisions below sorts before it).
pub fn history_from(main: i64) -> Vec<u8> {
    history_key(Revision::new(main.max(0), 0))
}

pub fn lease_key(id: i64) -> Vec<u8> {
    prefixed(LEASES, &id.to_be_bytes())
}

/// The prefix of every `K/` entry of lease `id`.
pub fn lease_keys_prefix(id: i64) -> Vec<u8> {
    prefixed(LEASE_KEYS, &id.to_be_bytes())
}

/// The `K/` entry recording that `key` is attached to lease `id`.
pub fn lease_item_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = lease_keys_prefix(id);
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_order_like_revisions() {
        let revs = [Revision::new(0, 0), Revision::new(2, 0), Revision::new(2, 1), Revision::new(256, 0)];
        for w in revs.windows(2) {
            assert!(history_key(w[0]) < history_key(w[1]));
        }
        for r in revs {
            assert_eq!(parse_history_key(&history_key(r)), Some(r));
        }
        assert_eq!(parse_history_key(b"h/short"), None);
        assert_eq!(parse_key_row(&key_row(b"a\0b")), Some(&b"a\0b"[..]));
    }

    #[test]
    fn spans_follow_etcd_range_end_rules() {
        assert_eq!(Span::new(b"a", b""), Span::Single(b"a".to_vec()));
        assert_eq!(Span::new(b"a", b"\0"), Span::From(b"a".to_vec()));
        assert_eq!(Span::new(b"a", b"c"), Span::Range(b"a".to_vec(), b"c".to_vec()));
        let r = Span::new(b"a", b"c");
        assert!(r.contains(b"a") && r.contains(b"b\xff") && !r.contains(b"c"));
        assert!(Span::new(b"a", b"\0").contains(b"\xff\xff"));
        assert!(!Span::new(b"b", b"a").contains(b"b"));
    }
}
