//! What the hub and its sync task share: every watcher of the member in etcd's two groups
//! (synced, indexed by key; unsynced), the current and compacted revisions, the recent
//! revisions' events, and live delivery to the synced group. Both the apply thread (through the
//! hub) and the sync task lock it; neither needs the other to reach it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc, watch};
use wasmraft_proto::mvccpb::Event;

use super::recent::Recent;
use super::watcher::{Delivery, KeyRange, Watcher};

pub(super) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the sync task: a watcher became unsynced, or the state was replaced.
    pub wake: Notify,
    /// Whether the current revision is known (watch creation waits for it).
    pub ready: watch::Sender<bool>,
    /// Counts unsynced watchers that became synced (streams with a deferred progress request
    /// wait on it).
    pub synced: watch::Sender<u64>,
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
    pub next_id: u64,
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
    pub fn deliver(&mut self, rev: i64, events: &[Event]) -> bool {
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
            match send(w, Delivery { watcher: Some(id), events, revision: rev, compact_revision: 0 }) {
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

impl Shared {
    pub fn new() -> Shared {
        Shared {
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
            synced: watch::channel(0).0,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
