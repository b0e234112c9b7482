//! Put: etcd's `applierV3backend.Put`.

use wasmraft_proto::etcdserverpb::{PutRequest, PutResponse};

use crate::errors::{KEY_NOT_FOUND, LEASE_NOT_FOUND};
use crate::lease::{self, NO_LEASE};
use crate::range::header;
use crate::write::WriteTxn;

/// Where a put runs. etcd checks the lease inside `Put` only for a standalone request; inside a
/// transaction its `checkRequests` pass did that (and the ignore_* checks) before any write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Standalone,
    InTxn,
}

pub fn put(txn: &mut WriteTxn<'_>, req: &PutRequest, context: Context) -> Result<PutResponse, String> {
    if context == Context::Standalone && req.lease != NO_LEASE && !lease::exists(txn.store(), req.lease) {
        return Err(LEASE_NOT_FOUND.into());
    }
    // The previous value, as this transaction sees it (its own earlier writes included).
    let state = txn.key(&req.key)?;
    let prev = &state.live;
    if (req.ignore_value || req.ignore_lease) && prev.is_none() {
        // Inside a transaction this is the case etcd's checks cannot see coming (the key was
        // deleted by an earlier operation of the same transaction); etcd panics there, we fail
        // the entry.
        return Err(KEY_NOT_FOUND.into());
    }
    let value = match (prev, req.ignore_value) {
        (Some(p), true) => p.value.clone(),
        _ => req.value.clone(),
    };
    let lease = match (prev, req.ignore_lease) {
        (Some(p), true) => p.lease,
        _ => req.lease,
    };
    let prev_kv = if req.prev_kv { prev.clone() } else { None };
    txn.put(&req.key, value, lease, state)?;
    Ok(PutResponse { header: header(txn.current()), prev_kv })
}
