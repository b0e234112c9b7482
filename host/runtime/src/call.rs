//! What a guest call is given and what it gives back, besides the store.

use std::collections::BTreeMap;

/// Where the entry being applied sits in the log. `time_unix_ms` comes from the entry (the
/// proposer's clock), never from the applying member's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyContext {
    pub index: u64,
    pub term: u64,
    pub time_unix_ms: u64,
}

/// A guest's name, version and the client APIs it serves (WIT `guest-info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestInfo {
    pub name: String,
    pub version: String,
    pub apis: Vec<String>,
}

/// What a successful entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// For the client that proposed the entry.
    pub output: Vec<u8>,
    /// For watchers, in emit order.
    pub events: Vec<Vec<u8>>,
    /// The entry's metric updates (WIT `metrics`), merged per name in call order.
    pub metrics: BTreeMap<String, MetricUpdate>,
}

/// What an entry (or a batch of entries) did to one guest metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUpdate {
    /// Added this much to whatever the value was.
    Add(i64),
    /// Set it to this value (later adds in the same entry are folded in).
    Set(i64),
}

impl MetricUpdate {
    /// This update followed by `next`: adds sum, a set replaces what came before.
    pub fn then(self, next: MetricUpdate) -> MetricUpdate {
        match (self, next) {
            (_, MetricUpdate::Set(v)) => MetricUpdate::Set(v),
            (MetricUpdate::Add(a), MetricUpdate::Add(b)) => MetricUpdate::Add(a.wrapping_add(b)),
            (MetricUpdate::Set(a), MetricUpdate::Add(b)) => MetricUpdate::Set(a.wrapping_add(b)),
        }
    }

    /// The value after this update, given the one before (`None`: never written).
    pub fn apply_to(self, before: Option<i64>) -> i64 {
        match self {
            MetricUpdate::Add(d) => before.unwrap_or(0).wrapping_add(d),
            MetricUpdate::Set(v) => v,
        }
    }

    /// Merges `update` into `into[name]`.
    pub fn merge(into: &mut BTreeMap<String, MetricUpdate>, name: String, update: MetricUpdate) {
        match into.get_mut(&name) {
            Some(old) => *old = old.then(update),
            None => {
                into.insert(name, update);
            }
        }
    }
}
