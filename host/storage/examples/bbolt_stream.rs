//! How fast the bbolt writer and reader stream, and in how little memory.

use wasmraft_storage::bbolt::{DEFAULT_PAGE_SIZE, Reader, Writer};

/// Peak resident memory so far (Linux's VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

/// A measurement, alone in its process so the peak RSS is the file's own (`cargo run --release
/// -p wasmraft-storage --example bbolt_stream`): 256 MiB of pairs written and read back, with the
/// throughput and the peak RSS, which must stay far below the data's size (streaming both ways).
fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let (n, value) = (1u64 << 20, vec![0x5au8; 240]);
    let start = std::time::Instant::now();
    let mut w = Writer::create(std::fs::File::create(&path).expect("create"), DEFAULT_PAGE_SIZE).expect("writer");
    w.begin_bucket(b"b").expect("begin");
    for i in 0..n {
        w.put(&i.to_be_bytes(), &value).expect("put");
    }
    w.end_bucket().expect("end");
    w.finish().expect("finish");
    let written = start.elapsed();
    let len = std::fs::metadata(&path).expect("stat").len();
    let start = std::time::Instant::now();
    let r = Reader::open(std::fs::File::open(&path).expect("open")).expect("reader");
    let b = r.bucket(b"b").expect("lookup").expect("bucket");
    let (mut count, mut bytes) = (0u64, 0u64);
    for e in r.entries(&b) {
        let e = e.expect("entry");
        count += 1;
        bytes += (e.key.len() + e.value.data().map_or(0, <[u8]>::len)) as u64;
    }
    let read = start.elapsed();
    assert_eq!(count, n);
    let mib = |b: u64, t: std::time::Duration| b as f64 / (1 << 20) as f64 / t.as_secs_f64();
    let rss = peak_rss_kib();
    eprintln!(
        "{n} pairs, {} MiB of keys and values, file {} MiB: write {:.0} MiB/s, read {:.0} MiB/s, peak RSS {} MiB",
        bytes >> 20,
        len >> 20,
        mib(bytes, written),
        mib(bytes, read),
        rss >> 10
    );
    if rss >= 128 << 10 {
        eprintln!("peak RSS {rss} KiB for a {len}-byte file: not streaming");
        std::process::exit(1);
    }
}
