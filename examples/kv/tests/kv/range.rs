//! Range options at the current revision.

use wasmraft_kv_guest::errors::FUTURE_REV;
use wasmraft_proto::etcdserverpb::RangeRequest;
use wasmraft_proto::etcdserverpb::range_request::{SortOrder, SortTarget};

use crate::common::*;

/// a=1 (v1) b=22 (v3) c=3 (v2) d=4 (v1), with distinct create and mod revisions.
fn abcd() -> Kv {
    let mut kv = Kv::new();
    kv.put("b", "20"); // 2
    kv.put("a", "1"); // 3
    kv.put("c", "30"); // 4
    kv.put("b", "21"); // 5
    kv.put("d", "4"); // 6
    kv.put("b", "22"); // 7
    kv.put("c", "3"); // 8
    kv
}

fn sorted(order: SortOrder, target: SortTarget) -> RangeRequest {
    RangeRequest { sort_order: order as i32, sort_target: target as i32, ..range_req("a", "e") }
}

#[test]
fn single_key_range_and_from_key() {
    let kv = abcd();
    assert_eq!(kv.keys(range_req("b", "")), ["b"]);
    assert_eq!(kv.keys(range_req("bb", "")), Vec::<String>::new());
    assert_eq!(kv.keys(range_req("b", "d")), ["b", "c"]);
    assert_eq!(kv.keys(range_req("b", "\0")), ["b", "c", "d"]);
    assert_eq!(kv.keys(range_req("\0", "\0")), ["a", "b", "c", "d"]);
    assert_eq!(kv.keys(range_req("", "\0")), ["a", "b", "c", "d"]);
    // range_end at or below key: nothing.
    assert_eq!(kv.keys(range_req("c", "c")), Vec::<String>::new());
    assert_eq!(kv.keys(range_req("c", "b")), Vec::<String>::new());
    // A prefix range as etcdctl sends it.
    let mut kv = kv;
    kv.put("p/1", "x");
    kv.put("p/2", "x");
    kv.put("p0", "x");
    assert_eq!(kv.keys(range_req("p/", "p0")), ["p/1", "p/2"]);
}

#[test]
fn a_range_reports_the_whole_key_value_and_current_revision() {
    let kv = abcd();
    let resp = kv.range(range_req("a", "e")).unwrap();
    assert_eq!(revision_of(&resp.header), 8);
    assert_eq!(resp.count, 4);
    assert!(!resp.more);
    assert_eq!(
        resp.kvs,
        vec![mkv("a", "1", 3, 3, 1), mkv("b", "22", 2, 7, 3), mkv("c", "3", 4, 8, 2), mkv("d", "4", 6, 6, 1)]
    );
}

#[test]
fn limit_sets_more_and_count_is_everything() {
    let kv = abcd();
    let resp = kv.range(RangeRequest { limit: 2, ..range_req("a", "e") }).unwrap();
    assert_eq!(resp.kvs.iter().map(|k| s(&k.key)).collect::<Vec<_>>(), ["a", "b"]);
    assert!(resp.more);
    assert_eq!(resp.count, 4);
    let resp = kv.range(RangeRequest { limit: 4, ..range_req("a", "e") }).unwrap();
    assert_eq!(resp.kvs.len(), 4);
    assert!(!resp.more);
    let resp = kv.range(RangeRequest { limit: 100, ..range_req("a", "e") }).unwrap();
    assert_eq!((resp.kvs.len(), resp.more), (4, false));
    // A negative limit is no limit.
    let resp = kv.range(RangeRequest { limit: -1, ..range_req("a", "e") }).unwrap();
    assert_eq!((resp.kvs.len(), resp.more), (4, false));
    let resp = kv.range(RangeRequest { limit: i64::MAX, ..range_req("a", "e") }).unwrap();
    assert_eq!((resp.kvs.len(), resp.more), (4, false));
}

#[test]
fn count_only_and_keys_only() {
    let kv = abcd();
    let resp = kv.range(RangeRequest { count_only: true, limit: 1, ..range_req("a", "e") }).unwrap();
    assert_eq!((resp.count, resp.kvs.len(), resp.more), (4, 0, false));
    let resp = kv.range(RangeRequest { keys_only: true, ..range_req("a", "e") }).unwrap();
    assert_eq!(resp.kvs.len(), 4);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(resp.kvs[1], mkv("b", "", 2, 7, 3));
}

#[test]
fn sort_by_key() {
    let kv = abcd();
    assert_eq!(kv.keys(sorted(SortOrder::Ascend, SortTarget::Key)), ["a", "b", "c", "d"]);
    assert_eq!(kv.keys(sorted(SortOrder::Descend, SortTarget::Key)), ["d", "c", "b", "a"]);
    let resp = kv.range(RangeRequest { limit: 3, ..sorted(SortOrder::Descend, SortTarget::Key) }).unwrap();
    assert_eq!(resp.kvs.iter().map(|k| s(&k.key)).collect::<Vec<_>>(), ["d", "c", "b"]);
    assert!(resp.more);
    assert_eq!(resp.count, 4);
    let resp = kv.range(RangeRequest { limit: 4, ..sorted(SortOrder::Descend, SortTarget::Key) }).unwrap();
    assert_eq!((resp.kvs.len(), resp.more), (4, false));
}

#[test]
fn sort_by_each_target() {
    let kv = abcd();
    assert_eq!(kv.keys(sorted(SortOrder::Ascend, SortTarget::Version)), ["a", "d", "c", "b"]);
    assert_eq!(kv.keys(sorted(SortOrder::Descend, SortTarget::Version)), ["b", "c", "a", "d"]);
    assert_eq!(kv.keys(sorted(SortOrder::Ascend, SortTarget::Create)), ["b", "a", "c", "d"]);
    assert_eq!(kv.keys(sorted(SortOrder::Descend, SortTarget::Create)), ["d", "c", "a", "b"]);
    assert_eq!(kv.keys(sorted(SortOrder::Ascend, SortTarget::Mod)), ["a", "d", "b", "c"]);
    assert_eq!(kv.keys(sorted(SortOrder::Descend, SortTarget::Mod)), ["c", "b", "d", "a"]);
    assert_eq!(kv.keys(sorted(SortOrder::Ascend, SortTarget::Value)), ["a", "b", "c", "d"]);
    assert_eq!(kv.keys(sorted(SortOrder::Descend, SortTarget::Value)), ["d", "c", "b", "a"]);
}

#[test]
fn a_non_key_target_without_order_sorts_ascending() {
    let kv = abcd();
    assert_eq!(kv.keys(sorted(SortOrder::None, SortTarget::Mod)), ["a", "d", "b", "c"]);
    assert_eq!(kv.keys(sorted(SortOrder::None, SortTarget::Version)), ["a", "d", "c", "b"]);
    assert_eq!(kv.keys(sorted(SortOrder::None, SortTarget::Key)), ["a", "b", "c", "d"]);
}

#[test]
fn sorting_happens_before_limit_and_keys_only() {
    let kv = abcd();
    let resp =
        kv.range(RangeRequest { limit: 2, keys_only: true, ..sorted(SortOrder::Descend, SortTarget::Value) }).unwrap();
    assert_eq!(resp.kvs.iter().map(|k| s(&k.key)).collect::<Vec<_>>(), ["d", "c"]);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
    assert!(resp.more);
    assert_eq!(resp.count, 4);
}

#[test]
fn revision_filters_prune_but_count_does_not_change() {
    let kv = abcd();
    // mod revisions: a=3 b=7 c=8 d=6; create: a=3 b=2 c=4 d=6
    let f = |r: RangeRequest| {
        let resp = kv.range(RangeRequest { key: b"a".to_vec(), range_end: b"e".to_vec(), ..r }).unwrap();
        assert_eq!(resp.count, 4);
        resp.kvs.iter().map(|k| s(&k.key)).collect::<Vec<_>>()
    };
    assert_eq!(f(RangeRequest { min_mod_revision: 6, ..Default::default() }), ["b", "c", "d"]);
    assert_eq!(f(RangeRequest { max_mod_revision: 6, ..Default::default() }), ["a", "d"]);
    assert_eq!(f(RangeRequest { min_mod_revision: 4, max_mod_revision: 7, ..Default::default() }), ["b", "d"]);
    assert_eq!(f(RangeRequest { min_create_revision: 3, ..Default::default() }), ["a", "c", "d"]);
    assert_eq!(f(RangeRequest { max_create_revision: 3, ..Default::default() }), ["a", "b"]);
    assert_eq!(f(RangeRequest { min_create_revision: 3, max_create_revision: 4, ..Default::default() }), ["a", "c"]);
    assert_eq!(f(RangeRequest { min_mod_revision: 100, ..Default::default() }), Vec::<String>::new());

    // `more` is about what survives the filters.
    let resp = kv.range(RangeRequest { min_mod_revision: 6, limit: 2, ..range_req("a", "e") }).unwrap();
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (2, true, 4));
    let resp = kv.range(RangeRequest { min_mod_revision: 7, limit: 2, ..range_req("a", "e") }).unwrap();
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (2, false, 4));
    // Filters with a sort.
    let resp = kv
        .range(RangeRequest { min_mod_revision: 6, limit: 1, ..sorted(SortOrder::Descend, SortTarget::Key) })
        .unwrap();
    assert_eq!(resp.kvs.iter().map(|k| s(&k.key)).collect::<Vec<_>>(), ["d"]);
    assert!(resp.more);
}

#[test]
fn a_future_revision_is_refused() {
    let kv = abcd();
    let err = kv.range(RangeRequest { revision: 9, ..range_req("a", "") }).unwrap_err();
    assert_eq!(err, FUTURE_REV);
    assert_eq!(kv.range(RangeRequest { revision: i64::MAX, ..range_req("a", "") }).unwrap_err(), FUTURE_REV);
    // Zero and negative mean "current".
    assert_eq!(kv.range(RangeRequest { revision: 8, ..range_req("a", "") }).unwrap().kvs.len(), 1);
    assert_eq!(kv.range(RangeRequest { revision: -5, ..range_req("a", "") }).unwrap().kvs.len(), 1);
    assert_eq!(kv.range(RangeRequest { revision: i64::MIN, ..range_req("a", "") }).unwrap().kvs.len(), 1);
}

#[test]
fn keys_with_zero_bytes_do_not_leak_into_neighbouring_ranges() {
    let mut kv = Kv::new();
    for k in ["a", "a\0", "a\0\0", "a\x01", "b"] {
        kv.put(k, k);
    }
    assert_eq!(kv.keys(range_req("a", "a\0")), ["a"]);
    assert_eq!(kv.keys(range_req("a\0", "a\x01")), ["a\0", "a\0\0"]);
    assert_eq!(kv.keys(range_req("a\0", "")), ["a\0"]);
    // And the same at a past revision (through the history).
    kv.put("z", "z");
    assert_eq!(kv.range(RangeRequest { revision: 6, ..range_req("a\0", "a\x01") }).unwrap().kvs.len(), 2);
    assert_eq!(kv.range(RangeRequest { revision: 6, ..range_req("a", "a\0") }).unwrap().kvs.len(), 1);
}

#[test]
fn large_ranges_page_through_the_store() {
    let mut kv = Kv::new();
    for i in 0..100 {
        kv.put(&format!("k{i:03}"), &format!("{i}"));
    }
    let resp = kv.range(range_req("k", "l")).unwrap();
    assert_eq!(resp.count, 100);
    assert_eq!(resp.kvs.len(), 100);
    assert!(resp.kvs.windows(2).all(|w| w[0].key < w[1].key));
    let resp = kv.range(RangeRequest { limit: 10, ..range_req("k050", "\0") }).unwrap();
    assert_eq!((resp.count, resp.kvs.len(), resp.more), (50, 10, true));
    assert_eq!(s(&resp.kvs[0].key), "k050");
    let resp =
        kv.range(RangeRequest { limit: 10, sort_order: SortOrder::Descend as i32, ..range_req("k", "l") }).unwrap();
    assert_eq!(s(&resp.kvs[0].key), "k099");
    assert_eq!(s(&resp.kvs[9].key), "k090");
}

#[test]
fn unknown_sort_options_do_not_panic() {
    let kv = abcd();
    // An order etcd does not know: etcd skips sorting.
    let resp =
        kv.range(RangeRequest { sort_order: 9, sort_target: SortTarget::Mod as i32, ..range_req("a", "e") }).unwrap();
    assert_eq!(resp.kvs.iter().map(|k| s(&k.key)).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    let resp = kv.range(RangeRequest { sort_order: 1, sort_target: 42, ..range_req("a", "e") }).unwrap();
    assert_eq!(resp.kvs.len(), 4);
}
