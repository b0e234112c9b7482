//! Compaction.

use wasmraft_kv_guest::errors::{COMPACTED, FUTURE_REV};
use wasmraft_kv_guest::layout::{HISTORY, KEYS};
use wasmraft_proto::etcdserverpb::{RangeRequest, TxnRequest};

use crate::common::*;

fn count_prefix(kv: &Kv, prefix: &[u8]) -> usize {
    kv.raw().keys().filter(|k| k.starts_with(prefix)).count()
}

#[test]
fn compaction_checks_its_revision() {
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.put("a", "2"); // 3
    assert_eq!(kv.compact(4).unwrap_err(), FUTURE_REV);
    let resp = kv.compact(2).unwrap();
    assert_eq!(revision_of(&resp.header), 3);
    assert_eq!(kv.compact(2).unwrap_err(), COMPACTED);
    assert_eq!(kv.compact(1).unwrap_err(), COMPACTED);
    assert_eq!(kv.compact(-3).unwrap_err(), COMPACTED);
    let resp = kv.compact(3).unwrap();
    assert_eq!(revision_of(&resp.header), 3);
    // Compaction does not move the revision.
    assert_eq!(kv.rev(), 3);
    assert_eq!(kv.put("b", "1"), 4);
}

#[test]
fn compacting_to_zero_is_accepted_once_as_in_etcd() {
    let mut kv = Kv::new();
    assert_eq!(revision_of(&kv.compact(0).unwrap().header), 1);
    assert_eq!(kv.compact(0).unwrap_err(), COMPACTED);
    assert_eq!(kv.compact(1).map(|r| revision_of(&r.header)), Ok(1));
}

#[test]
fn reads_below_the_compaction_fail_and_at_it_see_the_newest_versions() {
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.put("b", "1"); // 3
    kv.put("a", "2"); // 4
    kv.delete("b", ""); // 5
    kv.put("c", "1"); // 6
    kv.put("a", "3"); // 7
    kv.compact(5).unwrap();
    assert_eq!(kv.get_at("a", 4).unwrap_err(), COMPACTED);
    assert_eq!(kv.range(RangeRequest { revision: 1, ..range_req("a", "z") }).unwrap_err(), COMPACTED);
    assert_eq!(kv.get_at("a", 5).unwrap(), Some(mkv("a", "2", 2, 4, 2)));
    assert_eq!(kv.get_at("b", 5).unwrap(), None);
    assert_eq!(kv.get_at("a", 6).unwrap(), Some(mkv("a", "2", 2, 4, 2)));
    assert_eq!(kv.get_at("c", 6).unwrap(), Some(mkv("c", "1", 6, 6, 1)));
    assert_eq!(kv.get("a"), Some(mkv("a", "3", 2, 7, 3)));
    // a: 4 (newest <= 5) and 7; b: gone (its newest <= 5 is a tombstone); c: 6.
    assert_eq!(count_prefix(&kv, HISTORY), 3);
    // b's history is gone, and its row with it.
    assert_eq!(count_prefix(&kv, KEYS), 2);
    // A later put of a compacted-away key starts over.
    kv.put("b", "again");
    assert_eq!(kv.get("b"), Some(mkv("b", "again", 8, 8, 1)));
}

#[test]
fn compacting_to_the_current_revision_keeps_exactly_the_live_keys() {
    let mut kv = Kv::new();
    for i in 0..30 {
        kv.put(&format!("k{}", i % 7), &format!("{i}"));
        if i % 4 == 0 {
            kv.delete(&format!("k{}", (i + 3) % 7), "");
        }
    }
    let live = kv.range(range_req("k", "l")).unwrap().kvs;
    let rev = kv.rev();
    kv.compact(rev).unwrap();
    assert_eq!(count_prefix(&kv, HISTORY), live.len());
    assert_eq!(count_prefix(&kv, KEYS), live.len());
    assert_eq!(kv.range(RangeRequest { revision: rev, ..range_req("k", "l") }).unwrap().kvs, live);
    assert_eq!(kv.range(range_req("k", "l")).unwrap().kvs, live);
}

#[test]
fn a_second_compaction_drops_what_the_first_kept() {
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.put("z", "1"); // 3
    kv.compact(3).unwrap();
    assert_eq!(count_prefix(&kv, HISTORY), 2);
    kv.put("a", "2"); // 4
    kv.put("a", "3"); // 5
    assert_eq!(count_prefix(&kv, HISTORY), 4);
    kv.compact(4).unwrap();
    // a@2 is superseded by a@4; z@3 untouched; a@5 is above the compaction.
    assert_eq!(count_prefix(&kv, HISTORY), 3);
    assert_eq!(kv.get_at("a", 4).unwrap(), Some(mkv("a", "2", 2, 4, 2)));
    assert_eq!(kv.get_at("z", 4).unwrap(), Some(mkv("z", "1", 3, 3, 1)));
}

#[test]
fn compaction_within_a_transaction_revision_keeps_its_last_change() {
    let mut kv = Kv::new();
    kv.put("a", "0"); // 2
    kv.txn(TxnRequest {
        success: vec![
            op_put("a", "1"),
            op_put("a", "2"),
            op_delete("b", "", false),
            op_put("b", "x"),
            op_delete("b", "", false),
        ],
        ..Default::default()
    })
    .unwrap(); // 3
    kv.compact(3).unwrap();
    assert_eq!(kv.get_at("a", 3).unwrap(), Some(mkv("a", "2", 2, 3, 3)));
    assert_eq!(kv.get_at("b", 3).unwrap(), None);
    assert_eq!(count_prefix(&kv, HISTORY), 1);
}

#[test]
fn transactions_check_range_revisions_against_the_compaction() {
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.put("a", "2"); // 3
    kv.put("a", "3"); // 4
    kv.compact(3).unwrap();
    let txn = |rev: i64| TxnRequest {
        success: vec![op_range(RangeRequest { revision: rev, ..range_req("a", "") })],
        ..Default::default()
    };
    assert_eq!(kv.txn(txn(2)).unwrap_err(), COMPACTED);
    assert_eq!(kv.txn(txn(5)).unwrap_err(), FUTURE_REV);
    let resp = kv.txn(txn(3)).unwrap();
    assert_eq!(as_range(&resp.responses[0]).kvs, vec![mkv("a", "2", 2, 3, 2)]);
    // etcd quirk: inside a txn a negative revision is "below the compaction", not "current".
    assert_eq!(kv.txn(txn(-1)).unwrap_err(), COMPACTED);
    // ... while a plain range reads the current revision.
    assert_eq!(kv.get_at("a", -1).unwrap(), Some(mkv("a", "3", 2, 4, 3)));
}

#[test]
fn negative_revisions_in_a_txn_before_any_compaction() {
    let mut kv = Kv::new();
    kv.put("a", "1");
    let txn = |rev: i64| TxnRequest {
        success: vec![op_range(RangeRequest { revision: rev, ..range_req("a", "") })],
        ..Default::default()
    };
    // compacted is -1 before any compaction: -1 passes, -2 does not.
    assert!(kv.txn(txn(-1)).is_ok());
    assert_eq!(kv.txn(txn(-2)).unwrap_err(), COMPACTED);
}
