//! Txn compares: etcd's `applyCompare` / `compareKV`.
//!
//! A compare with a `range_end` holds only if every key in the range satisfies it. With no key
//! in the range, a VALUE compare fails (a missing value is not an empty one) and every other
//! target compares against zero (so `version == 0` means "does not exist").

use std::cmp::Ordering;

use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::etcdserverpb::Compare;
use wasmraft_proto::etcdserverpb::compare::TargetUnion;
use wasmraft_proto::mvccpb::KeyValue;

use crate::layout::Span;
use crate::meta::View;
use crate::read::{Flow, decode_kv, visit};

// Compare.CompareResult
const EQUAL: i32 = 0;
const GREATER: i32 = 1;
const LESS: i32 = 2;
const NOT_EQUAL: i32 = 3;
// Compare.CompareTarget
const VERSION: i32 = 0;
const CREATE: i32 = 1;
const MOD: i32 = 2;
const VALUE: i32 = 3;
const LEASE: i32 = 4;

/// Whether `c` holds at the view's current revision.
pub fn holds(store: &dyn ReadStore, c: &Compare, view: View) -> Result<bool, String> {
    let span = Span::new(&c.key, &c.range_end);
    let mut any = false;
    let mut all = true;
    visit(store, &span, view.current, view.current, &mut |bytes| {
        any = true;
        if compare_kv(c, &decode_kv(bytes)?) {
            Ok(Flow::Continue)
        } else {
            all = false;
            Ok(Flow::Stop)
        }
    })?;
    if !any {
        return Ok(c.target != VALUE && compare_kv(c, &KeyValue::default()));
    }
    Ok(all)
}

/// etcd's `compareKV`. A compare value of the wrong kind for the target reads as zero (or
/// empty); a target or result etcd does not know compares as equal / holds, as in etcd.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let number = |pick: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(pick).unwrap_or(0);
    let ordering = match c.target {
        VALUE => {
            let empty = Vec::new();
            let want = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &empty,
            };
            kv.value.as_slice().cmp(want.as_slice())
        }
        CREATE => {
            kv.create_revision.cmp(&number(|t| if let TargetUnion::CreateRevision(r) = t { Some(*r) } else { None }))
        }
        MOD => kv.mod_revision.cmp(&number(|t| if let TargetUnion::ModRevision(r) = t { Some(*r) } else { None })),
        VERSION => kv.version.cmp(&number(|t| if let TargetUnion::Version(r) = t { Some(*r) } else { None })),
        LEASE => kv.lease.cmp(&number(|t| if let TargetUnion::Lease(r) = t { Some(*r) } else { None })),
        _ => Ordering::Equal,
    };
    match c.result {
        EQUAL => ordering == Ordering::Equal,
        NOT_EQUAL => ordering != Ordering::Equal,
        GREATER => ordering == Ordering::Greater,
        LESS => ordering == Ordering::Less,
        _ => true,
    }
}
