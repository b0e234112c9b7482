//! The history language of `fixtures/etcd_hash/history.txt` (see its header), applied through
//! the guest: `fixtures/etcd_hash/record.sh` runs the same lines against real etcd.

use wasmraft_proto::etcdserverpb::*;

use crate::common::*;

/// One line of a history.
#[derive(Debug, Clone)]
pub enum Step {
    Command(Box<InternalRaftRequest>),
    /// `record`: compare with what etcd answered at this point.
    Record,
}

/// The steps of a history text; panics on a line it does not know (the text is a fixture).
pub fn parse(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let req = |r: InternalRaftRequest| Step::Command(Box::new(r));
        let step = match words.as_slice() {
            ["record"] => Step::Record,
            ["put", ..] | ["del", ..] | ["del-from", ..] => req(single(&words)),
            ["txn", rest @ ..] => {
                let ops = rest
                    .split(|w| *w == "|")
                    .map(|op| match op_of(op) {
                        Some(o) => o,
                        None => panic!("bad txn op {op:?} in {line:?}"),
                    })
                    .collect();
                req(InternalRaftRequest {
                    txn: Some(TxnRequest { success: ops, ..Default::default() }),
                    ..Default::default()
                })
            }
            ["grant", id, ttl] => req(InternalRaftRequest {
                lease_grant: Some(LeaseGrantRequest { id: num(id), ttl: num(ttl) }),
                ..Default::default()
            }),
            ["revoke", id] => req(InternalRaftRequest {
                lease_revoke: Some(LeaseRevokeRequest { id: num(id) }),
                ..Default::default()
            }),
            ["compact", rev] => req(InternalRaftRequest {
                compaction: Some(CompactionRequest { revision: num(rev), physical: true }),
                ..Default::default()
            }),
            _ => panic!("unknown history line {line:?}"),
        };
        steps.push(step);
    }
    steps
}

fn num(w: &str) -> i64 {
    w.parse().unwrap_or_else(|e| panic!("{w:?}: {e}"))
}

fn single(words: &[&str]) -> InternalRaftRequest {
    match words {
        ["put", key, value] => InternalRaftRequest { put: Some(put_req(key, value)), ..Default::default() },
        ["put", key, value, lease] => InternalRaftRequest {
            put: Some(PutRequest { lease: num(lease), ..put_req(key, value) }),
            ..Default::default()
        },
        ["del", key] => InternalRaftRequest { delete_range: Some(del(key, "")), ..Default::default() },
        ["del", key, end] => InternalRaftRequest { delete_range: Some(del(key, end)), ..Default::default() },
        ["del-from"] => InternalRaftRequest { delete_range: Some(del("", "\0")), ..Default::default() },
        ["del-from", key] => InternalRaftRequest { delete_range: Some(del(key, "\0")), ..Default::default() },
        _ => panic!("bad command {words:?}"),
    }
}

fn del(key: &str, end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest { key: key.into(), range_end: end.into(), prev_kv: false }
}

fn op_of(words: &[&str]) -> Option<RequestOp> {
    Some(match words {
        ["put", key, value] => op_put(key, value),
        ["del", key] => op_delete(key, "", false),
        _ => return None,
    })
}
