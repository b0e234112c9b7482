//! The etcd requests clients send, decoded with prost as tonic decodes them, then checked with
//! the host's own request validation (`host/api/src/validate.rs`) where the host has one.
//!
//! Input: one byte choosing the message type, then the message bytes. Every message that
//! decodes must re-encode to bytes that decode to the same message, with `encoded_len` right.
//! KV requests go through `validate::check_*`; for a Txn, the put/delete overlap check is
//! compared with a naive implementation of etcd's `checkIntervals` (lists instead of the
//! range map), and nesting is bounded by prost's recursion limit (the validator recurses).

use prost::Message;
use wasmraft_api::validate;
use wasmraft_proto::etcdserverpb::{self as pb, RequestOp, request_op};
use wasmraft_proto::{authpb, mvccpb, v3electionpb, v3lockpb};

/// etcd's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let m = M::decode(bytes).ok()?;
    let b = m.encode_to_vec();
    assert_eq!(b.len(), m.encoded_len(), "encoded_len");
    let back = M::decode(b.as_slice()).expect("our own encoding decodes");
    assert_eq!(back, m, "round trip");
    Some(m)
}

pub fn grpc_requests(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else { return };
    match kind % 24 {
        0 => {
            if let Some(r) = round_trip::<pb::RangeRequest>(bytes) {
                let _ = validate::check_range(&r);
            }
        }
        1 => {
            if let Some(r) = round_trip::<pb::PutRequest>(bytes) {
                let _ = validate::check_put(&r);
            }
        }
        2 => {
            if let Some(r) = round_trip::<pb::DeleteRangeRequest>(bytes) {
                let _ = validate::check_delete(&r);
            }
        }
        3 => {
            if let Some(t) = round_trip::<pb::TxnRequest>(bytes) {
                check_txn(&t);
            }
        }
        4 => drop(round_trip::<pb::CompactionRequest>(bytes)),
        5 => drop(round_trip::<pb::LeaseGrantRequest>(bytes)),
        6 => drop(round_trip::<pb::LeaseRevokeRequest>(bytes)),
        7 => drop(round_trip::<pb::LeaseKeepAliveRequest>(bytes)),
        8 => drop(round_trip::<pb::LeaseTimeToLiveRequest>(bytes)),
        9 => drop(round_trip::<pb::WatchRequest>(bytes)),
        10 => drop(round_trip::<pb::AuthenticateRequest>(bytes)),
        11 => drop(round_trip::<pb::AuthUserAddRequest>(bytes)),
        12 => drop(round_trip::<pb::AuthRoleGrantPermissionRequest>(bytes)),
        13 => drop(round_trip::<pb::AuthRoleRevokePermissionRequest>(bytes)),
        14 => drop(round_trip::<pb::MemberAddRequest>(bytes)),
        15 => drop(round_trip::<pb::MemberUpdateRequest>(bytes)),
        16 => drop(round_trip::<pb::MoveLeaderRequest>(bytes)),
        17 => drop(round_trip::<pb::AlarmRequest>(bytes)),
        18 => drop(round_trip::<pb::HashKvRequest>(bytes)),
        19 => drop(round_trip::<v3lockpb::LockRequest>(bytes)),
        20 => drop(round_trip::<v3electionpb::CampaignRequest>(bytes)),
        21 => drop(round_trip::<v3electionpb::ProclaimRequest>(bytes)),
        // What the host wraps every write in, and what guests answer with.
        22 => drop(round_trip::<pb::InternalRaftRequest>(bytes)),
        _ => {
            drop(round_trip::<mvccpb::Event>(bytes));
            drop(round_trip::<authpb::Role>(bytes));
        }
    }
}

fn check_txn(t: &pb::TxnRequest) {
    // prost refuses more than 100 levels of nesting; a txn level is two (TxnRequest, RequestOp).
    assert!(depth(t) <= 51, "prost let a txn {} deep through", depth(t));
    let got = validate::check_txn(t, MAX_TXN_OPS);
    // With the count and key checks passing, the outcome is the overlap check's alone, which a
    // naive version must agree with.
    if got.is_ok() || got.as_ref().err().map(|e| e.message) == Some(DUPLICATE) {
        let naive = naive_intervals(&t.success).is_ok() && naive_intervals(&t.failure).is_ok();
        assert_eq!(got.is_ok(), naive, "check_txn {got:?}, naive checkIntervals ok = {naive}");
    }
}

const DUPLICATE: &str = "etcdserver: duplicate key given in txn request";

fn depth(t: &pb::TxnRequest) -> usize {
    1 + t
        .success
        .iter()
        .chain(&t.failure)
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestTxn(t)) => Some(depth(t)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// A delete's keys as etcd's interval tree sees them: `[key, key+"\0")` for one key, else
/// `[key, range_end)` compared as plain byte strings (empty when `end <= start`).
fn deleted(d: &pb::DeleteRangeRequest) -> (Vec<u8>, Vec<u8>) {
    if d.range_end.is_empty() {
        let mut end = d.key.clone();
        end.push(0);
        (d.key.clone(), end)
    } else {
        (d.key.clone(), d.range_end.clone())
    }
}

fn in_any(dels: &[(Vec<u8>, Vec<u8>)], k: &[u8]) -> bool {
    dels.iter().any(|(s, e)| s.as_slice() <= k && k < e.as_slice())
}

type Puts = Vec<Vec<u8>>;
type Dels = Vec<(Vec<u8>, Vec<u8>)>;

/// etcd 3.4's `checkIntervals`, written as plainly as possible.
fn naive_intervals(ops: &[RequestOp]) -> Result<(Puts, Dels), ()> {
    let mut dels: Dels = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(deleted(d)),
            _ => None,
        })
        .collect();
    let mut puts: Puts = Vec::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else { continue };
        let (then_puts, then_dels) = naive_intervals(&t.success)?;
        let (else_puts, else_dels) = naive_intervals(&t.failure)?;
        for k in &then_puts {
            if puts.contains(k) || in_any(&dels, k) {
                return Err(());
            }
            puts.push(k.clone());
        }
        for k in &else_puts {
            if (puts.contains(k) && !then_puts.contains(k)) || in_any(&dels, k) {
                return Err(());
            }
            puts.push(k.clone());
        }
        dels.extend(then_dels);
        dels.extend(else_dels);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else { continue };
        if puts.contains(&p.key) || in_any(&dels, &p.key) {
            return Err(());
        }
        puts.push(p.key.clone());
    }
    Ok((puts, dels))
}
