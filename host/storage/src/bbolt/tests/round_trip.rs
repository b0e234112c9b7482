//! Our writer, then our reader: the same buckets and pairs come back, in order, and the file
//! passes the whole-file check.

use super::super::{Corruption, DEFAULT_PAGE_SIZE, ReadError, Reader, Value, WriteError, Writer};
use super::{Buckets, Rng, dump, dump_of, pairs, write};

fn round_trip(page_size: u32, buckets: &Buckets) -> Reader {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    write(&path, page_size, buckets);
    let r = Reader::open(std::fs::File::open(&path).expect("open")).expect("reader");
    assert_eq!(dump(&r).expect("dump"), dump_of(buckets));
    let summary = r.check().expect("check");
    assert_eq!(summary.buckets, buckets.len() as u64);
    assert_eq!(summary.keys, buckets.iter().map(|b| b.1.len() as u64).sum::<u64>());
    let info = r.info();
    assert_eq!(info.page_size, page_size);
    assert_eq!(info.size(), std::fs::metadata(&path).expect("stat").len());
    assert_eq!((info.txid, info.meta_page), (1, 1));
    r
}

/// The depth of a bucket's tree (1: its root is a leaf).
fn depth(r: &Reader, root: u64) -> usize {
    let mut d = 1;
    let mut page = r.page(root, super::super::page::BRANCH | super::super::page::LEAF).expect("page");
    while !page.is_leaf() {
        let (_, child) = page.branch(0).expect("branch");
        page = r.page(child, super::super::page::BRANCH | super::super::page::LEAF).expect("page");
        d += 1;
    }
    d
}

#[test]
fn bbolt_round_trip_many_buckets_names_in_any_order() {
    let mut rng = Rng(7);
    let mut buckets: Buckets = (0..60)
        .map(|i| {
            let name = format!("bucket-{:03}", (i * 37) % 60).into_bytes();
            let n = (rng.next() % 300) as usize;
            (name, pairs(&mut rng, n, |r| (r.next() % 64) as usize))
        })
        .collect();
    buckets.push((b"\x00binary\xff".to_vec(), pairs(&mut rng, 3, |_| 0)));
    let r = round_trip(DEFAULT_PAGE_SIZE, &buckets);
    let b = r.bucket(b"bucket-017").expect("lookup").expect("present");
    let want = &buckets.iter().find(|b| b.0 == b"bucket-017").expect("in the input").1;
    let got: Vec<_> = r.entries(&b).map(|e| e.expect("entry")).collect();
    assert_eq!(got.len(), want.len());
    // Every key found by lookup, and keys between them not.
    for (name, pairs) in &buckets {
        let b = r.bucket(name).expect("lookup").expect("present");
        for (k, v) in pairs {
            assert_eq!(r.get(&b, k).expect("get"), Some(Value::Data(v.clone())));
            let mut between = k.clone();
            between.push(0);
            if !pairs.iter().any(|p| p.0 == between) {
                assert_eq!(r.get(&b, &between).expect("get"), None);
            }
        }
        assert_eq!(r.get(&b, b"\x00").expect("get"), None);
        assert_eq!(r.get(&b, b"\xff\xff").expect("get"), None);
    }
    assert!(r.bucket(b"bucket-0175").expect("lookup").is_none());
    assert!(r.bucket(b"a").expect("lookup").is_none());
}

#[test]
fn bbolt_round_trip_empty_and_small_buckets_are_inline() {
    let buckets: Buckets = vec![
        (b"empty".to_vec(), vec![]),
        (b"one".to_vec(), vec![(b"k".to_vec(), b"v".to_vec())]),
        (b"empty-value".to_vec(), vec![(b"k".to_vec(), vec![])]),
    ];
    let r = round_trip(DEFAULT_PAGE_SIZE, &buckets);
    for (name, _) in &buckets {
        let b = r.bucket(name).expect("lookup").expect("present");
        assert_eq!(b.root_page(), None, "{name:?} is inline, as bbolt stores small buckets");
    }
    // No bucket at all.
    round_trip(DEFAULT_PAGE_SIZE, &vec![]);
}

#[test]
fn bbolt_round_trip_large_values_take_overflow_pages() {
    let mut rng = Rng(11);
    let sizes = [0usize, 10, 4000, 4096, 5000, 100_000, 3, 70_000, 1, 1 << 20];
    let mut kv: Vec<(Vec<u8>, Vec<u8>)> =
        sizes.iter().enumerate().map(|(i, n)| (vec![b'k', i as u8], rng.bytes(*n))).collect();
    kv.sort();
    let big_key = vec![b'z'; super::super::MAX_KEY_SIZE];
    kv.push((big_key, rng.bytes(10)));
    let buckets: Buckets = vec![(b"large".to_vec(), kv)];
    round_trip(DEFAULT_PAGE_SIZE, &buckets);
    round_trip(512, &buckets);
}

#[test]
fn bbolt_round_trip_many_keys_several_branch_levels() {
    let mut rng = Rng(3);
    let kv = pairs(&mut rng, 60_000, |r| (r.next() % 40) as usize);
    let buckets: Buckets = vec![(b"many".to_vec(), kv.clone()), (b"few".to_vec(), kv[..50].to_vec())];
    let r = round_trip(512, &buckets);
    let many = r.bucket(b"many").expect("lookup").expect("present");
    let root = many.root_page().expect("not inline");
    assert!(depth(&r, root) >= 4, "depth {}", depth(&r, root));
    for (k, v) in kv.iter().step_by(97) {
        assert_eq!(r.get(&many, k).expect("get"), Some(Value::Data(v.clone())));
    }
    let r = round_trip(DEFAULT_PAGE_SIZE, &buckets);
    let root = r.bucket(b"many").expect("lookup").expect("present").root_page().expect("not inline");
    assert!(depth(&r, root) >= 3, "depth {}", depth(&r, root));
}

#[test]
fn bbolt_round_trip_many_buckets_make_a_branching_root() {
    let buckets: Buckets = (0..3000).map(|i| (format!("b{i:05}").into_bytes(), vec![])).collect();
    let r = round_trip(DEFAULT_PAGE_SIZE, &buckets);
    assert!(depth(&r, r.info().root) >= 2);
}

#[test]
fn bbolt_writer_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let new = || Writer::create(std::fs::File::create(dir.path().join("db")).expect("create"), 4096).expect("writer");
    let mut w = new();
    assert!(matches!(w.put(b"k", b"v"), Err(WriteError::NoBucket)));
    assert!(matches!(w.begin_bucket(b""), Err(WriteError::EmptyKey)));
    w.begin_bucket(b"b").expect("begin");
    assert!(matches!(w.begin_bucket(b"c"), Err(WriteError::BucketOpen)));
    w.put(b"b", b"").expect("put");
    assert!(matches!(w.put(b"b", b""), Err(WriteError::KeyOrder)));
    assert!(matches!(w.put(b"a", b""), Err(WriteError::KeyOrder)));
    assert!(matches!(w.put(b"", b""), Err(WriteError::EmptyKey)));
    assert!(matches!(w.put(&vec![b'x'; 32769], b""), Err(WriteError::KeyTooLarge(32769))));
    w.set_sequence(9).expect("sequence");
    w.end_bucket().expect("end");
    assert!(matches!(w.begin_bucket(b"b"), Err(WriteError::DuplicateBucket)));
    assert!(matches!(w.end_bucket(), Err(WriteError::NoBucket)));
    w.finish().expect("finish");
    let r = Reader::open(std::fs::File::open(dir.path().join("db")).expect("open")).expect("reader");
    assert_eq!(r.bucket(b"b").expect("lookup").expect("present").sequence(), 9);
    assert!(matches!(
        Writer::create(std::fs::File::create(dir.path().join("db2")).expect("create"), 100),
        Err(WriteError::PageSize(100))
    ));
}

#[test]
fn bbolt_unfinished_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let mut w = Writer::create(std::fs::File::create(&path).expect("create"), 4096).expect("writer");
    w.begin_bucket(b"b").expect("begin");
    for i in 0..1000u32 {
        w.put(&i.to_be_bytes(), &[0; 100]).expect("put");
    }
    drop(w);
    let err = Reader::open(std::fs::File::open(&path).expect("open")).err().expect("refused");
    assert!(matches!(err, ReadError::Corrupt(Corruption::NoValidMeta { .. })), "{err}");
    let _ = Value::Data(vec![]);
}

#[test]
fn bbolt_reader_and_iterator_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Reader>();
    send_sync::<super::super::Entries<'static, std::fs::File>>();
    send_sync::<Writer>();
}
