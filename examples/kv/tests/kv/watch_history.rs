//! Watch history (`KvQuery.watch_history`): a replay must give exactly the events the writes
//! emitted, in order, with the paging and compaction answers the host's watch hub relies on.

use prost::Message;
use wasmraft_proto::etcdserverpb::request_op::Request;
use wasmraft_proto::etcdserverpb::{RequestOp, TxnRequest};
use wasmraft_proto::mvccpb::Event;
use wasmraft_proto::wasmraft::v1::{KvQuery, WatchHistoryRequest, WatchHistoryResponse, kv_query};

use crate::common::*;

fn history(kv: &Kv, req: WatchHistoryRequest) -> WatchHistoryResponse {
    let q = KvQuery { request: Some(kv_query::Request::WatchHistory(req)) };
    let bytes = kv.h.query(&q.encode_to_vec()).expect("watch history");
    WatchHistoryResponse::decode(bytes.as_slice()).expect("WatchHistoryResponse")
}

fn req(key: &str, range_end: &str, start: i64, prev_kv: bool) -> WatchHistoryRequest {
    WatchHistoryRequest {
        key: key.into(),
        range_end: range_end.into(),
        start_revision: start,
        prev_kv,
        ..Default::default()
    }
}

/// The emitted events, as a replay with or without prev_kv should return them.
fn emitted(kv: &Kv, with_prev: bool, keep: impl Fn(&Event) -> bool) -> Vec<Event> {
    kv.events()
        .into_iter()
        .filter(|e| keep(e))
        .map(|mut e| {
            if !with_prev {
                e.prev_kv = None;
            }
            e
        })
        .collect()
}

fn sample() -> Kv {
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.put("b", "1"); // 3
    kv.put("a", "2"); // 4
    kv.delete("a", ""); // 5
    kv.txn(TxnRequest {
        success: vec![
            RequestOp { request: Some(Request::RequestPut(put_req("b", "2"))) },
            RequestOp { request: Some(Request::RequestPut(put_req("c", "1"))) },
        ],
        ..Default::default()
    })
    .expect("txn"); // 6
    kv.put("a\0", "x"); // 7
    kv
}

#[test]
fn a_full_replay_equals_the_emitted_events() {
    let kv = sample();
    for prev in [false, true] {
        let resp = history(&kv, req("\0", "\0", 1, prev));
        assert_eq!(resp.events, emitted(&kv, prev, |_| true));
        assert_eq!(resp.header.unwrap().revision, 7);
        assert_eq!(resp.next_revision, 8);
        assert_eq!(resp.compact_revision, 0);
    }
}

#[test]
fn replays_follow_key_range_and_prefix_and_start() {
    let kv = sample();
    let key_of = |e: &Event| e.kv.as_ref().map(|kv| kv.key.clone()).unwrap_or_default();
    // One key: "a" only, not "a\0".
    let resp = history(&kv, req("a", "", 3, true));
    assert_eq!(resp.events, emitted(&kv, true, |e| key_of(e) == b"a" && e.kv.as_ref().unwrap().mod_revision >= 3));
    // A range [a, c).
    let resp = history(&kv, req("a", "c", 1, false));
    assert_eq!(resp.events, emitted(&kv, false, |e| key_of(e).as_slice() < b"c".as_slice()));
    // From a key to the end.
    let resp = history(&kv, req("b", "\0", 6, false));
    assert_eq!(resp.events.len(), 2);
    // A start past the current revision: nothing, and the next revision is the start.
    let resp = history(&kv, req("a", "", 9, false));
    assert!(resp.events.is_empty());
    assert_eq!(resp.next_revision, 9);
}

#[test]
fn paging_counts_revisions_and_keeps_a_transaction_whole() {
    let kv = sample();
    let mut page = req("\0", "\0", 2, false);
    page.limit = 4; // revisions 2..=5
    let resp = history(&kv, page.clone());
    assert_eq!(resp.events.len(), 4);
    assert_eq!(resp.next_revision, 6);
    page.start_revision = 6;
    page.limit = 1; // revision 6: both events of the txn
    let resp = history(&kv, page.clone());
    assert_eq!(resp.events.len(), 2);
    assert!(resp.events.iter().all(|e| e.kv.as_ref().unwrap().mod_revision == 6));
    assert_eq!(resp.next_revision, 7);
    page.end_revision = 6;
    page.limit = 0;
    let resp = history(&kv, page);
    assert_eq!(resp.next_revision, 7);
}

#[test]
fn a_compacted_start_is_refused_with_the_compaction_revision() {
    let mut kv = sample();
    kv.compact(5).expect("compact");
    let resp = history(&kv, req("\0", "\0", 4, false));
    assert_eq!(resp.compact_revision, 5);
    assert!(resp.events.is_empty());
    // From the compaction revision on, the replay is complete, except that a delete at exactly
    // the compaction revision went with the compaction (etcd drops that tombstone too, so its
    // watchers from revision 5 do not see it either).
    let resp = history(&kv, req("\0", "\0", 5, true));
    assert_eq!(resp.compact_revision, 0);
    let want = emitted(&kv, true, |e| e.kv.as_ref().unwrap().mod_revision > 5);
    assert_eq!(resp.events, want);
}
