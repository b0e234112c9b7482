//! A typed front end over the harness.

use prost::Message;
use wasmraft_guest_sdk::testing::Harness;
use wasmraft_kv_guest::KvGuest;
use wasmraft_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use wasmraft_proto::etcdserverpb::request_op::Request;
use wasmraft_proto::etcdserverpb::response_op::Response;
use wasmraft_proto::etcdserverpb::*;
use wasmraft_proto::mvccpb::{Event, KeyValue};

pub struct Kv {
    pub h: Harness<KvGuest>,
}

impl Kv {
    pub fn new() -> Self {
        Kv { h: Harness::new() }
    }

    pub fn apply_raw(&mut self, req: InternalRaftRequest) -> Result<Vec<u8>, String> {
        self.h.apply(&req.encode_to_vec())
    }

    pub fn put_req(&mut self, req: PutRequest) -> Result<PutResponse, String> {
        let bytes = self.apply_raw(InternalRaftRequest { put: Some(req), ..Default::default() })?;
        Ok(PutResponse::decode(bytes.as_slice()).expect("PutResponse"))
    }

    /// A plain put; returns the new revision.
    pub fn put(&mut self, key: &str, value: &str) -> i64 {
        let resp = self.put_req(put_req(key, value)).expect("put");
        resp.header.expect("header").revision
    }

    pub fn delete_req(&mut self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, String> {
        let bytes = self.apply_raw(InternalRaftRequest { delete_range: Some(req), ..Default::default() })?;
        Ok(DeleteRangeResponse::decode(bytes.as_slice()).expect("DeleteRangeResponse"))
    }

    pub fn delete(&mut self, key: &str, range_end: &str) -> DeleteRangeResponse {
        self.delete_req(DeleteRangeRequest { key: key.into(), range_end: range_end.into(), prev_kv: false })
            .expect("delete")
    }

    pub fn txn(&mut self, req: TxnRequest) -> Result<TxnResponse, String> {
        let bytes = self.apply_raw(InternalRaftRequest { txn: Some(req), ..Default::default() })?;
        Ok(TxnResponse::decode(bytes.as_slice()).expect("TxnResponse"))
    }

    pub fn compact(&mut self, revision: i64) -> Result<CompactionResponse, String> {
        let bytes = self.apply_raw(InternalRaftRequest {
            compaction: Some(CompactionRequest { revision, physical: false }),
            ..Default::default()
        })?;
        Ok(CompactionResponse::decode(bytes.as_slice()).expect("CompactionResponse"))
    }

    /// A range through `query` (the read path).
    pub fn range(&self, req: RangeRequest) -> Result<RangeResponse, String> {
        let bytes = self.h.query(&req.encode_to_vec())?;
        Ok(RangeResponse::decode(bytes.as_slice()).expect("RangeResponse"))
    }

    /// HashKV at `revision` (0: the current one).
    pub fn hash(&self, revision: i64) -> Result<HashKvResponse, String> {
        use wasmraft_proto::wasmraft::v1::{KvQuery, kv_query};
        let q = KvQuery { request: Some(kv_query::Request::HashKv(HashKvRequest { revision })) };
        let bytes = self.h.query(&q.encode_to_vec())?;
        Ok(HashKvResponse::decode(bytes.as_slice()).expect("HashKvResponse"))
    }

    /// A range through `apply` (a range proposed through raft) — must agree with `range`.
    pub fn range_applied(&mut self, req: RangeRequest) -> Result<RangeResponse, String> {
        let bytes = self.apply_raw(InternalRaftRequest { range: Some(req), ..Default::default() })?;
        Ok(RangeResponse::decode(bytes.as_slice()).expect("RangeResponse"))
    }

    pub fn get(&self, key: &str) -> Option<KeyValue> {
        let resp = self.range(RangeRequest { key: key.into(), ..Default::default() }).expect("get");
        assert!(resp.kvs.len() <= 1);
        resp.kvs.into_iter().next()
    }

    pub fn get_at(&self, key: &str, revision: i64) -> Result<Option<KeyValue>, String> {
        let resp = self.range(RangeRequest { key: key.into(), revision, ..Default::default() })?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Keys of a range, as strings.
    pub fn keys(&self, req: RangeRequest) -> Vec<String> {
        self.range(req).expect("range").kvs.iter().map(|kv| s(&kv.key)).collect()
    }

    /// The current revision, from a range's header.
    pub fn rev(&self) -> i64 {
        self.range(RangeRequest { key: b"\0".to_vec(), ..Default::default() })
            .expect("range")
            .header
            .expect("header")
            .revision
    }

    pub fn events(&self) -> Vec<Event> {
        self.h.events().iter().map(|(_, e)| Event::decode(e.as_slice()).expect("Event")).collect()
    }

    /// A snapshot of the raw keyspace, to check that failed entries change nothing.
    pub fn raw(&self) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
        self.h.store().data.clone()
    }
}

pub fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

pub fn range_req(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest { key: key.into(), range_end: range_end.into(), ..Default::default() }
}

pub fn mkv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> KeyValue {
    KeyValue { key: key.into(), value: value.into(), create_revision: create, mod_revision: modr, version, lease: 0 }
}

// Txn operation builders.

pub fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp { request: Some(Request::RequestPut(put_req(key, value))) }
}

pub fn op_put_req(req: PutRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestPut(req)) }
}

pub fn op_get(key: &str, range_end: &str) -> RequestOp {
    RequestOp { request: Some(Request::RequestRange(range_req(key, range_end))) }
}

pub fn op_range(req: RangeRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestRange(req)) }
}

pub fn op_delete(key: &str, range_end: &str, prev_kv: bool) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            prev_kv,
        })),
    }
}

pub fn op_txn(txn: TxnRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestTxn(txn)) }
}

pub fn cmp(key: &str, target: CompareTarget, result: CompareResult, union: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

pub fn cmp_version(key: &str, result: CompareResult, version: i64) -> Compare {
    cmp(key, CompareTarget::Version, result, TargetUnion::Version(version))
}

pub fn cmp_value(key: &str, result: CompareResult, value: &str) -> Compare {
    cmp(key, CompareTarget::Value, result, TargetUnion::Value(value.into()))
}

// Response accessors.

pub fn as_range(op: &ResponseOp) -> &RangeResponse {
    match &op.response {
        Some(Response::ResponseRange(r)) => r,
        other => panic!("expected a range response, got {other:?}"),
    }
}

pub fn as_put(op: &ResponseOp) -> &PutResponse {
    match &op.response {
        Some(Response::ResponsePut(r)) => r,
        other => panic!("expected a put response, got {other:?}"),
    }
}

pub fn as_delete(op: &ResponseOp) -> &DeleteRangeResponse {
    match &op.response {
        Some(Response::ResponseDeleteRange(r)) => r,
        other => panic!("expected a delete response, got {other:?}"),
    }
}

pub fn as_txn(op: &ResponseOp) -> &TxnResponse {
    match &op.response {
        Some(Response::ResponseTxn(r)) => r,
        other => panic!("expected a txn response, got {other:?}"),
    }
}

pub fn revision_of(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().expect("header").revision
}
