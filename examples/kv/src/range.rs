//! Range: etcd's `applierV3backend.Range` over [`crate::read`].
//!
//! etcd's order of work, which decides every corner case:
//! 1. the revision: `> current` is a future revision, `<= 0` means current, `< compacted` is
//!    compacted (reading *at* the compacted revision works);
//! 2. `count` is the number of keys in the span at that revision — before `limit` and before
//!    the min/max filters;
//! 3. `count_only` returns just that;
//! 4. the min/max mod/create revision filters prune the results;
//! 5. sorting: a non-KEY target with order NONE sorts ASCEND; sort ties fall as Go's unstable
//!    `sort.Sort` leaves them ([`crate::sort`]);
//! 6. `limit` truncates and sets `more`; `keys_only` drops values (after sorting by value).
//!
//! Memory stays bounded by `limit` unless the sort target is not KEY (then, as in etcd, all
//! matching keys are held to be sorted): KEY ascending keeps the first `limit + 1` matches, KEY
//! descending a window of the last `limit + 1`.

use std::collections::VecDeque;

use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use wasmraft_proto::mvccpb::KeyValue;

use crate::errors::{COMPACTED, FUTURE_REV};
use crate::layout::Span;
use crate::meta::View;
use crate::read::{Flow, decode_kv, visit};
use crate::sort::go_sort;

// RangeRequest.SortOrder
const ORDER_NONE: i32 = 0;
const ORDER_ASCEND: i32 = 1;
const ORDER_DESCEND: i32 = 2;
// RangeRequest.SortTarget
const TARGET_KEY: i32 = 0;
const TARGET_VERSION: i32 = 1;
const TARGET_CREATE: i32 = 2;
const TARGET_MOD: i32 = 3;
const TARGET_VALUE: i32 = 4;

/// A response header carrying only the revision: the host fills cluster, member and term.
pub fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

/// The revision a request with `revision` reads at, or etcd's error for it.
pub fn read_revision(revision: i64, view: View) -> Result<i64, String> {
    if revision > view.current {
        return Err(FUTURE_REV.into());
    }
    let rev = if revision <= 0 { view.current } else { revision };
    if rev < view.compacted {
        return Err(COMPACTED.into());
    }
    Ok(rev)
}

/// How results are collected, from the sort options.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Key order as read: keep the first `limit + 1`.
    KeyAscending,
    /// Reverse key order: keep the last `limit + 1`, then reverse.
    KeyDescending,
    /// Any other target: keep everything, then sort.
    Sorted { target: i32, descending: bool },
}

fn plan(req: &RangeRequest) -> Plan {
    let order =
        if req.sort_target != TARGET_KEY && req.sort_order == ORDER_NONE { ORDER_ASCEND } else { req.sort_order };
    match (req.sort_target, order) {
        (TARGET_KEY, ORDER_DESCEND) => Plan::KeyDescending,
        (TARGET_VERSION | TARGET_CREATE | TARGET_MOD | TARGET_VALUE, ORDER_ASCEND) => {
            Plan::Sorted { target: req.sort_target, descending: false }
        }
        (TARGET_VERSION | TARGET_CREATE | TARGET_MOD | TARGET_VALUE, ORDER_DESCEND) => {
            Plan::Sorted { target: req.sort_target, descending: true }
        }
        // KEY ascending or unsorted; an order etcd does not know leaves key order (etcd skips
        // sorting); a target it does not know also leaves key order (etcd would crash on it).
        _ => Plan::KeyAscending,
    }
}

/// etcd's `pruneKVs` filters: true if `kv` is dropped.
fn pruned(req: &RangeRequest, kv: &KeyValue) -> bool {
    (req.max_mod_revision != 0 && kv.mod_revision > req.max_mod_revision)
        || (req.min_mod_revision != 0 && kv.mod_revision < req.min_mod_revision)
        || (req.max_create_revision != 0 && kv.create_revision > req.max_create_revision)
        || (req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
}

/// Go's `Less` for a sort target (differences wrap as Go's int64 subtraction does).
fn less(target: i32) -> fn(&KeyValue, &KeyValue) -> bool {
    match target {
        TARGET_VERSION => |a, b| a.version.wrapping_sub(b.version) < 0,
        TARGET_CREATE => |a, b| a.create_revision.wrapping_sub(b.create_revision) < 0,
        TARGET_MOD => |a, b| a.mod_revision.wrapping_sub(b.mod_revision) < 0,
        TARGET_VALUE => |a, b| a.value < b.value,
        _ => |a, b| a.key < b.key,
    }
}

/// Answers `req` against `store`. `view.current` is the revision the `l/` table reflects and
/// the one reported in the header.
pub fn range(store: &dyn ReadStore, req: &RangeRequest, view: View) -> Result<RangeResponse, String> {
    let rev = read_revision(req.revision, view)?;
    let span = Span::new(&req.key, &req.range_end);
    let plan = plan(req);
    // Values are needed only to return them or to sort by them.
    let drop_values = req.keys_only && !matches!(plan, Plan::Sorted { target: TARGET_VALUE, .. });
    let keep =
        if req.limit > 0 { usize::try_from(req.limit).unwrap_or(usize::MAX).saturating_add(1) } else { usize::MAX };

    let mut count: i64 = 0;
    let mut kept: VecDeque<KeyValue> = VecDeque::new();
    visit(store, &span, rev, view.current, &mut |bytes| {
        count += 1;
        if req.count_only || (plan == Plan::KeyAscending && kept.len() >= keep) {
            return Ok(Flow::Continue);
        }
        let mut kv = decode_kv(bytes)?;
        if pruned(req, &kv) {
            return Ok(Flow::Continue);
        }
        if drop_values {
            kv.value = Vec::new();
        }
        if plan == Plan::KeyDescending && kept.len() >= keep {
            kept.pop_front();
        }
        kept.push_back(kv);
        Ok(Flow::Continue)
    })?;

    let mut kvs: Vec<KeyValue> = kept.into();
    match plan {
        Plan::KeyAscending => {}
        Plan::KeyDescending => kvs.reverse(),
        Plan::Sorted { target, descending } => {
            let less = less(target);
            if descending { go_sort(&mut kvs, &|a, b| less(b, a)) } else { go_sort(&mut kvs, &less) }
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() as u64 > req.limit as u64 {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse { header: header(view.current), kvs, more, count })
}
