//! Watch events emitted by writes.

use wasmraft_proto::etcdserverpb::{PutRequest, TxnRequest};
use wasmraft_proto::mvccpb::event::EventType;
use wasmraft_proto::mvccpb::{Event, KeyValue};

use crate::common::*;

fn put_event(kv: KeyValue, prev: Option<KeyValue>) -> Event {
    Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: prev }
}

fn delete_event(key: &str, rev: i64, prev: Option<KeyValue>) -> Event {
    Event {
        r#type: EventType::Delete as i32,
        kv: Some(KeyValue { key: key.into(), mod_revision: rev, ..Default::default() }),
        prev_kv: prev,
    }
}

#[test]
fn puts_and_deletes_emit_events_with_previous_values() {
    let mut kv = Kv::new();
    kv.put("a", "1"); // 2
    kv.put("a", "2"); // 3
    kv.delete("a", ""); // 4
    assert_eq!(
        kv.events(),
        vec![
            put_event(mkv("a", "1", 2, 2, 1), None),
            put_event(mkv("a", "2", 2, 3, 2), Some(mkv("a", "1", 2, 2, 1))),
            delete_event("a", 4, Some(mkv("a", "2", 2, 3, 2))),
        ]
    );
    let entries: Vec<u64> = kv.h.events().iter().map(|(index, _)| *index).collect();
    assert_eq!(entries, [1, 2, 3]);
}

#[test]
fn a_range_delete_emits_one_event_per_key_in_key_order() {
    let mut kv = Kv::new();
    for k in ["c", "a", "b"] {
        kv.put(k, k);
    }
    let n = kv.events().len();
    kv.delete("a", "\0");
    let deletes = &kv.events()[n..];
    assert_eq!(
        deletes,
        [
            delete_event("a", 5, Some(mkv("a", "a", 3, 3, 1))),
            delete_event("b", 5, Some(mkv("b", "b", 4, 4, 1))),
            delete_event("c", 5, Some(mkv("c", "c", 2, 2, 1)))
        ]
    );
}

#[test]
fn events_in_a_transaction_carry_the_value_from_before_the_transaction() {
    let mut kv = Kv::new();
    kv.put("k", "0"); // 2
    let n = kv.events().len();
    kv.txn(TxnRequest {
        success: vec![
            op_put("k", "1"),
            op_put("k", "2"),
            op_delete("k", "", false),
            op_put("k", "3"),
            op_put("n", "1"),
            op_put("n", "2"),
        ],
        ..Default::default()
    })
    .unwrap();
    let before = Some(mkv("k", "0", 2, 2, 1));
    assert_eq!(
        &kv.events()[n..],
        [
            put_event(mkv("k", "1", 2, 3, 2), before.clone()),
            put_event(mkv("k", "2", 2, 3, 3), before.clone()),
            delete_event("k", 3, before.clone()),
            put_event(mkv("k", "3", 3, 3, 1), before),
            put_event(mkv("n", "1", 3, 3, 1), None),
            put_event(mkv("n", "2", 3, 3, 2), None),
        ]
    );
}

#[test]
fn reads_compactions_failures_and_no_op_deletes_emit_nothing() {
    let mut kv = Kv::new();
    kv.put("k", "v");
    kv.range_applied(range_req("k", "")).unwrap();
    kv.delete("zz", "");
    kv.compact(2).unwrap();
    kv.txn(TxnRequest { success: vec![op_get("k", "")], ..Default::default() }).unwrap();
    assert!(kv.put_req(PutRequest { lease: 1, ..put_req("k", "w") }).is_err());
    assert_eq!(kv.events().len(), 1);
}
