//! Where everything lives in the guest's keyspace. See the crate docs for the table of prefixes;
//! this module is the only place that builds or parses stored keys.
//!
//! User keys appear in two forms:
//! - raw after a fixed prefix (`l/`), where nothing follows them, so byte order of the stored
//!   keys is byte order of the user keys and a user range is a stored range;
//! - *escaped* (`i/`), where a revision follows them. Escaping (`00` → `00 FF`, then a `00 00`
//!   terminator) makes the encoding prefix-free and order-preserving, so "all revisions of every
//!   key in `[a, b)`" is still one contiguous stored range and `a`'s revisions never interleave
//!   with those of `a\0`.

use wasmraft_guest_sdk::prefix_end;

use crate::revision::{REVISION_LEN, Revision};

/// Meta: the current (last committed) main revision. Absent in a new store, which starts at 1.
pub const META_REVISION: &[u8] = b"m/revision";
/// Meta: the revision of the last compaction. Absent until the first one.
pub const META_COMPACTED: &[u8] = b"m/compacted";

/// `l/<key>` → the key's live `mvccpb.KeyValue` (absent when deleted).
pub const LIVE: &[u8] = b"l/";
/// `i/<escaped key><revision>` → a [`crate::record`] of one change to the key.
pub const INDEX: &[u8] = b"i/";
/// `r/<revision>` → which key changed at that revision (see [`crate::record`]).
pub const REVISIONS: &[u8] = b"r/";
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

    /// The stored range of `l/` entries for the span.
    pub fn live_range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Span::Single(k) => {
                let start = live_key(k);
                let end = successor(&start);
                (start, end)
            }
            Span::From(start) => (live_key(start), prefix_end(LIVE)),
            Span::Range(start, end) => (live_key(start), live_key(end)),
        }
    }

    /// The stored range of `i/` entries for the span.
    pub fn index_range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Span::Single(k) => {
                let start = index_prefix(k);
                let end = prefix_end(&start);
                (start, end)
            }
            Span::From(start) => (index_prefix(start), prefix_end(INDEX)),
            Span::Range(start, end) => (index_prefix(start), index_prefix(end)),
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

fn prefixed(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + rest.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(rest);
    out
}

pub fn live_key(key: &[u8]) -> Vec<u8> {
    prefixed(LIVE, key)
}

/// The user key of an `l/` entry.
pub fn parse_live_key(stored: &[u8]) -> Option<&[u8]> {
    stored.strip_prefix(LIVE)
}

/// `i/<escaped key>`: every revision of `key` starts with this and nothing else does.
pub fn index_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX.len() + key.len() + 2 + REVISION_LEN);
    out.extend_from_slice(INDEX);
    escape_into(key, &mut out);
    out
}

pub fn index_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut out = index_prefix(key);
    out.extend_from_slice(&rev.encode());
    out
}

/// Splits an `i/` key into the escaped-key prefix it shares with the key's other revisions,
/// the user key, and the revision.
pub fn parse_index_key(stored: &[u8]) -> Option<(&[u8], Vec<u8>, Revision)> {
    let split = stored.len().checked_sub(REVISION_LEN)?;
    let (prefix, rev) = stored.split_at(split);
    let escaped = prefix.strip_prefix(INDEX)?;
    let key = unescape(escaped)?;
    Some((prefix, key, Revision::decode(rev)?))
}

pub fn revision_key(rev: Revision) -> Vec<u8> {
    prefixed(REVISIONS, &rev.encode())
}

pub fn parse_revision_key(stored: &[u8]) -> Option<Revision> {
    Revision::decode(stored.strip_prefix(REVISIONS)?)
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

/// Appends `key` escaped and terminated: `00` → `00 FF`, then `00 00`.
fn escape_into(key: &[u8], out: &mut Vec<u8>) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The inverse of [`escape_into`]; `None` unless `escaped` is exactly one terminated key.
fn unescape(escaped: &[u8]) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&b) = bytes.next() {
        if b != 0 {
            key.push(b);
            continue;
        }
        match bytes.next() {
            Some(0xff) => key.push(0),
            Some(0) => return bytes.next().is_none().then_some(key),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_preserves_order_and_is_prefix_free() {
        let keys: [&[u8]; 8] = [b"", b"\0", b"\0\0", b"\0\x01", b"a", b"a\0", b"a\0b", b"a\x01"];
        for w in keys.windows(2) {
            assert!(w[0] < w[1]);
            let (a, b) = (index_key(w[0], Revision::new(i64::MAX, 9)), index_key(w[1], Revision::new(0, 0)));
            assert!(a < b, "{:?} !< {:?}", w[0], w[1]);
        }
        for k in keys {
            let stored = index_key(k, Revision::new(7, 3));
            let (prefix, key, rev) = parse_index_key(&stored).unwrap();
            assert_eq!(prefix, index_prefix(k).as_slice());
            assert_eq!(key, k);
            assert_eq!(rev, Revision::new(7, 3));
        }
    }

    #[test]
    fn malformed_index_keys_are_rejected() {
        assert!(parse_index_key(b"i/").is_none());
        assert!(
            parse_index_key(&[b'i', b'/', b'a', 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none()
        );
        let mut unterminated = b"i/a".to_vec();
        unterminated.extend_from_slice(&Revision::new(1, 0).encode());
        assert!(parse_index_key(&unterminated).is_none());
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
