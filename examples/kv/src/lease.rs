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
