//! What a running guest instance sees of the host: the `store` and `events` imports, backed by
//! the caller's redb transaction and an in-memory overlay of this entry's writes.
//!
//! Writes never touch redb while the guest runs. They collect in the overlay, which reads
//! consult first, and are flushed into `GUEST_KV` only after `apply` returned `Ok`: a trap, an
//! `Err` or an exhausted budget therefore leaves the table untouched without any undo.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadOnlyTable, ReadableTable, WriteTransaction};
use wasmtime::component::Linker;
use wasmtime::{ResourceLimiter, StoreContextMut};

use super::limits::{self, GuestLimits};
use wasmraft_storage::tables::GUEST_KV;

pub(crate) type KvTable = ReadOnlyTable<&'static [u8], &'static [u8]>;
type Pair = (Vec<u8>, Vec<u8>);
/// The overlay's view of a range: `None` values are this entry's deletes.
type OverlayIter<'o> = Box<dyn Iterator<Item = (&'o [u8], Option<&'o [u8]>)> + 'o>;
type TableRow<'t> =
    Result<(redb::AccessGuard<'t, &'static [u8]>, redb::AccessGuard<'t, &'static [u8]>), redb::StorageError>;

/// The keyspace one guest call works on.
// One per call, moved into the store and out again: boxing the transaction would only add an
// allocation per entry.
#[allow(clippy::large_enum_variant)]
pub(crate) enum View {
    /// `apply` and `migrate`: the caller's write transaction, moved in for the call and handed
    /// back afterwards (store data must be `'static`, so it cannot be borrowed).
    Write(WriteTransaction),
    /// `query`: a read-only snapshot; `None` when the guest has never written anything.
    Read(Option<KvTable>),
    /// `info`, and a write view after its transaction was taken back.
    Detached,
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
    /// redb failed: not the guest's doing, and fatal to the member.
    Storage(redb::Error),
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
    /// Bytes held in `overlay` and `events`, against [`GuestLimits::pending_bytes_cap`].
    pending_bytes: u64,
    pending_cap: u64,
    pub(crate) fault: Option<Fault>,
    pub(crate) memory: MemoryCap,
}

impl HostState {
    pub(crate) fn new(view: View, limits: &GuestLimits) -> Self {
        HostState {
            view,
            overlay: BTreeMap::new(),
            events: Vec::new(),
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

    /// Takes the write transaction back out of the store data.
    pub(crate) fn take_txn(&mut self) -> Option<WriteTransaction> {
        match std::mem::replace(&mut self.view, View::Detached) {
            View::Write(txn) => Some(txn),
            other => {
                self.view = other;
                None
            }
        }
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

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, redb::Error> {
        if let Some(pending) = self.overlay.get(key) {
            return Ok(pending.clone());
        }
        match &self.view {
            View::Write(txn) => {
                let table = txn.open_table(GUEST_KV)?;
                Ok(table.get(key)?.map(|v| v.value().to_vec()))
            }
            View::Read(Some(table)) => Ok(table.get(key)?.map(|v| v.value().to_vec())),
            View::Read(None) | View::Detached => Ok(None),
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
    /// overlay over the table: an overlay put shadows the table's value, an overlay delete
    /// hides the key.
    fn scan(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Result<Vec<Pair>, redb::Error> {
        if !end.is_empty() && start >= end {
            return Ok(Vec::new());
        }
        let limit =
            if limit == 0 || limit > limits::SCAN_PAGE_PAIRS { limits::SCAN_PAGE_PAIRS } else { limit } as usize;
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        let bounds = (Bound::Included(start), upper);

        let overlay = self.overlay.range::<[u8], _>(bounds).map(|(k, v)| (k.as_slice(), v.as_deref()));
        let overlay: OverlayIter<'_> = if reverse { Box::new(overlay.rev()) } else { Box::new(overlay) };

        match &self.view {
            View::Write(txn) => {
                let table = txn.open_table(GUEST_KV)?;
                merge_page(overlay, table_range(&table, bounds, reverse)?, limit, reverse)
            }
            View::Read(Some(table)) => merge_page(overlay, table_range(table, bounds, reverse)?, limit, reverse),
            View::Read(None) | View::Detached => merge_page(overlay, std::iter::empty(), limit, reverse),
        }
    }
}

#[derive(PartialEq, Eq)]
enum Take {
    Overlay,
    Table,
    Both,
}

fn table_range<'t>(
    table: &'t impl ReadableTable<&'static [u8], &'static [u8]>,
    bounds: (Bound<&[u8]>, Bound<&[u8]>),
    reverse: bool,
) -> Result<Box<dyn Iterator<Item = Result<Pair, redb::StorageError>> + 't>, redb::Error> {
    let range = table.range::<&[u8]>(bounds)?;
    let pair = |item: TableRow<'_>| item.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()));
    Ok(if reverse { Box::new(range.rev().map(pair)) } else { Box::new(range.map(pair)) })
}

/// Merges two key-ordered streams (both ascending, or both descending when `reverse`) into one
/// page, the overlay winning ties.
fn merge_page<'o>(
    overlay: impl Iterator<Item = (&'o [u8], Option<&'o [u8]>)>,
    table: impl Iterator<Item = Result<Pair, redb::StorageError>>,
    limit: usize,
    reverse: bool,
) -> Result<Vec<Pair>, redb::Error> {
    let mut overlay = overlay.peekable();
    let mut table = table.peekable();
    let mut page = Vec::new();
    let mut bytes = 0usize;
    while page.len() < limit {
        let take = match (overlay.peek(), table.peek()) {
            (None, None) => break,
            (Some(_), None) => Take::Overlay,
            // An error is taken like a pair so that it surfaces below.
            (None, Some(_)) | (_, Some(Err(_))) => Take::Table,
            (Some((ok, _)), Some(Ok((tk, _)))) => match ok.cmp(&tk.as_slice()) {
                // Shadowed: the table's version of this key is not part of the result.
                std::cmp::Ordering::Equal => Take::Both,
                std::cmp::Ordering::Less if !reverse => Take::Overlay,
                std::cmp::Ordering::Greater if reverse => Take::Overlay,
                _ => Take::Table,
            },
        };
        if take == Take::Both {
            table.next();
        }
        let pair = if take == Take::Table {
            match table.next() {
                Some(Ok(pair)) => pair,
                Some(Err(e)) => return Err(e.into()),
                None => continue,
            }
        } else {
            match overlay.next() {
                Some((k, Some(v))) => (k.to_vec(), v.to_vec()),
                // A delete in this entry hides the key; it yields nothing.
                Some((_, None)) | None => continue,
            }
        };
        let size = pair.0.len() + pair.1.len() + limits::SCAN_PAIR_OVERHEAD;
        if !page.is_empty() && bytes + size > limits::SCAN_PAGE_BYTES {
            break;
        }
        bytes += size;
        page.push(pair);
    }
    Ok(page)
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
    let cost = limits::fuel_for_host_call(bytes, pairs);
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

/// Defines the guest's only imports. Nothing else is linked, so a guest that imports anything
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
    Ok(())
}

/// Writes an applied entry's overlay into `GUEST_KV` in the caller's transaction.
pub(crate) fn flush(txn: &WriteTransaction, overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Result<(), redb::Error> {
    if overlay.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(GUEST_KV)?;
    for (key, value) in overlay {
        match value {
            Some(value) => {
                table.insert(key.as_slice(), value.as_slice())?;
            }
            None => {
                table.remove(key.as_slice())?;
            }
        }
    }
    Ok(())
}

/// The snapshot a query reads, or `None` if the guest keyspace was never created.
pub(crate) fn open_read(txn: &redb::ReadTransaction) -> Result<Option<KvTable>, redb::Error> {
    match txn.open_table(GUEST_KV) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
