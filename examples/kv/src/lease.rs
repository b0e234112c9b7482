//! Leases as state: etcd's lessor minus its clocks (`lease/lessor.go` Grant, Revoke,
//! Checkpoint, Attach, Detach, and the store side of TimeToLive).
//!
//! What a lease *is* — its id, the TTL it was granted with, the remaining TTL last checkpointed,
//! the keys attached to it — is replicated state and lives here, so every member agrees on it and
//! a revoke deletes the same keys everywhere at the same revision. *When* a lease expires is the
//! host's business (its lessor tracks deadlines and has the leader propose a revoke), because a
//! guest has no clock and must not have one.
//!
//! The minimum TTL (derived from the election timeout) is applied by the host before it proposes
//! a grant: it is a property of the member's configuration, not of the state, and etcd clamps
//! the TTL it is given in the same way before recording it.

use prost::Message;
use wasmraft_guest_sdk::{ReadStore, Store, prefix_end};
use wasmraft_proto::etcdserverpb::{
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use wasmraft_proto::wasmraft::v1::{LeaseRecord, LeaseTableResponse};

use crate::errors::{LEASE_EXISTS, LEASE_NOT_FOUND, LEASE_TTL_TOO_LARGE, corrupt};
use crate::layout::{LEASES, Span, lease_item_key, lease_key, lease_keys_prefix};
use crate::meta::current_revision;
use crate::range::header;
use crate::write::WriteTxn;

/// etcd's `lease.NoLease`.
pub const NO_LEASE: i64 = 0;

/// etcd's `lease.MaxLeaseTTL` (seconds): a grant asking for more is refused.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Whether lease `id` is granted (and not revoked or expired).
pub fn exists(store: &dyn ReadStore, id: i64) -> bool {
    store.get(&lease_key(id)).is_some()
}

fn record(store: &dyn ReadStore, id: i64) -> Result<Option<LeaseRecord>, String> {
    store
        .get(&lease_key(id))
        .map(|bytes| LeaseRecord::decode(bytes.as_slice()).map_err(|e| corrupt(format!("lease {id:x}: {e}"))))
        .transpose()
}

/// etcd's `applierV3backend.LeaseGrant`: records the lease. The id is never 0 (the host picks
/// one when the client leaves it to the server), but a command could still carry 0, and etcd's
/// lessor answers that with "lease not found".
pub fn grant(store: &mut dyn Store, req: &LeaseGrantRequest) -> Result<LeaseGrantResponse, String> {
    if req.id == NO_LEASE {
        return Err(LEASE_NOT_FOUND.into());
    }
    if req.ttl > MAX_LEASE_TTL {
        return Err(LEASE_TTL_TOO_LARGE.into());
    }
    if exists(&*store, req.id) {
        return Err(LEASE_EXISTS.into());
    }
    let rec = LeaseRecord { id: req.id, ttl: req.ttl, remaining_ttl: 0 };
    store.put(&lease_key(req.id), &rec.encode_to_vec());
    Ok(LeaseGrantResponse {
        header: header(current_revision(&*store)?),
        id: req.id,
        ttl: req.ttl,
        error: String::new(),
    })
}

/// etcd's `lessor.Revoke`: deletes every attached key, in key order, in one write transaction
/// (one revision, a DELETE event each), and the lease with them.
pub fn revoke(store: &mut dyn Store, req: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse, String> {
    if !exists(&*store, req.id) {
        return Err(LEASE_NOT_FOUND.into());
    }
    let keys = attached_keys(&*store, req.id);
    let mut write = WriteTxn::begin(store)?;
    for key in keys {
        write.delete_range(&Span::Single(key), false)?;
    }
    let revision = write.finish();
    store.delete(&lease_key(req.id));
    Ok(LeaseRevokeResponse { header: header(revision) })
}

/// etcd's `applierV3backend.LeaseCheckpoint`: records each lease's remaining TTL, so a new
/// leader restores the deadline rather than the full TTL. Unknown leases are skipped, as etcd's
/// lessor skips them (one may have been revoked after the checkpoint was proposed).
pub fn checkpoint(store: &mut dyn Store, req: &LeaseCheckpointRequest) -> Result<LeaseCheckpointResponse, String> {
    for cp in &req.checkpoints {
        if let Some(mut rec) = record(&*store, cp.id)? {
            rec.remaining_ttl = cp.remaining_ttl;
            store.put(&lease_key(cp.id), &rec.encode_to_vec());
        }
    }
    Ok(LeaseCheckpointResponse { header: header(current_revision(&*store)?) })
}

/// Keeps the `K/` table in step with a key's `lease` field: called by every write to a key
/// with the lease it had (`NO_LEASE` when it did not exist) and the lease it has now.
pub fn move_key(store: &mut dyn Store, key: &[u8], from: i64, to: i64) {
    if from == to {
        return;
    }
    if from != NO_LEASE {
        store.delete(&lease_item_key(from, key));
    }
    if to != NO_LEASE {
        store.put(&lease_item_key(to, key), &[]);
    }
}

/// The keys attached to lease `id`, in key order.
fn attached_keys(store: &dyn ReadStore, id: i64) -> Vec<Vec<u8>> {
    let prefix = lease_keys_prefix(id);
    let mut keys = Vec::new();
    for_each_under(store, &prefix, |stored, _| keys.push(stored[prefix.len()..].to_vec()));
    keys
}

/// TimeToLive's store side: the granted TTL and, when asked, the attached keys (in key order;
/// etcd lists them in its map's random order). `ttl` is left for the host, whose lessor knows
/// the deadline; the header carries the store's revision.
pub fn time_to_live(store: &dyn ReadStore, req: &LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse, String> {
    let rec = record(store, req.id)?.ok_or_else(|| LEASE_NOT_FOUND.to_string())?;
    Ok(LeaseTimeToLiveResponse {
        header: header(current_revision(store)?),
        id: rec.id,
        ttl: 0,
        granted_ttl: rec.ttl,
        keys: if req.keys { attached_keys(store, req.id) } else { Vec::new() },
    })
}

/// Every lease the store holds, in id order, for the host's lessor (at start, after a snapshot).
pub fn table(store: &dyn ReadStore) -> Result<LeaseTableResponse, String> {
    let mut leases = Vec::new();
    let mut bad = None;
    for_each_under(store, LEASES, |stored, bytes| match LeaseRecord::decode(bytes) {
        Ok(rec) => leases.push(rec),
        Err(e) => bad = Some(corrupt(format!("lease record {stored:?}: {e}"))),
    });
    match bad {
        Some(e) => Err(e),
        None => Ok(LeaseTableResponse { leases }),
    }
}

/// Every stored pair under `prefix`, in key order, a page at a time (the SDK's `scan_prefix` is
/// ambiguous on `&dyn ReadStore` while the trait is in scope).
fn for_each_under(store: &dyn ReadStore, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8])) {
    let end = prefix_end(prefix);
    let mut start = prefix.to_vec();
    loop {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { return };
        start = crate::layout::successor(last);
        for (k, v) in &page {
            f(k, v);
        }
    }
}
