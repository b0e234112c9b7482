//! The module's tests: round trips through our own writer and reader, hostile files, files
//! written by the real bbolt (and our files read by it), and a real etcd 3.4.23 snapshot.

mod corpus;
mod etcd_fixture;
mod hostile;
mod real_bbolt;
mod round_trip;

use std::path::Path;

use super::{Reader, Source, Value, Writer};

/// A bucket's content as the tests compare it: name, and pairs in order.
pub(super) type Buckets = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

/// Writes `buckets` (pairs sorted, names in the order given) with our writer.
pub(super) fn write(path: &Path, page_size: u32, buckets: &Buckets) {
    let file = std::fs::File::create(path).expect("create");
    let mut w = Writer::create(file, page_size).expect("writer");
    for (name, pairs) in buckets {
        w.begin_bucket(name).expect("begin_bucket");
        for (k, v) in pairs {
            w.put(k, v).expect("put");
        }
        w.end_bucket().expect("end_bucket");
    }
    w.finish().expect("finish");
}

/// Every bucket (recursively) and pair, in the text `bbolt_tool dump` prints.
pub(super) fn dump<S: Source>(r: &Reader<S>) -> Result<String, super::ReadError> {
    let mut out = String::new();
    r.walk(|depth, e| match &e.value {
        Value::Bucket(b) => out.push_str(&format!("bucket {depth} {} {}\n", hex(&e.key), b.sequence())),
        Value::Data(v) => out.push_str(&format!("kv {depth} {} {}\n", hex(&e.key), hex(v))),
    })?;
    Ok(out)
}

/// The text `dump` prints for top-level buckets of plain pairs.
pub(super) fn dump_of(buckets: &Buckets) -> String {
    let mut sorted: Vec<_> = buckets.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (name, pairs) in sorted {
        out.push_str(&format!("bucket 0 {} 0\n", hex(name)));
        for (k, v) in pairs {
            out.push_str(&format!("kv 1 {} {}\n", hex(k), hex(v)));
        }
    }
    out
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A deterministic byte stream (xorshift64).
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sorted, distinct keys with values of the given sizes.
pub(super) fn pairs(rng: &mut Rng, n: usize, value_len: impl Fn(&mut Rng) -> usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut k = format!("{:010}", i * 7).into_bytes();
            let extra = (rng.next() % 12) as usize;
            k.extend(rng.bytes(extra));
            let len = value_len(rng);
            (k, rng.bytes(len))
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}
