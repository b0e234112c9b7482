//! The values of the two tables a write touches.
//!
//! - `h/<revision>` → a [`Change`]: `[p | t] ‖ links ‖ payload`. A put's payload is the encoded
//!   `mvccpb.KeyValue` it wrote (etcd's `key` bucket value, byte for byte), a deletion's the user
//!   key. The links point back to earlier changes of the same key (see [`crate::chain`]).
//! - `k/<key>` → a [`KeyRow`]: `[p | t] ‖ fingers ‖ payload`: `p` with the live encoded
//!   `mvccpb.KeyValue` as payload, or `t` (the key's newest change is a deletion; kept until a
//!   compaction passes it, so reads at older revisions still find the key's history). The
//!   fingers are the key's newest change at each level of its chain; the first is the newest
//!   change itself.
//!
//! Links and fingers are `count (1 byte) ‖ count × (main, sub)`, each number an unsigned LEB128
//! varint: a revision costs 3–6 bytes instead of 16.

use crate::errors::corrupt;
use crate::revision::Revision;

pub const PUT: u8 = b'p';
pub const TOMBSTONE: u8 = b't';

/// One stored change to a key.
#[derive(Debug, PartialEq, Eq)]
pub struct Change<'a> {
    pub tombstone: bool,
    /// The key's earlier changes, one per level (see [`crate::chain`]); empty for its first.
    pub links: Vec<Revision>,
    /// A put's encoded `mvccpb.KeyValue`, or a deletion's user key.
    pub payload: &'a [u8],
}

/// A key's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    /// The live encoded `mvccpb.KeyValue`; `None` when the newest change is a deletion.
    pub live: Option<Vec<u8>>,
    /// The newest change at each level; never empty.
    pub fingers: Vec<Revision>,
}

impl KeyRow {
    /// The key's newest change.
    pub fn newest(&self) -> Revision {
        self.fingers.first().copied().unwrap_or_default()
    }
}

fn kind(tombstone: bool) -> u8 {
    if tombstone { TOMBSTONE } else { PUT }
}

pub fn encode_change(tombstone: bool, links: &[Revision], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + links.len() * 6 + payload.len());
    out.push(kind(tombstone));
    put_revisions(&mut out, links);
    out.extend_from_slice(payload);
    out
}

pub fn decode_change(value: &[u8]) -> Result<Change<'_>, String> {
    let (tombstone, rest) = split_kind(value).ok_or_else(|| corrupt("unrecognised history record"))?;
    let (links, payload) = take_revisions(rest).ok_or_else(|| corrupt("history record links"))?;
    Ok(Change { tombstone, links, payload })
}

pub fn encode_key_row(row: &KeyRow) -> Vec<u8> {
    encode_key_row_parts(row.live.as_deref(), &row.fingers)
}

/// A key row from its live KeyValue (`None`: deleted) and fingers, without building a [`KeyRow`].
pub fn encode_key_row_parts(live: Option<&[u8]>, fingers: &[Revision]) -> Vec<u8> {
    let payload = live.unwrap_or_default();
    let mut out = Vec::with_capacity(2 + fingers.len() * 6 + payload.len());
    out.push(kind(live.is_none()));
    put_revisions(&mut out, fingers);
    out.extend_from_slice(payload);
    out
}

pub fn decode_key_row(value: &[u8]) -> Result<KeyRow, String> {
    let (live, fingers) = decode_key_row_parts(value)?;
    Ok(KeyRow { live: live.map(<[u8]>::to_vec), fingers })
}

/// A key row's live KeyValue, borrowed, and its fingers.
pub fn decode_key_row_parts(value: &[u8]) -> Result<(Option<&[u8]>, Vec<Revision>), String> {
    let bad = || corrupt("unrecognised key row");
    let (tombstone, rest) = split_kind(value).ok_or_else(bad)?;
    let (fingers, payload) = take_revisions(rest).ok_or_else(bad)?;
    if fingers.is_empty() || (tombstone && !payload.is_empty()) {
        return Err(bad());
    }
    Ok(((!tombstone).then_some(payload), fingers))
}

/// Just the live KeyValue of a `k/` row, without decoding the fingers: what a read at the
/// current revision needs from every key it passes.
pub fn live_of(value: &[u8]) -> Result<Option<&[u8]>, String> {
    let bad = || corrupt("unrecognised key row");
    let (tombstone, rest) = split_kind(value).ok_or_else(bad)?;
    if tombstone {
        return Ok(None);
    }
    let (&count, mut rest) = rest.split_first().ok_or_else(bad)?;
    // Two varints per revision: skip each up to its last byte (high bit clear).
    for _ in 0..usize::from(count) * 2 {
        let end = rest.iter().position(|b| b & 0x80 == 0).ok_or_else(bad)?;
        rest = &rest[end + 1..];
    }
    Ok(Some(rest))
}

fn split_kind(value: &[u8]) -> Option<(bool, &[u8])> {
    match value.split_first() {
        Some((&PUT, rest)) => Some((false, rest)),
        Some((&TOMBSTONE, rest)) => Some((true, rest)),
        _ => None,
    }
}

fn put_revisions(out: &mut Vec<u8>, revs: &[Revision]) {
    // At most 64 levels (a main revision has at most 63 trailing zeros), so a byte counts them.
    out.push(revs.len() as u8);
    for r in revs {
        put_varint(out, r.main as u64);
        put_varint(out, r.sub as u64);
    }
}

fn take_revisions(bytes: &[u8]) -> Option<(Vec<Revision>, &[u8])> {
    let (&count, mut rest) = bytes.split_first()?;
    let mut revs = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (main, r) = take_varint(rest)?;
        let (sub, r) = take_varint(r)?;
        rest = r;
        revs.push(Revision::new(i64::try_from(main).ok()?, i64::try_from(sub).ok()?));
    }
    Some((revs, rest))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((v, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let links = vec![Revision::new(300, 2), Revision::new(1 << 40, 0), Revision::new(i64::MAX, 0)];
        let change = encode_change(false, &links, b"kv bytes");
        assert_eq!(
            decode_change(&change).unwrap(),
            Change { tombstone: false, links: links.clone(), payload: b"kv bytes" }
        );
        let tomb = encode_change(true, &[], b"key");
        assert_eq!(decode_change(&tomb).unwrap(), Change { tombstone: true, links: vec![], payload: b"key" });
        let row = KeyRow { live: Some(b"live".to_vec()), fingers: links.clone() };
        let bytes = encode_key_row(&row);
        assert_eq!(decode_key_row(&bytes).unwrap(), row);
        assert_eq!(live_of(&bytes).unwrap(), Some(&b"live"[..]));
        let dead = KeyRow { live: None, fingers: links };
        assert_eq!(live_of(&encode_key_row(&dead)).unwrap(), None);
        assert_eq!(decode_key_row(&encode_key_row(&dead)).unwrap(), dead);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for bad in [&b""[..], b"x", b"p", b"p\x01\x80", b"t\x00", b"t\x01\x02\x00junk"] {
            assert!(decode_key_row(bad).is_err(), "{bad:?}");
        }
        assert!(decode_change(b"p\x02\x01").is_err());
        assert!(live_of(b"p\x01\xff").is_err());
    }
}
