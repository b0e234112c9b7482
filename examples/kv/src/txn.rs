//! Txn: etcd's `applierV3backend.Txn`, in etcd's order:
//! 1. every compare — of the transaction and of each nested transaction on the taken branches —
//!    is evaluated against the store as it was *before* the transaction ([`Path`]);
//! 2. puts on the taken branches are checked (ignore_* needs the key to exist, a lease must
//!    exist), then ranges (revision not future, not compacted), all before any write;
//! 3. the taken operations run in order in one write transaction: later operations see earlier
//!    writes, all writes share one main revision with increasing sub revisions;
//! 4. the header revision is the new revision, or the old one if nothing changed.

use wasmraft_guest_sdk::{ReadStore, Store};
use wasmraft_proto::etcdserverpb::request_op::Request;
use wasmraft_proto::etcdserverpb::response_op::Response;
use wasmraft_proto::etcdserverpb::{RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse};

use crate::compare;
use crate::delete::delete_range;
use crate::errors::{COMPACTED, FUTURE_REV, KEY_NOT_FOUND, LEASE_NOT_FOUND};
use crate::lease::{self, NO_LEASE};
use crate::meta::View;
use crate::put::{Context, put};
use crate::range::{header, range};
use crate::read::get_live;
use crate::write::WriteTxn;

/// Which branch a transaction takes, and the paths of the nested transactions on it (one per
/// `request_txn` operation of that branch, in order).
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

impl Path {
    fn branch<'t>(&self, txn: &'t TxnRequest) -> &'t [RequestOp] {
        if self.succeeded { &txn.success } else { &txn.failure }
    }
}

pub fn txn(store: &mut dyn Store, req: &TxnRequest) -> Result<TxnResponse, String> {
    let view = View::load(&*store)?;
    let path = compare_to_path(&*store, req, view)?;
    if !is_read_only(req) {
        check_requests(req, &path, &mut |op| check_put(&*store, op))?;
    }
    check_requests(req, &path, &mut |op| check_range(op, view))?;

    let mut write = WriteTxn::begin(store)?;
    let responses = apply(&mut write, req, &path)?;
    // etcd's metricsTxnWrite.End: a transaction is one that ran more than one operation.
    // (etcd also counts its compares, evaluated in a read transaction of their own, as
    // ranges there; they are not counted here.)
    let operations = write.writes() + ranges_taken(req, &path);
    let revision = write.finish();
    if operations > 1 {
        store.metric_add(crate::write::TXN_TOTAL, 1);
    }
    Ok(TxnResponse { header: header(revision), succeeded: path.succeeded, responses })
}

fn compare_to_path(store: &dyn ReadStore, txn: &TxnRequest, view: View) -> Result<Path, String> {
    let mut succeeded = true;
    for c in &txn.compare {
        if !compare::holds(store, c, view)? {
            succeeded = false;
            break;
        }
    }
    let ops = if succeeded { &txn.success } else { &txn.failure };
    let mut nested = Vec::new();
    for op in ops {
        if let Some(Request::RequestTxn(inner)) = &op.request {
            nested.push(compare_to_path(store, inner, view)?);
        }
    }
    Ok(Path { succeeded, nested })
}

/// etcd's `isTxnReadonly`: only range operations directly in either branch (a nested
/// transaction counts as a write, as in etcd).
fn is_read_only(txn: &TxnRequest) -> bool {
    txn.success.iter().chain(&txn.failure).all(|op| matches!(op.request, Some(Request::RequestRange(_))))
}

/// Runs `check` on every non-transaction operation on the taken branches.
fn check_requests(
    txn: &TxnRequest,
    path: &Path,
    check: &mut dyn FnMut(&RequestOp) -> Result<(), String>,
) -> Result<(), String> {
    let mut nested = path.nested.iter();
    for op in path.branch(txn) {
        match &op.request {
            Some(Request::RequestTxn(inner)) => {
                let inner_path = nested.next().ok_or_else(missing_path)?;
                check_requests(inner, inner_path, check)?;
            }
            _ => check(op)?,
        }
    }
    Ok(())
}

/// Range operations on the taken branches, nested transactions included.
fn ranges_taken(txn: &TxnRequest, path: &Path) -> i64 {
    let mut nested = path.nested.iter();
    let mut ranges = 0;
    for op in path.branch(txn) {
        match &op.request {
            Some(Request::RequestRange(_)) => ranges += 1,
            Some(Request::RequestTxn(inner)) => ranges += nested.next().map_or(0, |p| ranges_taken(inner, p)),
            _ => {}
        }
    }
    ranges
}

fn missing_path() -> String {
    "wasmraft: etcd-kv txn path does not match the request".into()
}

/// etcd's `checkRequestPut`, against the store before the transaction.
fn check_put(store: &dyn ReadStore, op: &RequestOp) -> Result<(), String> {
    let Some(Request::RequestPut(p)) = &op.request else {
        return Ok(());
    };
    if (p.ignore_value || p.ignore_lease) && get_live(store, &p.key)?.is_none() {
        return Err(KEY_NOT_FOUND.into());
    }
    if p.lease != NO_LEASE && !lease::exists(store, p.lease) {
        return Err(LEASE_NOT_FOUND.into());
    }
    Ok(())
}

/// etcd's `checkRequestRange`. Unlike a plain range, a negative revision is not "current" here:
/// it is below the compacted revision (-1 before any compaction), as in etcd.
fn check_range(op: &RequestOp, view: View) -> Result<(), String> {
    let Some(Request::RequestRange(r)) = &op.request else {
        return Ok(());
    };
    match r.revision {
        0 => Ok(()),
        rev if rev > view.current => Err(FUTURE_REV.into()),
        rev if rev < view.compacted => Err(COMPACTED.into()),
        _ => Ok(()),
    }
}

fn apply(write: &mut WriteTxn<'_>, txn: &TxnRequest, path: &Path) -> Result<Vec<ResponseOp>, String> {
    let mut nested = path.nested.iter();
    let mut responses = Vec::new();
    for op in path.branch(txn) {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range(write.store(), r, write.view()?)?)),
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(put(write, p, Context::InTxn)?)),
            Some(Request::RequestDeleteRange(d)) => Some(Response::ResponseDeleteRange(delete_range(write, d)?)),
            Some(Request::RequestTxn(inner)) => {
                let inner_path = nested.next().ok_or_else(missing_path)?;
                let responses = apply(write, inner, inner_path)?;
                // etcd never sets a nested transaction's header revision: it stays 0.
                Some(Response::ResponseTxn(TxnResponse {
                    header: Some(ResponseHeader::default()),
                    succeeded: inner_path.succeeded,
                    responses,
                }))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(responses)
}
