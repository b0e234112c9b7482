//! Put options: prev_kv, ignore_value, ignore_lease, lease.

use wasmraft_guest_sdk::Store;
use wasmraft_kv_guest::errors::{KEY_NOT_FOUND, LEASE_NOT_FOUND};
use wasmraft_kv_guest::layout::lease_key;
use wasmraft_proto::etcdserverpb::PutRequest;

use crate::common::*;

#[test]
fn prev_kv_returns_the_previous_value_only_when_asked() {
    let mut kv = Kv::new();
    let first = kv.put_req(PutRequest { prev_kv: true, ..put_req("k", "v1") }).unwrap();
    assert_eq!(first.prev_kv, None);
    let second = kv.put_req(PutRequest { prev_kv: true, ..put_req("k", "v2") }).unwrap();
    assert_eq!(second.prev_kv, Some(mkv("k", "v1", 2, 2, 1)));
    assert_eq!(revision_of(&second.header), 3);
    let third = kv.put_req(put_req("k", "v3")).unwrap();
    assert_eq!(third.prev_kv, None);
}

#[test]
fn ignore_value_keeps_the_value_and_bumps_version() {
    let mut kv = Kv::new();
    kv.put("k", "keep me");
    let resp =
        kv.put_req(PutRequest { key: b"k".to_vec(), ignore_value: true, prev_kv: true, ..Default::default() }).unwrap();
    assert_eq!(resp.prev_kv, Some(mkv("k", "keep me", 2, 2, 1)));
    assert_eq!(kv.get("k"), Some(mkv("k", "keep me", 2, 3, 2)));
}

#[test]
fn ignore_lease_keeps_the_lease() {
    let mut kv = Kv::new();
    grant(&mut kv, 42);
    kv.put_req(PutRequest { lease: 42, ..put_req("k", "v") }).unwrap();
    assert_eq!(kv.get("k").unwrap().lease, 42);
    kv.put_req(PutRequest { ignore_lease: true, ..put_req("k", "v2") }).unwrap();
    let got = kv.get("k").unwrap();
    assert_eq!((got.lease, got.value.as_slice(), got.version), (42, &b"v2"[..], 2));
    // A plain put detaches.
    kv.put("k", "v3");
    assert_eq!(kv.get("k").unwrap().lease, 0);
}

#[test]
fn ignore_flags_on_a_missing_key_fail_with_key_not_found_and_change_nothing() {
    let mut kv = Kv::new();
    kv.put("other", "x");
    let before = kv.raw();
    for req in [
        PutRequest { key: b"k".to_vec(), ignore_value: true, ..Default::default() },
        PutRequest { key: b"k".to_vec(), ignore_lease: true, ..Default::default() },
    ] {
        assert_eq!(kv.put_req(req).unwrap_err(), KEY_NOT_FOUND);
    }
    assert_eq!(kv.raw(), before);
    assert_eq!(kv.rev(), 2);
}

#[test]
fn an_unknown_lease_fails_with_lease_not_found_and_changes_nothing() {
    let mut kv = Kv::new();
    kv.put("k", "v");
    let before = kv.raw();
    assert_eq!(kv.put_req(PutRequest { lease: 7, ..put_req("k", "v2") }).unwrap_err(), LEASE_NOT_FOUND);
    assert_eq!(kv.put_req(PutRequest { lease: -1, ..put_req("new", "v") }).unwrap_err(), LEASE_NOT_FOUND);
    // Standalone puts check the lease first (etcd's Put), before the ignore_value check.
    assert_eq!(
        kv.put_req(PutRequest { key: b"missing".to_vec(), lease: 7, ignore_value: true, ..Default::default() })
            .unwrap_err(),
        LEASE_NOT_FOUND
    );
    assert_eq!(kv.raw(), before);
    assert_eq!(kv.events().len(), 1);
}

#[test]
fn a_granted_lease_is_found_in_the_lease_table() {
    let mut kv = Kv::new();
    grant(&mut kv, 7);
    let resp = kv.put_req(PutRequest { lease: 7, ..put_req("k", "v") }).unwrap();
    assert_eq!(revision_of(&resp.header), 2);
    assert_eq!(kv.get("k").unwrap().lease, 7);
}

/// Grants a lease the way the lessor will: a record in the `L/` table.
pub fn grant(kv: &mut Kv, id: i64) {
    kv.h.store_mut().put(&lease_key(id), b"lease");
}
