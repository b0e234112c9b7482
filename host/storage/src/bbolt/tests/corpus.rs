//! The fuzz target `bbolt_reader` (tests/fuzz) has its seed corpus in
//! `tests/fuzz/corpus/bbolt_reader/`. The seeds are generated here (our writer's files at a small
//! page size, and hostile variants of them), checked to be committed as generated, and every
//! file in the corpus, found inputs included, is replayed through the target's own body (compiled
//! in from `tests/fuzz/src/bbolt.rs`), so its properties hold here too without building the fuzz
//! crate. `WASMRAFT_FUZZ_WRITE_SEEDS=1` rewrites the seeds.

use std::path::{Path, PathBuf};

use super::super::Reader;
use super::super::page::{BRANCH, HEADER};
use super::{Buckets, Rng, dump, pairs, write};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus/bbolt_reader")
}

fn file(page_size: u32, buckets: &Buckets) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    write(&path, page_size, buckets);
    std::fs::read(&path).expect("read")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng(17);
    let branching =
        file(512, &vec![(b"b".to_vec(), pairs(&mut rng, 60, |r| (r.next() % 8) as usize)), (b"e".to_vec(), vec![])]);
    let overflow = file(512, &vec![(b"o".to_vec(), vec![(b"k".to_vec(), rng.bytes(1500)), (b"l".to_vec(), vec![1])])]);
    let inline = file(512, &vec![(b"i".to_vec(), vec![(b"k".to_vec(), b"v".to_vec())])]);
    // The branching bucket's root pointing at itself.
    let mut cycle = branching.clone();
    let r = Reader::from_source(&branching[..]).expect("seed");
    let root = r.bucket(b"b").expect("lookup").expect("bucket").root_page().expect("pages") as usize;
    assert_eq!(u16::from_le_bytes([cycle[root * 512 + 8], cycle[root * 512 + 9]]), BRANCH);
    let at = root * 512 + HEADER + 8;
    cycle[at..at + 8].copy_from_slice(&(root as u64).to_le_bytes());
    // A leaf counting more elements than it holds.
    let mut count = inline.clone();
    let leaf = Reader::from_source(&inline[..]).expect("seed").info().root as usize;
    count[leaf * 512 + 10..leaf * 512 + 12].copy_from_slice(&u16::MAX.to_le_bytes());
    vec![("branching", branching), ("overflow", overflow), ("inline", inline), ("cycle", cycle), ("count", count)]
}

#[path = "../../../../../tests/fuzz/src/bbolt.rs"]
mod fuzz_body;

#[test]
fn bbolt_fuzz_seeds_are_committed_and_the_corpus_replays() {
    let dir = corpus_dir();
    let write = std::env::var_os("WASMRAFT_FUZZ_WRITE_SEEDS").is_some();
    for (name, bytes) in seeds() {
        let path = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write seed");
        } else {
            assert_eq!(
                std::fs::read(&path).ok().as_deref(),
                Some(&bytes[..]),
                "{} is missing or stale (WASMRAFT_FUZZ_WRITE_SEEDS=1 rewrites it)",
                path.display()
            );
        }
    }
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        fuzz_body::bbolt_reader(&bytes);
        if path.file_name().is_some_and(|n| n == "seed-branching") {
            let r = Reader::from_source(&bytes[..]).expect("the valid seed opens");
            assert_eq!(dump(&r).expect("and reads").lines().count(), 62);
        }
        ran += 1;
    }
    assert!(ran >= 5);
}
