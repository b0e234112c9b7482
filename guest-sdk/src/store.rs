//! Typed access to a guest's keyspace.

/// The read side of the keyspace: point reads and ordered scans.
pub trait ReadStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;

    /// One page of an ordered scan over `start <= key < end` (empty `end`: no upper bound).
    /// Returns at most `limit` pairs (0: the host's page size) and possibly fewer; an empty page
    /// means the range is exhausted. Prefer [`ReadStore::scan`], which pages for you.
    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)>;

    /// All pairs in `start <= key < end` (empty `end`: no upper bound), ascending or descending,
    /// fetched from the host a page at a time so a large range never has to fit in memory.
    ///
    /// (`where Self: Sized` keeps the trait usable as `dyn ReadStore`; on the `dyn` types, which
    /// is what a guest is handed, the inherent methods below provide the same calls.)
    fn scan<'a>(&'a self, start: &[u8], end: &[u8], reverse: bool) -> Scan<'a, Self>
    where
        Self: Sized,
    {
        Scan::new(self, start, end, reverse)
    }

    /// All pairs whose key starts with `prefix`.
    fn scan_prefix<'a>(&'a self, prefix: &[u8], reverse: bool) -> Scan<'a, Self>
    where
        Self: Sized,
    {
        Scan::new(self, prefix, &prefix_end(prefix), reverse)
    }
}

/// [`ReadStore::scan`] for the trait objects guests receive.
macro_rules! dyn_scan {
    ($($ty:ty),*) => {$(
        impl<'s> $ty {
            /// See [`ReadStore::scan`].
            pub fn scan<'a>(&'a self, start: &[u8], end: &[u8], reverse: bool) -> Scan<'a, $ty> {
                Scan::new(self, start, end, reverse)
            }
            /// See [`ReadStore::scan_prefix`].
            pub fn scan_prefix<'a>(&'a self, prefix: &[u8], reverse: bool) -> Scan<'a, $ty> {
                Scan::new(self, prefix, &prefix_end(prefix), reverse)
            }
        }
    )*};
}
dyn_scan!(dyn ReadStore + 's, dyn Store + 's);

/// The write side, valid only while an entry is applied: writes, deletes and watch events, all
/// rolled back together if the entry fails.
pub trait Store: ReadStore {
    fn put(&mut self, key: &[u8], value: &[u8]);
    fn delete(&mut self, key: &[u8]);
    /// Records an event for watchers of this entry (delivered only if the entry succeeds).
    fn emit(&mut self, event: &[u8]);

    /// Adds `delta` to the guest metric `name` (WIT `metrics.add`), served on the host's
    /// `/metrics`; a name ending in `_total` is served as a counter. Like a write, it is
    /// dropped if the entry fails. A name is `[a-z_][a-z0-9_]*`, at most 128 bytes; anything
    /// else traps. A store that serves no metrics (a native import, a bench) ignores it.
    fn metric_add(&mut self, name: &str, delta: i64) {
        let _ = (name, delta);
    }

    /// Sets the guest metric `name` to `value` (WIT `metrics.set`), served as a gauge.
    fn metric_set(&mut self, name: &str, value: i64) {
        let _ = (name, value);
    }
}

/// The smallest key greater than every key starting with `prefix`; empty (no upper bound) when
/// the prefix is all 0xff or empty.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// Pages through a range; see [`ReadStore::scan`].
pub struct Scan<'a, S: ?Sized> {
    store: &'a S,
    /// The unread part of the range: `start` moves up in ascending scans, `end` down in
    /// descending ones.
    start: Vec<u8>,
    end: Vec<u8>,
    reverse: bool,
    page: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

/// Pairs fetched per host call: large enough to amortize the boundary crossing, small enough
/// that a scan stopped early (a `limit`) wastes little.
const PAGE: u32 = 256;

impl<'a, S: ReadStore + ?Sized> Scan<'a, S> {
    fn new(store: &'a S, start: &[u8], end: &[u8], reverse: bool) -> Self {
        Scan { store, start: start.to_vec(), end: end.to_vec(), reverse, page: Vec::new().into_iter(), done: false }
    }
}

impl<S: ReadStore + ?Sized> Iterator for Scan<'_, S> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.page.next() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            if !self.end.is_empty() && self.start >= self.end {
                self.done = true;
                return None;
            }
            let page = self.store.scan_page(&self.start, &self.end, PAGE, self.reverse);
            match page.last() {
                None => {
                    self.done = true;
                    return None;
                }
                Some((last, _)) => {
                    if self.reverse {
                        // Nothing sorts below the empty key, and an empty `end` would mean
                        // "unbounded" again.
                        self.done = last.is_empty();
                        self.end = last.clone();
                    } else {
                        // The successor of `last` in byte order.
                        self.start = last.clone();
                        self.start.push(0);
                    }
                }
            }
            self.page = page.into_iter();
        }
    }
}
