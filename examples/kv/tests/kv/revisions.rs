//! Revisions, create revisions and versions across puts, deletes and re-puts.

use wasmraft_guest_sdk::{API_ETCD_KV, StateMachine};
use wasmraft_kv_guest::KvGuest;

use crate::common::*;

#[test]
fn info_names_the_etcd_kv_api() {
    let info = KvGuest::info();
    assert_eq!(info.name, "etcd-kv");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.apis, vec![API_ETCD_KV.to_string()]);
}

#[test]
fn a_new_store_is_at_revision_1_and_the_first_write_is_2() {
    let mut kv = Kv::new();
    assert_eq!(kv.rev(), 1);
    assert_eq!(kv.put("foo", "bar"), 2);
    assert_eq!(kv.get("foo"), Some(mkv("foo", "bar", 2, 2, 1)));
}

#[test]
fn versions_count_puts_and_reset_after_delete() {
    let mut kv = Kv::new();
    assert_eq!(kv.put("a", "1"), 2);
    assert_eq!(kv.put("a", "2"), 3);
    assert_eq!(kv.put("b", "x"), 4);
    assert_eq!(kv.put("a", "3"), 5);
    assert_eq!(kv.get("a"), Some(mkv("a", "3", 2, 5, 3)));
    assert_eq!(kv.get("b"), Some(mkv("b", "x", 4, 4, 1)));

    let del = kv.delete("a", "");
    assert_eq!(del.deleted, 1);
    assert_eq!(revision_of(&del.header), 6);
    assert_eq!(kv.get("a"), None);

    assert_eq!(kv.put("a", "again"), 7);
    assert_eq!(kv.get("a"), Some(mkv("a", "again", 7, 7, 1)));
    assert_eq!(kv.rev(), 7);
}

#[test]
fn deleting_nothing_does_not_move_the_revision() {
    let mut kv = Kv::new();
    kv.put("a", "1");
    let del = kv.delete("zzz", "");
    assert_eq!(del.deleted, 0);
    assert_eq!(revision_of(&del.header), 2);
    let del = kv.delete("b", "c");
    assert_eq!(del.deleted, 0);
    assert_eq!(revision_of(&del.header), 2);
    assert_eq!(kv.put("b", "1"), 3);
}

#[test]
fn reads_do_not_move_the_revision() {
    let mut kv = Kv::new();
    kv.put("a", "1");
    let via_apply = kv.range_applied(range_req("a", "")).unwrap();
    assert_eq!(revision_of(&via_apply.header), 2);
    assert_eq!(via_apply, kv.range(range_req("a", "")).unwrap());
    assert_eq!(kv.put("a", "2"), 3);
}

#[test]
fn empty_values_and_binary_keys_are_kept_exactly() {
    let mut kv = Kv::new();
    let keys: [&[u8]; 5] = [b"\0", b"a\0", b"a\0\0", b"a\xff", b"\xff\xff"];
    for (i, k) in keys.iter().enumerate() {
        let resp = kv
            .put_req(wasmraft_proto::etcdserverpb::PutRequest {
                key: k.to_vec(),
                value: Vec::new(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(revision_of(&resp.header), 2 + i as i64);
    }
    let all = kv.range(range_req("\0", "\0")).unwrap();
    let got: Vec<Vec<u8>> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(got, keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
    assert!(all.kvs.iter().all(|kv| kv.value.is_empty()));
}
