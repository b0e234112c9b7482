//! The storage layout of issue 26: a keyspace written by the earlier layout is migrated by
//! `migrate` to exactly what the guest's own commands build; a hot key's puts stay two writes
//! of bounded size and its old revisions are found in O(log versions) reads; reads and watch
//! history at every readable revision survive compactions.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::convert::Infallible;

use prost::Message;
use wasmraft_guest_sdk::testing::MemStore;
use wasmraft_guest_sdk::{GuestInfo, ReadStore, StateMachine, Store};
use wasmraft_kv_guest::KvGuest;
use wasmraft_kv_guest::etcd_backend::{self, revkey};
use wasmraft_kv_guest::layout::{HISTORY, KEYS, META_COMPACTED, META_REVISION};
use wasmraft_proto::etcdserverpb::{RangeRequest, TxnRequest};
use wasmraft_proto::mvccpb::KeyValue;
use wasmraft_proto::wasmraft::v1::{KvQuery, WatchHistoryRequest, WatchHistoryResponse, kv_query};

use crate::common::*;

/// The tables the layout before issue 26 held for the same history, built from the store's
/// etcd `key` bucket as that guest's writes laid them out: `r/<rev>` → kind + key,
/// `i/<escaped key><rev>` → `p` + KeyValue or `t`, `l/<key>` → live KeyValue, `m/revision`
/// always written; leases and `m/compacted` as they are.
fn old_layout(store: &MemStore) -> MemStore {
    let mut old = MemStore::new();
    let mut live: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    etcd_backend::export_key_bucket(store, &mut |k, v| {
        let (rev, tombstone) = revkey::decode(k).expect("revision key");
        let kv = KeyValue::decode(v).expect("KeyValue");
        let mut index = b"i/".to_vec();
        for &b in &kv.key {
            index.push(b);
            if b == 0 {
                index.push(0xff);
            }
        }
        index.extend_from_slice(&[0, 0]);
        index.extend_from_slice(&rev.encode());
        let mut r = b"r/".to_vec();
        r.extend_from_slice(&rev.encode());
        let kind = if tombstone { b't' } else { b'p' };
        old.put(&r, &[&[kind][..], &kv.key].concat());
        if tombstone {
            old.put(&index, b"t");
            live.remove(&kv.key);
        } else {
            old.put(&index, &[&[b'p'][..], v].concat());
            live.insert(kv.key.clone(), v.to_vec());
        }
        Ok::<_, Infallible>(())
    })
    .unwrap();
    for (k, v) in live {
        old.put(&[&b"l/"[..], &k].concat(), &v);
    }
    for (k, v) in &store.data {
        if !k.starts_with(HISTORY) && !k.starts_with(KEYS) {
            old.put(k, v);
        }
    }
    let rev = etcd_backend::summary(store).unwrap().revision;
    if rev > 1 {
        old.put(META_REVISION, &rev.to_be_bytes());
    }
    old
}

fn canonical(store: &MemStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    etcd_backend::canonical_tables(store).expect("tables decode").into_iter().collect()
}

fn with_store(store: MemStore) -> Kv {
    let mut kv = Kv::new();
    *kv.h.store_mut() = store;
    kv
}

/// A history with every kind of change: puts, updates, deletes, a transaction, a lease, a
/// compaction, more writes after it.
fn sample() -> Kv {
    let mut kv = Kv::new();
    for i in 0..40 {
        kv.put(&format!("k{}", i % 9), &format!("v{i}"));
        if i % 7 == 3 {
            kv.delete(&format!("k{}", (i + 2) % 9), "");
        }
    }
    kv.put("a\0b", "zero byte");
    kv.txn(TxnRequest {
        success: vec![op_put("t", "1"), op_put("t", "2"), op_delete("k1", "", false)],
        ..Default::default()
    })
    .unwrap();
    kv.compact(30).unwrap();
    for i in 0..10 {
        kv.put(&format!("k{}", i % 4), &format!("after{i}"));
    }
    kv.delete("k3", "");
    kv
}

#[test]
fn an_old_layout_keyspace_is_migrated_to_what_the_commands_build() {
    let kv = sample();
    let old = old_layout(kv.h.store());
    assert!(old.data.keys().any(|k| k.starts_with(b"r/")) && !old.data.keys().any(|k| k.starts_with(HISTORY)));
    let mut migrated = with_store(old);
    migrated.h.migrate(&GuestInfo::new("etcd-kv", "0.1.0")).expect("migrate");
    assert_eq!(canonical(migrated.h.store()), canonical(kv.h.store()));
    assert!(!migrated.raw().keys().any(|k| k.starts_with(b"r/") || k.starts_with(b"i/") || k.starts_with(b"l/")));
    let (rev, compacted) = (kv.rev(), 30i64);
    assert_eq!(migrated.rev(), rev);
    assert_eq!(migrated.h.store().get(META_COMPACTED), Some(compacted.to_be_bytes().to_vec()));
    for at in compacted..=rev {
        let req = RangeRequest { revision: at, ..range_req("", "\0") };
        assert_eq!(migrated.range(req.clone()), kv.range(req), "range at {at}");
        if at > compacted {
            assert_eq!(migrated.hash(at), kv.hash(at), "hash at {at}");
        }
    }
    // The migrated store takes writes like any other.
    let next = migrated.put("k0", "new");
    assert_eq!(next, rev + 1);
    assert_eq!(migrated.get("k0").map(|kv| kv.version), kv.get("k0").map(|kv| kv.version + 1));
    // Migrating again (a redeploy of this guest) finds nothing to do.
    let before = migrated.raw();
    migrated.h.migrate(&KvGuest::info()).unwrap();
    assert_eq!(migrated.raw(), before);
}

#[test]
fn migrating_a_new_store_or_an_empty_one_changes_nothing() {
    let mut empty = Kv::new();
    empty.h.migrate(&GuestInfo::default()).unwrap();
    assert!(empty.raw().is_empty());
    let mut kv = sample();
    let before = kv.raw();
    kv.h.migrate(&GuestInfo::new("etcd-kv", "0.1.0")).unwrap();
    assert_eq!(kv.raw(), before);
}

#[test]
fn a_keyspace_with_both_layouts_is_refused_not_merged() {
    let kv = sample();
    let mut store = old_layout(kv.h.store());
    for (k, v) in &kv.h.store().data {
        if k.starts_with(KEYS) {
            store.put(k, v);
        }
    }
    let mut mixed = with_store(store);
    let before = mixed.raw();
    let err = mixed.h.migrate(&GuestInfo::new("etcd-kv", "0.1.0")).unwrap_err();
    assert!(err.contains("both the old layout"), "{err}");
    assert_eq!(mixed.raw(), before, "a refused migration writes nothing");
    // A damaged old table is refused too.
    let mut store = old_layout(kv.h.store());
    let r = store.data.keys().find(|k| k.starts_with(b"r/")).unwrap().clone();
    store.put(&r, b"x");
    assert!(KvGuest::migrate(&GuestInfo::default(), &mut store).unwrap_err().contains("corrupt"));
}

/// A read-only view that counts the store reads a query makes.
struct Counted<'a> {
    inner: &'a MemStore,
    reads: Cell<u64>,
}

impl ReadStore for Counted<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }
    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.reads.set(self.reads.get() + 1);
        self.inner.scan_page(start, end, limit, reverse)
    }
}

#[test]
fn a_hot_key_costs_two_bounded_writes_per_put_and_log_reads_per_old_version() {
    const N: usize = 5000;
    let mut kv = Kv::new();
    kv.put("cold", "x");
    let first = kv.rev() + 1;
    for i in 0..N {
        kv.put("hot", &format!("{i}"));
    }
    // The key's row carries one finger per level: a few dozen bytes, whatever the versions.
    let row = kv.raw()[&[KEYS, b"hot"].concat()].clone();
    assert!(row.len() < 80, "{} bytes", row.len());
    let largest = kv.raw().iter().filter(|(k, _)| k.starts_with(HISTORY)).map(|(_, v)| v.len()).max().unwrap();
    assert!(largest < 80, "{largest} bytes");
    let mut worst = 0;
    for (i, at) in (first..first + N as i64).enumerate().step_by(37) {
        let counted = Counted { inner: kv.h.store(), reads: Cell::new(0) };
        let req = RangeRequest { revision: at, ..range_req("hot", "") };
        let bytes = KvGuest::query(&counted, &req.encode_to_vec()).unwrap();
        let resp = wasmraft_proto::etcdserverpb::RangeResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(resp.kvs, vec![mkv("hot", &format!("{i}"), first, at, i as i64 + 1)]);
        worst = worst.max(counted.reads.get());
    }
    // log2(5000) ≈ 12 levels, at most two steps a level, and the meta reads.
    assert!(worst <= 2 * 13 + 4, "{worst} reads for one old version");
}

fn watch(kv: &Kv, start: i64) -> WatchHistoryResponse {
    let q = KvQuery {
        request: Some(kv_query::Request::WatchHistory(WatchHistoryRequest {
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
            start_revision: start,
            prev_kv: true,
            ..Default::default()
        })),
    };
    WatchHistoryResponse::decode(kv.h.query(&q.encode_to_vec()).unwrap().as_slice()).unwrap()
}

#[test]
fn reads_and_watch_history_at_every_readable_revision_survive_compactions() {
    // A pseudo-random history over few keys, so keys have long chains across compactions.
    let mut kv = Kv::new();
    let mut expected: Vec<Vec<KeyValue>> = vec![Vec::new(); 2];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for step in 0..600 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("k{}", x % 5);
        if x.is_multiple_of(11) {
            kv.delete(&key, "");
        } else {
            kv.put(&key, &format!("{step}"));
        }
        while expected.len() <= kv.rev() as usize {
            expected.push(kv.range(range_req("", "\0")).unwrap().kvs);
        }
        if step % 150 == 149 {
            let events_before = watch(&kv, kv.rev() - 40).events;
            let at = kv.rev() - 40;
            kv.compact(at).unwrap();
            for rev in at..=kv.rev() {
                let req = RangeRequest { revision: rev, ..range_req("", "\0") };
                assert_eq!(
                    kv.range(req).unwrap().kvs,
                    expected[rev as usize],
                    "range at {rev} after compacting to {at}"
                );
            }
            // From the compaction on, the replay is what it was; prev_kv below it is gone, as in etcd.
            let after = watch(&kv, at).events;
            assert_eq!(after.len(), events_before.len());
            for (a, b) in after.iter().zip(&events_before) {
                assert_eq!((&a.kv, a.r#type), (&b.kv, b.r#type));
                let prev_rev = a.kv.as_ref().unwrap().mod_revision - 1;
                if prev_rev >= at {
                    assert_eq!(a.prev_kv, b.prev_kv);
                } else {
                    assert_eq!(a.prev_kv, None);
                }
            }
            assert!(kv.range(RangeRequest { revision: at - 1, ..range_req("", "\0") }).is_err());
        }
    }
}

#[test]
fn a_compaction_that_drops_the_newest_change_keeps_the_revision() {
    use wasmraft_kv_guest::layout::REVISION_FLOOR;
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.delete("a", ""); // 3
    kv.compact(3).unwrap();
    assert!(!kv.raw().keys().any(|k| k.starts_with(HISTORY) && k.as_slice() != REVISION_FLOOR));
    assert_eq!(kv.rev(), 3);
    assert_eq!(kv.hash(0).unwrap().header.unwrap().revision, 3);
    // The next write carries on from it, and the floor is gone with it.
    assert_eq!(kv.put("b", "1"), 4);
    assert!(!kv.raw().contains_key(REVISION_FLOOR));
}
