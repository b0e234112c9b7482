//! What a running guest instance sees of the host: the `store` and `events` imports, backed by
//! the store the caller lends the call ([`crate::StoreRead`]) and an in-memory overlay of this
//! entry's writes.
//!
//! Writes never touch the store while the guest runs. They collect in the overlay, which reads
//! consult first, and are handed to [`crate::StoreWrite::write`] only after `apply` returned
//! `Ok` (`runtime.rs`): a trap, an `Err` or an exhausted budget therefore leaves the store
//! untouched without any undo.
//!
//! The store is borrowed, but a wasmtime `Store`'s data must be `'static`, so the borrow is kept
//! as a pointer for as long as a [`Lent`] guard lives; the guard ends before the borrow does and
//! detaches the view (see there).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow, Deref, DerefMut};
use std::ptr::NonNull;

use wasmtime::component::Linker;
use wasmtime::{ResourceLimiter, Store, StoreContextMut};

use crate::call::MetricUpdate;
use crate::limits::{self, GuestLimits};
use crate::store::{StoreError, StoreRead};

type Pair = (Vec<u8>, Vec<u8>);
/// The overlay's view of a range: `None` values are this entry's deletes.
type OverlayIter<'o> = Box<dyn Iterator<Item = (&'o [u8], Option<&'o [u8]>)> + 'o>;

/// The keyspace one guest call works on.
pub(crate) enum View {
    /// `apply` and `migrate`: the caller's store, which the entry's writes go to if it succeeds.
    Write(LentStore),
    /// `query`: a read-only snapshot.
    Read(LentStore),
    /// `info`, a kept query instance between queries, and any store outside a [`Lent`] guard.
    Detached,
}

/// The caller's store while a [`Lent`] guard lives, its lifetime erased: `Store` data must be
/// `'static`. Only [`View::store`] reads through it.
pub(crate) struct LentStore(NonNull<dyn StoreRead + 'static>);

// SAFETY: the pointer is only dereferenced while the `Lent` guard that set it lives, and that
// guard holds the `Store` (and so this data) by a `&mut` borrow for its whole life, on the
// thread that lent the store: the pointee is never reached from another thread, whatever it
// is. Between guards the view is `Detached` and holds no pointer.
unsafe impl Send for LentStore {}

impl View {
    /// The lent store, if the call has one.
    fn store(&self) -> Option<&dyn StoreRead> {
        match self {
            // SAFETY: a `LentStore` exists only inside a `Lent` guard, which borrows the store
            // it points to (shared) for longer than the guard lives and resets the view to
            // `Detached` when dropped; `&self` here is a borrow of the `Store` data the guard
            // holds, so the pointee is alive and not mutated (the caller's `&mut` to it is
            // reborrowed shared by the guard).
            View::Write(lent) | View::Read(lent) => Some(unsafe { lent.0.as_ref() }),
            View::Detached => None,
        }
    }
}

/// A `Store` with the caller's key-value store lent to its host calls, for as long as this
/// guard lives. Dropping it detaches the view, so nothing in the `Store` points at the borrowed
/// store once the borrow ends; a store moved out of the guard (nothing in this crate does) would
/// keep a dangling pointer, which is why the guard is the only way to set one.
pub(crate) struct Lent<'a, 's> {
    store: &'a mut Store<HostState>,
    _lent: PhantomData<&'s dyn StoreRead>,
}

impl<'a, 's> Lent<'a, 's> {
    /// Lends `kv` to `store`'s calls; `writable` for `apply` and `migrate`.
    pub(crate) fn new(store: &'a mut Store<HostState>, kv: &'s dyn StoreRead, writable: bool) -> Self {
        let ptr: NonNull<dyn StoreRead + 's> = NonNull::from(kv);
        // SAFETY: only the trait object's lifetime bound changes (same layout); the pointer is
        // dereferenced only while this guard lives (see `View::store`), which `'s` outlives.
        let ptr = unsafe { std::mem::transmute::<NonNull<dyn StoreRead + 's>, NonNull<dyn StoreRead + 'static>>(ptr) };
        let lent = LentStore(ptr);
        store.data_mut().view = if writable { View::Write(lent) } else { View::Read(lent) };
        Lent { store, _lent: PhantomData }
    }
}

impl Drop for Lent<'_, '_> {
    fn drop(&mut self) {
        self.store.data_mut().view = View::Detached;
    }
}

impl Deref for Lent<'_, '_> {
    type Target = Store<HostState>;

    fn deref(&self) -> &Store<HostState> {
        self.store
    }
}

impl DerefMut for Lent<'_, '_> {
    fn deref_mut(&mut self) -> &mut Store<HostState> {
        self.store
    }
}

/// Why the host stopped the guest. Recorded in the store data before the trap is raised, so
/// the classification never depends on how wasmtime wraps the error.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The guest broke a rule of the imports (a size limit, a write during a query). The text
    /// is for the client.
    Guest(String),
    /// The guest ran out of fuel inside a host call.
    OutOfFuel,
    /// The store failed: not the guest's doing, and fatal to the member.
    Storage(StoreError),
}

/// The error a host call returns to make the guest trap; the details are in [`HostState::fault`].
#[derive(Debug)]
pub(crate) struct HostTrap;

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wasmraft: host call refused")
    }
}

impl std::error::Error for HostTrap {}

/// The data of one guest call's wasmtime `Store`.
pub(crate) struct HostState {
    pub(crate) view: View,
    /// This entry's writes: `Some` is a put, `None` a delete.
    pub(crate) overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(crate) events: Vec<Vec<u8>>,
    /// This entry's `metrics` calls, merged per name.
    pub(crate) metrics: BTreeMap<String, MetricUpdate>,
    /// Bytes held in `overlay`, `events` and `metrics`, against [`GuestLimits::pending_bytes_cap`].
    pending_bytes: u64,
    pending_cap: u64,
    pub(crate) fault: Option<Fault>,
    pub(crate) memory: MemoryCap,
}

impl HostState {
    pub(crate) fn new(limits: &GuestLimits) -> Self {
        HostState {
            view: View::Detached,
            overlay: BTreeMap::new(),
            events: Vec::new(),
            metrics: BTreeMap::new(),
            pending_bytes: 0,
            pending_cap: limits.pending_bytes_cap(),
            fault: None,
            memory: MemoryCap {
                limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                hit: false,
                size: 0,
            },
        }
    }

    /// Forgets what the last call on this instance left (its writes, events, metrics and how
    /// it ended), keeping the memory's size: the next command of the same entry starts here.
    pub(crate) fn reset_for_next_call(&mut self) {
        self.overlay.clear();
        self.events.clear();
        self.metrics.clear();
        self.pending_bytes = 0;
        self.fault = None;
        self.memory.hit = false;
    }

    fn refuse<T>(&mut self, fault: Fault) -> wasmtime::Result<T> {
        // The first fault is the one the guest hit; anything after it is a consequence.
        if self.fault.is_none() {
            self.fault = Some(fault);
        }
        Err(wasmtime::Error::new(HostTrap))
    }

    fn guest_fault<T>(&mut self, text: String) -> wasmtime::Result<T> {
        self.refuse(Fault::Guest(text))
    }

    fn check_key(&mut self, what: &str, key: &[u8]) -> wasmtime::Result<()> {
        if key.len() > limits::MAX_KEY_BYTES {
            return self.guest_fault(format!(
                "wasmraft: guest passed a {} byte key to {what} (the limit is {} bytes)",
                key.len(),
                limits::MAX_KEY_BYTES
            ));
        }
        Ok(())
    }

    fn check_writable(&mut self, what: &str) -> wasmtime::Result<()> {
        match self.view {
            View::Write(_) => Ok(()),
            View::Read(_) => {
                self.guest_fault(format!("wasmraft: guest called {what} during a query, which is read-only"))
            }
            View::Detached => self.guest_fault(format!("wasmraft: guest called {what} outside of apply")),
        }
    }

    fn add_pending(&mut self, add: usize, remove: usize) -> wasmtime::Result<()> {
        let next = self.pending_bytes.saturating_sub(remove as u64).saturating_add(add as u64);
        if next > self.pending_cap {
            return self.guest_fault(format!(
                "wasmraft: guest buffered more than {} bytes of writes and events in one entry (its memory limit)",
                self.pending_cap
            ));
        }
        self.pending_bytes = next;
        Ok(())
    }

    /// Records a `metrics` call: only during `apply`/`migrate`, with a name `/metrics` can serve.
    fn metric(&mut self, what: &str, name: String, update: MetricUpdate) -> wasmtime::Result<()> {
        self.check_writable(what)?;
        if !limits::is_metric_name(&name) {
            return self.guest_fault(format!(
                "wasmraft: guest passed metric name {:?} to {what} (a name is [a-z_][a-z0-9_]*, at most {} bytes)",
                name.chars().take(limits::MAX_METRIC_NAME_BYTES + 1).collect::<String>(),
                limits::MAX_METRIC_NAME_BYTES
            ));
        }
        if !self.metrics.contains_key(&name) {
            self.add_pending(name.len() + limits::METRIC_OVERHEAD_BYTES, 0)?;
        }
        MetricUpdate::merge(&mut self.metrics, name, update);
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.overlay.get(key) {
            return Ok(pending.clone());
        }
        match self.view.store() {
            Some(kv) => kv.get(key),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        let size = key.len() + value.len();
        let replaced = self.overlay.get(&key).map(|old| key.len() + old.as_ref().map_or(0, Vec::len)).unwrap_or(0);
        self.add_pending(size, replaced)?;
        self.overlay.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        let replaced = self.overlay.get(&key).map(|old| key.len() + old.as_ref().map_or(0, Vec::len)).unwrap_or(0);
        self.add_pending(key.len(), replaced)?;
        self.overlay.insert(key, None);
        Ok(())
    }

    /// One page of `start <= key < end` (empty `end`: unbounded), merging this entry's
    /// overlay over the store: an overlay put shadows the store's value, an overlay delete
    /// hides the key.
    fn scan(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Result<Vec<Pair>, StoreError> {
        if !end.is_empty() && start >= end {
            return Ok(Vec::new());
        }
        let limit =
            if limit == 0 || limit > limits::SCAN_PAGE_PAIRS { limits::SCAN_PAGE_PAIRS } else { limit } as usize;
        let end = (!end.is_empty()).then_some(end);
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let bounds = (Bound::Included(start), upper);

        let overlay = self.overlay.range::<[u8], _>(bounds).map(|(k, v)| (k.as_slice(), v.as_deref()));
        let overlay: OverlayIter<'_> = if reverse { Box::new(overlay.rev()) } else { Box::new(overlay) };
        let mut page = Page { overlay: overlay.peekable(), pairs: Vec::new(), bytes: 0, limit, reverse, full: false };
        if let Some(kv) = self.view.store() {
            kv.scan(start, end, reverse, &mut |key, value| page.merge_stored(key, value))?;
        }
        page.finish_overlay();
        Ok(page.pairs)
    }
}

/// A scan page being filled from two key-ordered streams (both ascending, or both descending
/// when `reverse`): this entry's overlay, pulled here, and the store's pairs, pushed in by
/// [`StoreRead::scan`]. The overlay wins ties.
struct Page<'o> {
    overlay: Peekable<OverlayIter<'o>>,
    pairs: Vec<Pair>,
    bytes: usize,
    limit: usize,
    reverse: bool,
    /// No pair fits any more (by count or by bytes): everything after this is left out.
    full: bool,
}

impl Page<'_> {
    /// Takes the store's next pair, after the overlay's entries that come before it; an overlay
    /// entry for the same key replaces it. Breaks once the page is full, so the store reads no
    /// further.
    fn merge_stored(&mut self, key: &[u8], value: &[u8]) -> ControlFlow<()> {
        while !self.full {
            let Some(&(ok, _)) = self.overlay.peek() else { break };
            let first = if self.reverse { ok > key } else { ok < key };
            if !first && ok != key {
                break;
            }
            self.take_overlay();
            if ok == key {
                // Shadowed: the store's version of this key is not part of the result.
                return self.flow();
            }
        }
        if !self.full {
            self.push(key, value);
        }
        self.flow()
    }

    /// What is left of the overlay once the store has no more pairs in range.
    fn finish_overlay(&mut self) {
        while !self.full && self.overlay.peek().is_some() {
            self.take_overlay();
        }
    }

    fn take_overlay(&mut self) {
        // A delete in this entry hides the key; it yields nothing.
        if let Some((k, Some(v))) = self.overlay.next() {
            self.push(k, v);
        }
    }

    fn push(&mut self, key: &[u8], value: &[u8]) {
        let size = key.len() + value.len() + limits::SCAN_PAIR_OVERHEAD;
        if !self.pairs.is_empty() && self.bytes + size > limits::SCAN_PAGE_BYTES {
            self.full = true;
            return;
        }
        self.bytes += size;
        self.pairs.push((key.to_vec(), value.to_vec()));
        self.full = self.pairs.len() >= self.limit;
    }

    fn flow(&self) -> ControlFlow<()> {
        if self.full { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}

/// The guest's memory cap. Growth past it fails the way the Wasm spec allows (`memory.grow`
/// returns -1), so a guest may handle it (`Vec::try_reserve`); most abort, and the resulting
/// trap is reported as the memory limit because `hit` is set.
pub(crate) struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) hit: bool,
    /// The size the guest's memory was last allowed to grow to: its initial size right after
    /// instantiation, more once the guest has grown it.
    pub(crate) size: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.size = desired;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The pool's per-table element limit, the same on every member, is the cap.
        Ok(true)
    }
}

/// Charges a host call's fuel, trapping with out-of-fuel when the entry cannot pay.
fn charge(caller: &mut StoreContextMut<'_, HostState>, bytes: usize, pairs: usize) -> wasmtime::Result<()> {
    charge_fuel(caller, limits::fuel_for_host_call(bytes, pairs))
}

fn charge_fuel(caller: &mut StoreContextMut<'_, HostState>, cost: u64) -> wasmtime::Result<()> {
    let left = caller.get_fuel()?;
    if left < cost {
        caller.set_fuel(0)?;
        return caller.data_mut().refuse(Fault::OutOfFuel);
    }
    caller.set_fuel(left - cost)
}

const STORE: &str = "wasmraft:guest/store@0.1.0";
const EVENTS: &str = "wasmraft:guest/events@0.1.0";
const TYPES: &str = "wasmraft:guest/types@0.1.0";
const METRICS: &str = "wasmraft:guest/metrics@0.1.0";

/// Defines the guest's only imports (`store`, `events`, `metrics`). Nothing else is linked, so a guest that imports anything
/// else (WASI, a clock) fails to load.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // Types only; it must exist because the world `use`s it.
    linker.instance(TYPES)?;

    let mut store = linker.instance(STORE)?;
    store.func_wrap("get", |mut caller: StoreContextMut<'_, HostState>, (key,): (Vec<u8>,)| {
        caller.data_mut().check_key("get", &key)?;
        let value = match caller.data_mut().get(&key) {
            Ok(v) => v,
            Err(e) => return caller.data_mut().refuse(Fault::Storage(e)),
        };
        charge(&mut caller, key.len() + value.as_ref().map_or(0, Vec::len), 0)?;
        Ok((value,))
    })?;
    store.func_wrap("put", |mut caller: StoreContextMut<'_, HostState>, (key, value): (Vec<u8>, Vec<u8>)| {
        let state = caller.data_mut();
        state.check_writable("put")?;
        state.check_key("put", &key)?;
        if value.len() > limits::MAX_VALUE_BYTES {
            return state.guest_fault(format!(
                "wasmraft: guest put a {} byte value (the limit is {} bytes)",
                value.len(),
                limits::MAX_VALUE_BYTES
            ));
        }
        charge(&mut caller, key.len() + value.len(), 0)?;
        caller.data_mut().put(key, value)
    })?;
    store.func_wrap("delete", |mut caller: StoreContextMut<'_, HostState>, (key,): (Vec<u8>,)| {
        let state = caller.data_mut();
        state.check_writable("delete")?;
        state.check_key("delete", &key)?;
        charge(&mut caller, key.len(), 0)?;
        caller.data_mut().delete(key)
    })?;
    store.func_wrap(
        "scan",
        |mut caller: StoreContextMut<'_, HostState>, (start, end, limit, reverse): (Vec<u8>, Vec<u8>, u32, bool)| {
            let state = caller.data_mut();
            state.check_key("scan", &start)?;
            state.check_key("scan", &end)?;
            let page = match state.scan(&start, &end, limit, reverse) {
                Ok(page) => page,
                Err(e) => return caller.data_mut().refuse(Fault::Storage(e)),
            };
            let bytes = start.len() + end.len() + page.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            charge(&mut caller, bytes, page.len())?;
            Ok((page,))
        },
    )?;

    let mut events = linker.instance(EVENTS)?;
    events.func_wrap("emit", |mut caller: StoreContextMut<'_, HostState>, (event,): (Vec<u8>,)| {
        let state = caller.data_mut();
        state.check_writable("emit")?;
        if event.len() > limits::MAX_EVENT_BYTES {
            return state.guest_fault(format!(
                "wasmraft: guest emitted a {} byte event (the limit is {} bytes)",
                event.len(),
                limits::MAX_EVENT_BYTES
            ));
        }
        state.add_pending(event.len(), 0)?;
        charge(&mut caller, event.len(), 0)?;
        caller.data_mut().events.push(event);
        Ok(())
    })?;

    // Linked for every guest; one built before the interface existed simply does not import it.
    let mut metrics = linker.instance(METRICS)?;
    metrics.func_wrap("add", |mut caller: StoreContextMut<'_, HostState>, (name, delta): (String, i64)| {
        charge_fuel(&mut caller, limits::fuel_for_metric_call(name.len()))?;
        caller.data_mut().metric("metrics.add", name, MetricUpdate::Add(delta))
    })?;
    metrics.func_wrap("set", |mut caller: StoreContextMut<'_, HostState>, (name, value): (String, i64)| {
        charge_fuel(&mut caller, limits::fuel_for_metric_call(name.len()))?;
        caller.data_mut().metric("metrics.set", name, MetricUpdate::Set(value))
    })?;
    Ok(())
}
