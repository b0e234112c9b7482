//! Transactions.

use wasmraft_kv_guest::errors::{FUTURE_REV, KEY_NOT_FOUND, LEASE_NOT_FOUND};
use wasmraft_kv_guest::layout::history_key;
use wasmraft_kv_guest::revision::Revision;
use wasmraft_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use wasmraft_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest};

use crate::common::*;
use crate::put::grant;

fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest { compare, success, failure }
}

/// Whether a single compare holds on the store.
fn holds(kv: &mut Kv, c: Compare) -> bool {
    let before = kv.rev();
    let resp = kv.txn(txn(vec![c], vec![], vec![])).unwrap();
    assert_eq!(revision_of(&resp.header), before);
    resp.succeeded
}

#[test]
fn compares_pick_the_branch_and_responses_follow_op_order() {
    let mut kv = Kv::new();
    kv.put("k", "v"); // 2
    let resp = kv
        .txn(txn(
            vec![cmp_value("k", CompareResult::Equal, "v")],
            vec![op_put("a", "1"), op_get("k", ""), op_delete("k", "", true)],
            vec![op_put("failed", "1")],
        ))
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(revision_of(&resp.header), 3);
    assert_eq!(resp.responses.len(), 3);
    assert_eq!(revision_of(&as_put(&resp.responses[0]).header), 3);
    assert_eq!(as_range(&resp.responses[1]).kvs, vec![mkv("k", "v", 2, 2, 1)]);
    let del = as_delete(&resp.responses[2]);
    assert_eq!((del.deleted, del.prev_kvs.clone()), (1, vec![mkv("k", "v", 2, 2, 1)]));
    assert_eq!(kv.get("failed"), None);

    let resp = kv
        .txn(txn(vec![cmp_value("k", CompareResult::Equal, "v")], vec![op_put("x", "1")], vec![op_put("failed", "1")]))
        .unwrap();
    assert!(!resp.succeeded);
    assert_eq!(revision_of(&resp.header), 4);
    assert_eq!(kv.get("failed"), Some(mkv("failed", "1", 4, 4, 1)));
    assert_eq!(kv.get("x"), None);
}

#[test]
fn every_compare_target_and_result() {
    let mut kv = Kv::new();
    grant(&mut kv, 9);
    kv.put("k", "m"); // 2
    kv.put_req(PutRequest { lease: 9, ..put_req("k", "m") }).unwrap(); // 3: version 2, create 2, mod 3, lease 9
    use CompareResult::*;
    use CompareTarget as T;
    let cases: Vec<(T, TargetUnion, [bool; 4])> = vec![
        // [EQUAL, GREATER, LESS, NOT_EQUAL] when comparing the key's field against the value.
        (T::Version, TargetUnion::Version(2), [true, false, false, false]),
        (T::Version, TargetUnion::Version(1), [false, true, false, true]),
        (T::Version, TargetUnion::Version(3), [false, false, true, true]),
        (T::Create, TargetUnion::CreateRevision(2), [true, false, false, false]),
        (T::Create, TargetUnion::CreateRevision(1), [false, true, false, true]),
        (T::Mod, TargetUnion::ModRevision(3), [true, false, false, false]),
        (T::Mod, TargetUnion::ModRevision(4), [false, false, true, true]),
        (T::Value, TargetUnion::Value(b"m".to_vec()), [true, false, false, false]),
        (T::Value, TargetUnion::Value(b"a".to_vec()), [false, true, false, true]),
        (T::Value, TargetUnion::Value(b"mm".to_vec()), [false, false, true, true]),
        (T::Lease, TargetUnion::Lease(9), [true, false, false, false]),
        (T::Lease, TargetUnion::Lease(10), [false, false, true, true]),
    ];
    for (target, union, expect) in cases {
        for (result, want) in [Equal, Greater, Less, NotEqual].into_iter().zip(expect) {
            assert_eq!(
                holds(&mut kv, cmp("k", target, result, union.clone())),
                want,
                "{target:?} {result:?} {union:?}"
            );
        }
    }
}

#[test]
fn a_missing_key_compares_as_zero_but_never_by_value() {
    let mut kv = Kv::new();
    assert!(holds(&mut kv, cmp_version("nope", CompareResult::Equal, 0)));
    assert!(holds(&mut kv, cmp("nope", CompareTarget::Create, CompareResult::Equal, TargetUnion::CreateRevision(0))));
    assert!(holds(&mut kv, cmp("nope", CompareTarget::Mod, CompareResult::Less, TargetUnion::ModRevision(1))));
    assert!(!holds(&mut kv, cmp_version("nope", CompareResult::Greater, 0)));
    assert!(!holds(&mut kv, cmp_value("nope", CompareResult::Equal, "")));
    assert!(!holds(&mut kv, cmp_value("nope", CompareResult::NotEqual, "x")));
}

#[test]
fn a_compare_value_of_the_wrong_kind_reads_as_zero() {
    let mut kv = Kv::new();
    kv.put("k", "");
    // version(k) = 1 > 0: the Value union reads as version 0.
    assert!(holds(
        &mut kv,
        cmp("k", CompareTarget::Version, CompareResult::Greater, TargetUnion::Value(b"1".to_vec()))
    ));
    // value(k) = "" equals the empty value a Version union reads as.
    assert!(holds(&mut kv, cmp("k", CompareTarget::Value, CompareResult::Equal, TargetUnion::Version(5))));
    let no_union = Compare { target_union: None, ..cmp_version("k", CompareResult::Greater, 0) };
    assert!(holds(&mut kv, no_union));
}

#[test]
fn unknown_compare_targets_and_results_behave_as_in_etcd() {
    let mut kv = Kv::new();
    kv.put("k", "v");
    // Unknown result: holds. Unknown target: compares equal.
    assert!(holds(&mut kv, Compare { result: 17, ..cmp_version("k", CompareResult::Equal, 99) }));
    assert!(holds(&mut kv, Compare { target: 17, ..cmp_version("k", CompareResult::Equal, 99) }));
    assert!(!holds(&mut kv, Compare { target: 17, ..cmp_version("k", CompareResult::NotEqual, 99) }));
}

#[test]
fn range_compares_need_every_key_to_match() {
    let mut kv = Kv::new();
    kv.put("r/a", "1");
    kv.put("r/b", "1");
    kv.put("r/c", "2");
    let ranged = |c: Compare, end: &str| Compare { range_end: end.as_bytes().to_vec(), ..c };
    assert!(holds(&mut kv, ranged(cmp_value("r/a", CompareResult::Equal, "1"), "r/c")));
    assert!(!holds(&mut kv, ranged(cmp_value("r/a", CompareResult::Equal, "1"), "r0")));
    assert!(holds(&mut kv, ranged(cmp_version("r/", CompareResult::Greater, 0), "r0")));
    assert!(holds(&mut kv, ranged(cmp_version("r/", CompareResult::Equal, 1), "\0")));
    // An empty range is a missing key.
    assert!(holds(&mut kv, ranged(cmp_version("s/", CompareResult::Equal, 0), "s0")));
    assert!(!holds(&mut kv, ranged(cmp_value("s/", CompareResult::NotEqual, "x"), "s0")));
}

#[test]
fn all_compares_must_hold() {
    let mut kv = Kv::new();
    kv.put("a", "1");
    kv.put("b", "2");
    let both = |b: &str| {
        txn(vec![cmp_value("a", CompareResult::Equal, "1"), cmp_value("b", CompareResult::Equal, b)], vec![], vec![])
    };
    assert!(kv.txn(both("2")).unwrap().succeeded);
    assert!(!kv.txn(both("3")).unwrap().succeeded);
    assert!(kv.txn(txn(vec![], vec![], vec![])).unwrap().succeeded);
}

#[test]
fn writes_share_one_revision_with_increasing_sub_revisions() {
    let mut kv = Kv::new();
    kv.put("c", "old"); // 2
    let resp =
        kv.txn(txn(vec![], vec![op_put("b", "1"), op_put("a", "1"), op_delete("c", "", false)], vec![])).unwrap();
    assert_eq!(revision_of(&resp.header), 3);
    assert_eq!(kv.get("a"), Some(mkv("a", "1", 3, 3, 1)));
    assert_eq!(kv.get("b"), Some(mkv("b", "1", 3, 3, 1)));
    assert_eq!(kv.get("c"), None);
    let raw = kv.raw();
    assert!(raw.contains_key(&history_key(Revision::new(3, 0))));
    assert!(raw.contains_key(&history_key(Revision::new(3, 1))));
    assert!(raw.contains_key(&history_key(Revision::new(3, 2))));
    assert_eq!(kv.rev(), 3);
}

#[test]
fn later_operations_see_earlier_writes() {
    let mut kv = Kv::new();
    kv.put("k", "0"); // 2
    let resp = kv
        .txn(txn(
            vec![],
            vec![
                op_get("k", ""),
                op_put("k", "1"),
                op_get("k", ""),
                op_put_req(PutRequest { prev_kv: true, ..put_req("k", "2") }),
                op_range(RangeRequest { revision: 2, ..range_req("k", "") }),
                op_delete("k", "", true),
                op_get("k", ""),
                op_put("k", "3"),
                op_get("k", ""),
            ],
            vec![],
        ))
        .unwrap();
    let r = &resp.responses;
    assert_eq!(as_range(&r[0]).kvs, vec![mkv("k", "0", 2, 2, 1)]);
    assert_eq!(revision_of(&as_range(&r[0]).header), 2);
    assert_eq!(as_range(&r[2]).kvs, vec![mkv("k", "1", 2, 3, 2)]);
    assert_eq!(revision_of(&as_range(&r[2]).header), 3);
    assert_eq!(as_put(&r[3]).prev_kv, Some(mkv("k", "1", 2, 3, 2)));
    // A read at the pre-transaction revision sees the pre-transaction value.
    assert_eq!(as_range(&r[4]).kvs, vec![mkv("k", "0", 2, 2, 1)]);
    assert_eq!(as_delete(&r[5]).prev_kvs, vec![mkv("k", "2", 2, 3, 3)]);
    assert!(as_range(&r[6]).kvs.is_empty());
    // Re-created in the same transaction: a new generation.
    assert_eq!(as_range(&r[8]).kvs, vec![mkv("k", "3", 3, 3, 1)]);
    assert_eq!(kv.get("k"), Some(mkv("k", "3", 3, 3, 1)));
    // History at 3 is the transaction's final state.
    assert_eq!(kv.get_at("k", 3).unwrap(), Some(mkv("k", "3", 3, 3, 1)));
    assert_eq!(kv.get_at("k", 2).unwrap(), Some(mkv("k", "0", 2, 2, 1)));
}

#[test]
fn put_then_delete_in_one_transaction_leaves_no_key() {
    let mut kv = Kv::new();
    kv.txn(txn(vec![], vec![op_put("k", "1"), op_delete("k", "", false)], vec![])).unwrap();
    assert_eq!(kv.get("k"), None);
    assert_eq!(kv.get_at("k", 2).unwrap(), None);
    assert_eq!(kv.rev(), 2);
}

#[test]
fn read_only_and_no_op_transactions_keep_the_revision() {
    let mut kv = Kv::new();
    kv.put("k", "v"); // 2
    let resp = kv.txn(txn(vec![], vec![op_get("k", "")], vec![])).unwrap();
    assert_eq!(revision_of(&resp.header), 2);
    let resp = kv.txn(txn(vec![], vec![op_delete("nothing", "", false), op_get("k", "")], vec![])).unwrap();
    assert_eq!(revision_of(&resp.header), 2);
    assert_eq!(revision_of(&as_delete(&resp.responses[0]).header), 2);
    assert_eq!(kv.put("k", "w"), 3);
}

#[test]
fn a_no_op_delete_after_a_write_reports_the_new_revision() {
    let mut kv = Kv::new();
    let resp = kv
        .txn(txn(vec![], vec![op_delete("x", "", false), op_put("k", "v"), op_delete("y", "", false)], vec![]))
        .unwrap();
    assert_eq!(revision_of(&as_delete(&resp.responses[0]).header), 1);
    assert_eq!(revision_of(&as_delete(&resp.responses[2]).header), 2);
    assert_eq!(revision_of(&resp.header), 2);
}

#[test]
fn nested_transactions_compare_before_any_write() {
    let mut kv = Kv::new();
    kv.put("flag", "old"); // 2
    let inner = |value: &str| {
        txn(
            vec![cmp_value("flag", CompareResult::Equal, value)],
            vec![op_put("inner", "success")],
            vec![op_put("inner", "failure")],
        )
    };
    let resp = kv
        .txn(txn(
            vec![],
            vec![op_put("flag", "new"), op_txn(inner("old")), op_get("inner", ""), op_txn(inner("new"))],
            vec![],
        ))
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(revision_of(&resp.header), 3);
    // The first nested compare saw "old" although "flag" had just been written.
    let first = as_txn(&resp.responses[1]);
    assert!(first.succeeded);
    assert_eq!(first.header, Some(ResponseHeader::default()));
    assert_eq!(revision_of(&as_put(&first.responses[0]).header), 3);
    assert_eq!(as_range(&resp.responses[2]).kvs, vec![mkv("inner", "success", 3, 3, 1)]);
    let second = as_txn(&resp.responses[3]);
    assert!(!second.succeeded);
    assert_eq!(kv.get("inner"), Some(mkv("inner", "failure", 3, 3, 2)));
}

#[test]
fn nested_transactions_in_the_failure_branch_and_deeper() {
    let mut kv = Kv::new();
    let deepest = txn(vec![cmp_version("x", CompareResult::Equal, 0)], vec![op_put("d", "1")], vec![]);
    let middle =
        txn(vec![cmp_version("x", CompareResult::Greater, 0)], vec![], vec![op_txn(deepest), op_put("m", "1")]);
    let resp = kv
        .txn(txn(
            vec![cmp_version("x", CompareResult::Greater, 0)],
            vec![op_put("wrong", "1")],
            vec![op_txn(middle), op_put("top", "1")],
        ))
        .unwrap();
    assert!(!resp.succeeded);
    let middle = as_txn(&resp.responses[0]);
    assert!(!middle.succeeded);
    assert!(as_txn(&middle.responses[0]).succeeded);
    assert_eq!(kv.keys(range_req("\0", "\0")), ["d", "m", "top"]);
    assert!(kv.get("d").is_some_and(|kv| kv.mod_revision == 2));
}

#[test]
fn checks_run_before_any_write_and_roll_everything_back() {
    let mut kv = Kv::new();
    kv.put("k", "v"); // 2
    let before = kv.raw();
    let events = kv.events().len();

    // ignore_value on a key that exists only after an earlier op: etcd checks the old state.
    let ignore = op_put_req(PutRequest { key: b"new".to_vec(), ignore_value: true, ..Default::default() });
    assert_eq!(kv.txn(txn(vec![], vec![op_put("new", "1"), ignore], vec![])).unwrap_err(), KEY_NOT_FOUND);
    // A lease nobody granted.
    let leased = op_put_req(PutRequest { lease: 5, ..put_req("k", "v") });
    assert_eq!(kv.txn(txn(vec![], vec![op_put("a", "1"), leased.clone()], vec![])).unwrap_err(), LEASE_NOT_FOUND);
    // Inside a nested transaction too.
    let nested = op_txn(txn(vec![], vec![leased.clone()], vec![]));
    assert_eq!(kv.txn(txn(vec![], vec![op_put("a", "1"), nested], vec![])).unwrap_err(), LEASE_NOT_FOUND);
    // A future revision.
    let future = op_range(RangeRequest { revision: 3, ..range_req("k", "") });
    assert_eq!(kv.txn(txn(vec![], vec![op_put("a", "1"), future.clone()], vec![])).unwrap_err(), FUTURE_REV);
    // Puts are checked before ranges.
    assert_eq!(kv.txn(txn(vec![], vec![future.clone(), leased.clone()], vec![])).unwrap_err(), LEASE_NOT_FOUND);
    // In etcd's KEY_NOT_FOUND-then-lease order inside a txn.
    let both = op_put_req(PutRequest { key: b"missing".to_vec(), lease: 5, ignore_value: true, ..Default::default() });
    assert_eq!(kv.txn(txn(vec![], vec![both], vec![])).unwrap_err(), KEY_NOT_FOUND);
    // A put that cannot find its key only because this transaction deleted it.
    let ignore_k = op_put_req(PutRequest { key: b"k".to_vec(), ignore_value: true, ..Default::default() });
    assert_eq!(kv.txn(txn(vec![], vec![op_delete("k", "", false), ignore_k], vec![])).unwrap_err(), KEY_NOT_FOUND);

    assert_eq!(kv.raw(), before);
    assert_eq!(kv.events().len(), events);

    // Only the taken branch is checked.
    let resp = kv.txn(txn(vec![], vec![op_put("ok", "1")], vec![leased, future])).unwrap();
    assert!(resp.succeeded);
}

#[test]
fn ignore_value_inside_a_transaction() {
    let mut kv = Kv::new();
    kv.put("k", "keep"); // 2
    let resp = kv
        .txn(txn(
            vec![],
            vec![
                op_put_req(PutRequest { key: b"k".to_vec(), ignore_value: true, prev_kv: true, ..Default::default() }),
                op_get("k", ""),
            ],
            vec![],
        ))
        .unwrap();
    assert_eq!(as_put(&resp.responses[0]).prev_kv, Some(mkv("k", "keep", 2, 2, 1)));
    assert_eq!(as_range(&resp.responses[1]).kvs, vec![mkv("k", "keep", 2, 3, 2)]);
}

#[test]
fn an_empty_operation_gets_an_empty_response() {
    let mut kv = Kv::new();
    let resp = kv.txn(txn(vec![], vec![RequestOp { request: None }, op_put("k", "v")], vec![])).unwrap();
    assert_eq!(resp.responses[0].response, None);
    assert_eq!(revision_of(&resp.header), 2);
}
