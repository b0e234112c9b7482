//! A fixed-size set of operation indices: the "which operations are linearized" half of the
//! search's memo key, so it must hash and compare fast and clone cheaply.

/// A set of indices below the size it was made with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BitSet {
    words: Box<[u64]>,
}

impl BitSet {
    pub(crate) fn with_capacity(bits: usize) -> BitSet {
        BitSet { words: vec![0; bits.div_ceil(64)].into_boxed_slice() }
    }

    pub(crate) fn insert(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    pub(crate) fn remove(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::BitSet;

    #[test]
    fn sets_with_the_same_members_are_equal_whatever_the_history_of_changes() {
        let mut a = BitSet::with_capacity(130);
        let mut b = BitSet::with_capacity(130);
        a.insert(0);
        a.insert(129);
        a.insert(64);
        a.remove(64);
        b.insert(129);
        b.insert(0);
        assert_eq!(a, b);
        b.remove(0);
        assert_ne!(a, b);
    }
}
