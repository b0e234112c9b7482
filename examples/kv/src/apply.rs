//! Decoding a replicated command and dispatching it, as etcd's `applierV3backend.Apply` does.

use prost::Message;
use wasmraft_guest_sdk::{ReadStore, Store};
use wasmraft_proto::etcdserverpb::{InternalRaftRequest, RangeRequest};
use wasmraft_proto::wasmraft::v1::{KvQuery, kv_query};

use crate::compact::compact;
use crate::delete::delete_range;
use crate::hash::hash_kv;
use crate::history::watch_history;
use crate::lease;
use crate::meta::View;
use crate::put::{Context, put};
use crate::range::range;
use crate::txn::txn;
use crate::write::WriteTxn;

/// Applies one encoded `InternalRaftRequest`; returns the encoded response message.
pub fn apply(store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
    let req = InternalRaftRequest::decode(command).map_err(|e| {
        format!("wasmraft: the etcd-kv guest cannot decode the command as an etcd InternalRaftRequest: {e}")
    })?;
    if let Some(r) = &req.range {
        let view = View::load(&*store)?;
        return Ok(range(&*store, r, view)?.encode_to_vec());
    }
    if let Some(p) = &req.put {
        let mut write = WriteTxn::begin(store)?;
        let resp = put(&mut write, p, Context::Standalone)?;
        write.finish();
        return Ok(resp.encode_to_vec());
    }
    if let Some(d) = &req.delete_range {
        let mut write = WriteTxn::begin(store)?;
        let resp = delete_range(&mut write, d)?;
        write.finish();
        return Ok(resp.encode_to_vec());
    }
    if let Some(t) = &req.txn {
        return Ok(txn(store, t)?.encode_to_vec());
    }
    if let Some(g) = &req.lease_grant {
        return Ok(lease::grant(store, g)?.encode_to_vec());
    }
    if let Some(r) = &req.lease_revoke {
        return Ok(lease::revoke(store, r)?.encode_to_vec());
    }
    if let Some(c) = &req.lease_checkpoint {
        return Ok(lease::checkpoint(store, c)?.encode_to_vec());
    }
    if let Some(c) = &req.compaction {
        return Ok(compact(store, c)?.encode_to_vec());
    }
    Err(match unsupported(&req) {
        Some(name) => format!("wasmraft: the etcd-kv guest does not support {name} yet"),
        None => "wasmraft: the etcd-kv guest got an InternalRaftRequest with no request in it".to_string(),
    })
}

/// Answers a read-only request: an encoded `wasmraft.v1.KvQuery` (hash, watch history, lease
/// reads) or, when none of its fields is set, an encoded etcd `RangeRequest` (see
/// `proto/wasmraft/v1/kv_query.proto` for why the two cannot be confused).
pub fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
    let envelope = KvQuery::decode(request).map_err(|e| {
        format!("wasmraft: the etcd-kv guest cannot decode the query as a KvQuery or an etcd RangeRequest: {e}")
    })?;
    match envelope.request {
        Some(kv_query::Request::HashKv(r)) => Ok(hash_kv(store, &r)?.encode_to_vec()),
        Some(kv_query::Request::WatchHistory(r)) => Ok(watch_history(store, &r)?.encode_to_vec()),
        Some(kv_query::Request::LeaseTimeToLive(r)) => Ok(lease::time_to_live(store, &r)?.encode_to_vec()),
        Some(kv_query::Request::LeaseTable(_)) => Ok(lease::table(store)?.encode_to_vec()),
        None => {
            let req = RangeRequest::decode(request).map_err(|e| {
                format!("wasmraft: the etcd-kv guest cannot decode the query as an etcd RangeRequest: {e}")
            })?;
            let view = View::load(store)?;
            Ok(range(store, &req, view)?.encode_to_vec())
        }
    }
}

/// The name (the `InternalRaftRequest` field) of a request kind this guest does not serve.
fn unsupported(req: &InternalRaftRequest) -> Option<&'static str> {
    let kinds = [
        ("v2", req.v2.is_some()),
        ("alarm", req.alarm.is_some()),
        ("auth_enable", req.auth_enable.is_some()),
        ("auth_disable", req.auth_disable.is_some()),
        ("authenticate", req.authenticate.is_some()),
        ("auth_user_add", req.auth_user_add.is_some()),
        ("auth_user_delete", req.auth_user_delete.is_some()),
        ("auth_user_get", req.auth_user_get.is_some()),
        ("auth_user_change_password", req.auth_user_change_password.is_some()),
        ("auth_user_grant_role", req.auth_user_grant_role.is_some()),
        ("auth_user_revoke_role", req.auth_user_revoke_role.is_some()),
        ("auth_user_list", req.auth_user_list.is_some()),
        ("auth_role_list", req.auth_role_list.is_some()),
        ("auth_role_add", req.auth_role_add.is_some()),
        ("auth_role_delete", req.auth_role_delete.is_some()),
        ("auth_role_get", req.auth_role_get.is_some()),
        ("auth_role_grant_permission", req.auth_role_grant_permission.is_some()),
        ("auth_role_revoke_permission", req.auth_role_revoke_permission.is_some()),
    ];
    kinds.iter().find(|(_, set)| *set).map(|(name, _)| *name)
}
