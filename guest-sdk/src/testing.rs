//! Run a guest natively, under plain `cargo test`, against an in-memory store.
//!
//! The harness applies commands with the same contract the host gives a Wasm guest: a fresh
//! call per entry, increasing log indexes, and an entry that returns `Err` leaves neither writes
//! nor events behind. (A panic is a test failure here; in the host it is a trap that is rolled
//! back the same way.)

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Bound;

use crate::{ApplyContext, ReadStore, StateMachine, Store};

/// An ordered in-memory keyspace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    pub data: BTreeMap<Vec<u8>, Vec<u8>>,
    pub events: Vec<Vec<u8>>,
    /// Guest metrics as the host would serve them: the value of every name written.
    pub metrics: BTreeMap<String, i64>,
    /// Page size for `scan_page` with limit 0, small by default so guests' paging is exercised.
    pub page_size: u32,
}

impl MemStore {
    pub fn new() -> Self {
        MemStore { page_size: 7, ..Default::default() }
    }
}

impl ReadStore for MemStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.data.get(key).cloned()
    }

    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        let limit = if limit == 0 { self.page_size.max(1) } else { limit } as usize;
        if !end.is_empty() && start >= end {
            return Vec::new();
        }
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end.to_vec()) };
        let range = self.data.range((Bound::Included(start.to_vec()), upper));
        let pick = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        if reverse { range.rev().take(limit).map(pick).collect() } else { range.take(limit).map(pick).collect() }
    }
}

impl Store for MemStore {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.data.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
        self.data.remove(key);
    }
    fn emit(&mut self, event: &[u8]) {
        self.events.push(event.to_vec());
    }
    fn metric_add(&mut self, name: &str, delta: i64) {
        check_metric_name(name);
        let value = self.metrics.entry(name.to_string()).or_insert(0);
        *value = value.wrapping_add(delta);
    }
    fn metric_set(&mut self, name: &str, value: i64) {
        check_metric_name(name);
        self.metrics.insert(name.to_string(), value);
    }
}

/// The host traps on a name it cannot serve; natively that is a panic, so the test fails.
fn check_metric_name(name: &str) {
    let bytes = name.as_bytes();
    let first_ok = bytes.first().is_some_and(|b| b.is_ascii_lowercase() || *b == b'_');
    let ok = first_ok
        && bytes.len() <= 128
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    assert!(ok, "wasmraft: guest passed metric name {name:?} (a name is [a-z_][a-z0-9_]*, at most 128 bytes)");
}

/// Drives a [`StateMachine`] like a single-member log would.
pub struct Harness<S> {
    store: MemStore,
    /// Events of every applied entry, with the index of the entry that emitted them.
    events: Vec<(u64, Vec<u8>)>,
    index: u64,
    term: u64,
    time_unix_ms: u64,
    _guest: PhantomData<S>,
}

impl<S: StateMachine> Default for Harness<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: StateMachine> Harness<S> {
    pub fn new() -> Self {
        Harness {
            store: MemStore::new(),
            events: Vec::new(),
            index: 0,
            term: 1,
            time_unix_ms: 1_700_000_000_000,
            _guest: PhantomData,
        }
    }

    /// Applies `command` as the next log entry, one millisecond after the previous one.
    pub fn apply(&mut self, command: &[u8]) -> Result<Vec<u8>, String> {
        self.time_unix_ms += 1;
        let ctx = ApplyContext { index: self.index + 1, term: self.term, time_unix_ms: self.time_unix_ms };
        self.apply_with(ctx, command)
    }

    /// Applies `command` with an explicit context (for guests whose logic depends on time).
    pub fn apply_with(&mut self, ctx: ApplyContext, command: &[u8]) -> Result<Vec<u8>, String> {
        self.index = ctx.index;
        self.time_unix_ms = ctx.time_unix_ms;
        let mut entry = self.store.clone();
        entry.events.clear();
        let result = S::apply(&ctx, &mut entry, command);
        if result.is_ok() {
            self.events.extend(entry.events.drain(..).map(|e| (ctx.index, e)));
            self.store = entry;
        }
        result
    }

    /// Applies every command in order, stopping at the first error.
    pub fn apply_all<'c>(&mut self, commands: impl IntoIterator<Item = &'c [u8]>) -> Result<Vec<Vec<u8>>, String> {
        commands.into_iter().map(|c| self.apply(c)).collect()
    }

    pub fn query(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        S::query(&self.store, request)
    }

    /// Runs the guest's `migrate` as a swap entry would; rolled back on `Err`.
    pub fn migrate(&mut self, from: &crate::GuestInfo) -> Result<(), String> {
        let mut entry = self.store.clone();
        S::migrate(from, &mut entry)?;
        self.store = entry;
        Ok(())
    }

    /// The raw keyspace, to inspect what the guest wrote.
    pub fn store(&self) -> &MemStore {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut MemStore {
        &mut self.store
    }

    /// Events emitted by successful entries, oldest first, with their entry index.
    pub fn events(&self) -> &[(u64, Vec<u8>)] {
        &self.events
    }

    /// The guest's metrics after the successful entries (what `/metrics` would serve).
    pub fn metrics(&self) -> &BTreeMap<String, i64> {
        &self.store.metrics
    }

    /// One metric's value, if the guest ever wrote it.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.store.metrics.get(name).copied()
    }

    /// The index of the last applied entry.
    pub fn index(&self) -> u64 {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_pages_both_directions_including_empty_key() {
        let mut s = MemStore::new();
        for i in 0..40u8 {
            s.put(&[i], &[i]);
        }
        s.put(b"", b"empty");
        let fwd: Vec<_> = s.scan(b"", b"", false).map(|(k, _)| k).collect();
        assert_eq!(fwd.len(), 41);
        assert!(fwd.windows(2).all(|w| w[0] < w[1]));
        let rev: Vec<_> = s.scan(b"", b"", true).map(|(k, _)| k).collect();
        assert_eq!(rev.len(), 41);
        assert_eq!(rev.last().map(Vec::as_slice), Some(&b""[..]));
        let mid: Vec<_> = s.scan(&[5], &[9], true).map(|(k, _)| k[0]).collect();
        assert_eq!(mid, vec![8, 7, 6, 5]);
    }

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end_of(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end_of(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end_of(&[0xff, 0xff]), Vec::<u8>::new());
    }

    /// Counts commands in `a_total`, sets `last` to the command's length, and fails (after
    /// counting) on "fail".
    struct Metered;

    impl StateMachine for Metered {
        fn info() -> crate::GuestInfo {
            crate::GuestInfo::new("metered", "1.0.0")
        }
        fn apply(_ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
            store.metric_add("a_total", 1);
            store.metric_set("last", command.len() as i64);
            if command == b"fail" {
                return Err("failed".into());
            }
            Ok(Vec::new())
        }
        fn query(_store: &dyn ReadStore, _request: &[u8]) -> Result<Vec<u8>, String> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn harness_records_metrics_of_successful_entries_only() {
        let mut h = Harness::<Metered>::new();
        assert_eq!(h.metric("a_total"), None);
        h.apply(b"xy").unwrap();
        h.apply(b"xyz").unwrap();
        assert!(h.apply(b"fail").is_err());
        assert_eq!(h.metric("a_total"), Some(2));
        assert_eq!(h.metric("last"), Some(3));
        assert_eq!(h.metrics().len(), 2);
    }

    #[test]
    #[should_panic(expected = "metric name")]
    fn harness_refuses_a_name_the_host_would_trap_on() {
        MemStore::new().metric_add("Bad-Name", 1);
    }

    fn prefix_end_of(p: &[u8]) -> Vec<u8> {
        crate::prefix_end(p)
    }
}
