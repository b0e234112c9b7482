//! Leases as the guest keeps them: grant, revoke (one revision, DELETE events in key order),
//! checkpoint, keys attached and detached by puts and deletes, TimeToLive's keys, the table.

use prost::Message;
use wasmraft_proto::etcdserverpb::*;
use wasmraft_proto::mvccpb::event::EventType;
use wasmraft_proto::wasmraft::v1::{KvQuery, LeaseRecord, LeaseTableRequest, LeaseTableResponse, kv_query};

use crate::common::*;

fn grant(kv: &mut Kv, id: i64, ttl: i64) -> Result<LeaseGrantResponse, String> {
    let bytes =
        kv.apply_raw(InternalRaftRequest { lease_grant: Some(LeaseGrantRequest { ttl, id }), ..Default::default() })?;
    Ok(LeaseGrantResponse::decode(bytes.as_slice()).unwrap())
}

fn revoke(kv: &mut Kv, id: i64) -> Result<LeaseRevokeResponse, String> {
    let bytes =
        kv.apply_raw(InternalRaftRequest { lease_revoke: Some(LeaseRevokeRequest { id }), ..Default::default() })?;
    Ok(LeaseRevokeResponse::decode(bytes.as_slice()).unwrap())
}

fn put_lease(kv: &mut Kv, key: &str, lease: i64) -> Result<PutResponse, String> {
    kv.put_req(PutRequest { lease, ..put_req(key, "v") })
}

fn ttl_query(kv: &Kv, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse, String> {
    let q = KvQuery { request: Some(kv_query::Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys })) };
    let bytes = kv.h.query(&q.encode_to_vec())?;
    Ok(LeaseTimeToLiveResponse::decode(bytes.as_slice()).unwrap())
}

fn attached(kv: &Kv, id: i64) -> Vec<String> {
    ttl_query(kv, id, true).unwrap().keys.iter().map(|k| s(k)).collect()
}

fn table(kv: &Kv) -> Vec<LeaseRecord> {
    let q = KvQuery { request: Some(kv_query::Request::LeaseTable(LeaseTableRequest {})) };
    let bytes = kv.h.query(&q.encode_to_vec()).unwrap();
    LeaseTableResponse::decode(bytes.as_slice()).unwrap().leases
}

#[test]
fn grant_records_the_lease_and_refuses_it_twice() {
    let mut kv = Kv::new();
    kv.put("x", "1"); // revision 2
    let resp = grant(&mut kv, 7, 30).unwrap();
    assert_eq!((resp.id, resp.ttl, revision_of(&resp.header)), (7, 30, 2));
    assert_eq!(grant(&mut kv, 7, 10).unwrap_err(), "etcdserver: lease already exists");
    assert_eq!(grant(&mut kv, 0, 10).unwrap_err(), "etcdserver: requested lease not found");
    assert_eq!(grant(&mut kv, 8, 9_000_000_001).unwrap_err(), "etcdserver: too large lease TTL");
    grant(&mut kv, 8, 9_000_000_000).unwrap();
    // A grant changes no revision.
    assert_eq!(kv.rev(), 2);
    assert_eq!(
        table(&kv),
        vec![
            LeaseRecord { id: 7, ttl: 30, remaining_ttl: 0 },
            LeaseRecord { id: 8, ttl: 9_000_000_000, remaining_ttl: 0 },
        ]
    );
    let ttl = ttl_query(&kv, 7, false).unwrap();
    assert_eq!((ttl.id, ttl.granted_ttl, ttl.keys.len()), (7, 30, 0));
    assert_eq!(ttl_query(&kv, 9, true).unwrap_err(), "etcdserver: requested lease not found");
}

#[test]
fn puts_attach_move_and_detach_keys() {
    let mut kv = Kv::new();
    grant(&mut kv, 1, 60).unwrap();
    grant(&mut kv, 2, 60).unwrap();
    put_lease(&mut kv, "b", 1).unwrap();
    put_lease(&mut kv, "a", 1).unwrap();
    put_lease(&mut kv, "c", 1).unwrap();
    assert_eq!(attached(&kv, 1), ["a", "b", "c"]);
    // Moved to another lease, to none, deleted.
    put_lease(&mut kv, "a", 2).unwrap();
    kv.put("b", "plain");
    kv.delete("c", "");
    assert_eq!(attached(&kv, 1), Vec::<String>::new());
    assert_eq!(attached(&kv, 2), ["a"]);
    // ignore_lease keeps the key where it was.
    kv.put_req(PutRequest { ignore_lease: true, ..put_req("a", "w") }).unwrap();
    assert_eq!(attached(&kv, 2), ["a"]);
    assert_eq!(kv.get("a").unwrap().lease, 2);
    // A txn attaches too, and a range delete detaches.
    kv.txn(TxnRequest {
        success: vec![op_put_req(PutRequest { lease: 1, ..put_req("d", "v") })],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(attached(&kv, 1), ["d"]);
    kv.delete("\0", "\0");
    assert!(attached(&kv, 1).is_empty() && attached(&kv, 2).is_empty());
    assert_eq!(put_lease(&mut kv, "e", 3).unwrap_err(), "etcdserver: requested lease not found");
}

#[test]
fn revoke_deletes_attached_keys_in_one_revision() {
    let mut kv = Kv::new();
    grant(&mut kv, 5, 60).unwrap();
    put_lease(&mut kv, "k2", 5).unwrap(); // 2
    put_lease(&mut kv, "k1", 5).unwrap(); // 3
    kv.put("other", "x"); // 4
    let before = kv.events().len();
    let resp = revoke(&mut kv, 5).unwrap();
    assert_eq!(revision_of(&resp.header), 5);
    assert_eq!(kv.rev(), 5);
    let events = kv.events()[before..].to_vec();
    let got: Vec<(i32, String, i64, Option<i64>)> = events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (e.r#type, s(&kv.key), kv.mod_revision, e.prev_kv.as_ref().map(|p| p.lease))
        })
        .collect();
    assert_eq!(
        got,
        vec![(EventType::Delete as i32, "k1".into(), 5, Some(5)), (EventType::Delete as i32, "k2".into(), 5, Some(5)),]
    );
    assert!(kv.get("k1").is_none() && kv.get("k2").is_none());
    assert_eq!(kv.get("other").unwrap().value, b"x");
    assert!(table(&kv).is_empty());
    assert_eq!(revoke(&mut kv, 5).unwrap_err(), "etcdserver: requested lease not found");
    assert_eq!(put_lease(&mut kv, "k1", 5).unwrap_err(), "etcdserver: requested lease not found");
    // A lease without keys: revoked without a new revision.
    grant(&mut kv, 6, 60).unwrap();
    assert_eq!(revision_of(&revoke(&mut kv, 6).unwrap().header), 5);
    // No attachment records are left behind.
    assert!(kv.raw().keys().all(|k| !k.starts_with(b"K/") && !k.starts_with(b"L/")));
}

#[test]
fn checkpoints_record_the_remaining_ttl() {
    let mut kv = Kv::new();
    grant(&mut kv, 1, 600).unwrap();
    kv.apply_raw(InternalRaftRequest {
        lease_checkpoint: Some(LeaseCheckpointRequest {
            checkpoints: vec![
                LeaseCheckpoint { id: 1, remaining_ttl: 420 },
                LeaseCheckpoint { id: 99, remaining_ttl: 5 },
            ],
        }),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(table(&kv), vec![LeaseRecord { id: 1, ttl: 600, remaining_ttl: 420 }]);
}
