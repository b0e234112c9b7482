//! Revisions: etcd's `(main, sub)` pair. Every write transaction that changes something gets the
//! next main revision; each change inside it gets the next sub revision, starting at 0. Encoded
//! as 16 big-endian bytes so byte order is revision order, which the `i/` and `r/` tables rely on.

/// One change's place in history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Length of an encoded [`Revision`].
pub const REVISION_LEN: usize = 16;

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// Big-endian `main` then `sub`. Revisions are never negative, so the unsigned reading of
    /// the bits orders like the signed value.
    pub fn encode(self) -> [u8; REVISION_LEN] {
        let mut out = [0u8; REVISION_LEN];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// The inverse of [`Revision::encode`]; `None` unless `bytes` is exactly 16 bytes long.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let main: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let sub: [u8; 8] = bytes.get(8..)?.try_into().ok()?;
        Some(Revision { main: i64::from_be_bytes(main), sub: i64::from_be_bytes(sub) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_orders_like_revisions() {
        let revs =
            [Revision::new(0, 0), Revision::new(1, 5), Revision::new(2, 0), Revision::new(2, 1), Revision::new(256, 0)];
        for w in revs.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].encode() < w[1].encode());
        }
        for r in revs {
            assert_eq!(Revision::decode(&r.encode()), Some(r));
        }
        assert_eq!(Revision::decode(&[0; 15]), None);
        assert_eq!(Revision::decode(&[0; 17]), None);
    }
}
