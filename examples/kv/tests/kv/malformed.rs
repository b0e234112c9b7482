//! Input the host's API layer should never let through, and store damage: errors, never panics.

use prost::Message;
use wasmraft_guest_sdk::Store;
use wasmraft_kv_guest::layout::{REVISION_FLOOR, key_row};
use wasmraft_proto::etcdserverpb::*;

use crate::common::*;

#[test]
fn undecodable_commands_and_queries_are_errors() {
    let mut kv = Kv::new();
    for garbage in [&b"\xff\xff\xff"[..], b"\x0a\x05ab", &[0x1a, 0x80]] {
        let err = kv.h.apply(garbage).unwrap_err();
        assert!(err.contains("cannot decode"), "{err}");
        let err = kv.h.query(garbage).unwrap_err();
        assert!(err.contains("cannot decode"), "{err}");
    }
    assert_eq!(kv.rev(), 1);
}

#[test]
fn an_empty_request_is_an_error() {
    let mut kv = Kv::new();
    let err = kv.apply_raw(InternalRaftRequest { id: 7, ..Default::default() }).unwrap_err();
    assert!(err.contains("no request"), "{err}");
}

#[test]
fn requests_for_other_services_are_not_supported_yet() {
    let mut kv = Kv::new();
    let cases = [
        (InternalRaftRequest { alarm: Some(AlarmRequest::default()), ..Default::default() }, "alarm"),
        (InternalRaftRequest { auth_enable: Some(AuthEnableRequest::default()), ..Default::default() }, "auth_enable"),
        (
            InternalRaftRequest { auth_user_add: Some(AuthUserAddRequest::default()), ..Default::default() },
            "auth_user_add",
        ),
    ];
    for (req, name) in cases {
        assert_eq!(kv.apply_raw(req).unwrap_err(), format!("wasmraft: the etcd-kv guest does not support {name} yet"));
    }
}

#[test]
fn odd_but_decodable_requests_do_not_panic() {
    let mut kv = Kv::new();
    kv.put("k", "v");
    // Empty keys (the API layer rejects them; the guest just treats "" as a key).
    kv.put_req(PutRequest::default()).unwrap();
    assert!(kv.range(RangeRequest::default()).is_ok());
    kv.delete_req(DeleteRangeRequest::default()).unwrap();
    // Huge and negative numbers everywhere.
    let r =
        RangeRequest { limit: i64::MIN, min_mod_revision: -1, max_create_revision: i64::MAX, ..range_req("\0", "\0") };
    assert!(kv.range(r).is_ok());
    assert!(kv.compact(i64::MIN).is_err());
    assert!(kv.compact(i64::MAX).is_err());
    // Deep nesting within prost's recursion limit.
    let mut t = TxnRequest::default();
    for _ in 0..20 {
        t = TxnRequest { success: vec![op_txn(t)], ..Default::default() };
    }
    assert!(kv.txn(t).unwrap().succeeded);
}

#[test]
fn a_damaged_store_is_an_error_not_a_panic() {
    let mut kv = Kv::new();
    kv.put("k", "v");
    kv.h.store_mut().put(&key_row(b"k"), b"\xff\xff");
    assert!(kv.range(range_req("k", "")).unwrap_err().contains("corrupt"));
    assert!(kv.put_req(PutRequest { prev_kv: true, ..put_req("k", "w") }).unwrap_err().contains("corrupt"));
    kv.h.store_mut().put(REVISION_FLOOR, b"short");
    assert!(
        kv.h.apply(&InternalRaftRequest { put: Some(put_req("x", "y")), ..Default::default() }.encode_to_vec())
            .unwrap_err()
            .contains("corrupt")
    );
}
