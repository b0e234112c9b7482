//! etcd's alarms (NOSPACE, CORRUPT) and its backend quota, host side.
//!
//! Alarms are cluster state, not guest semantics: they live in the state database (table
//! `alarms`, written by applied `Entry.alarm` entries, carried by raft snapshots), so every
//! member raises and clears them at the same index. While a NOSPACE alarm is active, the apply
//! thread refuses what etcd's `applierV3Capped` refuses — puts, txns with puts in a branch,
//! lease grants — with etcd's "database space exceeded", on every member alike; reads, deletes
//! and compactions still apply, which is how an operator frees space before disarming.
//!
//! Only a guest that speaks etcd's KV encodings (`etcd.v3.kv`) is capped: for another guest
//! the host cannot tell a write that grows the store from one that does not.
//!
//! The quota (`--quota-backend-bytes`) is checked where etcd checks it, before proposing
//! (v3rpc's quota interceptors): a put, txn or lease grant that would take the state database
//! past it proposes the NOSPACE alarm for this member and is refused.

use std::sync::RwLock;

use prost::Message as _;
use redb::{ReadableTable, WriteTransaction};
use wasmraft_proto::etcdserverpb::{
    AlarmMember, AlarmResponse, AlarmType, InternalRaftRequest, alarm_request::AlarmAction, request_op,
};

use crate::StateError;
use wasmraft_storage::tables::ALARMS;

/// etcd's DefaultQuotaBytes (2 GiB): the quota when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// etcd's MaxQuotaBytes (8 GiB): above it etcd warns at startup.
pub const MAX_QUOTA_BYTES: u64 = 8 << 30;
/// etcd's kvOverhead: the estimated bytes of a key's metadata in a put's cost.
const KV_OVERHEAD: u64 = 256;
/// etcd's leaseOverhead: a lease grant's cost.
const LEASE_OVERHEAD: u64 = 64;
/// The text etcd answers a capped write with (`ErrGRPCNoSpace`).
pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
/// The text etcd answers a write with while a CORRUPT alarm is active (`ErrCorrupt`).
pub const CORRUPT: &str = "etcdserver: corrupt cluster";

/// The quota in bytes `--quota-backend-bytes` asks for, logging as etcd does at startup: none
/// (`u64::MAX`) for a negative value, etcd's passthrough quota.
pub fn quota_bytes(flag: i64) -> u64 {
    let Ok(flag) = u64::try_from(flag) else {
        tracing::warn!("etcdserver: disabling backend quota");
        return u64::MAX;
    };
    if flag == 0 {
        tracing::info!(quota_size_bytes = DEFAULT_QUOTA_BYTES, "enabled backend quota with default value");
        return DEFAULT_QUOTA_BYTES;
    }
    if flag > MAX_QUOTA_BYTES {
        tracing::warn!(
            quota_size_bytes = flag,
            quota_maximum_size_bytes = MAX_QUOTA_BYTES,
            "quota exceeds the maximum value"
        );
    }
    tracing::info!(quota_size_bytes = flag, "enabled backend quota");
    flag
}

/// What a write request would add to the store, in etcd's quota accounting (`backendQuota.Cost`):
/// 0 for requests that do not grow it. `None` when `command` is not an `InternalRaftRequest`.
pub fn cost(command: &[u8]) -> Option<u64> {
    let req = InternalRaftRequest::decode(command).ok()?;
    Some(request_cost(&req))
}

fn request_cost(req: &InternalRaftRequest) -> u64 {
    let put_cost = |key: &[u8], value: &[u8]| KV_OVERHEAD + key.len() as u64 + value.len() as u64;
    if let Some(p) = &req.put {
        return put_cost(&p.key, &p.value);
    }
    if let Some(t) = &req.txn {
        // etcd's costTxn: the larger branch, counting the puts directly in it.
        let branch = |ops: &[wasmraft_proto::etcdserverpb::RequestOp]| -> u64 {
            ops.iter()
                .map(|op| match &op.request {
                    Some(request_op::Request::RequestPut(p)) => put_cost(&p.key, &p.value),
                    _ => 0,
                })
                .sum()
        };
        return branch(&t.success).max(branch(&t.failure));
    }
    if req.lease_grant.is_some() {
        return LEASE_OVERHEAD;
    }
    0
}

/// The active alarms, as the last applied batch left them.
#[derive(Default)]
pub struct Alarms {
    active: RwLock<Vec<AlarmMember>>,
}

impl Alarms {
    /// The alarms recorded in the state database.
    pub fn load(db: &redb::Database) -> Result<Alarms, StateError> {
        let txn = db.begin_write()?;
        let list = read(&txn)?;
        txn.abort()?;
        Ok(Alarms { active: RwLock::new(list) })
    }

    /// The active alarms, ordered by type then member.
    pub fn list(&self) -> Vec<AlarmMember> {
        self.active.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, list: Vec<AlarmMember>) {
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = list;
    }

    /// Whether writes are capped (a NOSPACE alarm is active).
    pub fn no_space(&self) -> bool {
        is_capped(&self.active.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Whether `list` holds a NOSPACE alarm.
pub fn is_capped(list: &[AlarmMember]) -> bool {
    list.iter().any(|a| a.alarm == AlarmType::Nospace as i32)
}

/// Whether `list` holds a CORRUPT alarm.
pub fn is_corrupt(list: &[AlarmMember]) -> bool {
    list.iter().any(|a| a.alarm == AlarmType::Corrupt as i32)
}

/// Whether a corrupt cluster refuses `command` (etcd's `applierV3Corrupt`: puts, deletes,
/// compactions, lease grants and revokes, and txns — those that write: etcd answers a read-only
/// txn without its applier, and reads go on).
pub fn refused_when_corrupt(command: &[u8]) -> bool {
    let Ok(req) = InternalRaftRequest::decode(command) else { return false };
    req.put.is_some()
        || req.delete_range.is_some()
        || req.compaction.is_some()
        || req.lease_grant.is_some()
        || req.lease_revoke.is_some()
        || req.txn.as_ref().is_some_and(txn_writes)
}

/// Whether a txn has a write in any branch, nested txns included (etcd's `isTxnReadonly`, negated).
fn txn_writes(t: &wasmraft_proto::etcdserverpb::TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match &op.request {
        Some(request_op::Request::RequestPut(_) | request_op::Request::RequestDeleteRange(_)) => true,
        Some(request_op::Request::RequestTxn(inner)) => txn_writes(inner),
        Some(request_op::Request::RequestRange(_)) | None => false,
    })
}

/// Whether a capped store refuses `command` (etcd's `applierV3Capped`: puts, txns with a put
/// in a branch, lease grants).
pub fn refused_when_capped(command: &[u8]) -> bool {
    match InternalRaftRequest::decode(command) {
        Ok(req) => request_cost(&req) > 0,
        Err(_) => false,
    }
}

/// The alarms a read transaction sees (a snapshot's consistent view; none when the table does
/// not exist yet).
pub fn read_in(txn: &redb::ReadTransaction) -> Result<Vec<AlarmMember>, StateError> {
    let table = match txn.open_table(ALARMS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in redb::ReadableTable::iter(&table)? {
        let (k, _) = item?;
        out.push(decode_key(k.value())?);
    }
    Ok(out)
}

/// Reads the alarms table (empty when it does not exist yet).
pub fn read(txn: &WriteTransaction) -> Result<Vec<AlarmMember>, StateError> {
    let table = txn.open_table(ALARMS)?;
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, _) = item?;
        out.push(decode_key(k.value())?);
    }
    Ok(out)
}

/// `alarm type (u32 BE) ‖ member id (u64 BE)`: table order is the order etcd lists by type.
fn key(a: &AlarmMember) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&(a.alarm as u32).to_be_bytes());
    k[4..].copy_from_slice(&a.member_id.to_be_bytes());
    k
}

fn decode_key(k: &[u8]) -> Result<AlarmMember, StateError> {
    let key: &[u8; 12] = k.try_into().map_err(|_| StateError::corrupt("alarm key", format!("{} bytes", k.len())))?;
    let alarm = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let member_id = u64::from_be_bytes([key[4], key[5], key[6], key[7], key[8], key[9], key[10], key[11]]);
    Ok(AlarmMember { alarm: alarm as i32, member_id })
}

/// Applies an alarm request inside the batch's transaction (etcd's `applierV3backend.Alarm`),
/// updating `list` (the batch's view) and the table. GET lists the alarms of the asked type (all
/// for NONE); ACTIVATE and DEACTIVATE answer with the alarm they changed, or nothing when it was
/// already so.
pub fn apply(
    txn: &WriteTransaction,
    list: &mut Vec<AlarmMember>,
    req: &wasmraft_proto::etcdserverpb::AlarmRequest,
) -> Result<AlarmResponse, redb::Error> {
    let member = AlarmMember { member_id: req.member_id, alarm: req.alarm };
    let mut resp = AlarmResponse::default();
    match AlarmAction::try_from(req.action) {
        Ok(AlarmAction::Get) => {
            resp.alarms =
                list.iter().filter(|a| req.alarm == AlarmType::None as i32 || a.alarm == req.alarm).cloned().collect();
        }
        Ok(AlarmAction::Activate) => {
            // etcd refuses to activate NONE (its alarm store has no such type).
            if req.alarm != AlarmType::None as i32 && !list.contains(&member) {
                txn.open_table(ALARMS)?.insert(key(&member).as_slice(), [].as_slice())?;
                tracing::warn!("alarm {} raised by peer {:x}", alarm_name(member.alarm), member.member_id);
                list.push(member);
                list.sort_by_key(key);
                resp.alarms.push(member);
            }
        }
        Ok(AlarmAction::Deactivate) => {
            if let Some(pos) = list.iter().position(|a| *a == member) {
                txn.open_table(ALARMS)?.remove(key(&member).as_slice())?;
                list.remove(pos);
                tracing::info!("alarm disarmed: {} on member {:x}", alarm_name(member.alarm), member.member_id);
                resp.alarms.push(member);
            }
        }
        Err(_) => {}
    }
    Ok(resp)
}

/// The alarm's name as etcd prints it (`NOSPACE`, `CORRUPT`).
pub fn alarm_name(alarm: i32) -> &'static str {
    AlarmType::try_from(alarm).map_or("UNKNOWN", |t| t.as_str_name())
}

/// An alarm as etcd's Status lists it in `errors` (gogoproto's compact text of AlarmMember).
pub fn status_text(a: &AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_proto::etcdserverpb::{AlarmRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest};

    #[test]
    fn costs_follow_etcd() {
        let put = InternalRaftRequest {
            put: Some(PutRequest { key: b"k".to_vec(), value: vec![0; 10], ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(cost(&put.encode_to_vec()), Some(256 + 11));
        let del = InternalRaftRequest { delete_range: Some(DeleteRangeRequest::default()), ..Default::default() };
        assert!(!refused_when_capped(&del.encode_to_vec()));
        let op = |v: usize| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: vec![0; v],
                ..Default::default()
            })),
        };
        let txn = InternalRaftRequest {
            txn: Some(TxnRequest { success: vec![op(1)], failure: vec![op(5), op(0)], ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(cost(&txn.encode_to_vec()), Some(2 * 257 + 5));
        let read_only = InternalRaftRequest { txn: Some(TxnRequest::default()), ..Default::default() };
        assert!(!refused_when_capped(&read_only.encode_to_vec()));
    }

    #[test]
    fn a_corrupt_cluster_refuses_what_etcds_corrupt_applier_refuses() {
        use wasmraft_proto::etcdserverpb::{CompactionRequest, LeaseRevokeRequest, RangeRequest};
        let refused = |r: InternalRaftRequest| refused_when_corrupt(&r.encode_to_vec());
        assert!(refused(InternalRaftRequest { put: Some(PutRequest::default()), ..Default::default() }));
        assert!(refused(InternalRaftRequest {
            delete_range: Some(DeleteRangeRequest::default()),
            ..Default::default()
        }));
        assert!(refused(InternalRaftRequest { compaction: Some(CompactionRequest::default()), ..Default::default() }));
        assert!(refused(InternalRaftRequest {
            lease_revoke: Some(LeaseRevokeRequest::default()),
            ..Default::default()
        }));
        let op = |r| RequestOp { request: Some(r) };
        let reads = TxnRequest {
            success: vec![op(request_op::Request::RequestRange(RangeRequest::default()))],
            ..Default::default()
        };
        assert!(!refused(InternalRaftRequest { txn: Some(reads.clone()), ..Default::default() }));
        let nested_delete = TxnRequest {
            failure: vec![op(request_op::Request::RequestTxn(TxnRequest {
                success: vec![op(request_op::Request::RequestDeleteRange(DeleteRangeRequest::default()))],
                ..Default::default()
            }))],
            ..reads
        };
        assert!(refused(InternalRaftRequest { txn: Some(nested_delete), ..Default::default() }));
        let alarm = |a: AlarmType| AlarmMember { member_id: 0, alarm: a as i32 };
        assert!(is_corrupt(&[alarm(AlarmType::Nospace), alarm(AlarmType::Corrupt)]));
        assert!(!is_corrupt(&[alarm(AlarmType::Nospace)]));
    }

    #[test]
    fn activate_get_deactivate() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("s.redb")).unwrap();
        let mut list = Vec::new();
        let txn = db.begin_write().unwrap();
        let req = |action: AlarmAction, member_id, alarm: AlarmType| AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        };
        let r = apply(&txn, &mut list, &req(AlarmAction::Activate, 7, AlarmType::Nospace)).unwrap();
        assert_eq!(r.alarms.len(), 1);
        assert!(apply(&txn, &mut list, &req(AlarmAction::Activate, 7, AlarmType::Nospace)).unwrap().alarms.is_empty());
        apply(&txn, &mut list, &req(AlarmAction::Activate, 3, AlarmType::Corrupt)).unwrap();
        assert!(is_capped(&list));
        assert_eq!(apply(&txn, &mut list, &req(AlarmAction::Get, 0, AlarmType::None)).unwrap().alarms.len(), 2);
        assert_eq!(
            apply(&txn, &mut list, &req(AlarmAction::Get, 0, AlarmType::Corrupt)).unwrap().alarms[0].member_id,
            3
        );
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        assert_eq!(read(&txn).unwrap(), list);
        let r = apply(&txn, &mut list, &req(AlarmAction::Deactivate, 7, AlarmType::Nospace)).unwrap();
        assert_eq!(r.alarms[0].member_id, 7);
        assert!(!is_capped(&list));
        assert_eq!(status_text(&list[0]), "memberID:3 alarm:CORRUPT ");
    }
}
