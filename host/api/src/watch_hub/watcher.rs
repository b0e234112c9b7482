//! One watcher as the hub keeps it, and what it hands a stream.

use tokio::sync::mpsc;
use wasmraft_proto::mvccpb::{Event, event::EventType};

/// The keys a watcher follows, after etcd's conventions for `range_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// `range_end` empty: exactly this key.
    Single(Vec<u8>),
    /// `range_end == "\0"`: every key `>=` this one.
    From(Vec<u8>),
    /// `key <= k < end`.
    Range(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Range(key.to_vec(), end.to_vec()),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_slice() == key,
            KeyRange::From(start) => key >= start.as_slice(),
            KeyRange::Range(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }

    /// `key` and `range_end` as a history query takes them.
    pub fn to_request(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            KeyRange::Single(k) => (k.clone(), Vec::new()),
            KeyRange::From(k) => (k.clone(), vec![0]),
            KeyRange::Range(k, e) => (k.clone(), e.clone()),
        }
    }
}

/// What a stream asks the hub to watch.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    pub keys: KeyRange,
    /// 0: from the next revision.
    pub start_revision: i64,
    /// etcd's NOPUT / NODELETE filters.
    pub no_put: bool,
    pub no_delete: bool,
    /// Whether history replays must read each event's previous value (live events carry it
    /// anyway; the stream strips it when not asked for).
    pub prev_kv: bool,
}

impl WatchSpec {
    /// Whether the watcher wants `event` (its key matched already).
    pub fn passes(&self, event: &Event) -> bool {
        match EventType::try_from(event.r#type) {
            Ok(EventType::Put) => !self.no_put,
            Ok(EventType::Delete) => !self.no_delete,
            Err(_) => false,
        }
    }

    pub fn wants(&self, event: &Event) -> bool {
        event.kv.as_ref().is_some_and(|kv| self.keys.contains(&kv.key)) && self.passes(event)
    }
}

/// A response for one watcher, as etcd's `mvcc.WatchResponse`.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The hub's id of the watcher (not the stream's watch id); `None` for a progress
    /// notification on behalf of every watcher of the stream (etcd's watch id -1).
    pub watcher: Option<u64>,
    /// Revision-ordered; empty for a progress notification or a compacted response.
    pub events: Vec<Event>,
    /// The header revision: the events' revision for a live delivery, the revision caught up to
    /// for a replay, the current one for progress.
    pub revision: i64,
    /// Non-zero: the watcher's start was compacted away; it is gone from the hub.
    pub compact_revision: i64,
}

/// The hub's record of one watcher.
pub(super) struct Watcher {
    pub spec: WatchSpec,
    /// The lowest revision the watcher has not been sent (etcd's `minRev`).
    pub next_rev: i64,
    pub tx: mpsc::Sender<Delivery>,
    pub synced: bool,
    /// A history query for it is under way (the sync task must not start a second).
    pub busy: bool,
}
