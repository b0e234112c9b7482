//! Files made to hurt: truncated, bit-flipped, cyclic, pointing past the end, counting more than
//! a page holds. Each is an error (or, for flipped payload bytes bbolt does not checksum, a
//! different but well-formed answer), never a panic, a hang or a huge allocation.

use super::super::page::{BRANCH, ELEMENT, FREELIST, HEADER, Header, LEAF};
use super::super::{Corruption, MAX_DEPTH, MetaProblem, ReadError, Reader};
use super::{Buckets, Rng, dump, pairs, write};

const PS: usize = 512;

/// A file with a branching bucket (three levels at 512-byte pages), small and inline buckets.
fn base() -> Vec<u8> {
    let mut rng = Rng(5);
    let buckets: Buckets = vec![
        (b"many".to_vec(), pairs(&mut rng, 2000, |r| (r.next() % 20) as usize)),
        (b"small".to_vec(), pairs(&mut rng, 2, |_| 4)),
        (b"large".to_vec(), vec![(b"big".to_vec(), rng.bytes(3000))]),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    write(&path, PS as u32, &buckets);
    std::fs::read(&path).expect("read")
}

/// Opens, checks and reads everything; the first error.
fn walk(bytes: &[u8]) -> Result<(), ReadError> {
    let r = Reader::from_source(bytes)?;
    dump(&r)?;
    r.check()?;
    Ok(())
}

fn corruption(bytes: &[u8]) -> Corruption {
    match walk(bytes) {
        Err(ReadError::Corrupt(c)) => c,
        other => panic!("expected a corruption, got {other:?}"),
    }
}

fn root_of(bytes: &[u8], name: &[u8]) -> u64 {
    let r = Reader::from_source(bytes).expect("open");
    r.bucket(name).expect("lookup").expect("present").root_page().expect("a page")
}

fn header(bytes: &[u8], id: u64) -> Header {
    Header::decode(&bytes[id as usize * PS..])
}

fn set_header(bytes: &mut [u8], id: u64, h: Header) {
    h.encode(&mut bytes[id as usize * PS..]);
}

/// Byte offset of element `i` of page `id`.
fn elem(id: u64, i: usize) -> usize {
    id as usize * PS + HEADER + i * ELEMENT
}

fn child(bytes: &[u8], branch: u64, i: usize) -> u64 {
    let at = elem(branch, i) + 8;
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn set_child(bytes: &mut [u8], branch: u64, i: usize, to: u64) {
    let at = elem(branch, i) + 8;
    bytes[at..at + 8].copy_from_slice(&to.to_le_bytes());
}

#[test]
fn bbolt_hostile_base_is_valid() {
    let b = base();
    walk(&b).expect("the base file is valid");
    let root = root_of(&b, b"many");
    assert_eq!(header(&b, root).flags, BRANCH);
    assert_eq!(header(&b, child(&b, root, 0)).flags, BRANCH, "three levels");
}

#[test]
fn bbolt_hostile_truncated() {
    let b = base();
    for len in [0, 1, 16, 79, 80, 160, PS, PS + 80, 2 * PS, 3 * PS, b.len() / 2, b.len() - PS, b.len() - 1] {
        let err = walk(&b[..len]).err().unwrap_or_else(|| panic!("a file cut to {len} bytes was accepted"));
        assert!(matches!(err, ReadError::Corrupt(_)), "{len}: {err}");
    }
    assert!(matches!(corruption(&b[..b.len() - 1]), Corruption::Truncated { .. }));
}

#[test]
fn bbolt_hostile_meta_damage_falls_back_then_fails() {
    let mut b = base();
    b[PS + HEADER + 40] ^= 1; // meta 1's high-water mark: its checksum no longer matches
    let r = Reader::from_source(&b[..]).expect("meta 0 is still valid");
    assert_eq!(r.info().meta_page, 0);
    walk(&b).expect("meta 0 describes the same file");
    b[HEADER] ^= 1; // meta 0's magic
    assert_eq!(
        corruption(&b),
        Corruption::NoValidMeta { meta0: MetaProblem::Magic(0xED0C_DAEC), meta1: MetaProblem::Checksum }
    );
    // Meta 0 damaged alone: meta 1 is found at the page size it says.
    let mut b = base();
    b[HEADER + 8] ^= 0x10;
    assert_eq!(Reader::from_source(&b[..]).expect("meta 1").info().meta_page, 1);
}

#[test]
fn bbolt_hostile_every_byte_flipped() {
    // A small file (a two-level bucket, an inline and an empty one at 512-byte pages): every
    // byte of it flipped once, each a whole-file walk.
    let mut rng = Rng(8);
    let buckets: Buckets = vec![
        (b"b".to_vec(), pairs(&mut rng, 60, |r| (r.next() % 8) as usize)),
        (b"e".to_vec(), vec![]),
        (b"i".to_vec(), vec![(b"k".to_vec(), b"v".to_vec())]),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir.path().join("db"), PS as u32, &buckets);
    let b = std::fs::read(dir.path().join("db")).expect("read");
    let mut rng = Rng(99);
    let (mut errors, mut accepted) = (0, 0);
    for at in 0..b.len() {
        let mut f = b.clone();
        f[at] ^= 1 << (rng.next() % 8);
        match walk(&f) {
            Ok(()) => accepted += 1,
            Err(_) => errors += 1,
        }
    }
    // Payload bytes (keys' tails, values, unused page space) are not checksummed by bbolt, so
    // many flips give a different valid file; structure flips must be caught.
    assert!(errors > b.len() / 10, "{errors} errors, {accepted} accepted");
}

#[test]
fn bbolt_hostile_branch_points_to_itself_or_an_ancestor() {
    let b = base();
    let root = root_of(&b, b"many");
    let mut f = b.clone();
    set_child(&mut f, root, 0, root);
    assert_eq!(corruption(&f), Corruption::Cycle { page: root, child: root });
    let r = Reader::from_source(&f[..]).expect("open");
    let bucket = r.bucket(b"many").expect("lookup").expect("bucket");
    let err = r.get(&bucket, b"\x00").expect_err("a lookup down the cycle fails");
    assert!(matches!(err, ReadError::Corrupt(Corruption::Cycle { .. })), "{err}");
    let mid = child(&b, root, 1);
    let mut f = b.clone();
    set_child(&mut f, mid, 0, root);
    assert_eq!(corruption(&f), Corruption::Cycle { page: mid, child: root });
}

#[test]
fn bbolt_hostile_shared_subtree() {
    let mut b = base();
    let root = root_of(&b, b"many");
    let first = child(&b, root, 0);
    set_child(&mut b, root, 1, first);
    // Read alone, the repeated keys are out of order; the whole-file walk sees the reuse first.
    let r = Reader::from_source(&b[..]).expect("open");
    let bucket = r.bucket(b"many").expect("lookup").expect("bucket");
    let err = r.entries(&bucket).find_map(Result::err).expect("an error");
    assert!(matches!(err, ReadError::Corrupt(Corruption::KeysOutOfOrder { .. })), "{err}");
    assert!(matches!(corruption(&b), Corruption::PageReused { .. }));
}

#[test]
fn bbolt_hostile_page_past_high_water_mark() {
    let mut b = base();
    let root = root_of(&b, b"many");
    let high_water = (b.len() / PS) as u64;
    set_child(&mut b, root, 0, high_water);
    assert_eq!(corruption(&b), Corruption::PageOutOfRange { page: high_water, overflow: 0, high_water });
    set_child(&mut b, root, 0, u64::MAX);
    assert!(matches!(corruption(&b), Corruption::PageOutOfRange { page: u64::MAX, .. }));
    set_child(&mut b, root, 0, 1);
    assert!(matches!(corruption(&b), Corruption::PageOutOfRange { page: 1, .. }));
}

#[test]
fn bbolt_hostile_overflow_past_the_end_allocates_nothing() {
    let mut b = base();
    let root = root_of(&b, b"many");
    let leaf = child(&b, child(&b, root, 0), 0);
    let mut h = header(&b, leaf);
    assert_eq!(h.flags, LEAF);
    h.overflow = u32::MAX;
    set_header(&mut b, leaf, h);
    assert!(matches!(corruption(&b), Corruption::PageOutOfRange { overflow: u32::MAX, .. }));
}

#[test]
fn bbolt_hostile_overflow_over_its_own_parent() {
    // A leaf claims the pages after it as its overflow, up to its parent (written after it): the
    // leaf is refused rather than its parent's bytes held twice.
    let mut b = base();
    let root = root_of(&b, b"many");
    let mid = child(&b, root, 0);
    let leaf = child(&b, mid, 0);
    assert!(leaf < mid && mid < root, "the writer writes children first");
    let mut h = header(&b, leaf);
    h.overflow = (mid - leaf) as u32;
    set_header(&mut b, leaf, h);
    let r = Reader::from_source(&b[..]).expect("open");
    let bucket = r.bucket(b"many").expect("lookup").expect("bucket");
    let err = r.entries(&bucket).find_map(Result::err).expect("an error");
    assert!(
        matches!(err, ReadError::Corrupt(Corruption::Overlap { page, other }) if page == leaf && other == mid),
        "{err}"
    );
    // The whole-file walk has seen nothing of it yet when it reads the leaf: the same error.
    assert_eq!(corruption(&b), Corruption::Overlap { page: leaf, other: mid });
}

#[test]
fn bbolt_hostile_counts_larger_than_the_page() {
    let b = base();
    let root = root_of(&b, b"many");
    let leaf = child(&b, child(&b, root, 0), 0);
    for id in [root, leaf] {
        let mut f = b.clone();
        let mut h = header(&f, id);
        h.count = u16::MAX;
        set_header(&mut f, id, h);
        assert_eq!(
            corruption(&f),
            Corruption::TooManyElements { page: id, count: u16::MAX, max: (PS - HEADER) / ELEMENT }
        );
    }
    // A count that fits the table but whose elements point past the page.
    let mut f = b.clone();
    let at = elem(leaf, 0) + 4;
    f[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert!(matches!(corruption(&f), Corruption::ElementOutOfPage { index: 0, .. }));
    let mut f = b.clone();
    let at = elem(leaf, 1) + 12;
    f[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(corruption(&f), Corruption::ElementOutOfPage { index: 1, .. }));
}

#[test]
fn bbolt_hostile_wrong_page_types_and_ids() {
    let b = base();
    let root = root_of(&b, b"many");
    let mid = child(&b, root, 0);
    let mut f = b.clone();
    let mut h = header(&f, mid);
    h.flags = FREELIST;
    set_header(&mut f, mid, h);
    assert!(matches!(corruption(&f), Corruption::WrongPageType { page, flags: FREELIST, .. } if page == mid));
    let mut f = b.clone();
    h = header(&f, mid);
    h.id = 7;
    set_header(&mut f, mid, h);
    assert_eq!(corruption(&f), Corruption::WrongPageId { page: mid, found: 7 });
    // The root bucket pointing at the freelist page.
    let r = Reader::from_source(&b[..]).expect("open");
    let freelist = r.info().freelist.expect("stored");
    let mut f = b.clone();
    set_child(&mut f, root, 0, freelist);
    assert!(matches!(corruption(&f), Corruption::WrongPageType { .. }));
}

#[test]
fn bbolt_hostile_too_deep() {
    // Pages 2..2+n: a chain of branch pages of one child each, then a leaf.
    let n = MAX_DEPTH as u64 + 5;
    let pages = 2 + n + 2;
    let mut b = vec![0u8; pages as usize * PS];
    for id in 2..2 + n {
        let kind = if id == 1 + n { LEAF } else { BRANCH };
        let count = 1;
        set_header(&mut b, id, Header { id, flags: kind, count, overflow: 0 });
        let e = elem(id, 0);
        if kind == BRANCH {
            b[e..e + 4].copy_from_slice(&16u32.to_le_bytes());
            b[e + 4..e + 8].copy_from_slice(&1u32.to_le_bytes());
            b[e + 8..e + 16].copy_from_slice(&(id + 1).to_le_bytes());
        } else {
            b[e + 4..e + 8].copy_from_slice(&16u32.to_le_bytes());
            b[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
        }
        b[e + 16] = b'k';
    }
    // The root bucket: one bucket "d" whose root is page 2.
    let root = 2 + n;
    set_header(&mut b, root, Header { id: root, flags: LEAF, count: 1, overflow: 0 });
    let e = elem(root, 0);
    b[e..e + 4].copy_from_slice(&1u32.to_le_bytes());
    b[e + 4..e + 8].copy_from_slice(&16u32.to_le_bytes());
    b[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
    b[e + 12..e + 16].copy_from_slice(&16u32.to_le_bytes());
    b[e + 16] = b'd';
    b[e + 17..e + 25].copy_from_slice(&2u64.to_le_bytes());
    let freelist = root + 1;
    set_header(&mut b, freelist, Header { id: freelist, flags: FREELIST, count: 0, overflow: 0 });
    for txid in [0u64, 1] {
        let m =
            super::super::meta::Meta { page_size: PS as u32, flags: 0, root, sequence: 0, freelist, pgid: pages, txid };
        m.encode(txid, &mut b[txid as usize * PS..]);
    }
    assert!(matches!(corruption(&b), Corruption::TooDeep { max: MAX_DEPTH, .. }));
}

#[test]
fn bbolt_hostile_freelist() {
    let b = base();
    let r = Reader::from_source(&b[..]).expect("open");
    let freelist = r.info().freelist.expect("stored");
    let mut f = b.clone();
    let mut h = header(&f, freelist);
    h.count = 0xFFFF;
    set_header(&mut f, freelist, h);
    let at = freelist as usize * PS + HEADER;
    f[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(corruption(&f), Corruption::FreelistTooLong { .. }));
    let mut f = b.clone();
    h.count = 1;
    set_header(&mut f, freelist, h);
    f[at..at + 8].copy_from_slice(&3u64.to_le_bytes());
    // Page 3 is in use and listed as free.
    assert!(matches!(corruption(&f), Corruption::PageReused { page: 3 }));
}

#[test]
fn bbolt_hostile_bucket_values() {
    let b = base();
    let r = Reader::from_source(&b[..]).expect("open");
    let root = r.info().root;
    assert_eq!(header(&b, root).flags, LEAF);
    // Element 2 of the root bucket is "small", an inline bucket: make its page a branch.
    let at = elem(root, 2);
    let pos = u32::from_le_bytes(b[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
    let ksize = u32::from_le_bytes(b[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
    let value = at + pos + ksize;
    assert_eq!(&b[value..value + 8], &[0; 8], "inline");
    let mut f = b.clone();
    f[value + 16 + 8] = BRANCH as u8;
    assert!(matches!(corruption(&f), Corruption::InlineNotLeaf { .. }));
    // A bucket value shorter than a bucket header.
    let mut f = b.clone();
    f[at + 12..at + 16].copy_from_slice(&8u32.to_le_bytes());
    assert!(matches!(corruption(&f), Corruption::BadBucketValue { len: 8, .. }));
}
