//! The sync task: catches unsynced watchers up and moves them back to synced (etcd's
//! `syncWatchersLoop` and `syncVictimsLoop` in one).
//!
//! Each unsynced watcher is replayed from the hub's recent revisions when they reach back to
//! its next revision, else from the guest's watch history, a page of up to 1000 revisions at a
//! time (etcd's `watchBatchMaxRevs`), until it has everything up to the current revision. The
//! hub's lock is never held across a query, so the apply thread is never kept waiting for one.
//! A watcher whose channel is still full is retried every 10 ms (etcd's victim retry); the rest
//! of the time the task wakes when a watcher becomes unsynced, or every 100 ms.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use wasmraft_proto::wasmraft::v1::{KvQuery, WatchHistoryRequest, WatchHistoryResponse, kv_query};

use super::state::{Sent, Shared, send};
use super::watcher::Delivery;
use wasmraft_node::{NodeHandle, WeakNodeHandle};

/// etcd's `watchBatchMaxRevs`.
const MAX_REVISIONS_PER_DELIVERY: usize = 1000;
const IDLE_WAIT: Duration = Duration::from_millis(100);
const VICTIM_WAIT: Duration = Duration::from_millis(10);

pub(super) async fn run(shared: Arc<Shared>, node: WeakNodeHandle) {
    loop {
        let Some(handle) = node.upgrade() else { return };
        // Until the revision is known (or while the guest is not a KV guest) this polls at the
        // idle pace; afterwards only victims are retried sooner.
        let retry_soon =
            if shared.lock().initialized { pass(&shared, &handle).await } else { initialize(&shared, &handle).await };
        drop(handle);
        let wait = if retry_soon { VICTIM_WAIT } else { IDLE_WAIT };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Reads the store's current and compacted revisions; false when it cannot yet (no etcd KV
/// guest, or the query failed). A one-revision history read from revision 1 answers both: its
/// header has the current revision, and it is refused with the compaction's revision when one
/// went past 1.
async fn initialize(shared: &Shared, node: &NodeHandle) -> bool {
    if !node.guests().guest_serves(wasmraft_proto::contract::ETCD_KV_API) {
        return false;
    }
    let probe =
        WatchHistoryRequest { key: vec![0], start_revision: 1, end_revision: 1, limit: 1, ..Default::default() };
    let resp = match history(node, probe).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(error = %e, "watch: reading the current revision failed; retrying");
            return false;
        }
    };
    let mut s = shared.lock();
    s.current = s.current.max(resp.header.map_or(0, |h| h.revision));
    s.compacted = s.compacted.max(resp.compact_revision);
    if s.recent.newest() != Some(s.current) {
        s.recent.clear();
    }
    s.initialized = true;
    drop(s);
    shared.ready.send_replace(true);
    true
}

/// One round over the unsynced watchers; true when some could not be sent to (full channel)
/// or their history could not be read, and should be retried soon.
async fn pass(shared: &Shared, node: &NodeHandle) -> bool {
    let ids: Vec<u64> = {
        let s = shared.lock();
        s.unsynced.iter().copied().filter(|id| s.watchers.get(id).is_some_and(|w| !w.busy)).collect()
    };
    let mut retry = false;
    for id in ids {
        retry |= catch_up(shared, node, id).await;
    }
    retry
}

/// Brings one watcher up to the current revision, or as far as its channel takes. True when it
/// is still behind for a reason worth retrying soon.
async fn catch_up(shared: &Shared, node: &NodeHandle, id: u64) -> bool {
    loop {
        let request = {
            let mut s = shared.lock();
            let current = s.current;
            if !s.initialized {
                return false;
            }
            let Some(w) = s.watchers.get(&id) else { return false };
            if w.synced {
                return false;
            }
            if w.next_rev > current {
                s.make_synced(id);
                drop(s);
                shared.synced.send_modify(|n| *n = n.wrapping_add(1));
                return false;
            }
            // Below the compaction, only the history can say so.
            let recent = if w.next_rev < s.compacted { None } else { s.recent.since(w.next_rev) };
            let from_recent = recent.map(|revisions| {
                let (mut events, mut last) = (Vec::new(), w.next_rev - 1);
                for (rev, evs) in revisions.take(MAX_REVISIONS_PER_DELIVERY) {
                    last = rev;
                    events.extend(evs.iter().filter(|e| w.spec.wants(e)).cloned());
                }
                (events, last)
            });
            if let Some((events, last)) = from_recent {
                let outcome = if events.is_empty() {
                    Sent::Yes
                } else {
                    send(w, Delivery { watcher: Some(id), events, revision: current, compact_revision: 0 })
                };
                match outcome {
                    Sent::Yes => {
                        if let Some(w) = s.watchers.get_mut(&id) {
                            w.next_rev = last + 1;
                        }
                    }
                    Sent::Full => return true,
                    Sent::Closed => {
                        s.remove(id);
                        return false;
                    }
                }
                continue;
            }
            let (key, range_end) = w.spec.keys.to_request();
            let request = WatchHistoryRequest {
                key,
                range_end,
                start_revision: w.next_rev,
                end_revision: 0,
                prev_kv: w.spec.prev_kv,
                limit: MAX_REVISIONS_PER_DELIVERY as u32,
            };
            if let Some(w) = s.watchers.get_mut(&id) {
                w.busy = true;
            }
            request
        };
        let answer = history(node, request).await;
        let mut s = shared.lock();
        let current = s.current;
        let Some(w) = s.watchers.get_mut(&id) else { return false };
        w.busy = false;
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(error = %e, "watch: reading the watch history failed; retrying");
                return true;
            }
        };
        if resp.compact_revision != 0 {
            let compacted = Delivery {
                watcher: Some(id),
                events: Vec::new(),
                revision: 0,
                compact_revision: resp.compact_revision,
            };
            if let Sent::Full = send(w, compacted) {
                return true;
            }
            s.remove(id);
            return false;
        }
        let events: Vec<_> = resp.events.into_iter().filter(|e| w.spec.wants(e)).collect();
        if !events.is_empty() {
            let revision = resp.header.map_or(0, |h| h.revision).max(current);
            match send(w, Delivery { watcher: Some(id), events, revision, compact_revision: 0 }) {
                Sent::Yes => {}
                Sent::Full => return true,
                Sent::Closed => {
                    s.remove(id);
                    return false;
                }
            }
        }
        if resp.next_revision <= w.next_rev {
            // The store has not reached the watcher's revision yet (cannot happen while the hub
            // learns of revisions only after they commit); try again later rather than spin.
            return true;
        }
        w.next_rev = resp.next_revision;
    }
}

async fn history(node: &NodeHandle, request: WatchHistoryRequest) -> Result<WatchHistoryResponse, String> {
    let query = KvQuery { request: Some(kv_query::Request::WatchHistory(request)) };
    let bytes = node.reads().query(query.encode_to_vec()).await.map_err(|e| e.to_string())?;
    WatchHistoryResponse::decode(bytes.as_slice())
        .map_err(|e| format!("the guest's watch history answer does not decode: {e}"))
}
