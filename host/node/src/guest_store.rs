//! The guest's keyspace in the state database: the `GUEST_KV` table, lent to the guest runtime
//! for each entry ([`GuestKv`], over the apply loop's write transaction) and each query
//! ([`GuestKvSnapshot`], over a read transaction).
//!
//! The runtime keeps an entry's writes to itself until the guest's `apply` returns `Ok`, then
//! hands them over in one [`StoreWrite::write`]; a failed entry never reaches the table. The
//! table is opened per call, as the runtime asks: an entry that does not touch the keyspace
//! does not create it.

use std::cmp::Ordering;
use std::ops::{Bound, ControlFlow};

use redb::{ReadOnlyTable, ReadableTable, WriteTransaction};
use wasmraft_runtime::{ApplyError, Guest, StoreError, StoreRead, StoreWrite, Visit, Writes};

use crate::kv_size::entry_bytes;
use crate::uncommitted::{KvRow, KvRows, StateView, kv_range};
use bytes::Bytes;
use wasmraft_storage::tables::GUEST_KV;

/// The keyspace as a write transaction holds it: what an entry is applied to.
pub struct GuestKv<'t> {
    txn: &'t WriteTransaction,
    /// What the writes so far changed the keyspace's counted size by (`crate::kv_size`).
    size_delta: i64,
    /// Where the rows written are also recorded for readers until the transaction commits
    /// (`crate::uncommitted`); None when the transaction commits before anyone reads.
    uncommitted: Option<&'t mut KvRows>,
}

impl<'t> GuestKv<'t> {
    pub fn new(txn: &'t WriteTransaction) -> GuestKv<'t> {
        GuestKv { txn, size_delta: 0, uncommitted: None }
    }

    /// The keyspace of the apply thread's open transaction: every row written is also
    /// recorded in `uncommitted`, which readers lay over the committed state.
    pub fn recording(txn: &'t WriteTransaction, uncommitted: &'t mut KvRows) -> GuestKv<'t> {
        GuestKv { txn, size_delta: 0, uncommitted: Some(uncommitted) }
    }

    /// Bytes the writes added to the keyspace's counted size (negative: freed).
    pub fn size_delta(&self) -> i64 {
        self.size_delta
    }
}

impl StoreRead for GuestKv<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.txn.open_table(GUEST_KV).map_err(storage)?;
        let value = table.get(key).map_err(storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, reverse: bool, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let table = self.txn.open_table(GUEST_KV).map_err(storage)?;
        scan_table(&table, start, end, reverse, visit)
    }
}

impl StoreWrite for GuestKv<'_> {
    fn write(&mut self, writes: &Writes) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(GUEST_KV).map_err(storage)?;
        let size = |key: &[u8], value_len: usize| i64::try_from(entry_bytes(key.len(), value_len)).unwrap_or(i64::MAX);
        for (key, value) in writes.iter() {
            if let Some(rows) = self.uncommitted.as_deref_mut() {
                rows.insert(Bytes::copy_from_slice(key), value.map(Bytes::copy_from_slice));
            }
            match value {
                Some(value) => {
                    // redb hands back the value replaced: the count needs no read of its own.
                    let replaced = table.insert(key, value).map_err(storage)?.map(|old| old.value().len());
                    self.size_delta += size(key, value.len()) - replaced.map_or(0, |old| size(key, old));
                }
                None => {
                    if let Some(old) = table.remove(key).map_err(storage)? {
                        self.size_delta -= size(key, old.value().len());
                    }
                }
            }
        }
        Ok(())
    }
}

/// The keyspace as a query reads it: a read transaction of the committed state with the
/// writes applied since its last commit laid over it (`crate::uncommitted`).
pub struct GuestKvSnapshot {
    /// `None` when the guest has never written anything (the table does not exist yet).
    table: Option<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    uncommitted: KvRows,
}

impl GuestKvSnapshot {
    pub fn open(view: &StateView) -> Result<GuestKvSnapshot, StoreError> {
        let uncommitted = view.uncommitted.kv.clone();
        match view.txn.open_table(GUEST_KV) {
            Ok(table) => Ok(GuestKvSnapshot { table: Some(table), uncommitted }),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(GuestKvSnapshot { table: None, uncommitted }),
            Err(e) => Err(storage(e)),
        }
    }
}

impl StoreRead for GuestKvSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(row) = self.uncommitted.get(key) {
            return Ok(row.as_ref().map(|v| v.to_vec()));
        }
        let Some(table) = &self.table else { return Ok(None) };
        let value = table.get(key).map_err(storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, reverse: bool, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        if self.uncommitted.is_empty() {
            return match &self.table {
                Some(table) => scan_table(table, start, end, reverse, visit),
                None => Ok(()),
            };
        }
        let over = kv_range(&self.uncommitted, start, end, reverse);
        match &self.table {
            Some(table) => {
                let bounds = (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded));
                let range = table.range::<&[u8]>(bounds).map_err(storage)?;
                if reverse {
                    merge_rows(range.rev(), over, reverse, visit)
                } else {
                    merge_rows(range, over, reverse, visit)
                }
            }
            None => merge_rows(std::iter::empty(), over, reverse, visit),
        }
    }
}

/// [`Guest::query`] on a view of the applied state.
pub fn query(guest: &Guest, view: &StateView, request: &[u8]) -> Result<Vec<u8>, ApplyError> {
    guest.query(&GuestKvSnapshot::open(view)?, request)
}

/// [`Guest::try_query`] on a view of the applied state.
pub fn try_query(guest: &Guest, view: &StateView, request: &[u8], fuel: u64) -> Option<Result<Vec<u8>, ApplyError>> {
    match GuestKvSnapshot::open(view) {
        Ok(kv) => guest.try_query(&kv, request, fuel),
        Err(e) => Some(Err(e.into())),
    }
}

/// Hands `visit` the table's rows with the uncommitted ones laid over them, in the scan's
/// order: an uncommitted row replaces the table's row of the same key (a `None` hides it).
fn merge_rows<'t, 'o>(
    mut rows: impl Iterator<Item = Result<Row<'t>, redb::StorageError>>,
    mut over: impl Iterator<Item = KvRow<'o>>,
    reverse: bool,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let mut table_row = rows.next().transpose().map_err(storage)?;
    let mut over_row = over.next();
    loop {
        // Which comes first in the scan's order: the table's next row or the overlay's.
        let table_first = match (&table_row, over_row) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((t, _)), Some((o, _))) => {
                let (t, o): (&[u8], &[u8]) = (t.value(), o);
                if reverse { o.cmp(t) } else { t.cmp(o) }
            }
        };
        let flow = match (table_first, &table_row, over_row) {
            (Ordering::Less, Some((k, v)), _) => {
                let flow = visit(k.value(), v.value());
                table_row = rows.next().transpose().map_err(storage)?;
                flow
            }
            (_, _, Some((k, v))) => {
                if table_first == Ordering::Equal {
                    table_row = rows.next().transpose().map_err(storage)?;
                }
                over_row = over.next();
                match v {
                    Some(v) => visit(k, v),
                    None => ControlFlow::Continue(()),
                }
            }
            // `table_first` is Less only with a table row and otherwise only with an overlay row.
            _ => return Ok(()),
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}

fn scan_table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: Option<&[u8]>,
    reverse: bool,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let bounds = (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded));
    let range = table.range::<&[u8]>(bounds).map_err(storage)?;
    if reverse { visit_rows(range.rev(), visit) } else { visit_rows(range, visit) }
}

type Row<'t> = (redb::AccessGuard<'t, &'static [u8]>, redb::AccessGuard<'t, &'static [u8]>);

/// Hands `rows` to `visit` until it breaks; a row is read only once the last one was taken.
fn visit_rows<'t>(
    rows: impl Iterator<Item = Result<Row<'t>, redb::StorageError>>,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    for row in rows {
        let (key, value) = row.map_err(storage)?;
        if visit(key.value(), value.value()).is_break() {
            break;
        }
    }
    Ok(())
}

fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::new(e.into())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use redb::{Database, ReadableDatabase};
    use wasmraft_runtime::{Applied, ApplyContext, EngineConfig, GuestEngine, GuestLimits, limits};

    use super::*;

    static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_HOSTILE_GUEST"));
    static KV: &[u8] = include_bytes!(env!("WASMRAFT_KV_GUEST"));

    fn engine() -> &'static GuestEngine {
        static ENGINE: OnceLock<GuestEngine> = OnceLock::new();
        ENGINE.get_or_init(|| GuestEngine::new(EngineConfig::default()).expect("engine"))
    }

    fn hostile() -> Guest {
        let limits = GuestLimits {
            fuel_per_entry: 200_000_000,
            memory_bytes: 64 << 20,
            stack_bytes: limits::DEFAULT_STACK_BYTES,
        };
        Guest::load(engine(), HOSTILE, limits).expect("hostile guest loads")
    }

    struct Db {
        _dir: tempfile::TempDir,
        db: Database,
        index: u64,
    }

    impl Db {
        fn new() -> Db {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Database::create(dir.path().join("state.redb")).expect("create db");
            Db { _dir: dir, db, index: 0 }
        }

        /// Applies one entry in its own transaction, committing whatever the guest left there.
        fn apply(&mut self, guest: &Guest, command: &[u8]) -> Result<Applied, ApplyError> {
            self.apply_counted(guest, command).0
        }

        /// [`Db::apply`], with what the entry changed the keyspace's counted size by.
        fn apply_counted(&mut self, guest: &Guest, command: &[u8]) -> (Result<Applied, ApplyError>, i64) {
            self.index += 1;
            let txn = self.db.begin_write().expect("begin write");
            let ctx = ApplyContext { index: self.index, term: 1, time_unix_ms: 1_700_000_000_000 + self.index };
            let mut kv = GuestKv::new(&txn);
            let result = guest.apply(&mut kv, ctx, command);
            let delta = kv.size_delta();
            txn.commit().expect("commit");
            (result, delta)
        }

        fn query(&self, guest: &Guest, request: &[u8]) -> Result<Vec<u8>, ApplyError> {
            let view = StateView::committed(self.db.begin_read().expect("begin read"));
            query(guest, &view, request)
        }

        /// The whole guest keyspace, as the table holds it.
        fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
            let txn = self.db.begin_read().expect("begin read");
            let table = match txn.open_table(GUEST_KV) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Vec::new(),
                Err(e) => panic!("{e}"),
            };
            table
                .iter()
                .expect("iter")
                .map(|r| r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())).expect("row"))
                .collect()
        }
    }

    fn text(r: Result<Applied, ApplyError>) -> String {
        String::from_utf8(r.expect("entry applies").output).expect("utf-8")
    }

    #[test]
    fn failed_entries_leave_the_table_untouched() {
        let g = hostile();
        let mut db = Db::new();
        // Before the first write there is no table: reads find nothing.
        assert_eq!(db.query(&g, b"script:get a;scan - - 0 fwd").expect("query"), b"none\n");
        assert_eq!(text(db.apply(&g, b"ok:a=1")), "ok");
        let before = db.dump();
        assert_eq!(before, vec![(b"a".to_vec(), b"1".to_vec())]);
        for command in [&b"put-then-trap:b=2"[..], b"put-then-panic", b"put-then-err", b"loop", b"alloc:100000000"] {
            assert!(matches!(db.apply(&g, command), Err(ApplyError::Guest(_))));
        }
        assert_eq!(db.dump(), before);
        db.apply(&g, b"script:put c 3;del a").expect("applies");
        assert_eq!(db.dump(), vec![(b"c".to_vec(), b"3".to_vec())]);
    }

    /// The keyspace's counted size (`crate::kv_size`), kept up to date write by write from what
    /// redb says each write replaced, always equals a count of the table: through new keys,
    /// overwrites with longer and shorter values, deletes, a failed entry and a KV compaction.
    #[test]
    fn the_counted_size_follows_every_write() {
        use prost::Message as _;
        use wasmraft_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, InternalRaftRequest, PutRequest};

        let counted = |db: &Db| -> i64 {
            db.dump().iter().map(|(k, v)| crate::kv_size::entry_bytes(k.len(), v.len()) as i64).sum()
        };
        let mut db = Db::new();
        let mut total = 0i64;
        let h = hostile();
        for command in [&b"ok:a=1"[..], b"script:put b 22;put a 333", b"put-then-trap:c=3", b"script:put a 4;del b"] {
            total += db.apply_counted(&h, command).1;
            assert_eq!(total, counted(&db), "after {:?}", String::from_utf8_lossy(command));
        }
        let kv = Guest::load(engine(), KV, GuestLimits::default()).expect("kv guest loads");
        let mut db = Db::new();
        let mut total = 0i64;
        let put = |k: &str, v: usize| InternalRaftRequest {
            put: Some(PutRequest { key: k.into(), value: vec![b'v'; v], ..Default::default() }),
            ..Default::default()
        };
        let commands = [
            put("k1", 100),
            put("k2", 10),
            put("k1", 5),
            put("k1", 1000),
            InternalRaftRequest {
                delete_range: Some(DeleteRangeRequest { key: b"k2".to_vec(), ..Default::default() }),
                ..Default::default()
            },
            InternalRaftRequest {
                compaction: Some(CompactionRequest { revision: 5, physical: true }),
                ..Default::default()
            },
        ];
        for (i, c) in commands.iter().enumerate() {
            let (result, delta) = db.apply_counted(&kv, &c.encode_to_vec());
            result.unwrap_or_else(|e| panic!("command {i}: {e}"));
            total += delta;
            assert_eq!(total, counted(&db), "after command {i}");
        }
        assert!(total > 0);
    }

    #[test]
    fn scans_merge_the_entry_overlay_with_the_table_in_both_directions() {
        let g = hostile();
        let mut db = Db::new();
        for cmd in ["ok:a=1", "ok:c=3", "ok:e=5", "ok:g=7"] {
            text(db.apply(&g, cmd.as_bytes()));
        }
        // Within one entry: add b and d, overwrite e, delete c and g, then scan.
        let out = text(db.apply(
            &g,
            b"script:put b 2;put d 4;put e 55;del c;del g;put z 26;del z;scan - - 0 fwd;scan - - 0 rev;scan b e 0 fwd;scan b e 0 rev;scan - - 2 fwd;scan - - 2 rev;scan c - 1 fwd;scan e e 0 fwd;get c;get e",
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[7..],
            [
                "a=1,b=2,d=4,e=55",
                "e=55,d=4,b=2,a=1",
                "b=2,d=4",
                "d=4,b=2",
                "a=1,b=2",
                "e=55,d=4",
                "d=4",
                "",
                "none",
                "55",
            ]
        );
        // The same view once committed, through a query.
        assert_eq!(
            db.query(&g, b"script:scan - - 0 fwd;scan - - 0 rev").expect("query"),
            b"a=1,b=2,d=4,e=55\ne=55,d=4,b=2,a=1"
        );
    }

    /// The node runs queries on its async workers with a small fuel budget first
    /// (`Reads::query`): a single-key range of the KV guest must fit well inside that
    /// budget, and a query that does not fit must come back as "run it again", not as an error.
    #[test]
    fn small_queries_fit_the_inline_budget_and_big_ones_ask_to_be_rerun() {
        use prost::Message as _;
        use wasmraft_proto::etcdserverpb::{InternalRaftRequest, PutRequest, RangeRequest, RangeResponse};

        let g = Guest::load(engine(), KV, GuestLimits::default()).expect("kv guest loads");
        let mut db = Db::new();
        for i in 0..300 {
            let put = InternalRaftRequest {
                put: Some(PutRequest {
                    key: format!("key{i:04}").into_bytes(),
                    value: vec![b'v'; 256],
                    ..Default::default()
                }),
                ..Default::default()
            };
            db.apply(&g, &put.encode_to_vec()).expect("put applies");
        }
        let txn = StateView::committed(db.db.begin_read().expect("begin read"));
        let one = RangeRequest { key: b"key0042".to_vec(), ..Default::default() }.encode_to_vec();
        // A tenth of the node's inline budget is plenty for one key.
        let inline =
            try_query(&g, &txn, &one, crate::INLINE_QUERY_FUEL / 10).expect("a single-key range fits").expect("query");
        let resp = RangeResponse::decode(&inline[..]).expect("a RangeResponse");
        assert_eq!(resp.kvs.len(), 1);
        assert_eq!(inline, query(&g, &txn, &one).expect("full-budget query"), "same answer either way");
        // All 300 keys cannot be read with a budget of 10,000 units: asked to rerun, and the
        // rerun with the full budget answers.
        let all =
            RangeRequest { key: b"key".to_vec(), range_end: b"kez".to_vec(), ..Default::default() }.encode_to_vec();
        assert!(try_query(&g, &txn, &all, 10_000).is_none(), "out of the small budget means rerun");
        let resp =
            RangeResponse::decode(&query(&g, &txn, &all).expect("full-budget query")[..]).expect("a RangeResponse");
        assert_eq!(resp.count, 300);
        // A guest error is final, whatever the budget.
        let e = try_query(&g, &txn, b"\xff\xff\xff", crate::INLINE_QUERY_FUEL);
        assert!(matches!(e, Some(Err(ApplyError::Guest(_)))), "{e:?}");
    }

    /// A query reads the committed table with the uncommitted rows laid over it: every get and
    /// every scan (both directions, any bounds, stopped early) answers as one map holding both.
    #[test]
    fn uncommitted_rows_read_as_if_committed() {
        use std::collections::BTreeMap;
        use std::ops::ControlFlow;

        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("state.redb")).expect("create db");
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut rows = KvRows::default();
        // A small xorshift: the same cases every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let key = |i: u64| format!("k{i:02}").into_bytes();
        {
            let txn = db.begin_write().expect("begin write");
            {
                let mut table = txn.open_table(GUEST_KV).expect("table");
                for i in 0..40 {
                    if next(2) == 0 {
                        let v = format!("c{i}").into_bytes();
                        table.insert(key(i).as_slice(), v.as_slice()).expect("insert");
                        model.insert(key(i), v);
                    }
                }
            }
            txn.commit().expect("commit");
        }
        for i in 0..40 {
            match next(3) {
                0 => {
                    rows.insert(key(i).into(), None);
                    model.remove(&key(i));
                }
                1 => {
                    let v = format!("u{i}").into_bytes();
                    rows.insert(key(i).into(), Some(v.clone().into()));
                    model.insert(key(i), v);
                }
                _ => {}
            }
        }
        let view = StateView {
            txn: db.begin_read().expect("begin read"),
            uncommitted: crate::uncommitted::Uncommitted { kv: rows, ..Default::default() },
        };
        let snap = GuestKvSnapshot::open(&view).expect("open");
        for i in 0..42 {
            assert_eq!(snap.get(&key(i)).expect("get"), model.get(&key(i)).cloned(), "get {i}");
        }
        for _ in 0..400 {
            let start = key(next(42));
            let end = (next(4) != 0).then(|| key(next(42)));
            let reverse = next(2) == 0;
            let limit = next(12) as usize;
            let mut got = Vec::new();
            snap.scan(&start, end.as_deref(), reverse, &mut |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                if got.len() == limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })
            .expect("scan");
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = model
                .iter()
                .filter(|(k, _)| **k >= start && end.as_ref().is_none_or(|e| *k < e))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if reverse {
                want.reverse();
            }
            if limit > 0 {
                want.truncate(limit);
            }
            assert_eq!(got, want, "scan {start:?}..{end:?} reverse {reverse} limit {limit}");
        }
    }
}
