//! Watch history: the events of past revisions, for watchers that start behind the current
//! revision or fell behind (etcd's unsynced watchers read them from the backend the same way,
//! in `syncWatchers`).
//!
//! The `r/` revision log names the key changed at each revision, in revision order, so a replay
//! walks it from the start revision and reads each matching change's record from the key's
//! `i/` history. Nothing is added to the write path for this.
//!
//! Paging counts revisions, not events, so that the events of one transaction (one revision)
//! always come back together: a watcher then never sees half a transaction.
//!
//! After a compaction to `C`, the log keeps every change above `C` and, for each key, its newest
//! put at or below `C`: a replay from `C` or later is complete, one from below `C` is refused
//! with the compaction's revision (etcd's compacted watch response, `minRev < compactRev`).

use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::etcdserverpb::ResponseHeader;
use wasmraft_proto::mvccpb::{Event, KeyValue, event::EventType};
use wasmraft_proto::wasmraft::v1::{WatchHistoryRequest, WatchHistoryResponse};

use crate::errors::corrupt;
use crate::layout::{Span, index_key, parse_revision_key, revision_key};
use crate::meta::{compacted_revision, current_revision};
use crate::pager::Pager;
use crate::read::{decode_kv, get};
use crate::record::{Change, decode_change, decode_revision_entry};
use crate::revision::Revision;

/// etcd's `watchBatchMaxRevs`: the most distinct revisions an unsynced watcher gets at a time.
pub const DEFAULT_LIMIT: u32 = 1000;

pub fn watch_history(store: &dyn ReadStore, req: &WatchHistoryRequest) -> Result<WatchHistoryResponse, String> {
    let current = current_revision(store)?;
    let compacted = compacted_revision(store)?;
    let header = Some(ResponseHeader { revision: current, ..Default::default() });
    // etcd replays from revision 1 when asked for less (its key index starts there).
    let start = req.start_revision.max(1);
    if start < compacted {
        return Ok(WatchHistoryResponse {
            header,
            events: Vec::new(),
            compact_revision: compacted,
            next_revision: start,
        });
    }
    let end = match req.end_revision {
        0 => current,
        e => e.min(current),
    };
    let limit = match req.limit {
        0 => DEFAULT_LIMIT,
        l => l,
    } as i64;
    let span = Span::new(&req.key, &req.range_end);
    let mut events = Vec::new();
    let mut next_revision = end.saturating_add(1).max(start);
    if start <= end {
        let mut pager = Pager::new(
            store,
            revision_key(Revision::new(start, 0)),
            revision_key(Revision::new(end.saturating_add(1), 0)),
        );
        let (mut last_main, mut revisions) = (0, 0);
        while let Some((stored, entry)) = pager.next_pair() {
            let rev = parse_revision_key(&stored).ok_or_else(|| corrupt("revision key"))?;
            if rev.main != last_main {
                if revisions == limit {
                    next_revision = rev.main;
                    break;
                }
                revisions += 1;
                last_main = rev.main;
            }
            let (tombstone, key) = decode_revision_entry(&entry)?;
            if !span.contains(key) {
                continue;
            }
            events.push(event(store, key, rev, tombstone, req.prev_kv, current)?);
        }
    }
    Ok(WatchHistoryResponse { header, events, compact_revision: 0, next_revision })
}

/// The event of `key`'s change at `rev`, as the write emitted it.
fn event(
    store: &dyn ReadStore,
    key: &[u8],
    rev: Revision,
    tombstone: bool,
    with_prev: bool,
    current: i64,
) -> Result<Event, String> {
    let (kind, kv) = if tombstone {
        let kv = KeyValue { key: key.to_vec(), mod_revision: rev.main, ..Default::default() };
        (EventType::Delete, kv)
    } else {
        let record =
            store.get(&index_key(key, rev)).ok_or_else(|| corrupt("revision log entry without its history record"))?;
        match decode_change(&record)? {
            Change::Put(bytes) => (EventType::Put, decode_kv(bytes)?),
            Change::Tombstone => return Err(corrupt("revision log says put, history says tombstone")),
        }
    };
    // The value before the transaction, as etcd's watch server reads it (`rev - 1`); gone when
    // compaction dropped it, as in etcd.
    let prev_kv = if with_prev { get(store, key, rev.main - 1, current)? } else { None };
    Ok(Event { r#type: kind as i32, kv: Some(kv), prev_kv })
}
