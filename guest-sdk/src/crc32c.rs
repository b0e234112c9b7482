//! CRC-32C (Castagnoli), the checksum etcd's Maintenance hashes use (`crc32.Castagnoli`).
//!
//! Here so that a guest answering etcd's HashKV and the host answering Hash compute the same
//! kind of value without a dependency, and deterministically (no CPU-feature paths in a guest).

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

/// Slicing-by-8 tables: `TABLES[0]` is the bytewise table, `TABLES[k][i]` the CRC of byte `i`
/// followed by `k` zero bytes, so eight input bytes are folded with eight lookups. Several
/// times faster than a byte at a time, in a guest and natively alike (HashKV of a GiB keyspace
/// runs through this), with the same results.
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// A running CRC-32C, fed in pieces like Go's `hash.Hash32`.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    pub fn new() -> Self {
        Crc32c { state: !0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let t = &TABLES;
        let mut crc = self.state;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            crc = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xff) as usize]
                ^ t[2][((hi >> 8) & 0xff) as usize]
                ^ t[1][((hi >> 16) & 0xff) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// The checksum of everything fed so far (feeding may go on).
    pub fn sum(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // RFC 3720's check value, and the empty input.
        let mut c = Crc32c::new();
        c.update(b"123456789");
        assert_eq!(c.sum(), 0xe306_9283);
        assert_eq!(Crc32c::new().sum(), 0);
        let mut pieces = Crc32c::new();
        pieces.update(b"1234");
        pieces.update(b"56789");
        assert_eq!(pieces.sum(), 0xe306_9283);
    }

    /// The eight-at-a-time fold equals a byte at a time, for every length and split.
    #[test]
    fn slicing_by_8_equals_bytewise() {
        let bytewise = |data: &[u8]| {
            let mut crc = !0u32;
            for &b in data {
                crc = TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
            }
            !crc
        };
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..data.len() {
            let mut c = Crc32c::new();
            let (a, b) = data[..len].split_at(len / 3);
            c.update(a);
            c.update(b);
            assert_eq!(c.sum(), bytewise(&data[..len]), "length {len}");
        }
    }
}
