//! DeleteRange.

use wasmraft_proto::etcdserverpb::DeleteRangeRequest;

use crate::common::*;

fn load() -> Kv {
    let mut kv = Kv::new();
    for k in ["a", "b", "c", "d", "e"] {
        kv.put(k, k); // 2..=6
    }
    kv
}

fn delete(kv: &mut Kv, key: &str, end: &str, prev_kv: bool) -> wasmraft_proto::etcdserverpb::DeleteRangeResponse {
    kv.delete_req(DeleteRangeRequest { key: key.into(), range_end: end.into(), prev_kv }).unwrap()
}

#[test]
fn single_key() {
    let mut kv = load();
    let resp = delete(&mut kv, "b", "", true);
    assert_eq!((resp.deleted, revision_of(&resp.header)), (1, 7));
    assert_eq!(resp.prev_kvs, vec![mkv("b", "b", 3, 3, 1)]);
    assert_eq!(kv.keys(range_req("\0", "\0")), ["a", "c", "d", "e"]);
}

#[test]
fn a_range_and_from_key() {
    let mut kv = load();
    let resp = delete(&mut kv, "b", "d", false);
    assert_eq!((resp.deleted, revision_of(&resp.header)), (2, 7));
    assert!(resp.prev_kvs.is_empty());
    assert_eq!(kv.keys(range_req("\0", "\0")), ["a", "d", "e"]);
    let resp = delete(&mut kv, "d", "\0", true);
    assert_eq!((resp.deleted, revision_of(&resp.header)), (2, 8));
    assert_eq!(resp.prev_kvs, vec![mkv("d", "d", 5, 5, 1), mkv("e", "e", 6, 6, 1)]);
    assert_eq!(kv.keys(range_req("\0", "\0")), ["a"]);
    // All deleted keys share the revision, with sub revisions in key order.
    assert_eq!(kv.get_at("b", 6).unwrap(), Some(mkv("b", "b", 3, 3, 1)));
    assert_eq!(kv.get_at("b", 7).unwrap(), None);
}

#[test]
fn deleting_everything_in_many_pages() {
    let mut kv = Kv::new();
    for i in 0..60 {
        kv.put(&format!("k{i:02}"), "v");
    }
    let resp = delete(&mut kv, "\0", "\0", true);
    assert_eq!(resp.deleted, 60);
    assert_eq!(resp.prev_kvs.len(), 60);
    assert!(resp.prev_kvs.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(kv.range(range_req("\0", "\0")).unwrap().count, 0);
    assert_eq!(
        kv.range(wasmraft_proto::etcdserverpb::RangeRequest { revision: 61, ..range_req("\0", "\0") }).unwrap().count,
        60
    );
}

#[test]
fn nothing_to_delete() {
    let mut kv = load();
    let resp = delete(&mut kv, "x", "z", true);
    assert_eq!((resp.deleted, revision_of(&resp.header), resp.prev_kvs.len()), (0, 6, 0));
    let resp = delete(&mut kv, "c", "a", true);
    assert_eq!((resp.deleted, revision_of(&resp.header)), (0, 6));
}
