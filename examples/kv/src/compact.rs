//! Compaction: etcd's `store.Compact` plus the key-index and backend compaction it schedules,
//! done at once inside the entry (so `physical` is always satisfied).
//!
//! After compacting to `C`, each key keeps its newest change at or below `C` — unless that
//! change is a tombstone, which goes too — and every change above `C`. Only keys changed since
//! the previous compaction can have anything to drop (everything older was settled then), so
//! the work walks the `r/` log from the previous compaction to `C`: each change there
//! supersedes all older changes of its key, and a tombstone supersedes itself.

use wasmraft_guest_sdk::Store;
use wasmraft_proto::etcdserverpb::{CompactionRequest, CompactionResponse};

use crate::errors::{COMPACTED, FUTURE_REV, corrupt};
use crate::layout::{index_key, index_prefix, parse_index_key, parse_revision_key, revision_key, successor};
use crate::meta::{View, set_compacted_revision};
use crate::range::header;
use crate::record::decode_revision_entry;
use crate::revision::Revision;

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
    Ok(CompactionResponse { header: header(view.current) })
}

/// Removes what compacting from `previous` to `to` makes unreachable.
fn drop_history(store: &mut dyn Store, previous: i64, to: i64) -> Result<(), String> {
    let mut start = revision_key(Revision::new(previous.saturating_add(1).max(0), 0));
    let end = revision_key(Revision::new(to.saturating_add(1), 0));
    while start < end {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { break };
        start = successor(last);
        for (stored, entry) in page {
            let rev = parse_revision_key(&stored).ok_or_else(|| corrupt("revision key"))?;
            let (tombstone, key) = decode_revision_entry(&entry)?;
            drop_older(store, key, rev)?;
            if tombstone {
                store.delete(&index_key(key, rev));
                store.delete(&stored);
            }
        }
    }
    Ok(())
}

/// Deletes every change of `key` older than `rev`, from both history tables.
fn drop_older(store: &mut dyn Store, key: &[u8], rev: Revision) -> Result<(), String> {
    let start = index_prefix(key);
    let end = index_key(key, rev);
    loop {
        // Everything a page returns is deleted, so the next page starts at `start` again.
        let page = store.scan_page(&start, &end, 0, false);
        if page.is_empty() {
            return Ok(());
        }
        for (stored, _) in page {
            let (_, _, old) = parse_index_key(&stored).ok_or_else(|| corrupt("index key"))?;
            store.delete(&stored);
            store.delete(&revision_key(old));
        }
    }
}
