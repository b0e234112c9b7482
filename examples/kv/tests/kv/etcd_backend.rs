//! The guest's tables as etcd's backend buckets and back (`etcd_backend`): export then import
//! gives the same tables for any history (up to links to compacted changes, which no read can
//! tell: `canonical_tables`); an import resumes a compaction etcd had not
//! finished as etcd's restore does; bad buckets are refused with the bucket and key named.

use std::collections::BTreeMap;
use std::convert::Infallible;

use prost::Message;
use wasmraft_guest_sdk::testing::MemStore;
use wasmraft_kv_guest::etcd_backend::{
    self, FINISHED_COMPACT_KEY, ImportError, ImportSummary, Importer, SCHEDULED_COMPACT_KEY, revkey,
};
use wasmraft_kv_guest::revision::Revision;
use wasmraft_proto::etcdserverpb::*;
use wasmraft_proto::leasepb::Lease;
use wasmraft_proto::mvccpb::KeyValue;

use crate::common::*;
use crate::etcd_hash::{compare_step, history, recorded};
use crate::script::Step;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Clone, Debug, Default)]
struct Buckets {
    key: Pairs,
    lease: Pairs,
    meta: Pairs,
}

fn export(store: &MemStore) -> Buckets {
    let mut b = Buckets::default();
    let stats = etcd_backend::export_key_bucket(store, &mut |k, v| {
        b.key.push((k.to_vec(), v.to_vec()));
        Ok::<_, Infallible>(())
    })
    .unwrap();
    assert_eq!(stats.pairs as usize, b.key.len());
    let leases = etcd_backend::export_leases(store, &mut |k, v| {
        b.lease.push((k.to_vec(), v.to_vec()));
        Ok::<_, Infallible>(())
    })
    .unwrap();
    assert_eq!(leases as usize, b.lease.len());
    b.meta = etcd_backend::export_meta(store).unwrap();
    for pairs in [&b.key, &b.lease, &b.meta] {
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "a bucket in bbolt order");
    }
    b
}

fn import(b: &Buckets) -> Result<(MemStore, ImportSummary), ImportError> {
    let mut store = MemStore::new();
    let mut imp = Importer::new(&mut store)?;
    for (k, v) in &b.key {
        imp.key(k, v)?;
    }
    for (k, v) in &b.lease {
        imp.lease(k, v)?;
    }
    for (k, v) in &b.meta {
        imp.meta(k, v)?;
    }
    let summary = imp.finish()?;
    Ok((store, summary))
}

/// The store's tables up to what no read can tell apart (`etcd_backend::canonical_tables`).
fn canonical(store: &MemStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    etcd_backend::canonical_tables(store).expect("tables decode").into_iter().collect()
}

fn imported_kv(b: &Buckets) -> (Kv, ImportSummary) {
    let (store, summary) = import(b).unwrap_or_else(|e| panic!("import: {e}"));
    let mut kv = Kv::new();
    *kv.h.store_mut() = store;
    (kv, summary)
}

/// The tables, the summary, every readable revision's keyspace and every hashable revision's
/// HashKV agree between `kv` and its export imported into a fresh store.
fn check_round_trip(kv: &Kv, what: &str) {
    let b = export(kv.h.store());
    let (back, summary) = imported_kv(&b);
    let (a, z) = (&canonical(kv.h.store()), &canonical(back.h.store()));
    if a != z {
        let only_a: Vec<_> = a.iter().filter(|(k, v)| z.get(*k) != Some(v)).map(|(k, _)| s(k)).collect();
        let only_z: Vec<_> = z.iter().filter(|(k, v)| a.get(*k) != Some(v)).map(|(k, _)| s(k)).collect();
        panic!("{what}: tables differ; original only: {only_a:?}; imported only: {only_z:?}");
    }
    let sum = etcd_backend::summary(kv.h.store()).unwrap();
    assert_eq!((summary.revision, summary.compact_revision), (sum.revision, sum.compact_revision), "{what}");
    assert_eq!((summary.keys, summary.leases, summary.unattached_keys), (sum.keys, sum.leases, 0), "{what}");
    assert_eq!(summary.pairs as usize, b.key.len(), "{what}");
    let first = sum.compact_revision.max(1);
    for rev in first..=sum.revision {
        let req = RangeRequest { revision: rev, ..range_req("", "\0") };
        assert_eq!(kv.range(req.clone()), back.range(req), "{what}: range at {rev}");
        if rev > sum.compact_revision {
            assert_eq!(kv.hash(rev), back.hash(rev), "{what}: hash at {rev}");
        }
    }
}

/// xorshift64*: a reproducible history without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KEYS: [&[u8]; 8] = [b"a", b"a\0", b"a\0b", b"b", b"b/x", b"c", b"\xff", b"k\x01"];

fn random_command(rng: &mut Rng, kv: &Kv) -> InternalRaftRequest {
    let key = |rng: &mut Rng| KEYS[rng.below(KEYS.len() as u64) as usize].to_vec();
    let lease = |rng: &mut Rng| if rng.below(3) == 0 { 100 + rng.below(3) as i64 } else { 0 };
    let put = |rng: &mut Rng| PutRequest {
        key: key(rng),
        value: format!("v{}", rng.below(1000)).into_bytes(),
        lease: lease(rng),
        ..Default::default()
    };
    match rng.below(20) {
        0..=7 => InternalRaftRequest { put: Some(put(rng)), ..Default::default() },
        8..=9 => InternalRaftRequest {
            delete_range: Some(DeleteRangeRequest { key: key(rng), ..Default::default() }),
            ..Default::default()
        },
        10 => InternalRaftRequest {
            delete_range: Some(DeleteRangeRequest { key: b"a".to_vec(), range_end: b"b0".to_vec(), prev_kv: false }),
            ..Default::default()
        },
        11..=12 => {
            // Distinct keys: etcd refuses a txn that writes one key twice.
            let (k1, k2) = (key(rng), key(rng));
            let mut ops = vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest { key: k1.clone(), ..put(rng) })),
            }];
            if k2 != k1 {
                ops.push(RequestOp {
                    request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                        key: k2,
                        ..Default::default()
                    })),
                });
            }
            InternalRaftRequest { txn: Some(TxnRequest { success: ops, ..Default::default() }), ..Default::default() }
        }
        13..=14 => InternalRaftRequest {
            lease_grant: Some(LeaseGrantRequest { id: 100 + rng.below(3) as i64, ttl: 1 + rng.below(100) as i64 }),
            ..Default::default()
        },
        15 => InternalRaftRequest {
            lease_revoke: Some(LeaseRevokeRequest { id: 100 + rng.below(3) as i64 }),
            ..Default::default()
        },
        16 => InternalRaftRequest {
            lease_checkpoint: Some(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint {
                    id: 100 + rng.below(3) as i64,
                    remaining_ttl: rng.below(50) as i64,
                }],
            }),
            ..Default::default()
        },
        _ => {
            let current = kv.rev();
            InternalRaftRequest {
                compaction: Some(CompactionRequest { revision: rng.below(current as u64 + 1) as i64, physical: false }),
                ..Default::default()
            }
        }
    }
}

fn kind(cmd: &InternalRaftRequest) -> &'static str {
    if cmd.put.is_some() {
        "put"
    } else if cmd.delete_range.is_some() {
        "delete"
    } else if cmd.txn.is_some() {
        "txn"
    } else if cmd.lease_grant.is_some() {
        "grant"
    } else if cmd.lease_revoke.is_some() {
        "revoke"
    } else if cmd.lease_checkpoint.is_some() {
        "checkpoint"
    } else {
        "compact"
    }
}

#[test]
fn export_then_import_gives_identical_tables_for_random_histories() {
    // How many of each kind succeeded, and how many leases were revoked with keys attached.
    let mut applied = BTreeMap::<&str, u32>::new();
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut kv = Kv::new();
        check_round_trip(&kv, &format!("seed {seed}, empty"));
        for i in 1..=120 {
            let cmd = random_command(&mut rng, &kv);
            let kind = kind(&cmd);
            let before = kv.rev();
            // Refusals (a lease not granted, a compacted revision) are part of the history too.
            if kv.apply_raw(cmd).is_ok() {
                *applied.entry(kind).or_default() += 1;
                if kind == "revoke" && kv.rev() > before {
                    *applied.entry("revoke with keys").or_default() += 1;
                }
            }
            if i % 30 == 0 {
                check_round_trip(&kv, &format!("seed {seed}, after {i} commands"));
            }
        }
    }
    for kind in ["put", "delete", "txn", "grant", "revoke", "revoke with keys", "checkpoint", "compact"] {
        assert!(applied.get(kind).copied().unwrap_or(0) >= 20, "too few {kind}: {applied:?}");
    }
}

#[test]
fn etcds_history_round_trips_with_etcds_hashes() {
    // The recorded etcd history, exported and imported at each `record` line: the imported
    // keyspace answers HashKV and reads exactly as etcd did.
    let records = recorded();
    let mut kv = Kv::new();
    let mut step = 0;
    for s in history() {
        match s {
            Step::Command(req) => {
                kv.apply_raw(*req).unwrap();
            }
            Step::Record => {
                step += 1;
                check_round_trip(&kv, &format!("etcd history, step {step}"));
                let (back, _) = imported_kv(&export(kv.h.store()));
                assert!(compare_step(&back, step, &records, "imported") > 0);
            }
        }
    }
}

fn compaction_meta(finished: Option<i64>, scheduled: Option<i64>) -> Pairs {
    let rev = |r: i64| revkey::encode(Revision::new(r, 0), false);
    let mut meta = Vec::new();
    if let Some(f) = finished {
        meta.push((FINISHED_COMPACT_KEY.to_vec(), rev(f)));
    }
    if let Some(s) = scheduled {
        meta.push((SCHEDULED_COMPACT_KEY.to_vec(), rev(s)));
    }
    meta
}

fn sample(kv: &mut Kv) {
    kv.put("a", "1"); // 2
    kv.put("b", "1"); // 3
    kv.put("a", "2"); // 4
    kv.delete("b", ""); // 5
    kv.put("c", "1"); // 6
    kv.put("a", "3"); // 7
    kv.delete("c", ""); // 8
    kv.put("d", "1"); // 9
}

#[test]
fn an_unfinished_compaction_is_resumed() {
    let mut plain = Kv::new();
    sample(&mut plain);
    let mut compacted = Kv::new();
    sample(&mut compacted);
    compacted.compact(8).unwrap();

    // etcd scheduled the compaction to 8 and stopped before deleting anything.
    let mut b = export(plain.h.store());
    b.meta = compaction_meta(None, Some(8));
    let (back, summary) = imported_kv(&b);
    assert_eq!(back.h.store().data, compacted.h.store().data);
    assert_eq!((summary.resumed_compaction, summary.compact_revision, summary.revision), (Some(8), 8, 9));

    // ... or after deleting some of what it drops, in revision order: a's revision 2 and b's
    // put at 3 are gone, b's deletion at 5 is still there (a deletion of a key not live).
    let mut partial = export(plain.h.store());
    let drop = [revkey::encode(Revision::new(2, 0), false), revkey::encode(Revision::new(3, 0), false)];
    partial.key.retain(|(k, _)| !drop.contains(k));
    partial.meta = compaction_meta(None, Some(8));
    let (back, _) = imported_kv(&partial);
    assert_eq!(back.h.store().data, compacted.h.store().data);

    // A scheduled compaction at or below the finished one is done already.
    let mut done = export(compacted.h.store());
    done.meta = compaction_meta(Some(8), Some(8));
    assert_eq!(imported_kv(&done).1.resumed_compaction, None);

    // A compaction after an earlier finished one.
    let mut twice = Kv::new();
    sample(&mut twice);
    twice.compact(4).unwrap();
    let mut b = export(twice.h.store());
    twice.compact(8).unwrap();
    b.meta = compaction_meta(Some(4), Some(8));
    let (back, summary) = imported_kv(&b);
    assert_eq!(back.h.store().data, twice.h.store().data);
    assert_eq!(summary.compact_revision, 8);
}

#[test]
fn compaction_revisions_and_counts() {
    let mut kv = Kv::new();
    assert_eq!(etcd_backend::export_meta(kv.h.store()).unwrap(), Vec::new());
    let s = etcd_backend::summary(kv.h.store()).unwrap();
    assert_eq!((s.revision, s.compact_revision, s.keys, s.leases), (1, -1, 0, 0));
    sample(&mut kv);
    kv.compact(8).unwrap();
    // Everything up to 8 deleted by the compaction but the newest puts of `a` (7) and `d` (9).
    let b = export(kv.h.store());
    let revs: Vec<String> = b.key.iter().map(|(k, _)| revkey::display(k)).collect();
    assert_eq!(revs, ["7_0", "9_0"]);
    assert_eq!(b.meta, compaction_meta(Some(8), Some(8)));
    kv.delete("", "\0"); // 10: a and d deleted
    kv.compact(10).unwrap();
    let b = export(kv.h.store());
    assert!(b.key.is_empty());
    // Nothing left in the key bucket: the revision is the compaction's, as in etcd.
    let (back, summary) = imported_kv(&b);
    assert_eq!((summary.revision, summary.compact_revision, summary.keys), (10, 10, 0));
    assert_eq!(back.rev(), 10);
    assert_eq!(back.h.store().data, kv.h.store().data);
}

#[test]
fn keys_of_a_lease_the_file_lacks_stay_unattached() {
    let mut kv = Kv::new();
    kv.apply_raw(InternalRaftRequest { lease_grant: Some(LeaseGrantRequest { id: 7, ttl: 60 }), ..Default::default() })
        .unwrap();
    kv.put_req(PutRequest { lease: 7, ..put_req("k", "v") }).unwrap();
    let mut b = export(kv.h.store());
    assert_eq!(b.lease.len(), 1);
    assert_eq!(Lease::decode(b.lease[0].1.as_slice()).unwrap(), Lease { id: 7, ttl: 60, remaining_ttl: 0 });
    b.lease.clear();
    let (back, summary) = imported_kv(&b);
    assert_eq!((summary.keys, summary.leases, summary.unattached_keys), (1, 0, 1));
    assert!(back.h.store().data.keys().all(|k| !k.starts_with(b"K/")));
    assert_eq!(back.get("k").unwrap().lease, 7, "the key keeps its lease field, as in etcd");
}

#[test]
fn the_store_must_be_empty() {
    let mut store = MemStore::new();
    store.data.insert(b"m/revision".to_vec(), 5i64.to_be_bytes().to_vec());
    let err = Importer::new(&mut store).err().unwrap();
    assert!(matches!(err, ImportError::NotEmpty(_)), "{err}");
}

fn kv_bytes(key: &str, create: i64, modr: i64, version: i64) -> Vec<u8> {
    KeyValue { key: key.into(), value: b"v".to_vec(), create_revision: create, mod_revision: modr, version, lease: 0 }
        .encode_to_vec()
}

fn rk(main: i64, sub: i64) -> Vec<u8> {
    revkey::encode(Revision::new(main, sub), false)
}

fn tomb(main: i64, key: &str) -> (Vec<u8>, Vec<u8>) {
    (revkey::encode(Revision::new(main, 0), true), KeyValue { key: key.into(), ..Default::default() }.encode_to_vec())
}

#[test]
fn bad_buckets_are_refused_with_the_bucket_and_key_named() {
    let ok = (rk(2, 0), kv_bytes("a", 2, 2, 1));
    let lease = |id: i64, ttl: i64| (id.to_be_bytes().to_vec(), Lease { id, ttl, remaining_ttl: 0 }.encode_to_vec());
    let cases: Vec<(&str, Buckets, &str)> = vec![
        ("short key", Buckets { key: vec![(vec![0; 16], kv_bytes("a", 2, 2, 1))], ..Default::default() }, "16 bytes"),
        (
            "bad mark",
            Buckets { key: vec![([rk(2, 0), b"x".to_vec()].concat(), kv_bytes("a", 2, 2, 1))], ..Default::default() },
            "tombstone mark",
        ),
        (
            "bad value",
            Buckets { key: vec![(rk(2, 0), vec![0xff, 0xff])], ..Default::default() },
            "not an mvccpb.KeyValue",
        ),
        ("empty key", Buckets { key: vec![(rk(2, 0), kv_bytes("", 2, 2, 1))], ..Default::default() }, "key is empty"),
        ("revision 0", Buckets { key: vec![(rk(0, 0), kv_bytes("a", 0, 0, 1))], ..Default::default() }, "start at 1"),
        (
            "out of order",
            Buckets { key: vec![ok.clone(), (rk(2, 0), kv_bytes("b", 2, 2, 1))], ..Default::default() },
            "not after the previous pair's revision 2_0",
        ),
        (
            "mod revision",
            Buckets { key: vec![(rk(2, 0), kv_bytes("a", 2, 3, 1))], ..Default::default() },
            "mod_revision 3 is not the pair's revision",
        ),
        (
            "create revision",
            Buckets { key: vec![(rk(2, 0), kv_bytes("a", 5, 2, 1))], ..Default::default() },
            "create_revision 5",
        ),
        (
            "deleting a key not live",
            Buckets { key: vec![ok.clone(), tomb(3, "b")], ..Default::default() },
            "at revision 3_0, the deletion of key \"b\", which is not live; no compaction",
        ),
        (
            "a deletion with a value",
            Buckets {
                key: vec![ok.clone(), (revkey::encode(Revision::new(3, 0), true), kv_bytes("a", 2, 3, 2))],
                ..Default::default()
            },
            "carries more than its key",
        ),
        (
            "a version gap",
            Buckets { key: vec![ok.clone(), (rk(3, 0), kv_bytes("a", 2, 3, 3))], ..Default::default() },
            "version 3 (created at 2), which does not follow its live version 1",
        ),
        (
            "history before the file",
            Buckets { key: vec![(rk(5, 0), kv_bytes("a", 2, 5, 4))], ..Default::default() },
            "without its earlier revisions; no compaction",
        ),
        (
            "two revisions below a finished compaction",
            Buckets {
                key: vec![ok.clone(), (rk(3, 0), kv_bytes("a", 2, 3, 2))],
                meta: compaction_meta(Some(4), Some(4)),
                ..Default::default()
            },
            "key \"a\" at revisions 2_0 and 3_0, both at or below the finished compaction 4",
        ),
        (
            "a deletion below a finished compaction",
            Buckets { key: vec![tomb(3, "z")], meta: compaction_meta(Some(4), Some(4)), ..Default::default() },
            "deletion of key \"z\" at revision 3_0, below the finished compaction 4",
        ),
        ("short lease key", Buckets { lease: vec![(vec![0; 4], vec![])], ..Default::default() }, "4 bytes, not 8"),
        (
            "lease id mismatch",
            Buckets { lease: vec![(5i64.to_be_bytes().to_vec(), lease(6, 10).1)], ..Default::default() },
            "ID 6 is not the key's",
        ),
        ("lease 0", Buckets { lease: vec![lease(0, 10)], ..Default::default() }, "NoLease"),
        ("lease TTL", Buckets { lease: vec![lease(3, 0)], ..Default::default() }, "TTL 0"),
        ("leases out of order", Buckets { lease: vec![lease(3, 5), lease(3, 5)], ..Default::default() }, "not after"),
        (
            "bad compaction key",
            Buckets { meta: vec![(FINISHED_COMPACT_KEY.to_vec(), vec![0; 8])], ..Default::default() },
            "bucket \"meta\", key \"finishedCompactRev\": not a revision key: 8 bytes",
        ),
        (
            "compaction twice",
            Buckets {
                meta: [compaction_meta(Some(1), None), compaction_meta(Some(1), None)].concat(),
                ..Default::default()
            },
            "given twice",
        ),
    ];
    for (what, buckets, want) in cases {
        match import(&buckets) {
            Ok(_) => panic!("{what}: imported"),
            Err(e) => assert!(e.to_string().contains(want), "{what}: {e}"),
        }
    }
    // The bucket and key appear in the message.
    let e = import(&Buckets { key: vec![(rk(2, 0), vec![0xff])], ..Default::default() }).err().unwrap();
    assert!(e.to_string().starts_with("etcd backend: bucket \"key\", key 2_0: "), "{e}");
    // Unknown meta keys (the consistent index, 3.5's term and confState) are the host's.
    let b = Buckets { key: vec![ok], meta: vec![(b"consistent_index".to_vec(), vec![0; 8])], ..Default::default() };
    assert_eq!(import(&b).unwrap().1.revision, 2);
}

/// The buckets of `etcdctl snapshot save` at each `record` step of the etcd history
/// (`fixtures/etcd_hash/buckets.jsonl`, dumped from the file by `dump_buckets.py`).
fn etcds_buckets(step: i64) -> Buckets {
    let path = format!("{}/buckets.jsonl", crate::etcd_hash::fixture_dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    };
    let mut b = Buckets::default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        if v["step"].as_i64() != Some(step) {
            continue;
        }
        let pair = (hex(v["k"].as_str().expect("k")), hex(v["v"].as_str().expect("v")));
        match v["bucket"].as_str() {
            Some("key") => b.key.push(pair),
            Some("lease") => b.lease.push(pair),
            Some("meta") => b.meta.push(pair),
            other => panic!("bucket {other:?}"),
        }
    }
    b
}

#[test]
fn export_is_etcds_buckets_and_etcds_buckets_import_to_the_same_tables() {
    let mut kv = Kv::new();
    let mut step = 0;
    for s in history() {
        match s {
            Step::Command(req) => {
                kv.apply_raw(*req).unwrap();
            }
            Step::Record => {
                step += 1;
                let etcd = etcds_buckets(step);
                assert!(!etcd.meta.is_empty(), "step {step} recorded");
                let ours = export(kv.h.store());
                let show = |p: &Pairs| p.iter().map(|(k, _)| revkey::display(k)).collect::<Vec<_>>();
                assert_eq!(show(&ours.key), show(&etcd.key), "step {step}: key bucket revisions");
                assert_eq!(ours.key, etcd.key, "step {step}: key bucket bytes");
                assert_eq!(ours.lease, etcd.lease, "step {step}: lease bucket");
                let compaction: Pairs = etcd
                    .meta
                    .iter()
                    .filter(|(k, _)| k.as_slice() == FINISHED_COMPACT_KEY || k.as_slice() == SCHEDULED_COMPACT_KEY)
                    .cloned()
                    .collect();
                assert_eq!(ours.meta, compaction, "step {step}: meta bucket");
                // etcd's own buckets (its consistent index included) build the guest's tables.
                let (back, _) = imported_kv(&etcd);
                assert_eq!(canonical(back.h.store()), canonical(kv.h.store()), "step {step}: imported tables");
            }
        }
    }
    assert_eq!(step, 6);
}

#[test]
fn a_failing_sink_stops_the_export_with_its_error() {
    let mut kv = Kv::new();
    sample(&mut kv);
    let mut calls = 0;
    let err = etcd_backend::export_key_bucket(kv.h.store(), &mut |_, _| {
        calls += 1;
        if calls == 2 { Err("disk full") } else { Ok(()) }
    })
    .unwrap_err();
    assert!(matches!(err, etcd_backend::ExportError::Sink("disk full")), "{err:?}");
    assert_eq!(calls, 2);
    assert_eq!(err.to_string(), "disk full");
}

#[test]
fn a_deletion_kept_at_the_compaction_revision_is_dropped() {
    // etcd 3.4.3x and 3.5.1x keep a deletion made exactly at the compaction revision (and
    // nothing older of that key); 3.4.23 and the guest drop it.
    let mut kv = Kv::new();
    sample(&mut kv);
    kv.compact(8).unwrap(); // c was deleted at 8
    let mut newer = export(kv.h.store());
    newer.key.insert(1, tomb(8, "c"));
    assert!(newer.key.windows(2).all(|w| w[0].0 < w[1].0));
    let (back, summary) = imported_kv(&newer);
    assert_eq!(canonical(back.h.store()), canonical(kv.h.store()));
    assert_eq!(summary.pairs, 3);
    // Below the compaction revision, it is an error still.
    let mut older = export(kv.h.store());
    older.key.insert(0, tomb(6, "x"));
    let e = import(&older).err().unwrap();
    assert!(e.to_string().contains("deletion of key \"x\" at revision 6_0, below the finished compaction 8"), "{e}");
}
