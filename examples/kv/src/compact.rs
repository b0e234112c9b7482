//! Compaction: etcd's `store.Compact` plus the key-index and backend compaction it schedules,
//! done at once inside the entry (so `physical` is always satisfied).
//!
//! After compacting to `C`, each key keeps its newest change at or below `C` — unless that
//! change is a tombstone, which goes too — and every change above `C`. Only keys changed since
//! the previous compaction can have anything to drop (everything older was settled then), so
//! the work walks the `h/` changes from the previous compaction to `C`: each supersedes the
//! key's previous change (its first link), and a deletion supersedes itself. A key whose newest
//! change is a deletion so dropped has no history left: its `k/` row goes too.

use wasmraft_guest_sdk::Store;
use wasmraft_proto::etcdserverpb::{CompactionRequest, CompactionResponse};

use crate::chain;
use crate::errors::{COMPACTED, FUTURE_REV, corrupt};
use crate::layout::{history_from, history_key, key_row, parse_history_key, successor};
use crate::meta::{View, keep_revision, set_compacted_revision};
use crate::range::header;
use crate::record::decode_change;

pub fn compact(store: &mut dyn Store, req: &CompactionRequest) -> Result<CompactionResponse, String> {
    let view = View::load(&*store)?;
    let rev = req.revision;
    if rev <= view.compacted {
        return Err(COMPACTED.into());
    }
    if rev > view.current {
        return Err(FUTURE_REV.into());
    }
    set_compacted_revision(store, rev);
    store.metric_set(crate::write::COMPACT_REVISION, rev);
    drop_history(store, view.compacted, rev)?;
    // The newest change may have been a deletion this dropped: the revision stays.
    keep_revision(store, view.current)?;
    Ok(CompactionResponse { header: header(view.current) })
}

/// Removes what compacting from `previous` to `to` makes unreachable.
fn drop_history(store: &mut dyn Store, previous: i64, to: i64) -> Result<(), String> {
    let mut start = history_from(previous.saturating_add(1));
    let end = history_from(to.saturating_add(1));
    while start < end {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { break };
        start = successor(last);
        for (stored, bytes) in page {
            let rev = parse_history_key(&stored).ok_or_else(|| corrupt("history key"))?;
            let change = decode_change(&bytes)?;
            if let Some(&older) = change.links.first() {
                store.delete(&history_key(older));
            }
            if change.tombstone {
                store.delete(&stored);
                let key = change.payload;
                if chain::key_row(&*store, key)?.is_some_and(|row| row.newest() == rev) {
                    store.delete(&key_row(key));
                }
            }
        }
    }
    Ok(())
}
