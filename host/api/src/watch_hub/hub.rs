//! The hub: the watch API the gRPC side calls, and the node's apply observer that feeds new
//! revisions to the synced watchers (the watchers themselves are in `state.rs`).

use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use wasmraft_proto::etcdserverpb::{CompactionResponse, InternalRaftRequest};
use wasmraft_proto::mvccpb::Event;

use super::state::{Shared, send};
use super::watcher::{Delivery, WatchSpec, Watcher};
use wasmraft_node::{AppliedCommand, ApplyObserver, NodeHandle, WeakNodeHandle};

/// The member's watchable store. Cheap to clone.
#[derive(Clone)]
pub struct WatchHub {
    pub(super) shared: Arc<Shared>,
}

impl WatchHub {
    /// Creates the hub for `node`, follows its applied commands and starts the sync task
    /// (which also reads the current revision). Call from within the Tokio runtime.
    pub fn start(node: &NodeHandle) -> WatchHub {
        let shared = Arc::new(Shared::new());
        node.observe(Arc::new(Observer { shared: shared.clone(), node: node.downgrade() }));
        tokio::spawn(super::sync::run(shared.clone(), node.downgrade()));
        WatchHub { shared }
    }

    /// Waits until the hub knows the current revision.
    pub async fn ready(&self) {
        let mut rx = self.shared.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The revision a watch stream reports (etcd's `watchStream.Rev()`).
    pub fn current(&self) -> i64 {
        self.shared.lock().current
    }

    /// Adds a watcher sending to `tx`; returns its hub id and the current revision. As in etcd,
    /// a watcher from the next revision (or a future one) starts synced; one from a past
    /// revision starts unsynced and replays history first.
    pub fn watch(&self, spec: WatchSpec, tx: mpsc::Sender<Delivery>) -> (u64, i64) {
        let mut s = self.shared.lock();
        let id = s.next_id;
        s.next_id += 1;
        let current = s.current;
        let synced = s.initialized && (spec.start_revision == 0 || spec.start_revision > current);
        let next_rev = if synced { spec.start_revision.max(current + 1) } else { spec.start_revision };
        s.watchers.insert(id, Watcher { spec, next_rev, tx, synced: false, busy: false });
        if synced {
            s.make_synced(id);
        } else {
            s.unsynced.insert(id);
            drop(s);
            self.shared.wake.notify_one();
        }
        (id, current)
    }

    pub fn cancel(&self, id: u64) {
        self.shared.lock().remove(id);
    }

    /// Sends an empty response at the current revision if the watcher is synced (etcd's
    /// `progress`: an unsynced watcher's progress is told by the events it is about to get).
    pub fn progress(&self, id: u64) {
        let s = self.shared.lock();
        if let Some(w) = s.watchers.get(&id)
            && w.synced
        {
            let progress = Delivery { watcher: Some(id), events: Vec::new(), revision: s.current, compact_revision: 0 };
            let _ = send(w, progress);
        }
    }

    /// etcd's `RequestProgressAll` (3.4.25+): one progress notification for every watcher in
    /// `ids` (one stream's), through `tx`, only if all of them are synced. Being synced, each has
    /// every event up to the current revision already queued on `tx`, ahead of the notification,
    /// so its revision never runs ahead of an event the stream has not sent. False when it must
    /// wait: a watcher is still catching up, or `tx` is full. Watchers the hub no longer has (a
    /// compacted start) do not hold it back. No watchers: nothing to report, nothing sent (as
    /// etcd).
    pub fn progress_all(&self, ids: impl IntoIterator<Item = u64>, tx: &mpsc::Sender<Delivery>) -> bool {
        let s = self.shared.lock();
        let mut any = false;
        for id in ids {
            match s.watchers.get(&id) {
                Some(w) if !w.synced => return false,
                Some(_) => any = true,
                None => {}
            }
        }
        if !any {
            return true;
        }
        let progress = Delivery { watcher: None, events: Vec::new(), revision: s.current, compact_revision: 0 };
        tx.try_send(progress).is_ok()
    }

    /// Changes whenever an unsynced watcher becomes synced: a stream with a deferred progress
    /// request looks again then.
    pub fn synced_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.synced.subscribe()
    }
}

/// The revision `command` compacted to, if it is a compaction that succeeded (its output is a
/// `CompactionResponse`; a refused one fails, so it has no output to look at).
fn compaction(command: &[u8], output: &[u8]) -> Option<i64> {
    let req = InternalRaftRequest::decode(command).ok()?;
    let rev = req.compaction?.revision;
    CompactionResponse::decode(output).ok().map(|_| rev)
}

/// The hub as the node's apply observer. Runs on the apply thread: it decodes the events,
/// `try_send`s them and never waits.
struct Observer {
    shared: Arc<Shared>,
    node: WeakNodeHandle,
}

impl ApplyObserver for Observer {
    fn applied(&self, commands: &[AppliedCommand]) {
        // Another guest's events are its own business (and prost would decode many byte strings
        // as some Event). The node publishes a swap made in this batch only after observers ran,
        // so a KV guest's events in the very batch that swapped to it from another guest are not
        // delivered (no watcher can exist before that swap: creating one needs a KV guest).
        if !self.node.upgrade().is_some_and(|n| n.guests().guest_serves(wasmraft_proto::contract::ETCD_KV_API)) {
            return;
        }
        let mut slow = false;
        let mut s = self.shared.lock();
        for c in commands {
            if c.events.is_empty() {
                // Writes emit events; of the rest only a compaction matters here.
                if let Ok(out) = &c.result
                    && let Some(rev) = compaction(&c.command, out)
                {
                    s.compacted = s.compacted.max(rev);
                }
                continue;
            }
            let mut size = 0;
            let mut events = Vec::with_capacity(c.events.len());
            // An event that does not decode is skipped rather than stopping delivery.
            for bytes in &c.events {
                if let Ok(e) = Event::decode(bytes.as_slice()) {
                    size += bytes.len();
                    events.push(e);
                }
            }
            let Some(rev) = events.first().and_then(|e| e.kv.as_ref()).map(|kv| kv.mod_revision) else { continue };
            if rev <= s.current && s.initialized {
                continue;
            }
            s.current = s.current.max(rev);
            if s.initialized {
                slow |= s.deliver(rev, &events);
            }
            s.recent.push(rev, Arc::new(events), size);
        }
        drop(s);
        if slow {
            self.shared.wake.notify_one();
        }
    }

    fn state_replaced(&self) {
        let mut s = self.shared.lock();
        s.initialized = false;
        s.recent.clear();
        let current = s.current;
        let synced: Vec<u64> = s.watchers.iter().filter(|(_, w)| w.synced).map(|(id, _)| *id).collect();
        for id in synced {
            if let Some(w) = s.watchers.get_mut(&id) {
                w.next_rev = w.next_rev.max(current + 1);
            }
            s.make_unsynced(id);
        }
        drop(s);
        self.shared.ready.send_replace(false);
        self.shared.wake.notify_one();
    }
}
