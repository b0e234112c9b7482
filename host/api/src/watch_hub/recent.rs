//! The events of the most recent revisions, kept in memory so that a watcher that fell a little
//! behind (a full channel for a moment) catches up without a history query. etcd always reads
//! its backend for this; the buffer only saves that read.

use std::collections::VecDeque;
use std::sync::Arc;

use wasmraft_proto::mvccpb::Event;

/// Revisions kept at most.
const MAX_REVISIONS: usize = 4096;
/// Encoded event bytes kept at most.
const MAX_BYTES: usize = 16 << 20;

/// Contiguous revisions ending at the hub's current revision, oldest first.
#[derive(Default)]
pub(super) struct Recent {
    revisions: VecDeque<(i64, Arc<Vec<Event>>, usize)>,
    bytes: usize,
}

impl Recent {
    /// Adds revision `rev`'s events; drops everything older when `rev` does not follow the
    /// newest kept revision (the buffer is only useful contiguous).
    pub fn push(&mut self, rev: i64, events: Arc<Vec<Event>>, size: usize) {
        if self.revisions.back().is_some_and(|(last, _, _)| *last + 1 != rev) {
            self.clear();
        }
        self.revisions.push_back((rev, events, size));
        self.bytes += size;
        while self.revisions.len() > MAX_REVISIONS || (self.bytes > MAX_BYTES && self.revisions.len() > 1) {
            if let Some((_, _, s)) = self.revisions.pop_front() {
                self.bytes -= s;
            }
        }
    }

    pub fn clear(&mut self) {
        self.revisions.clear();
        self.bytes = 0;
    }

    pub fn newest(&self) -> Option<i64> {
        self.revisions.back().map(|(r, _, _)| *r)
    }

    /// The kept revisions from `from` on, if the buffer reaches back that far.
    pub fn since(&self, from: i64) -> Option<impl Iterator<Item = (i64, &Arc<Vec<Event>>)>> {
        let (oldest, _, _) = self.revisions.front()?;
        if from < *oldest {
            return None;
        }
        let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
        Some(self.revisions.iter().skip(skip).map(|(r, e, _)| (*r, e)))
    }
}
