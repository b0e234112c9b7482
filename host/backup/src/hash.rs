//! etcd's HashKV of the bundled KV guest's keyspace, run natively: the guest's own code
//! (`wasmraft_kv_guest::hash_kv`) over the state database, as etcd hashes its backend's `key`
//! bucket. Inside the guest it is a query, bounded by the deployment's fuel per entry, and a
//! keyspace of a GiB or more needs more than that; natively it is bounded by nothing but the
//! keyspace, and gives the same value (the same code, deterministic).

use wasmraft_proto::etcdserverpb::{HashKvRequest, HashKvResponse};

use crate::BackupError;
use crate::store::TableStore;

/// What HashKV answers: the response, or etcd's refusal text (a compacted or future revision)
/// as the guest gives it.
pub fn hash_kv(
    txn: &redb::ReadTransaction,
    req: &HashKvRequest,
) -> Result<Result<HashKvResponse, String>, BackupError> {
    let store = TableStore::open(txn)?;
    let answer = wasmraft_kv_guest::hash_kv(&store, req);
    if let Some(e) = store.failure() {
        return Err(BackupError::Db(e.into()));
    }
    Ok(answer)
}
