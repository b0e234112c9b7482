//! Watch history: the events of past revisions, for watchers that start behind the current
//! revision or fell behind (etcd's unsynced watchers read them from the backend the same way,
//! in `syncWatchers`).
//!
//! The `h/` table holds every change keyed by its revision, with the KeyValue it wrote, so a
//! replay is one scan from the start revision; `prev_kv` follows the change's link to the
//! key's previous change. Nothing is added to the write path for this.
//!
//! Paging counts revisions, not events, so that the events of one transaction (one revision)
//! always come back together: a watcher then never sees half a transaction.
//!
//! After a compaction to `C`, the history keeps every change above `C` and, for each key, its newest
//! put at or below `C`: a replay from `C` or later is complete, one from below `C` is refused
//! with the compaction's revision (etcd's compacted watch response, `minRev < compactRev`).

use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::etcdserverpb::ResponseHeader;
use wasmraft_proto::mvccpb::{Event, KeyValue, event::EventType};
use wasmraft_proto::wasmraft::v1::{WatchHistoryRequest, WatchHistoryResponse};

use crate::chain;
use crate::errors::corrupt;
use crate::layout::{Span, history_from, parse_history_key};
use crate::meta::{compacted_revision, current_revision};
use crate::pager::Pager;
use crate::read::decode_kv;
use crate::record::{Change, decode_change};
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
        let mut pager = Pager::new(store, history_from(start), history_from(end.saturating_add(1)));
        let (mut last_main, mut revisions) = (0, 0);
        while let Some((stored, bytes)) = pager.next_pair() {
            let rev = parse_history_key(&stored).ok_or_else(|| corrupt("history key"))?;
            if rev.main != last_main {
                if revisions == limit {
                    next_revision = rev.main;
                    break;
                }
                revisions += 1;
                last_main = rev.main;
            }
            let change = decode_change(&bytes)?;
            if let Some(event) = event(store, &span, rev, change, req.prev_kv, compacted)? {
                events.push(event);
            }
        }
    }
    Ok(WatchHistoryResponse { header, events, compact_revision: 0, next_revision })
}

/// The event of the change at `rev`, as the write emitted it, if its key is in `span`.
fn event(
    store: &dyn ReadStore,
    span: &Span,
    rev: Revision,
    change: Change<'_>,
    with_prev: bool,
    compacted: i64,
) -> Result<Option<Event>, String> {
    let (kind, kv) = if change.tombstone {
        let kv = KeyValue { key: change.payload.to_vec(), mod_revision: rev.main, ..Default::default() };
        (EventType::Delete, kv)
    } else {
        (EventType::Put, decode_kv(change.payload)?)
    };
    if !span.contains(&kv.key) {
        return Ok(None);
    }
    // The value before the transaction, as etcd's watch server reads it (`rev - 1`); none
    // below the compaction (`rev - 1 < compacted`), where etcd's read fails.
    let prev_kv = if with_prev && rev.main > compacted {
        before(store, change.links.first().copied(), rev.main)?.map(|b| decode_kv(&b)).transpose()?
    } else {
        None
    };
    Ok(Some(Event { r#type: kind as i32, kv: Some(kv), prev_kv }))
}

/// The key's value before main revision `main`, from `link`, the change's link to the key's
/// previous change: earlier changes of the same transaction are stepped over.
fn before(store: &dyn ReadStore, mut link: Option<Revision>, main: i64) -> Result<Option<Vec<u8>>, String> {
    while let Some(rev) = link {
        if rev.main < main {
            return chain::value_of(store, rev);
        }
        let Some(bytes) = store.get(&crate::layout::history_key(rev)) else { return Ok(None) };
        link = decode_change(&bytes)?.links.first().copied();
    }
    Ok(None)
}
