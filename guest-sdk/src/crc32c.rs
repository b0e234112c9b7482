//! CRC-32C (Castagnoli), the checksum etcd's Maintenance hashes use (`crc32.Castagnoli`).
//!
//! Here so that a guest answering etcd's HashKV and the host answering Hash compute the same
//! kind of value without a dependency, and deterministically (no CPU-feature paths in a guest).

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
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
        let mut crc = self.state;
        for &b in bytes {
            crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
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
}
