//! etcd's revision keys: the keys of its backend's `key` bucket (etcd 3.4 `mvcc/revision.go`,
//! `revToBytes`, and the tombstone mark of `mvcc/kvstore.go`).
//!
//! `main` as 8 bytes big-endian, a `_`, `sub` as 8 bytes big-endian: 17 bytes, so that bbolt's
//! byte order is revision order. A deletion's key carries one more byte, the mark `t`. The meta
//! bucket's compaction keys hold the 17-byte form of `{main: rev}`.
//!
//! The guest's own encoding ([`crate::revision::Revision::encode`]) drops the `_`: it is only
//! ever a key suffix there, never a bucket key of its own.

use crate::revision::Revision;

/// The length of an unmarked revision key.
pub const REV_KEY_LEN: usize = 17;
/// The length of a marked (tombstone) revision key.
pub const MARKED_REV_KEY_LEN: usize = REV_KEY_LEN + 1;
/// The mark that makes a revision key a deletion's.
pub const TOMBSTONE_MARK: u8 = b't';
const SEPARATOR: u8 = b'_';

/// `rev` as etcd's revision key, marked as a deletion when `tombstone`.
pub fn encode(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(MARKED_REV_KEY_LEN);
    out.extend_from_slice(&rev.main.to_be_bytes());
    out.push(SEPARATOR);
    out.extend_from_slice(&rev.sub.to_be_bytes());
    if tombstone {
        out.push(TOMBSTONE_MARK);
    }
    out
}

/// The revision and whether it is a tombstone; the reason when `bytes` is not a revision key.
/// Stricter than etcd, which reads any 17 bytes: the separator and the mark must be etcd's.
pub fn decode(bytes: &[u8]) -> Result<(Revision, bool), String> {
    let tombstone = match bytes.len() {
        REV_KEY_LEN => false,
        MARKED_REV_KEY_LEN if bytes[REV_KEY_LEN] == TOMBSTONE_MARK => true,
        MARKED_REV_KEY_LEN => {
            return Err(format!("the 18th byte is {:#04x}, not the tombstone mark 't'", bytes[REV_KEY_LEN]));
        }
        n => return Err(format!("{n} bytes, not 17 (main '_' sub) or 18 (a tombstone's)")),
    };
    if bytes[8] != SEPARATOR {
        return Err(format!("the 9th byte is {:#04x}, not '_'", bytes[8]));
    }
    let main: [u8; 8] = bytes[..8].try_into().map_err(|_| "main revision".to_string())?;
    let sub: [u8; 8] = bytes[9..REV_KEY_LEN].try_into().map_err(|_| "sub revision".to_string())?;
    Ok((Revision::new(i64::from_be_bytes(main), i64::from_be_bytes(sub)), tombstone))
}

/// A revision key for messages: `main_sub`, with `t` for a tombstone, or the bytes in hex.
pub fn display(bytes: &[u8]) -> String {
    match decode(bytes) {
        Ok((rev, tombstone)) => format!("{}_{}{}", rev.main, rev.sub, if tombstone { "t" } else { "" }),
        Err(_) => hex(bytes),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_layout_and_order() {
        let key = encode(Revision::new(0x0102, 3), false);
        assert_eq!(key, [0, 0, 0, 0, 0, 0, 1, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(encode(Revision::new(0x0102, 3), true), [key.as_slice(), b"t"].concat());
        let revs = [Revision::new(1, 0), Revision::new(1, 1), Revision::new(2, 0), Revision::new(256, 0)];
        for w in revs.windows(2) {
            assert!(encode(w[0], true) < encode(w[1], false));
        }
        for r in revs {
            assert_eq!(decode(&encode(r, false)), Ok((r, false)));
            assert_eq!(decode(&encode(r, true)), Ok((r, true)));
        }
        assert_eq!(display(&encode(Revision::new(7, 2), true)), "7_2t");
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(decode(&[0; 16]).unwrap_err().contains("16 bytes"));
        assert!(decode(&[0; 19]).unwrap_err().contains("19 bytes"));
        let mut bad_sep = encode(Revision::new(1, 0), false);
        bad_sep[8] = b'.';
        assert!(decode(&bad_sep).unwrap_err().contains("not '_'"));
        let mut bad_mark = encode(Revision::new(1, 0), false);
        bad_mark.push(b'x');
        assert!(decode(&bad_mark).unwrap_err().contains("tombstone mark"));
        assert_eq!(display(&[1, 2]), "0102");
    }
}
