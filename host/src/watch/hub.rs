//! The hub: every watcher of the member, the current revision, and live delivery.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;
use tokio::sync::{Notify, mpsc, watch};
use wasmraft_proto::etcdserverpb::{CompactionResponse, InternalRaftRequest};
use wasmraft_proto::mvccpb::Event;

use super::recent::Recent;
use super::watcher::{Delivery, KeyRange, WatchSpec, Watcher};
use crate::node::{AppliedCommand, ApplyObserver, NodeHandle, WeakNodeHandle};

/// The member's watchable store. Cheap to clone.
#[derive(Clone)]
pub struct WatchHub {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the sync task: a watcher became unsynced, or the state was replaced.
    pub wake: Notify,
    /// Whether the current revision is known (watch creation waits for it).
    pub ready: watch::Sender<bool>,
}

pub(super) struct State {
    /// The newest revision whose events the hub has (or the store's, read at start).
    pub current: i64,
    /// False until the current revision was read, and again after a snapshot replaced the
    /// state: then nothing is synced.
    pub initialized: bool,
    /// The last compaction's revision: a replay from below it must be answered with the
    /// compacted response, so the recent buffer must not serve it.
    pub compacted: i64,
    next_id: u64,
    pub watchers: HashMap<u64, Watcher>,
    /// Synced single-key watchers by key; synced range watchers are tried one by one (etcd keeps
    /// them in an interval tree).
    by_key: HashMap<Vec<u8>, HashSet<u64>>,
    ranges: HashSet<u64>,
    pub unsynced: HashSet<u64>,
    pub recent: Recent,
}

/// What sending a delivery to a watcher's stream came to.
pub(super) enum Sent {
    Yes,
    /// The channel is full: the watcher must catch up later.
    Full,
    /// The stream is gone.
    Closed,
}

pub(super) fn send(w: &Watcher, delivery: Delivery) -> Sent {
    match w.tx.try_send(delivery) {
        Ok(()) => Sent::Yes,
        Err(mpsc::error::TrySendError::Full(_)) => Sent::Full,
        Err(mpsc::error::TrySendError::Closed(_)) => Sent::Closed,
    }
}

impl State {
    pub fn make_synced(&mut self, id: u64) {
        let Some(w) = self.watchers.get_mut(&id) else { return };
        self.unsynced.remove(&id);
        w.synced = true;
        match &w.spec.keys {
            KeyRange::Single(k) => {
                self.by_key.entry(k.clone()).or_default().insert(id);
            }
            _ => {
                self.ranges.insert(id);
            }
        }
    }

    pub fn make_unsynced(&mut self, id: u64) {
        let Some(w) = self.watchers.get_mut(&id) else { return };
        if w.synced {
            w.synced = false;
            unindex(&mut self.by_key, &mut self.ranges, id, &w.spec.keys);
        }
        self.unsynced.insert(id);
    }

    pub fn remove(&mut self, id: u64) -> Option<Watcher> {
        let w = self.watchers.remove(&id)?;
        self.unsynced.remove(&id);
        if w.synced {
            unindex(&mut self.by_key, &mut self.ranges, id, &w.spec.keys);
        }
        Some(w)
    }

    /// Hands one revision's events to the synced watchers they concern.
    fn deliver(&mut self, rev: i64, events: &[Event]) -> bool {
        let mut batches: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
        for e in events {
            let Some(kv) = &e.kv else { continue };
            let mut add = |id: u64| {
                if let Some(w) = self.watchers.get(&id)
                    && rev >= w.next_rev
                    && w.spec.passes(e)
                {
                    batches.entry(id).or_default().push(e.clone());
                }
            };
            if let Some(ids) = self.by_key.get(&kv.key) {
                ids.iter().copied().for_each(&mut add);
            }
            for &id in &self.ranges {
                if self.watchers.get(&id).is_some_and(|w| w.spec.keys.contains(&kv.key)) {
                    add(id);
                }
            }
        }
        let mut slow = false;
        for (id, events) in batches {
            let Some(w) = self.watchers.get_mut(&id) else { continue };
            match send(w, Delivery { watcher: id, events, revision: rev, compact_revision: 0 }) {
                Sent::Yes => w.next_rev = rev + 1,
                Sent::Full => {
                    // etcd's victim: it resumes from this revision, off the apply thread.
                    w.next_rev = rev;
                    self.make_unsynced(id);
                    slow = true;
                }
                Sent::Closed => {
                    self.remove(id);
                }
            }
        }
        slow
    }
}

fn unindex(by_key: &mut HashMap<Vec<u8>, HashSet<u64>>, ranges: &mut HashSet<u64>, id: u64, keys: &KeyRange) {
    match keys {
        KeyRange::Single(k) => {
            if let Some(ids) = by_key.get_mut(k) {
                ids.remove(&id);
                if ids.is_empty() {
                    by_key.remove(k);
                }
            }
        }
        _ => {
            ranges.remove(&id);
        }
    }
}

impl WatchHub {
    /// Creates the hub for `node`, follows its applied commands and starts the sync task
    /// (which also reads the current revision). Call from within the Tokio runtime.
    pub fn start(node: &NodeHandle) -> WatchHub {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current: 0,
                initialized: false,
                compacted: 0,
                next_id: 1,
                watchers: HashMap::new(),
                by_key: HashMap::new(),
                ranges: HashSet::new(),
                unsynced: HashSet::new(),
                recent: Recent::default(),
            }),
            wake: Notify::new(),
            ready: watch::channel(false).0,
        });
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
            let _ = send(w, Delivery { watcher: id, events: Vec::new(), revision: s.current, compact_revision: 0 });
        }
    }
}

/// The revision `command` compacted to, if it is a compaction that succeeded (its output is a
/// `CompactionResponse`; a refused one fails, so it has no output to look at).
fn compaction(command: &[u8], output: &[u8]) -> Option<i64> {
    let req = InternalRaftRequest::decode(command).ok()?;
    let rev = req.compaction?.revision;
    CompactionResponse::decode(output).ok().map(|_| rev)
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        if !self.node.upgrade().is_some_and(|n| n.guest_serves(wasmraft_proto::contract::ETCD_KV_API)) {
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
