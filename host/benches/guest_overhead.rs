//! Per-entry guest overhead: the bundled KV guest run as Wasm by the host versus the same
//! `StateMachine` called natively, on a put-heavy workload, plus the cost of a fresh instance
//! alone. A report, not a timed test:
//!
//! ```sh
//! cargo bench -p wasmraft --bench guest_overhead
//! GUEST_OVERHEAD_ENTRIES=50000 GUEST_OVERHEAD_REPS=7 cargo bench -p wasmraft --bench guest_overhead
//! ```
//!
//! Variants, each over the same pre-encoded commands (etcd `InternalRaftRequest { put }`,
//! distinct 8-byte keys, 128-byte values), median of the repetitions:
//!
//! - (a) native, in memory: `KvGuest::apply` on the SDK's `MemStore`, called directly (not
//!   through `Harness`, which clones the whole store per entry for rollback);
//! - (b) native, redb: `KvGuest::apply` on a `Store` over the `GUEST_KV` table of a redb write
//!   transaction, one transaction per batch, `Durability::None`, as the apply thread does;
//! - (c) Wasm: `Guest::apply` with the bundled component, same transactions as (b);
//! - (d) a fresh instance alone: `Guest::apply` of an empty command (the guest decodes it and
//!   returns `Err` at once, nothing is written); and `Guest::query` of bytes that are not a
//!   `RangeRequest`, which since queries keep their instance (docs/decisions.md) is the cost
//!   of a query call without the instance.
//!
//! Repetitions interleave the variants so background load hits them alike; every repetition
//! starts from an empty store, and (a), (b) and (c) must end with identical keyspaces.

use std::ops::Bound;
use std::time::{Duration, Instant};

use prost::Message as _;
use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, Table};
use wasmraft::server::BUNDLED_KV_GUEST;
use wasmraft_guest_sdk::testing::MemStore;
use wasmraft_guest_sdk::{ReadStore, StateMachine as _, Store};
use wasmraft_kv_guest::KvGuest;
use wasmraft_node::guest_store::{self, GuestKv};
use wasmraft_node::uncommitted::StateView;
use wasmraft_proto::etcdserverpb::{InternalRaftRequest, PutRequest};
use wasmraft_runtime::{ApplyContext, ApplyError, Guest, GuestEngine, GuestLimits, limits};
use wasmraft_storage::tables::GUEST_KV;

const KEY_BYTES: usize = 8;
const VALUE_BYTES: usize = 128;
/// Entries per redb write transaction.
const BATCH: usize = 100;
const TERM: u64 = 1;
const TIME0_MS: u64 = 1_700_000_000_000;

fn main() -> anyhow::Result<()> {
    let entries = env_usize("GUEST_OVERHEAD_ENTRIES", 30_000);
    let reps = env_usize("GUEST_OVERHEAD_REPS", 5);
    let commands = put_commands(entries);

    let engine = GuestEngine::new(Default::default())?;
    let load = Instant::now();
    let guest = Guest::load(&engine, BUNDLED_KV_GUEST, GuestLimits::default())?;
    let load = load.elapsed();

    println!("guest_overhead: KV guest, Wasm vs native, per entry");
    println!(
        "  {entries} put entries per repetition, {reps} repetitions (median), {BATCH} entries per redb write transaction (Durability::None)"
    );
    println!(
        "  command: InternalRaftRequest {{ put: PutRequest {{ key: {KEY_BYTES} B distinct, value: {VALUE_BYTES} B }} }}, {} B encoded",
        commands[0].len()
    );
    println!(
        "  guest: {} {} ({} KiB component, compiled in {:.2} s), {engine:?}, limits {:?}",
        guest.info().name,
        guest.info().version,
        BUNDLED_KV_GUEST.len() / 1024,
        load.as_secs_f64(),
        guest.limits()
    );
    println!(
        "  machine: {} cores, kernel {} (PAGEMAP_SCAN for pool resets: {}), load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        read_trimmed("/proc/sys/kernel/osrelease"),
        wasmtime::PoolingAllocationConfig::is_pagemap_scan_available(),
        read_trimmed("/proc/loadavg")
    );

    let mut runs: [Vec<Duration>; 5] = Default::default();
    for rep in 0..reps {
        let (t, native_mem) = native_mem(&commands);
        runs[0].push(t);
        let (t, native_redb) = with_db(|db| native_redb(db, &commands))?;
        runs[1].push(t);
        let (t, wasm) = with_db(|db| wasm(db, &guest, &commands))?;
        runs[2].push(t);
        if rep == 0 {
            anyhow::ensure!(
                native_mem == native_redb && native_redb == wasm,
                "the variants disagree on the keyspace: {native_mem:?} / {native_redb:?} / {wasm:?}"
            );
            println!(
                "  check: (a), (b) and (c) end with the same keyspace ({} rows, fingerprint {:016x})",
                wasm.0, wasm.1
            );
        }
        runs[3].push(with_db(|db| empty_apply(db, &guest, entries))?);
        runs[4].push(with_db(|db| rejected_query(db, &guest, entries))?);
    }
    println!("  load average after: {}", read_trimmed("/proc/loadavg"));
    println!();

    let names = [
        "(a) native, MemStore",
        "(b) native, redb GUEST_KV",
        "(c) Wasm, Guest::apply",
        "(d) instance: apply of empty command",
        "(d) query call, kept instance: rejected query",
    ];
    let per_entry: Vec<f64> = runs.iter().map(|r| micros_per_entry(median(r), entries)).collect();
    println!("| variant | µs/entry (median) | min–max µs/entry | entries/s | ratio to (a) |");
    println!("|---|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let (lo, hi) = spread(&runs[i], entries);
        println!(
            "| {name} | {:.2} | {lo:.2}–{hi:.2} | {} | {:.2} |",
            per_entry[i],
            thousands(1e6 / per_entry[i]),
            per_entry[i] / per_entry[0]
        );
    }
    let [a, b, c, d_apply, d_query] = [0, 1, 2, 3, 4].map(|i| per_entry[i]);
    println!();
    println!("wasm/native on the same store, (c)/(b): {:.2}", c / b);
    println!("redb/MemStore, natively, (b)/(a): {:.2}", b / a);
    println!(
        "instantiation share, (d apply)/(c): {:.0}%  (a query call in a kept instance, (d query)/(c): {:.0}%)",
        100.0 * d_apply / c,
        100.0 * d_query / c
    );
    println!(
        "derived, µs/entry: Wasm path over native redb (c)-(b) = {:.2}, of which a fresh instance + call (d apply) = {:.2}, rest (guest code in Wasm, boundary copies, host overlay) = {:.2}",
        c - b,
        d_apply,
        c - b - d_apply
    );
    Ok(())
}

/// Distinct 8-byte keys in scattered order (a bijection on u32, printed as 8 hex digits), so
/// inserts land all over the B-trees as random keys would.
fn put_commands(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let key = format!("{:08x}", (i as u32).wrapping_mul(0x9E37_79B1)).into_bytes();
            debug_assert_eq!(key.len(), KEY_BYTES);
            let mut value = vec![b'v'; VALUE_BYTES];
            value[..key.len()].copy_from_slice(&key);
            InternalRaftRequest { put: Some(PutRequest { key, value, ..Default::default() }), ..Default::default() }
                .encode_to_vec()
        })
        .collect()
}

fn ctx(i: usize) -> ApplyContext {
    ApplyContext { index: i as u64 + 1, term: TERM, time_unix_ms: TIME0_MS + i as u64 }
}

fn sdk_ctx(i: usize) -> wasmraft_guest_sdk::ApplyContext {
    let c = ctx(i);
    wasmraft_guest_sdk::ApplyContext { index: c.index, term: c.term, time_unix_ms: c.time_unix_ms }
}

/// (a): the guest's logic on the SDK's in-memory store.
fn native_mem(commands: &[Vec<u8>]) -> (Duration, Fingerprint) {
    let mut store = MemStore::new();
    let start = Instant::now();
    for (i, command) in commands.iter().enumerate() {
        KvGuest::apply(&sdk_ctx(i), &mut store, command).expect("native put");
        // The host hands each entry's events to the watch hub; here they are dropped.
        store.events.clear();
    }
    let elapsed = start.elapsed();
    (elapsed, fingerprint(store.data.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))))
}

/// The guest's `Store` over the host's table, written directly (no per-entry overlay: a
/// native entry that failed halfway would leave its writes behind, which this workload never
/// does).
struct RedbStore<'t> {
    table: Table<'t, &'static [u8], &'static [u8]>,
    events: Vec<Vec<u8>>,
}

impl ReadStore for RedbStore<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.table.get(key).expect("redb get").map(|v| v.value().to_vec())
    }

    fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        if !end.is_empty() && start >= end {
            return Vec::new();
        }
        let limit = match limit {
            0 => limits::SCAN_PAGE_PAIRS,
            n => n.min(limits::SCAN_PAGE_PAIRS),
        } as usize;
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        let range = self.table.range::<&[u8]>((Bound::Included(start), upper)).expect("redb range");
        let pair = |row: Result<_, redb::StorageError>| {
            let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) = row.expect("redb scan");
            (k.value().to_vec(), v.value().to_vec())
        };
        if reverse { range.rev().take(limit).map(pair).collect() } else { range.take(limit).map(pair).collect() }
    }
}

impl Store for RedbStore<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.table.insert(key, value).expect("redb insert");
    }
    fn delete(&mut self, key: &[u8]) {
        self.table.remove(key).expect("redb remove");
    }
    fn emit(&mut self, event: &[u8]) {
        self.events.push(event.to_vec());
    }
}

/// Runs `commands` in write transactions of [`BATCH`] entries, as the apply thread does:
/// `batch` gets each transaction, the log index of its first entry and its commands.
fn batched(
    db: &Database,
    commands: &[Vec<u8>],
    mut batch: impl FnMut(redb::WriteTransaction, usize, &[Vec<u8>]) -> anyhow::Result<redb::WriteTransaction>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for (b, chunk) in commands.chunks(BATCH).enumerate() {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        txn = batch(txn, b * BATCH, chunk)?;
        txn.commit()?;
    }
    Ok(start.elapsed())
}

/// Calls `apply` on every entry of a batch, handing the transaction along (as `Guest::apply`
/// takes and returns it).
fn each_entry(
    mut apply: impl FnMut(redb::WriteTransaction, usize, &[u8]) -> anyhow::Result<redb::WriteTransaction>,
) -> impl FnMut(redb::WriteTransaction, usize, &[Vec<u8>]) -> anyhow::Result<redb::WriteTransaction> {
    move |mut txn, first, chunk| {
        for (j, command) in chunk.iter().enumerate() {
            txn = apply(txn, first + j, command)?;
        }
        Ok(txn)
    }
}

/// (b): the guest's logic natively, on the host's redb table (opened once per transaction).
fn native_redb(db: &Database, commands: &[Vec<u8>]) -> anyhow::Result<(Duration, Fingerprint)> {
    let elapsed = batched(db, commands, |txn, first, chunk| {
        {
            let mut store = RedbStore { table: txn.open_table(GUEST_KV)?, events: Vec::new() };
            for (j, command) in chunk.iter().enumerate() {
                KvGuest::apply(&sdk_ctx(first + j), &mut store, command).map_err(anyhow::Error::msg)?;
                // The host hands each entry's events to the watch hub; here they are dropped.
                store.events.clear();
            }
        }
        Ok(txn)
    })?;
    Ok((elapsed, db_fingerprint(db)?))
}

/// (c): the bundled component through the host's guest runtime.
fn wasm(db: &Database, guest: &Guest, commands: &[Vec<u8>]) -> anyhow::Result<(Duration, Fingerprint)> {
    let elapsed = batched(
        db,
        commands,
        each_entry(|txn, i, command| {
            guest.apply(&mut GuestKv::new(&txn), ctx(i), command)?;
            Ok(txn)
        }),
    )?;
    Ok((elapsed, db_fingerprint(db)?))
}

/// (d): a fresh instance and one call that returns `Err` at once; nothing is written.
fn empty_apply(db: &Database, guest: &Guest, calls: usize) -> anyhow::Result<Duration> {
    let empty = vec![Vec::new(); calls];
    batched(
        db,
        &empty,
        each_entry(|txn, i, command| {
            expect_guest_error(guest.apply(&mut GuestKv::new(&txn), ctx(i), command).map(|_| ()))?;
            Ok(txn)
        }),
    )
}

/// (d), read side: a query the guest's decoder rejects, in the instance the last one left.
fn rejected_query(db: &Database, guest: &Guest, calls: usize) -> anyhow::Result<Duration> {
    let view = StateView::committed(db.begin_read()?);
    let start = Instant::now();
    for _ in 0..calls {
        expect_guest_error(guest_store::query(guest, &view, &[0xff]).map(|_| ()))?;
    }
    Ok(start.elapsed())
}

fn expect_guest_error(result: Result<(), ApplyError>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.is_guest() => Ok(()),
        Err(e) => Err(e.into()),
        Ok(()) => anyhow::bail!("the guest accepted a call it should reject"),
    }
}

/// A fresh state database with the guest table created (as `load_applied` does), removed
/// afterwards.
fn with_db<T>(run: impl FnOnce(&Database) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let dir = tempfile::tempdir()?;
    let db = Database::create(dir.path().join("state.redb"))?;
    let txn = db.begin_write()?;
    txn.open_table(GUEST_KV)?;
    txn.commit()?;
    run(&db)
}

/// Row count and an FNV-1a hash over every (key, value), in key order.
type Fingerprint = (usize, u64);

fn fingerprint<'a>(rows: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Fingerprint {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut count = 0;
    for (k, v) in rows {
        count += 1;
        for part in [k, v] {
            for byte in (part.len() as u64).to_le_bytes().iter().chain(part) {
                hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    (count, hash)
}

fn db_fingerprint(db: &Database) -> anyhow::Result<Fingerprint> {
    let txn = db.begin_read()?;
    let table = txn.open_table(GUEST_KV)?;
    let rows = table
        .iter()?
        .map(|row| row.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fingerprint(rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))))
}

fn median(runs: &[Duration]) -> Duration {
    let mut sorted = runs.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn spread(runs: &[Duration], entries: usize) -> (f64, f64) {
    let lo = runs.iter().min().copied().unwrap_or_default();
    let hi = runs.iter().max().copied().unwrap_or_default();
    (micros_per_entry(lo, entries), micros_per_entry(hi, entries))
}

fn micros_per_entry(total: Duration, entries: usize) -> f64 {
    total.as_secs_f64() * 1e6 / entries as f64
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}
