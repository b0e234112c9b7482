//! What a put costs the store: writes, bytes written, reads. Printed (`--nocapture`) for
//! docs/benchmarks.md, and bounded: a plain put is at most two writes (issue 26).

use prost::Message;
use wasmraft_guest_sdk::testing::MemStore;
use wasmraft_guest_sdk::{ApplyContext, ReadStore, StateMachine, Store};
use wasmraft_kv_guest::KvGuest;
use wasmraft_proto::etcdserverpb::{InternalRaftRequest, PutRequest, RangeRequest};

/// A store that counts what goes through it.
#[derive(Default)]
struct Counting {
    inner: MemStore,
    writes: u64,
    bytes: u64,
    reads: std::cell::Cell<u64>,
}

impl ReadStore for Counting {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }
    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.reads.set(self.reads.get() + 1);
        self.inner.scan_page(start, end, limit, reverse)
    }
}

impl Store for Counting {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes += 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        self.writes += 1;
        self.inner.delete(key)
    }
    fn emit(&mut self, event: &[u8]) {
        self.inner.emit(event)
    }
}

fn put(store: &mut Counting, key: String, value: Vec<u8>) {
    let cmd = InternalRaftRequest {
        put: Some(PutRequest { key: key.into(), value, ..Default::default() }),
        ..Default::default()
    };
    KvGuest::apply(&ApplyContext::default(), store, &cmd.encode_to_vec()).expect("put");
}

/// (writes, bytes, reads) per put over `n` puts made by `key_of`.
fn per_put(store: &mut Counting, n: u64, key_of: impl Fn(u64) -> String) -> (f64, f64, f64) {
    let (w, b, r) = (store.writes, store.bytes, store.reads.get());
    for i in 0..n {
        put(store, key_of(i), vec![b'v'; 128]);
    }
    let per = |x: u64| x as f64 / n as f64;
    (per(store.writes - w), per(store.bytes - b), per(store.reads.get() - r))
}

#[test]
fn a_plain_put_is_at_most_two_writes() {
    let mut store = Counting { inner: MemStore { page_size: 1000, ..MemStore::new() }, ..Default::default() };
    let fresh = per_put(&mut store, 1000, |i| format!("k{i:06}"));
    let update = per_put(&mut store, 1000, |i| format!("k{i:06}"));
    let hot = per_put(&mut store, 1000, |_| "hot".to_string());
    for (what, (w, b, r)) in [("new key", fresh), ("update", update), ("hot key", hot)] {
        println!("put ({what}, 7-byte key, 128-byte value): {w:.2} writes, {b:.1} bytes written, {r:.2} reads");
    }
    let r0 = store.reads.get();
    let req = RangeRequest { key: b"k".to_vec(), range_end: b"l".to_vec(), limit: 100, ..Default::default() };
    KvGuest::query(&store, &req.encode_to_vec()).expect("range");
    println!("range of 100 of 1000 keys: {} store reads", store.reads.get() - r0);
    assert!(fresh.0 <= 2.0 && update.0 <= 2.0 && hot.0 <= 2.0, "{fresh:?} {update:?} {hot:?}");
}
