//! The KV calls the put, range and txn-put workloads make, over either transport: etcd's gRPC
//! `KV` service, or (`--gateway`) the same requests as etcd's JSON gateway takes them — proto
//! field names, bytes as base64, fields at their default left out, as grpc-gateway's
//! jsonpb does. A workload builds etcd's request once and does not know which way it goes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use wasmraft_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, kv_client::KvClient, request_op};

use super::gateway::{self, GatewayError};
use super::runner::{self, Failure};
use super::{KvArgs, Transport};
use wasmraft_client::{AuthedChannel, CliError};

/// One client's way to the KV service. Cheap to clone (a request clones it).
#[derive(Clone)]
pub enum Kv {
    Grpc(KvClient<AuthedChannel>),
    Gateway(gateway::Conn),
}

/// A failed KV call, counted by its text.
pub enum KvError {
    Grpc(tonic::Status),
    Gateway(GatewayError),
}

impl Failure for KvError {
    fn text(&self) -> String {
        match self {
            KvError::Grpc(s) => s.text(),
            KvError::Gateway(e) => e.to_string(),
        }
    }
}

impl Kv {
    pub async fn put(self, request: PutRequest) -> Result<(), KvError> {
        match self {
            Kv::Grpc(mut kv) => kv.put(request).await.map(drop).map_err(KvError::Grpc),
            Kv::Gateway(conn) => post(&conn, "/v3/kv/put", put_json(&request)).await,
        }
    }

    pub async fn range(self, request: RangeRequest) -> Result<(), KvError> {
        match self {
            Kv::Grpc(mut kv) => kv.range(request).await.map(drop).map_err(KvError::Grpc),
            Kv::Gateway(conn) => post(&conn, "/v3/kv/range", range_json(&request)).await,
        }
    }

    pub async fn txn(self, request: TxnRequest) -> Result<(), KvError> {
        match self {
            Kv::Grpc(mut kv) => kv.txn(request).await.map(drop).map_err(KvError::Grpc),
            Kv::Gateway(conn) => match txn_json(&request) {
                Ok(body) => post(&conn, "/v3/kv/txn", body).await,
                Err(e) => Err(KvError::Gateway(GatewayError::NotEtcd(e))),
            },
        }
    }
}

async fn post(conn: &gateway::Conn, path: &'static str, body: Value) -> Result<(), KvError> {
    conn.post(path, body.to_string().into_bytes()).await.map(drop).map_err(KvError::Gateway)
}

/// `n` clients (`--clients`) over `--conns` connections of the transport `--gateway` picks.
pub async fn clients(a: &KvArgs, n: usize) -> Result<Vec<Kv>, CliError> {
    match a.transport() {
        Transport::Grpc => runner::clients(&a.common, n, |c| Kv::Grpc(KvClient::new(c))).await,
        Transport::Gateway => {
            let conns = gateway::connect(&a.common.conn, a.common.conns).await?;
            Ok((0..n).map(|i| Kv::Gateway(conns[i % conns.len()].clone())).collect())
        }
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(BASE64.encode(bytes))
}

/// Adds `key: value` unless the value is its field's default (jsonpb's EmitDefaults off).
fn set(m: &mut Map<String, Value>, key: &str, value: Value, default: bool) {
    if !default {
        m.insert(key.into(), value);
    }
}

fn put_object(r: &PutRequest) -> Map<String, Value> {
    let mut m = Map::new();
    set(&mut m, "key", b64(&r.key), r.key.is_empty());
    set(&mut m, "value", b64(&r.value), r.value.is_empty());
    // 64-bit integers as strings, as jsonpb writes them.
    set(&mut m, "lease", json!(r.lease.to_string()), r.lease == 0);
    set(&mut m, "prev_kv", json!(true), !r.prev_kv);
    set(&mut m, "ignore_value", json!(true), !r.ignore_value);
    set(&mut m, "ignore_lease", json!(true), !r.ignore_lease);
    m
}

pub fn put_json(r: &PutRequest) -> Value {
    Value::Object(put_object(r))
}

/// The fields the bench sets (key, range_end, limit, revision, serializable, keys_only,
/// count_only); sorting and the revision filters are not used by any workload.
pub fn range_json(r: &RangeRequest) -> Value {
    let mut m = Map::new();
    set(&mut m, "key", b64(&r.key), r.key.is_empty());
    set(&mut m, "range_end", b64(&r.range_end), r.range_end.is_empty());
    set(&mut m, "limit", json!(r.limit.to_string()), r.limit == 0);
    set(&mut m, "revision", json!(r.revision.to_string()), r.revision == 0);
    set(&mut m, "serializable", json!(true), !r.serializable);
    set(&mut m, "keys_only", json!(true), !r.keys_only);
    set(&mut m, "count_only", json!(true), !r.count_only);
    Value::Object(m)
}

/// A txn of puts (and ranges) without compares, as txn-put sends; anything else is not
/// expressed here, and says so rather than sending a different request.
pub fn txn_json(r: &TxnRequest) -> Result<Value, String> {
    if !r.compare.is_empty() {
        return Err("txn compares are not sent through the gateway by this tool".into());
    }
    let ops = |ops: &[RequestOp]| -> Result<Vec<Value>, String> {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => Ok(json!({ "request_put": put_json(p) })),
                Some(request_op::Request::RequestRange(g)) => Ok(json!({ "request_range": range_json(g) })),
                _ => Err("only puts and ranges in a txn are sent through the gateway by this tool".to_string()),
            })
            .collect()
    };
    let mut m = Map::new();
    let (success, failure) = (ops(&r.success)?, ops(&r.failure)?);
    set(&mut m, "success", Value::Array(success), r.success.is_empty());
    set(&mut m, "failure", Value::Array(failure), r.failure.is_empty());
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_as_grpc_gateway_marshals_them() {
        let put = PutRequest { key: b"foo".to_vec(), value: b"bar".to_vec(), ..Default::default() };
        assert_eq!(put_json(&put), json!({"key": "Zm9v", "value": "YmFy"}));
        let leased = PutRequest { key: b"k".to_vec(), lease: 7_587_868_011_563_150_088, ..Default::default() };
        assert_eq!(put_json(&leased), json!({"key": "aw==", "lease": "7587868011563150088"}));
        let range = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            serializable: true,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            range_json(&range),
            json!({"key": "YQ==", "range_end": "Yg==", "limit": "10", "serializable": true})
        );
        let txn = TxnRequest {
            success: vec![RequestOp { request: Some(request_op::Request::RequestPut(put.clone())) }],
            ..Default::default()
        };
        assert_eq!(txn_json(&txn).unwrap(), json!({"success": [{"request_put": {"key": "Zm9v", "value": "YmFy"}}]}));
        let compared = TxnRequest { compare: vec![Default::default()], ..txn };
        assert!(txn_json(&compared).is_err());
    }
}
