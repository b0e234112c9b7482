//! The request checks etcd's v3rpc layer makes before a request reaches raft
//! (`etcdserver/api/v3rpc/key.go` in etcd 3.4). Same checks, same order, same errors, so that a
//! request etcd refuses is refused here with the same status, and one etcd accepts is accepted.
//!
//! Everything here is a pure function of the request; the KV service maps the returned
//! [`EtcdError`] to a gRPC status.

use std::collections::{BTreeMap, HashSet};

use wasmraft_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, range_request::SortTarget, request_op,
};

use super::errors::{self, EtcdError};

/// etcd's `checkRangeRequest`, plus a check of the sort target.
///
/// The sort-target check is not in etcd 3.4: there an unknown target reaches the sorter as nil and
/// the server panics. etcd 3.6 refuses it with "etcdserver: invalid sort option"; we do the same.
/// An unknown sort *order* is accepted, as etcd 3.4 accepts it (it then does not sort); etcd 3.6
/// refuses that too, but no 3.4 client sends one and refusing it would be a 3.4 incompatibility.
pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(errors::EMPTY_KEY);
    }
    if SortTarget::try_from(r.sort_target).is_err() {
        return Err(errors::INVALID_SORT_OPTION);
    }
    Ok(())
}

/// etcd's `checkPutRequest`.
pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(errors::EMPTY_KEY);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(errors::VALUE_PROVIDED);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(errors::LEASE_PROVIDED);
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(errors::EMPTY_KEY);
    }
    Ok(())
}

/// Everything etcd's `kvServer.Txn` checks: the operation counts and keys of the whole tree
/// (`checkTxnRequest`), then the put/delete overlaps of each branch (`checkIntervals`). The
/// overlap check runs second, as in etcd, so that a request with too many operations is refused
/// before the more expensive check.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    check_txn_request(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

/// etcd's `checkTxnRequest`. A nested txn gets the parent's limit minus the parent's operation
/// count (never below zero: the parent's count was checked against its limit first).
///
/// Recursion is bounded by the decoder: prost refuses messages nested deeper than 100 levels, so
/// a txn tree is at most about 50 txns deep.
fn check_txn_request(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_txn_ops {
        return Err(errors::TOO_MANY_OPS);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(errors::EMPTY_KEY);
    }
    let nested_limit = max_txn_ops - ops;
    for op in r.success.iter().chain(&r.failure) {
        check_request_op(op, nested_limit)?;
    }
    Ok(())
}

/// etcd's `checkRequestOp`: an op with no request in it is "key not found", as in etcd.
fn check_request_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => check_range(r),
        Some(request_op::Request::RequestPut(r)) => check_put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => check_delete(r),
        Some(request_op::Request::RequestTxn(r)) => check_txn_request(r, max_txn_ops),
        None => Err(errors::KEY_NOT_FOUND),
    }
}

/// The keys deleted by a set of delete operations, as disjoint half-open byte ranges
/// (start → end), so that "is this key deleted" is one ordered-map lookup. etcd keeps the deletes
/// in an interval tree for the same reason: a txn can hold many thousands of nested operations.
#[derive(Debug, Default)]
struct DeletedKeys {
    ranges: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl DeletedKeys {
    /// The keys a delete request removes, as etcd's interval tree sees them: a single key is the
    /// range [key, key + "\0"); otherwise [key, range_end) compared as plain byte strings.
    ///
    /// Plain comparison reproduces etcd 3.4 exactly, quirks included: a "from key" delete
    /// (range_end "\0") and a range whose end is not after its start contain no key, so they
    /// never conflict with a put (etcd's `StringAffineComparable` treats only the *empty* string
    /// as +infinity, and a delete's range_end is never empty when it is used as an end).
    fn insert_delete(&mut self, r: &DeleteRangeRequest) {
        if r.range_end.is_empty() {
            let mut end = r.key.clone();
            end.push(0);
            self.insert(r.key.clone(), end);
        } else {
            self.insert(r.key.clone(), r.range_end.clone());
        }
    }

    /// Adds [start, end), merging it with the ranges it overlaps or touches.
    fn insert(&mut self, mut start: Vec<u8>, mut end: Vec<u8>) {
        if end <= start {
            return; // contains no key
        }
        if let Some((s, e)) = self.ranges.range(..=start.clone()).next_back()
            && *e >= start
        {
            start = s.clone();
            if *e > end {
                end = e.clone();
            }
        }
        let absorbed: Vec<Vec<u8>> = self.ranges.range(start.clone()..=end.clone()).map(|(s, _)| s.clone()).collect();
        for s in absorbed {
            if let Some(e) = self.ranges.remove(&s)
                && e > end
            {
                end = e;
            }
        }
        self.ranges.insert(start, end);
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.ranges
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| key < end.as_slice())
    }

    fn union(&mut self, other: DeletedKeys) {
        for (s, e) in other.ranges {
            self.insert(s, e);
        }
    }
}

/// etcd's `checkIntervals`: within one branch of a txn (and the txns nested in it), a key may not
/// be put twice nor be both put and deleted, because the txn's writes happen at one revision.
/// Only the two branches of one nested txn may put the same key, as only one of them runs.
///
/// The order of the checks is etcd's, which matters for which requests pass: a nested txn's puts
/// are checked against the deletes of this level and of the nested txns *before* it, not after.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<&[u8]>, DeletedKeys), EtcdError> {
    let mut dels = DeletedKeys::default();
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &op.request {
            dels.insert_delete(d);
        }
    }

    let mut puts: HashSet<&[u8]> = HashSet::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for &k in &puts_then {
            if puts.contains(k) || dels.contains(k) {
                return Err(errors::DUPLICATE_KEY);
            }
            puts.insert(k);
        }
        for &k in &puts_else {
            // Already put by this txn's other branch is fine: only one of them runs.
            if (puts.contains(k) && !puts_then.contains(k)) || dels.contains(k) {
                return Err(errors::DUPLICATE_KEY);
            }
            puts.insert(k);
        }
        dels.union(dels_then);
        dels.union(dels_else);
    }

    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        let k = p.key.as_slice();
        if puts.contains(k) || dels.contains(k) {
            return Err(errors::DUPLICATE_KEY);
        }
        puts.insert(k);
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use wasmraft_proto::etcdserverpb::{Compare, range_request::SortOrder};

    use super::*;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest { key: key.into(), ..Default::default() })),
        }
    }
    fn del(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn get(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest { key: key.into(), ..Default::default() })),
        }
    }
    fn txn(compare: usize, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: (0..compare).map(|i| Compare { key: format!("c{i}").into(), ..Default::default() }).collect(),
            success,
            failure,
        }
    }
    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp { request: Some(request_op::Request::RequestTxn(t)) }
    }

    #[test]
    fn range_needs_a_key_and_a_known_sort_target() {
        assert_eq!(check_range(&RangeRequest::default()), Err(errors::EMPTY_KEY));
        assert_eq!(check_range(&RangeRequest { key: b"a".to_vec(), ..Default::default() }), Ok(()));
        let bad_target = RangeRequest { key: b"a".to_vec(), sort_target: 99, ..Default::default() };
        assert_eq!(check_range(&bad_target), Err(errors::INVALID_SORT_OPTION));
        let value_target =
            RangeRequest { key: b"a".to_vec(), sort_target: SortTarget::Value as i32, ..Default::default() };
        assert_eq!(check_range(&value_target), Ok(()));
        // etcd 3.4 accepts an unknown sort order (and then does not sort).
        let odd_order = RangeRequest { key: b"a".to_vec(), sort_order: 7, ..Default::default() };
        assert_eq!(check_range(&odd_order), Ok(()));
        let descend = RangeRequest { key: b"a".to_vec(), sort_order: SortOrder::Descend as i32, ..Default::default() };
        assert_eq!(check_range(&descend), Ok(()));
    }

    #[test]
    fn put_checks_key_then_ignore_value_then_ignore_lease() {
        assert_eq!(check_put(&PutRequest::default()), Err(errors::EMPTY_KEY));
        // With an empty key, the key error wins even if the other checks also fail.
        let all_bad =
            PutRequest { value: b"v".to_vec(), ignore_value: true, lease: 5, ignore_lease: true, ..Default::default() };
        assert_eq!(check_put(&all_bad), Err(errors::EMPTY_KEY));
        let value = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ignore_value: true, ..Default::default() };
        assert_eq!(check_put(&value), Err(errors::VALUE_PROVIDED));
        assert_eq!(errors::VALUE_PROVIDED.message, "etcdserver: value is provided");
        let lease = PutRequest { key: b"k".to_vec(), lease: 7, ignore_lease: true, ..Default::default() };
        assert_eq!(check_put(&lease), Err(errors::LEASE_PROVIDED));
        let both = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            lease: 7,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(check_put(&both), Err(errors::VALUE_PROVIDED));
        let fine = PutRequest { key: b"k".to_vec(), ignore_value: true, ignore_lease: true, ..Default::default() };
        assert_eq!(check_put(&fine), Ok(()));
        let plain = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), lease: 7, ..Default::default() };
        assert_eq!(check_put(&plain), Ok(()));
    }

    #[test]
    fn delete_needs_a_key() {
        assert_eq!(check_delete(&DeleteRangeRequest::default()), Err(errors::EMPTY_KEY));
        let range_only = DeleteRangeRequest { range_end: b"z".to_vec(), ..Default::default() };
        assert_eq!(check_delete(&range_only), Err(errors::EMPTY_KEY));
        assert_eq!(check_delete(&DeleteRangeRequest { key: b"a".to_vec(), ..Default::default() }), Ok(()));
    }

    #[test]
    fn txn_op_count_is_the_largest_of_compare_success_failure() {
        let at_limit = txn(4, (0..4).map(|i| put(&format!("p{i}"))).collect(), vec![]);
        assert_eq!(check_txn(&at_limit, 4), Ok(()));
        let over = txn(5, vec![], vec![]);
        assert_eq!(check_txn(&over, 4), Err(errors::TOO_MANY_OPS));
        let over_failure = txn(0, vec![], (0..5).map(|i| put(&format!("p{i}"))).collect());
        assert_eq!(check_txn(&over_failure, 4), Err(errors::TOO_MANY_OPS));
        // Compare, success and failure are limited separately, not in sum.
        let wide =
            txn(3, (0..3).map(|i| put(&format!("s{i}"))).collect(), (0..3).map(|i| put(&format!("f{i}"))).collect());
        assert_eq!(check_txn(&wide, 3), Ok(()));
        assert_eq!(check_txn(&txn(0, vec![], vec![]), 0), Ok(()));
    }

    #[test]
    fn nested_txn_gets_the_limit_minus_the_parents_ops() {
        // Parent has 2 ops, limit 4: a nested txn may have at most 2.
        let ok = txn(0, vec![nested(txn(2, vec![], vec![])), put("a")], vec![]);
        assert_eq!(check_txn(&ok, 4), Ok(()));
        let too_many = txn(0, vec![nested(txn(3, vec![], vec![])), put("a")], vec![]);
        assert_eq!(check_txn(&too_many, 4), Err(errors::TOO_MANY_OPS));
        // A nested txn in failure is limited the same way.
        let in_failure = txn(0, vec![], vec![nested(txn(0, vec![put("x"), put("y"), put("z")], vec![])), put("a")]);
        assert_eq!(check_txn(&in_failure, 4), Err(errors::TOO_MANY_OPS));
        // A deeper level gets what is left after both parents: 8 - 2 - 3 = 3.
        let deep_ok = txn(0, vec![nested(txn(3, vec![nested(txn(3, vec![], vec![]))], vec![])), put("a")], vec![]);
        assert_eq!(check_txn(&deep_ok, 8), Ok(()));
        let deep_over = txn(0, vec![nested(txn(3, vec![nested(txn(4, vec![], vec![]))], vec![])), put("a")], vec![]);
        assert_eq!(check_txn(&deep_over, 8), Err(errors::TOO_MANY_OPS));
        // A nested txn with no ops passes even when nothing of the limit is left, as in etcd.
        let empty_nested = txn(0, vec![nested(txn(0, vec![], vec![]))], vec![]);
        assert_eq!(check_txn_request(&empty_nested, 0), Err(errors::TOO_MANY_OPS));
        assert_eq!(check_txn(&empty_nested, 1), Ok(()));
    }

    #[test]
    fn txn_checks_every_key() {
        let mut empty_compare = txn(1, vec![], vec![]);
        empty_compare.compare[0].key.clear();
        assert_eq!(check_txn(&empty_compare, 128), Err(errors::EMPTY_KEY));
        assert_eq!(check_txn(&txn(0, vec![get("")], vec![]), 128), Err(errors::EMPTY_KEY));
        assert_eq!(check_txn(&txn(0, vec![], vec![put("")]), 128), Err(errors::EMPTY_KEY));
        assert_eq!(check_txn(&txn(0, vec![del("", "z")], vec![]), 128), Err(errors::EMPTY_KEY));
        assert_eq!(
            check_txn(&txn(0, vec![nested(txn(0, vec![put("")], vec![]))], vec![]), 128),
            Err(errors::EMPTY_KEY)
        );
        let ignore_value = RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ignore_value: true,
                ..Default::default()
            })),
        };
        assert_eq!(check_txn(&txn(0, vec![ignore_value], vec![]), 128), Err(errors::VALUE_PROVIDED));
        // An op without a request is etcd's "key not found".
        let empty_op = RequestOp { request: None };
        assert_eq!(check_txn(&txn(0, vec![empty_op], vec![]), 128), Err(errors::KEY_NOT_FOUND));
        // The op count is checked before the keys.
        assert_eq!(check_txn(&txn(0, vec![put(""), put("b")], vec![]), 1), Err(errors::TOO_MANY_OPS));
        // Key checks come before the overlap check.
        assert_eq!(check_txn(&txn(0, vec![put("a"), put("a"), put("")], vec![]), 128), Err(errors::EMPTY_KEY));
    }

    #[test]
    fn same_key_put_twice_in_a_branch_is_refused() {
        assert_eq!(check_txn(&txn(0, vec![put("a"), put("a")], vec![]), 128), Err(errors::DUPLICATE_KEY));
        assert_eq!(check_txn(&txn(0, vec![], vec![put("a"), put("a")]), 128), Err(errors::DUPLICATE_KEY));
        assert_eq!(errors::DUPLICATE_KEY.message, "etcdserver: duplicate key given in txn request");
        // The two top-level branches are independent.
        assert_eq!(check_txn(&txn(0, vec![put("a")], vec![put("a")]), 128), Ok(()));
        // Reads never conflict.
        assert_eq!(check_txn(&txn(0, vec![put("a"), get("a"), get("a")], vec![]), 128), Ok(()));
    }

    #[test]
    fn put_inside_a_deleted_range_is_refused() {
        assert_eq!(check_txn(&txn(0, vec![del("a", ""), put("a")], vec![]), 128), Err(errors::DUPLICATE_KEY));
        assert_eq!(check_txn(&txn(0, vec![put("b"), del("a", "c")], vec![]), 128), Err(errors::DUPLICATE_KEY));
        // Half-open: the range end itself is not deleted.
        assert_eq!(check_txn(&txn(0, vec![put("c"), del("a", "c")], vec![]), 128), Ok(()));
        assert_eq!(check_txn(&txn(0, vec![put("a"), del("a", "c")], vec![]), 128), Err(errors::DUPLICATE_KEY));
        // A single-key delete covers only that key, not its extensions.
        assert_eq!(check_txn(&txn(0, vec![put("ab"), del("a", "")], vec![]), 128), Ok(()));
        // Deleting a key twice is fine.
        assert_eq!(check_txn(&txn(0, vec![del("a", ""), del("a", "z")], vec![]), 128), Ok(()));
    }

    #[test]
    fn etcd_34_quirks_in_range_deletes_are_kept() {
        // etcd's interval tree compares range ends as plain strings, so "from key" (range_end
        // "\0") and inverted ranges contain nothing and never conflict.
        assert_eq!(check_txn(&txn(0, vec![put("b"), del("a", "\0")], vec![]), 128), Ok(()));
        assert_eq!(check_txn(&txn(0, vec![put("b"), del("c", "a")], vec![]), 128), Ok(()));
    }

    #[test]
    fn nested_txns_are_checked_against_their_parent_branch() {
        // A nested put of a key the parent branch also puts.
        let t = txn(0, vec![nested(txn(0, vec![put("a")], vec![])), put("a")], vec![]);
        assert_eq!(check_txn(&t, 128), Err(errors::DUPLICATE_KEY));
        // A nested put inside the parent's delete.
        let t = txn(0, vec![del("a", "z"), nested(txn(0, vec![], vec![put("m")]))], vec![]);
        assert_eq!(check_txn(&t, 128), Err(errors::DUPLICATE_KEY));
        // A parent put inside a nested delete.
        let t = txn(0, vec![nested(txn(0, vec![del("a", "z")], vec![])), put("m")], vec![]);
        assert_eq!(check_txn(&t, 128), Err(errors::DUPLICATE_KEY));
        // Both branches of one nested txn may put the same key.
        let t = txn(0, vec![nested(txn(0, vec![put("a")], vec![put("a")]))], vec![]);
        assert_eq!(check_txn(&t, 128), Ok(()));
        // Two sibling nested txns may not.
        let t = txn(0, vec![nested(txn(0, vec![put("a")], vec![])), nested(txn(0, vec![], vec![put("a")]))], vec![]);
        assert_eq!(check_txn(&t, 128), Err(errors::DUPLICATE_KEY));
        // A later sibling's put inside an earlier sibling's delete is refused...
        let t =
            txn(0, vec![nested(txn(0, vec![del("a", "z")], vec![])), nested(txn(0, vec![put("m")], vec![]))], vec![]);
        assert_eq!(check_txn(&t, 128), Err(errors::DUPLICATE_KEY));
        // ...but, as in etcd, an earlier sibling's put inside a later sibling's delete is not.
        let t =
            txn(0, vec![nested(txn(0, vec![put("m")], vec![])), nested(txn(0, vec![del("a", "z")], vec![]))], vec![]);
        assert_eq!(check_txn(&t, 128), Ok(()));
        // Conflicts two levels down are found.
        let deep = txn(0, vec![nested(txn(0, vec![nested(txn(0, vec![put("q"), put("q")], vec![]))], vec![]))], vec![]);
        assert_eq!(check_txn(&deep, 128), Err(errors::DUPLICATE_KEY));
    }

    #[test]
    fn deleted_keys_merge_ranges() {
        let mut d = DeletedKeys::default();
        d.insert(b"c".to_vec(), b"e".to_vec());
        d.insert(b"a".to_vec(), b"b".to_vec());
        d.insert(b"b".to_vec(), b"c".to_vec()); // touches both neighbours
        d.insert(b"x".to_vec(), b"y".to_vec());
        d.insert(b"d".to_vec(), b"f".to_vec()); // overlaps the merged one
        d.insert(b"q".to_vec(), b"p".to_vec()); // inverted: ignored
        assert_eq!(d.ranges.len(), 2);
        for k in ["a", "b", "c", "d", "e", "ez", "x", "xyz"] {
            assert!(d.contains(k.as_bytes()), "{k} should be deleted");
        }
        for k in ["", "0", "f", "p", "q", "y", "z"] {
            assert!(!d.contains(k.as_bytes()), "{k} should not be deleted");
        }
        let mut big = DeletedKeys::default();
        big.insert(b"b".to_vec(), b"xa".to_vec()); // reaches into x..y
        d.union(big);
        assert_eq!(d.ranges.len(), 1);
        assert!(d.contains(b"m") && d.contains(b"w") && d.contains(b"xb") && !d.contains(b"y"));
    }
}
