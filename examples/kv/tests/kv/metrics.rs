//! etcd's mvcc metrics as the guest exports them (recorded by the harness as the host would
//! store them): counted as etcd 3.4's `metricsTxnWrite` counts, and only for entries that
//! succeed.

use crate::common::Kv;
use wasmraft_proto::etcdserverpb::request_op::Request;
use wasmraft_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};

fn op(r: Request) -> RequestOp {
    RequestOp { request: Some(r) }
}

fn put_op(k: &str) -> RequestOp {
    op(Request::RequestPut(PutRequest { key: k.into(), value: b"v".to_vec(), ..Default::default() }))
}

#[test]
fn puts_deletes_txns_and_revisions_are_exported() {
    let mut kv = Kv::new();
    kv.put("a", "1");
    kv.put("b", "2");
    kv.put("a", "3");
    assert_eq!(kv.h.metric("etcd_mvcc_put_total"), Some(3));
    assert_eq!(kv.h.metric("etcd_debugging_mvcc_current_revision"), Some(4));
    assert_eq!(kv.h.metric("etcd_mvcc_txn_total"), None);

    // etcd counts DeleteRange calls, not keys; one that deletes nothing counts too.
    kv.delete("a", "c");
    kv.delete("zz", "");
    assert_eq!(kv.h.metric("etcd_mvcc_delete_total"), Some(2));
    assert_eq!(kv.h.metric("etcd_debugging_mvcc_current_revision"), Some(5));

    // A txn of two operations is a txn; of one, it is not.
    let two = TxnRequest {
        success: vec![
            put_op("t1"),
            op(Request::RequestRange(RangeRequest { key: b"t1".to_vec(), ..Default::default() })),
        ],
        ..Default::default()
    };
    kv.txn(two).expect("txn applies");
    let one = TxnRequest { success: vec![put_op("t2")], ..Default::default() };
    kv.txn(one).expect("txn applies");
    assert_eq!(kv.h.metric("etcd_mvcc_txn_total"), Some(1));
    assert_eq!(kv.h.metric("etcd_mvcc_put_total"), Some(5));

    // A failing txn (a put with a lease that does not exist) leaves no counts.
    let failing = TxnRequest {
        success: vec![
            put_op("t3"),
            op(Request::RequestPut(PutRequest { key: b"t4".to_vec(), lease: 99, ..Default::default() })),
        ],
        ..Default::default()
    };
    assert!(kv.txn(failing).is_err());
    assert_eq!(kv.h.metric("etcd_mvcc_txn_total"), Some(1));
    assert_eq!(kv.h.metric("etcd_mvcc_put_total"), Some(5));

    kv.compact(4).expect("compacts");
    assert_eq!(kv.h.metric("etcd_debugging_mvcc_compact_revision"), Some(4));
}
