//! `bbolt_reader`: the bbolt reader (`host/storage/src/bbolt/`) on a file nobody vouches for, as
//! `wasmraft snapshot restore` will read a snapshot from elsewhere. No panic, hang or huge
//! allocation whatever the bytes; and the reader's answers agree with each other: the whole-file
//! walk gives the same result twice, and on a file that walks clean, reading bucket by bucket
//! ([`Reader::entries`]) gives exactly what the walk visited, with the counts it reported; a
//! lookup ([`Reader::get`]) of each key runs without a panic.
//!
//! This file is also compiled into the storage crate's tests (`bbolt/tests/corpus.rs`), which
//! replay the corpus through it: it uses nothing of this crate.

use wasmraft_storage::bbolt::{Bucket, Entry, Reader, Value};

pub fn bbolt_reader(data: &[u8]) {
    let Ok(r) = Reader::from_source(data) else { return };
    let info = r.info();
    assert!(info.size() <= data.len() as u64, "the database is inside the file");

    let mut visited: Vec<(usize, Entry)> = Vec::new();
    let first = r.walk(|depth, e| visited.push((depth, e.clone())));
    let mut again: Vec<(usize, Entry)> = Vec::new();
    let second = r.walk(|depth, e| again.push((depth, e.clone())));
    assert_eq!(format!("{first:?}"), format!("{second:?}"), "a walk depends on nothing but the file");
    assert!(visited == again, "a walk visits the same entries twice");
    let Ok(summary) = first else { return };

    let keys = visited.iter().filter(|(_, e)| matches!(e.value, Value::Data(_))).count() as u64;
    assert_eq!(keys, summary.keys);
    assert_eq!(visited.len() as u64 - keys, summary.buckets);
    // Bucket by bucket, as etcdctl's snapshot status reads a file: what the walk saw.
    let mut rest = &visited[..];
    read_bucket(&r, &r.root(), 0, &mut rest);
    assert!(rest.is_empty(), "the walk visited entries the buckets do not have");
}

/// Reads `bucket`'s entries (at `depth`) and its nested buckets', consuming them from `rest`.
fn read_bucket(r: &Reader<&[u8]>, bucket: &Bucket, depth: usize, rest: &mut &[(usize, Entry)]) {
    for e in r.entries(bucket) {
        let e = e.expect("a file that walks clean reads");
        let Some(((d, seen), tail)) = rest.split_first() else { panic!("an entry the walk did not visit") };
        assert_eq!((*d, seen), (depth, &e), "the same entry at the same depth");
        *rest = tail;
        // A lookup goes by the branch keys, which the walk does not check against the leaves:
        // its answer may differ on a crafted file, but it must not fail other than by an error.
        let _ = r.get(bucket, &e.key);
        if let Value::Bucket(child) = &e.value {
            read_bucket(r, child, depth + 1, rest);
        }
    }
}
