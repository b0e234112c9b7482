//! A forward scan over a `&dyn ReadStore`, a page at a time (the SDK's `scan` is ambiguous on
//! the trait object while the trait is in scope).

use std::collections::VecDeque;

use wasmraft_guest_sdk::ReadStore;

use crate::layout::successor;

pub struct Pager<'a> {
    store: &'a dyn ReadStore,
    /// The first key not fetched yet.
    start: Vec<u8>,
    end: Vec<u8>,
    page: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl<'a> Pager<'a> {
    /// Pairs with `start <= key < end` (empty `end`: unbounded), ascending.
    pub fn new(store: &'a dyn ReadStore, start: Vec<u8>, end: Vec<u8>) -> Self {
        Pager { store, start, end, page: VecDeque::new(), done: false }
    }

    pub fn next_pair(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        loop {
            if let Some(pair) = self.page.pop_front() {
                return Some(pair);
            }
            self.fetch()?;
        }
    }

    /// Fetches the next page; `None` when the range is exhausted.
    fn fetch(&mut self) -> Option<()> {
        if self.done || (!self.end.is_empty() && self.start >= self.end) {
            self.done = true;
            return None;
        }
        // Limit 0: the host picks the page size (and its byte budget may shorten it).
        let page = self.store.scan_page(&self.start, &self.end, 0, false);
        match page.last() {
            None => {
                self.done = true;
                None
            }
            Some((last, _)) => {
                self.start = successor(last);
                self.page = page.into();
                Some(())
            }
        }
    }
}
