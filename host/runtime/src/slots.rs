//! Instance slots: how many guest instances may exist at once, counted so that queries can
//! never take the slots the apply loop needs (see [`crate::engine::CONTROL_SLOTS`]).

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// A counting semaphore for instance slots. Blocking, because guest calls are synchronous and
/// run on blocking threads anyway.
pub(crate) struct Slots {
    pub(crate) capacity: u32,
    count: Mutex<Count>,
    freed: Condvar,
}

struct Count {
    free: u32,
    /// Threads blocked in [`Slots::take`]: an idle query instance that would keep a slot goes
    /// away instead while anyone waits (see [`Slots::has_waiters`]).
    waiting: u32,
}

pub(crate) struct SlotPermit<'a> {
    slots: &'a Slots,
}

impl Slots {
    pub(crate) fn new(capacity: u32) -> Self {
        Slots { capacity, count: Mutex::new(Count { free: capacity, waiting: 0 }), freed: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Count> {
        // A poisoned lock only means another thread panicked while counting; the counts
        // themselves are always consistent (each is updated in one statement), so keep using
        // them.
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn acquire(&self) -> SlotPermit<'_> {
        self.take();
        SlotPermit { slots: self }
    }

    pub(crate) fn take(&self) {
        let mut count = self.lock();
        while count.free == 0 {
            count.waiting += 1;
            count = self.freed.wait(count).unwrap_or_else(PoisonError::into_inner);
            count.waiting -= 1;
        }
        count.free -= 1;
    }

    pub(crate) fn try_take(&self) -> bool {
        let mut count = self.lock();
        if count.free == 0 {
            return false;
        }
        count.free -= 1;
        true
    }

    fn give_back(&self) {
        self.lock().free += 1;
        self.freed.notify_one();
    }

    /// Whether a thread is blocked waiting for a slot.
    pub(crate) fn has_waiters(&self) -> bool {
        self.lock().waiting > 0
    }
}

impl Drop for SlotPermit<'_> {
    fn drop(&mut self) {
        self.slots.give_back();
    }
}

/// A query slot that outlives the call that took it: a query instance kept for the next query
/// (see `idle.rs`) holds one, so idle instances count against the pool like busy ones.
///
/// It holds the count, not the engine: the engine keeps its idle instances, and so their slots,
/// itself, and a reference back to the engine would make a cycle that never frees the engine
/// and its pool's address space.
pub(crate) struct QuerySlot {
    slots: Arc<Slots>,
}

impl QuerySlot {
    /// A slot of `slots`, waiting while every one is taken.
    pub(crate) fn take(slots: &Arc<Slots>) -> QuerySlot {
        slots.take();
        QuerySlot { slots: slots.clone() }
    }

    /// A slot of `slots` if one is free now.
    pub(crate) fn try_take(slots: &Arc<Slots>) -> Option<QuerySlot> {
        slots.try_take().then(|| QuerySlot { slots: slots.clone() })
    }
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        self.slots.give_back();
    }
}
