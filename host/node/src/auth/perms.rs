//! Whether a user's roles cover a key or a range (etcd's `range_perm_cache.go`).
//!
//! A permission is a key (`range_end` empty), a range `[key, range_end)`, or everything from
//! `key` on (`range_end` = `"\0"`). A request for one key is allowed when some permission
//! contains it; a request for a range only when the permissions together cover all of it, so
//! `a..c` is allowed by `a..b` plus `b..c` but not by `a..b` alone.

use wasmraft_proto::authpb::{Permission, permission::Type};

/// The two kinds of access etcd checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn granted_by(self, perm: &Permission) -> bool {
        match Type::try_from(perm.perm_type) {
            Ok(Type::Readwrite) => true,
            Ok(Type::Read) => self == Access::Read,
            Ok(Type::Write) => self == Access::Write,
            Err(_) => false,
        }
    }
}

/// etcd's `isValidPermissionRange` (3.4.25+): a permission names a key, and its range holds at
/// least that key (`range_end` empty, after `key`, or `"\0"`).
pub fn is_valid_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || key < range_end || range_end == [0])
}

/// `[start, end)`, `end` None meaning no upper bound.
struct Interval<'a> {
    start: &'a [u8],
    end: Option<Vec<u8>>,
}

fn interval(perm: &Permission) -> Interval<'_> {
    let end = if perm.range_end.is_empty() {
        // A single key: [key, key + "\0").
        let mut e = perm.key.clone();
        e.push(0);
        Some(e)
    } else if perm.range_end == [0] {
        None
    } else {
        Some(perm.range_end.clone())
    };
    Interval { start: &perm.key, end }
}

/// Whether `perms` (all the permissions of a user's roles) allow `access` to `key` alone
/// (`range_end` empty) or to `[key, range_end)` (`"\0"`: everything from `key` on).
pub fn permitted<'a>(
    perms: impl Iterator<Item = &'a Permission>,
    access: Access,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let mut ivls: Vec<Interval<'_>> = perms.filter(|p| access.granted_by(p)).map(interval).collect();
    if range_end.is_empty() {
        return ivls.iter().any(|i| i.start <= key && i.end.as_deref().is_none_or(|e| key < e));
    }
    let want_end: Option<&[u8]> = if range_end == [0] { None } else { Some(range_end) };
    // Sweep the permissions in start order, extending how far from `key` on is covered.
    ivls.sort_by(|a, b| a.start.cmp(b.start));
    let mut covered: Option<Vec<u8>> = Some(key.to_vec()); // None: covered to infinity
    for i in &ivls {
        let Some(reach) = &covered else { break };
        if i.start > reach.as_slice() {
            break;
        }
        covered = match (&i.end, reach) {
            (None, _) => None,
            (Some(e), r) if e > r => Some(e.clone()),
            _ => covered,
        };
    }
    match (covered, want_end) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(reach), Some(end)) => reach.as_slice() >= end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: Type, key: &str, end: &[u8]) -> Permission {
        Permission { perm_type: t as i32, key: key.as_bytes().to_vec(), range_end: end.to_vec() }
    }

    #[test]
    fn keys_ranges_and_from_key_as_etcd_checks_them() {
        let perms = [perm(Type::Read, "foo/", b"foo0"), perm(Type::Write, "w", b""), perm(Type::Readwrite, "z", &[0])];
        let ok = |a, k: &str, e: &[u8]| permitted(perms.iter(), a, k.as_bytes(), e);
        assert!(ok(Access::Read, "foo/a", b""));
        assert!(ok(Access::Read, "foo/", b"foo0"));
        assert!(ok(Access::Read, "foo/a", b"foo/b"));
        assert!(!ok(Access::Read, "foo", b""));
        assert!(!ok(Access::Read, "foo/", b"foo1"));
        assert!(!ok(Access::Write, "foo/a", b""));
        assert!(ok(Access::Write, "w", b""));
        assert!(!ok(Access::Write, "w", b"w\0\0"));
        assert!(!ok(Access::Read, "w", b""));
        assert!(ok(Access::Write, "zz", b""));
        assert!(ok(Access::Read, "z", &[0]));
        assert!(ok(Access::Read, "zebra", b"zoo"));
        assert!(!ok(Access::Read, "y", &[0]));
    }

    #[test]
    fn adjacent_permissions_cover_a_range_together() {
        let perms = [perm(Type::Read, "a", b"b"), perm(Type::Read, "b", b"c"), perm(Type::Read, "d", &[0])];
        let ok = |k: &str, e: &[u8]| permitted(perms.iter(), Access::Read, k.as_bytes(), e);
        assert!(ok("a", b"c"));
        assert!(!ok("a", b"d"));
        assert!(ok("d", &[0]));
        assert!(!ok("c", &[0]));
    }
}
