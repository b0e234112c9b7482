//! Query instances kept between queries.
//!
//! An instance that answered a query normally is kept and answers later ones. A query changes
//! nothing replicated, so what an instance remembers between queries cannot make members
//! differ; what it saves is most of a small query's cost (instantiation and the teardown that
//! resets the memory).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use wasmtime::Store;

use crate::bindings::StateMachine;
use crate::host_store::HostState;
use crate::slots::QuerySlot;

/// A query instance between two queries, with the query slot it occupies (idle instances count
/// against the pool like busy ones, so they can never make an entry or a query fail for want of
/// a slot).
///
/// Kept only after a query that returned normally (its `Ok` or its `Err`), did not grow its
/// memory and was refused nothing: a trap leaves an instance that cannot be entered again, and
/// a grown memory would stay resident. Dropped after [`QUERIES_PER_INSTANCE`] queries anyway, so
/// a guest's slow leaks (fragmentation, caches in statics) start over now and then.
pub(crate) struct IdleQuery {
    /// The id of the guest whose instance this is (`Guest::id`).
    pub(crate) guest: u64,
    // Field order is drop order: the instance goes back to the pool before its slot is freed.
    pub(crate) store: Store<HostState>,
    pub(crate) sm: StateMachine,
    pub(crate) served: u32,
    pub(crate) _slot: QuerySlot,
}

/// Most idle query instances an engine keeps, over all its guests: enough for the runtime's
/// workers and a few blocking threads running queries at once; more would only hold memory.
const IDLE_QUERY_INSTANCES: usize = 8;

/// Queries one instance answers before it is replaced by a fresh one.
pub(crate) const QUERIES_PER_INSTANCE: u32 = 1_000;

/// The idle query instances of every guest on an engine, least recently used first.
///
/// One list per engine rather than per guest: a member keeps every guest it ever loaded (the
/// registry), so instances kept by guests swapped out long ago must give way to the current
/// one's instead of holding slots and memory forever. At most one fewer than the query slots,
/// so a query that finds no slot always has a busy one to wait for.
pub(crate) struct IdleQueries {
    list: Mutex<VecDeque<IdleQuery>>,
    cap: usize,
}

impl IdleQueries {
    pub(crate) fn new(query_slots: u32) -> Self {
        let below_slots = usize::try_from(query_slots.saturating_sub(1)).unwrap_or(usize::MAX);
        IdleQueries { list: Mutex::new(VecDeque::new()), cap: IDLE_QUERY_INSTANCES.min(below_slots) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<IdleQuery>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently kept instance of `guest`, if any.
    pub(crate) fn take(&self, guest: u64) -> Option<IdleQuery> {
        let mut list = self.lock();
        let at = list.iter().rposition(|q| q.guest == guest)?;
        list.remove(at)
    }

    /// Keeps `q` for a later query, making room by dropping the least recently used.
    pub(crate) fn keep(&self, q: IdleQuery) {
        if self.cap == 0 {
            return;
        }
        let evicted = {
            let mut list = self.lock();
            list.push_back(q);
            if list.len() > self.cap { list.pop_front() } else { None }
        };
        // Dropped outside the lock: tearing an instance down resets its memory.
        drop(evicted);
    }

    /// Drops the least recently used idle instance, freeing its slot; false if none is idle.
    pub(crate) fn evict_one(&self) -> bool {
        let evicted = self.lock().pop_front();
        evicted.is_some()
    }
}
