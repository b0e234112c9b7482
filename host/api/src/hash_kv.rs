//! HashKV of the active guest's keyspace, for Maintenance.HashKV and the corruption checks
//! alike. The bundled KV guest's is computed natively (`wasmraft_backup::hash_kv`: the guest's
//! own code over the same state), because over a large keyspace it needs more than a query's
//! fuel; any other KV guest answers through its `query` export.

use wasmraft_node::{NodeError, NodeHandle};
use wasmraft_proto::etcdserverpb::{HashKvRequest, HashKvResponse};
use wasmraft_proto::wasmraft::v1::{KvQuery, kv_query};

/// Whether the active guest is the one whose sha256 is `native` (the bundled KV guest, whose
/// code this binary also has natively).
pub fn is_active(node: &NodeHandle, native: Option<[u8; 32]>) -> bool {
    let Some(native) = native else { return false };
    node.guests().active_guest().is_some_and(|a| a.hash == hex::encode(native))
}

/// `native`: the sha256 of the guest whose HashKV runs natively (the bundled KV guest's).
/// A refusal (a compacted or future revision) is `NodeError::Guest` with etcd's text.
pub async fn hash_kv(
    node: &NodeHandle,
    native: Option<[u8; 32]>,
    req: HashKvRequest,
) -> Result<HashKvResponse, NodeError> {
    let bundled = native.map(hex::encode);
    let is_native = node.guests().active_guest().is_some_and(|a| Some(&a.hash) == bundled.as_ref());
    if is_native {
        return match node.reads().with_state(move |txn| wasmraft_backup::hash_kv(txn, &req)).await? {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(refused)) => Err(NodeError::Guest(refused)),
            Err(e) => Err(NodeError::Internal(e.to_string())),
        };
    }
    let query = KvQuery { request: Some(kv_query::Request::HashKv(req)) };
    let answer = node.reads().query(prost::Message::encode_to_vec(&query)).await?;
    prost::Message::decode(answer.as_slice())
        .map_err(|e| NodeError::Internal(format!("the guest's HashKVResponse does not decode: {e}")))
}
