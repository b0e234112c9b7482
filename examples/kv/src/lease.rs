//! Lease lookups. Leases are a later issue: for now the table is always empty, so any put that
//! names a lease fails as etcd fails for a lease it does not hold. The lessor will only have to
//! write `L/<id>` records; puts already look there.

use wasmraft_guest_sdk::ReadStore;

use crate::layout::lease_key;

/// etcd's `lease.NoLease`.
pub const NO_LEASE: i64 = 0;

/// Whether lease `id` is granted (and not revoked or expired).
pub fn exists(store: &dyn ReadStore, id: i64) -> bool {
    store.get(&lease_key(id)).is_some()
}

/// TimeToLive's store side (granted TTL, attached keys). Being written in the lease work of
/// this issue.
pub fn time_to_live(
    _store: &dyn ReadStore,
    _req: &wasmraft_proto::etcdserverpb::LeaseTimeToLiveRequest,
) -> Result<wasmraft_proto::etcdserverpb::LeaseTimeToLiveResponse, String> {
    Err("wasmraft: the etcd-kv guest does not answer lease TimeToLive yet".to_string())
}

/// Every lease the store holds, for the host's lessor. Being written in the lease work of this
/// issue.
pub fn table(_store: &dyn ReadStore) -> Result<wasmraft_proto::wasmraft::v1::LeaseTableResponse, String> {
    Err("wasmraft: the etcd-kv guest does not answer the lease table yet".to_string())
}
