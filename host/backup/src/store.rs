//! The KV guest's translation runs over the SDK's store traits; these give it the state
//! database's guest table. The traits cannot fail (a guest's store never does), so a database
//! error is kept and the walk sees an empty answer; every caller checks [`TableStore::failure`]
//! before it trusts what the walk produced.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadableTable, WriteTransaction};
use wasmraft_guest_sdk::{ReadStore, Store};
use wasmraft_node::guest_metrics;
use wasmraft_storage::tables::GUEST_KV;

use crate::BackupError;

/// How many pairs one scan page holds: the export walks page by page.
const PAGE: usize = 1024;
/// Writes per transaction in a restore: a restored keyspace is committed in slices so the
/// database's dirty pages stay bounded, whatever the file's size.
const WRITES_PER_TXN: u64 = 100_000;

/// A page of pairs, key then value.
type Page = Vec<(Vec<u8>, Vec<u8>)>;
/// One pair as redb's range hands it.
type Item<'a> =
    Result<(redb::AccessGuard<'a, &'static [u8]>, redb::AccessGuard<'a, &'static [u8]>), redb::StorageError>;

fn bounds<'a>(start: &'a [u8], end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
    (Bound::Included(start), upper)
}

fn page<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    start: &[u8],
    end: &[u8],
    limit: u32,
    reverse: bool,
) -> Result<Page, redb::StorageError> {
    if !end.is_empty() && end <= start {
        return Ok(Vec::new());
    }
    let n = if limit == 0 { PAGE } else { limit as usize };
    let range = t.range::<&[u8]>(bounds(start, end))?;
    let mut out = Vec::new();
    let mut push = |item: Item<'_>| item.map(|(k, v)| out.push((k.value().to_vec(), v.value().to_vec())));
    if reverse {
        for item in range.rev().take(n) {
            push(item)?;
        }
    } else {
        for item in range.take(n) {
            push(item)?;
        }
    }
    Ok(out)
}

/// The guest table of a read transaction, read-only.
pub struct TableStore {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    failure: RefCell<Option<redb::StorageError>>,
}

impl TableStore {
    pub fn open(txn: &redb::ReadTransaction) -> Result<Self, redb::TableError> {
        Ok(TableStore { table: txn.open_table(GUEST_KV)?, failure: RefCell::new(None) })
    }

    /// The first database error a read met, if any: what was read after it is not the state.
    pub fn failure(&self) -> Option<redb::StorageError> {
        self.failure.borrow_mut().take()
    }

    fn keep(&self, e: redb::StorageError) {
        self.failure.borrow_mut().get_or_insert(e);
    }
}

impl ReadStore for TableStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.table.get(key) {
            Ok(v) => v.map(|v| v.value().to_vec()),
            Err(e) => {
                self.keep(e);
                None
            }
        }
    }

    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Page {
        page(&self.table, start, end, limit, reverse).unwrap_or_else(|e| {
            self.keep(e);
            Vec::new()
        })
    }
}

/// The guest table of a new data dir's database, written in slices of [`WRITES_PER_TXN`]
/// writes, each committed without an fsync; [`ImportStore::finish`] commits the last durably.
pub struct ImportStore<'db> {
    db: &'db redb::Database,
    txn: Option<WriteTransaction>,
    writes: u64,
    failure: RefCell<Option<redb::Error>>,
    /// The importer's metric updates (name → value, written with `add`), stored at `finish`.
    metrics: BTreeMap<String, (i64, bool)>,
}

impl<'db> ImportStore<'db> {
    pub fn new(db: &'db redb::Database) -> Result<Self, redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        Ok(ImportStore { db, txn: Some(txn), writes: 0, failure: RefCell::new(None), metrics: BTreeMap::new() })
    }

    fn keep(&self, e: impl Into<redb::Error>) {
        self.failure.borrow_mut().get_or_insert(e.into());
    }

    fn txn(&self) -> Option<&WriteTransaction> {
        if self.failure.borrow().is_some() {
            return None;
        }
        self.txn.as_ref()
    }

    fn write(
        &mut self,
        f: impl FnOnce(&mut redb::Table<&'static [u8], &'static [u8]>) -> Result<(), redb::StorageError>,
    ) {
        let Some(txn) = self.txn() else { return };
        let done = txn.open_table(GUEST_KV).map_err(redb::Error::from).and_then(|mut t| f(&mut t).map_err(Into::into));
        if let Err(e) = done {
            self.keep(e);
            return;
        }
        self.writes += 1;
        if self.writes.is_multiple_of(WRITES_PER_TXN)
            && let Err(e) = self.rotate()
        {
            self.keep(e);
        }
    }

    fn rotate(&mut self) -> Result<(), redb::Error> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        self.txn = Some(txn);
        Ok(())
    }

    /// Commits what is left, durably (the earlier slices become durable with it), or returns
    /// the first error any write met.
    pub fn finish(mut self) -> Result<(), BackupError> {
        if let Some(e) = self.failure.borrow_mut().take() {
            return Err(e.into());
        }
        let Some(mut txn) = self.txn.take() else { return Ok(()) };
        for (name, (value, added)) in &self.metrics {
            guest_metrics::install(&txn, name, *value, *added)?;
        }
        txn.set_durability(redb::Durability::Immediate).map_err(redb::Error::from)?;
        txn.commit()?;
        Ok(())
    }
}

impl ReadStore for ImportStore<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let txn = self.txn()?;
        match txn
            .open_table(GUEST_KV)
            .map_err(redb::Error::from)
            .and_then(|t| Ok(t.get(key)?.map(|v| v.value().to_vec())))
        {
            Ok(v) => v,
            Err(e) => {
                self.keep(e);
                None
            }
        }
    }

    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Page {
        let Some(txn) = self.txn() else { return Vec::new() };
        match txn
            .open_table(GUEST_KV)
            .map_err(redb::Error::from)
            .and_then(|t| Ok(page(&t, start, end, limit, reverse)?))
        {
            Ok(v) => v,
            Err(e) => {
                self.keep(e);
                Vec::new()
            }
        }
    }
}

impl Store for ImportStore<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.write(|t| t.insert(key, value).map(|_| ()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.write(|t| t.remove(key).map(|_| ()));
    }

    /// A restore has no watchers.
    fn emit(&mut self, _event: &[u8]) {}

    fn metric_add(&mut self, name: &str, delta: i64) {
        let entry = self.metrics.entry(name.to_string()).or_insert((0, true));
        *entry = (entry.0.saturating_add(delta), true);
    }

    fn metric_set(&mut self, name: &str, value: i64) {
        self.metrics.insert(name.to_string(), (value, false));
    }
}
