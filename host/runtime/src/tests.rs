//! The sandbox against the hostile guest, and the KV guest end to end, on an in-memory store.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::*;
use crate::engine::CONTROL_SLOTS;

static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_HOSTILE_GUEST"));
static KV: &[u8] = include_bytes!(env!("WASMRAFT_KV_GUEST"));
/// The hostile guest built against the world before `metrics` existed (fixtures/README.md).
static HOSTILE_BEFORE_METRICS: &[u8] = include_bytes!("../fixtures/hostile-before-metrics.component.wasm");

/// One engine (and pool) for the whole test binary, as in a member.
fn engine() -> &'static GuestEngine {
    static ENGINE: OnceLock<GuestEngine> = OnceLock::new();
    ENGINE.get_or_init(|| GuestEngine::new(EngineConfig::default()).expect("engine"))
}

/// Small budgets so runaway guests are stopped quickly.
fn test_limits() -> GuestLimits {
    GuestLimits { fuel_per_entry: 200_000_000, memory_bytes: 64 << 20, stack_bytes: limits::DEFAULT_STACK_BYTES }
}

/// The hostile guest with room for outputs and scans near the host's size limits.
fn roomy_hostile() -> Guest {
    Guest::load(
        engine(),
        HOSTILE,
        GuestLimits { fuel_per_entry: 2_000_000_000, memory_bytes: 256 << 20, ..test_limits() },
    )
    .expect("loads")
}

fn hostile() -> Arc<Guest> {
    static GUEST: OnceLock<Arc<Guest>> = OnceLock::new();
    GUEST.get_or_init(|| Arc::new(Guest::load(engine(), HOSTILE, test_limits()).expect("hostile guest loads"))).clone()
}

/// The guest keyspace in memory, standing in for the host's table.
#[derive(Default)]
struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);

impl StoreRead for Mem {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, reverse: bool, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        use std::ops::Bound;
        let bounds = (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded));
        let mut range = self.0.range::<[u8], _>(bounds);
        let mut each = |(k, v): (&Vec<u8>, &Vec<u8>)| visit(k, v);
        if reverse {
            let _ = range.rev().try_for_each(&mut each);
        } else {
            let _ = range.try_for_each(&mut each);
        }
        Ok(())
    }
}

impl StoreWrite for Mem {
    fn write(&mut self, writes: &Writes) -> Result<(), StoreError> {
        for (key, value) in writes.iter() {
            match value {
                Some(value) => self.0.insert(key.to_vec(), value.to_vec()),
                None => self.0.remove(key),
            };
        }
        Ok(())
    }
}

struct Db {
    kv: Mem,
    index: u64,
}

impl Db {
    fn new() -> Db {
        Db { kv: Mem::default(), index: 0 }
    }

    /// Applies one entry to the store.
    fn apply(&mut self, guest: &Guest, command: &[u8]) -> Result<Applied, ApplyError> {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, term: 1, time_unix_ms: 1_700_000_000_000 + self.index };
        guest.apply(&mut self.kv, ctx, command)
    }

    fn query(&self, guest: &Guest, request: &[u8]) -> Result<Vec<u8>, ApplyError> {
        guest.query(&self.kv, request)
    }

    /// The whole guest keyspace, as the store holds it.
    fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

fn text(r: Result<Applied, ApplyError>) -> String {
    String::from_utf8(r.expect("entry applies").output).expect("utf-8")
}

fn guest_err(r: Result<Applied, ApplyError>) -> String {
    match r {
        Err(ApplyError::Guest(t)) => t,
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn loads_and_reports_info() {
    let g = hostile();
    assert_eq!(g.info().name, "hostile");
    // The SDK adds its promise that an entry's commands may share an instance.
    assert_eq!(g.info().apis, vec!["wasmraft.test.hostile".to_string(), crate::SHARED_ENTRY_INSTANCE.to_string()]);
    assert!(g.shares_instances());
    assert_eq!(g.hash_hex().len(), 64);
}

#[test]
fn rejects_what_is_not_a_guest() {
    assert!(Guest::load(engine(), b"not wasm", test_limits()).is_err());
    // A core module, not a component.
    let core = b"\0asm\x01\0\0\0";
    assert!(Guest::load(engine(), core, test_limits()).is_err());
}

#[test]
fn failed_entries_leave_the_keyspace_untouched() {
    let g = hostile();
    let mut db = Db::new();
    assert_eq!(text(db.apply(&g, b"ok:a=1")), "ok");
    let before = db.dump();
    assert_eq!(before, vec![(b"a".to_vec(), b"1".to_vec())]);

    let trap = guest_err(db.apply(&g, b"put-then-trap:b=2"));
    assert!(trap.starts_with("wasmraft: guest trapped:"), "{trap}");
    assert!(trap.contains("unreachable"), "{trap}");
    let panic = guest_err(db.apply(&g, b"put-then-panic"));
    assert!(panic.starts_with("wasmraft: guest trapped:"), "{panic}");
    assert_eq!(guest_err(db.apply(&g, b"put-then-err")), "hostile: refused after put");
    let fuel = guest_err(db.apply(&g, b"loop"));
    assert_eq!(fuel, "wasmraft: guest ran out of fuel (limit 200000000 per entry)");
    let mem = guest_err(db.apply(&g, b"alloc:100000000"));
    assert_eq!(mem, format!("wasmraft: guest exceeded its memory limit ({} bytes)", 64 << 20));
    let stack = guest_err(db.apply(&g, b"recurse"));
    assert!(stack.contains("stack"), "{stack}");

    assert_eq!(db.dump(), before);
    // And the next entry proceeds normally.
    assert_eq!(text(db.apply(&g, b"ok:c=3")), "ok");
    assert_eq!(db.dump().len(), 2);
}

#[test]
fn events_only_from_successful_entries() {
    let g = hostile();
    let mut db = Db::new();
    let applied = db.apply(&g, b"emit:3").expect("applies");
    assert_eq!(applied.events, vec![b"e0".to_vec(), b"e1".to_vec(), b"e2".to_vec()]);
    let applied = db.apply(&g, b"ok:k=v").expect("applies");
    assert_eq!(applied.events, vec![b"put:k".to_vec()]);
    assert!(db.apply(&g, b"put-then-err").is_err());
}

#[test]
fn writes_are_visible_to_later_entries_and_queries() {
    let g = hostile();
    let mut db = Db::new();
    assert_eq!(db.query(&g, b"script:get a").expect("query"), b"none");
    text(db.apply(&g, b"ok:a=1"));
    assert_eq!(text(db.apply(&g, b"script:get a")), "1");
    assert_eq!(db.query(&g, b"script:get a").expect("query"), b"1");
}

/// An engine of its own with `query_slots` query slots, so that no other test's queries take
/// or evict the kept instances a test counts on.
fn own_engine(query_slots: u32) -> GuestEngine {
    GuestEngine::new(EngineConfig { max_instances: CONTROL_SLOTS + query_slots, pooling: true }).expect("engine")
}

#[test]
fn every_entry_gets_a_fresh_instance_and_queries_share_one() {
    let engine = own_engine(3);
    let g = Guest::load(&engine, HOSTILE, test_limits()).expect("hostile guest loads");
    let mut db = Db::new();
    for n in 1..=5 {
        // Entries never see a global from before, whatever ran in between.
        assert_eq!(text(db.apply(&g, b"global-inc")), "1");
        // Queries one after another run in the instance the last one left.
        assert_eq!(db.query(&g, b"global-inc").expect("query"), n.to_string().as_bytes());
    }
}

#[test]
fn a_query_instance_is_not_kept_after_a_trap_a_refusal_or_growing_its_memory() {
    let engine = own_engine(3);
    let g = Guest::load(&engine, HOSTILE, test_limits()).expect("hostile guest loads");
    let db = Db::new();
    let inc = |db: &Db| String::from_utf8(db.query(&g, b"global-inc").expect("query")).expect("utf-8");
    assert_eq!(inc(&db), "1");
    assert_eq!(inc(&db), "2");
    // A refused write traps the instance: the next query starts afresh.
    assert!(db.query(&g, b"put-in-query").is_err());
    assert_eq!(inc(&db), "1");
    assert_eq!(inc(&db), "2");
    // Out of fuel (here the small inline budget, which asks for a rerun): the same.
    assert!(g.try_query(&db.kv, b"global-inc", 10).is_none());
    assert_eq!(inc(&db), "1");
    // An error the guest returns is a normal answer: the instance stays.
    assert!(matches!(db.query(&g, b"no such query"), Err(ApplyError::Guest(_))));
    assert_eq!(inc(&db), "2");
    // 2 MiB in one answer grows the memory past its initial size: not kept, so an idle
    // instance never holds more than a fresh one.
    assert_eq!(db.query(&g, b"huge-result:2097152").expect("query").len(), 2 << 20);
    assert_eq!(inc(&db), "1");
}

#[test]
fn idle_query_instances_make_way_for_other_guests() {
    // Two query slots: at most one idle instance.
    let engine = own_engine(2);
    let a = Guest::load(&engine, HOSTILE, test_limits()).expect("hostile guest loads");
    let b = a.with_limits(GuestLimits { fuel_per_entry: 300_000_000, ..test_limits() });
    let db = Db::new();
    let try_inc = |g: &Guest| {
        g.try_query(&db.kv, b"global-inc", 1_000_000).map(|r| String::from_utf8(r.expect("query")).expect("utf-8"))
    };
    assert_eq!(try_inc(&a).as_deref(), Some("1"));
    assert_eq!(try_inc(&a).as_deref(), Some("2"), "kept");
    // One slot busy elsewhere and the other held by a's idle instance: b takes that slot.
    let busy = engine.try_query_slot().expect("a free slot");
    assert!(engine.try_query_slot().is_none(), "the other slot is a's idle instance");
    assert_eq!(try_inc(&b).as_deref(), Some("1"), "a's idle instance gave its slot up");
    // b's instance is idle now, so a has to start afresh (it evicts b's in turn).
    assert_eq!(try_inc(&a).as_deref(), Some("1"));
    drop(busy);
    // A guest that is dropped leaves its idle instance to be evicted; nothing blocks.
    drop(a);
    assert_eq!(try_inc(&b).as_deref(), Some("1"));
    assert_eq!(try_inc(&b).as_deref(), Some("2"));
}

#[test]
fn a_query_instance_is_not_kept_while_a_query_waits_for_a_slot() {
    let engine = own_engine(2);
    let g = Guest::load(&engine, HOSTILE, test_limits()).expect("hostile guest loads");
    let db = Db::new();
    assert_eq!(db.query(&g, b"global-inc").expect("query"), b"1");
    // One slot held elsewhere, the other by g's idle instance: a waiter blocks.
    let held = engine.try_query_slot().expect("a free slot");
    let e = engine.clone();
    let waiter = std::thread::spawn(move || drop(e.query_slot()));
    while !engine.inner.queries.has_waiters() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // This query runs in the idle instance and, finding the waiter, lets its slot go.
    assert_eq!(db.query(&g, b"global-inc").expect("query"), b"2");
    waiter.join().expect("the waiter got the slot");
    assert!(!engine.inner.queries.has_waiters());
    assert_eq!(db.query(&g, b"global-inc").expect("query"), b"1", "the instance was not kept");
    drop(held);
}

#[test]
fn one_query_slot_keeps_no_instance() {
    let engine = own_engine(1);
    let g = Guest::load(&engine, HOSTILE, test_limits()).expect("hostile guest loads");
    let db = Db::new();
    for _ in 0..3 {
        assert_eq!(db.query(&g, b"global-inc").expect("query"), b"1");
    }
}

#[test]
fn entry_failures_are_counted_by_kind_and_fuel_is_counted() {
    use wasmraft_metrics::{GuestFailure, metrics};
    let g = hostile();
    let mut db = Db::new();
    let m = metrics();
    // The counters are the process's, shared with tests running alongside: they only grow.
    let applies = m.guest_apply_duration.get_sample_count();
    let fuel = m.guest_fuel_consumed.get();
    assert_eq!(text(db.apply(&g, b"ok:a=1")), "ok");
    assert!(m.guest_apply_duration.get_sample_count() > applies);
    assert!(m.guest_fuel_consumed.get() > fuel, "fuel spent by a successful entry");
    for (command, kind) in [
        (&b"put-then-trap:b=2"[..], GuestFailure::Trap),
        (b"put-then-err", GuestFailure::Err),
        (b"loop", GuestFailure::OutOfFuel),
        (b"alloc:100000000", GuestFailure::Memory),
    ] {
        let before = m.guest_failures(kind);
        assert!(db.apply(&g, command).is_err());
        assert!(m.guest_failures(kind) > before, "{kind:?}");
    }
    let before = m.guest_failures(GuestFailure::HostLimit);
    let n = limits::MAX_RESULT_BYTES + 1;
    let big = roomy_hostile();
    assert!(db.apply(&big, format!("huge-result:{n}").as_bytes()).is_err());
    assert!(m.guest_failures(GuestFailure::HostLimit) > before);
}

#[test]
fn oversized_outputs_are_refused() {
    let g = roomy_hostile();
    let mut db = Db::new();
    let n = limits::MAX_RESULT_BYTES + 1;
    let e = guest_err(db.apply(&g, format!("huge-result:{n}").as_bytes()));
    assert_eq!(e, format!("wasmraft: guest returned {n} bytes (the limit is {} bytes)", limits::MAX_RESULT_BYTES));
    match db.query(&g, format!("huge-result:{n}").as_bytes()) {
        Err(ApplyError::Guest(t)) => assert!(t.starts_with("wasmraft: guest returned"), "{t}"),
        other => panic!("{other:?}"),
    }
    // A key over the limit traps with a clear text, and nothing is written.
    let big = limits::MAX_KEY_BYTES + 1;
    let e = guest_err(db.apply(&g, format!("script:put a 1;bigput {big} 1").as_bytes()));
    assert_eq!(
        e,
        format!("wasmraft: guest passed a {big} byte key to put (the limit is {} bytes)", limits::MAX_KEY_BYTES)
    );
    let big = limits::MAX_VALUE_BYTES + 1;
    let e = guest_err(db.apply(&g, format!("script:bigput 1 {big}").as_bytes()));
    assert_eq!(e, format!("wasmraft: guest put a {big} byte value (the limit is {} bytes)", limits::MAX_VALUE_BYTES));
    let big = limits::MAX_EVENT_BYTES + 1;
    let e = guest_err(db.apply(&g, format!("emit-size:{big}").as_bytes()));
    assert_eq!(
        e,
        format!("wasmraft: guest emitted a {big} byte event (the limit is {} bytes)", limits::MAX_EVENT_BYTES)
    );
    assert!(db.dump().is_empty());
}

#[test]
fn host_calls_cost_fuel() {
    // 10 000 emits cost 10 million fuel in host calls alone.
    let g = Guest::load(engine(), HOSTILE, GuestLimits { fuel_per_entry: 5_000_000, ..test_limits() }).expect("loads");
    let mut db = Db::new();
    assert_eq!(text(db.apply(&g, b"emit:10")), "10");
    assert_eq!(guest_err(db.apply(&g, b"emit:10000")), "wasmraft: guest ran out of fuel (limit 5000000 per entry)");
}

#[test]
fn pending_writes_are_capped_by_the_memory_limit() {
    let g = hostile();
    let mut db = Db::new();
    // 1 MiB values under distinct keys until the 64 MiB cap is passed.
    let ops: Vec<String> = (0..70).map(|i| format!("bigput {} {}", 10 + i, 1 << 20)).collect();
    let e = guest_err(db.apply(&g, format!("script:{}", ops.join(";")).as_bytes()));
    assert!(e.contains("buffered more than"), "{e}");
    assert!(db.dump().is_empty());
}

#[test]
fn queries_cannot_write() {
    let g = hostile();
    let db = Db::new();
    match db.query(&g, b"put-in-query") {
        Err(ApplyError::Guest(t)) => assert_eq!(t, "wasmraft: guest called put during a query, which is read-only"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn metrics_merge_per_entry_and_roll_back_with_a_failing_entry() {
    let g = hostile();
    let mut db = Db::new();
    let applied = db.apply(&g, b"script:madd a_total 2;madd a_total 3;mset g 7;madd g 1;put k v").expect("applies");
    let want: BTreeMap<String, MetricUpdate> =
        [("a_total".to_string(), MetricUpdate::Add(5)), ("g".to_string(), MetricUpdate::Set(8))].into();
    assert_eq!(applied.metrics, want);

    // The failing entry's calls leave nothing, as its writes do; a trap likewise.
    let e = guest_err(db.apply(&g, b"script:madd a_total 100;put x y;fail"));
    assert_eq!(e, "hostile: failed as scripted");
    assert!(db.apply(&g, b"put-then-trap:x=y").is_err());
    let later = db.apply(&g, b"script:madd b_total 1").expect("applies");
    assert_eq!(later.metrics, [("b_total".to_string(), MetricUpdate::Add(1))].into());
}

#[test]
fn a_metric_name_that_cannot_be_served_traps() {
    let g = hostile();
    let mut db = Db::new();
    for bad in ["Bad", "9lives", "a-b", "a:b"] {
        let e = guest_err(db.apply(&g, format!("script:put k v;madd {bad} 1").as_bytes()));
        assert!(e.contains("metric name") && e.contains("metrics.add"), "{e}");
    }
    let long = "x".repeat(limits::MAX_METRIC_NAME_BYTES + 1);
    let e = guest_err(db.apply(&g, format!("script:mset {long} 1").as_bytes()));
    assert!(e.contains("at most 128 bytes"), "{e}");
    assert!(db.dump().is_empty());
}

#[test]
fn many_metric_calls_run_out_of_fuel() {
    let g = Guest::load(engine(), HOSTILE, GuestLimits { fuel_per_entry: 5_000_000, ..test_limits() }).expect("loads");
    let mut db = Db::new();
    // Metric calls are charged (limits::fuel_for_metric_call) on top of the guest's own work:
    // a thousand fit in the budget, sixty thousand do not.
    let ops: Vec<&str> = std::iter::repeat_n("madd a_total 1", 1_000).collect();
    db.apply(&g, format!("script:{}", ops.join(";")).as_bytes()).expect("1 000 calls fit");
    let ops: Vec<&str> = std::iter::repeat_n("madd a_total 1", 60_000).collect();
    let e = guest_err(db.apply(&g, format!("script:{}", ops.join(";")).as_bytes()));
    assert_eq!(e, "wasmraft: guest ran out of fuel (limit 5000000 per entry)");
}

#[test]
fn queries_cannot_touch_metrics() {
    let g = hostile();
    let db = Db::new();
    match db.query(&g, b"metric-in-query") {
        Err(ApplyError::Guest(t)) => {
            assert_eq!(t, "wasmraft: guest called metrics.add during a query, which is read-only")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_guest_built_before_the_metrics_import_still_loads_and_applies() {
    let g = Guest::load(engine(), HOSTILE_BEFORE_METRICS, test_limits()).expect("the older guest loads");
    assert_eq!(g.info().name, "hostile");
    let mut db = Db::new();
    let applied = db.apply(&g, b"ok:a=1").expect("applies");
    assert_eq!(applied.output, b"ok");
    assert!(applied.metrics.is_empty());
    assert_eq!(db.query(&g, b"script:get a").expect("queries"), b"1");
}

#[test]
fn scans_merge_the_entry_overlay_in_both_directions() {
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
        ["a=1,b=2,d=4,e=55", "e=55,d=4,b=2,a=1", "b=2,d=4", "d=4,b=2", "a=1,b=2", "e=55,d=4", "d=4", "", "none", "55",]
    );
    // The same view once committed, through a query.
    assert_eq!(
        db.query(&g, b"script:scan - - 0 fwd;scan - - 0 rev").expect("query"),
        b"a=1,b=2,d=4,e=55\ne=55,d=4,b=2,a=1"
    );
}

#[test]
fn scans_page_by_count_and_bytes() {
    let g = roomy_hostile();
    let mut db = Db::new();
    // 2000 small keys: limit 0 gives the page size.
    let ops: Vec<String> = (0..2000).map(|i| format!("put k{i:05} v")).collect();
    text(db.apply(&g, format!("script:{}", ops.join(";")).as_bytes()));
    let page = db.query(&g, b"script:scan - - 0 fwd").expect("query");
    assert_eq!(page.split(|b| *b == b',').count(), limits::SCAN_PAGE_PAIRS as usize);
    // Big values: the byte budget cuts the page short, but never below one pair.
    let mut db = Db::new();
    text(db.apply(&g, b"script:bigput 1 3000000;bigput 2 3000000;bigput 3 3000000"));
    let out = db.query(&g, b"script:scan - - 0 fwd").expect("query");
    assert_eq!(out.split(|b| *b == b',').count(), 1);
}

#[test]
fn guest_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Guest>();
    let g = hostile();
    let mut db = Db::new();
    text(db.apply(&g, b"ok:a=1"));
    let db = Arc::new(db);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (g, db) = (g.clone(), db.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    assert_eq!(db.query(&g, b"script:get a").expect("query"), b"1");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("query thread");
    }
}

#[test]
fn compile_cache_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Guest::load_cached(engine(), HOSTILE, test_limits(), dir.path()).expect("compiles and caches");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert_eq!(files.len(), 1);
    let b = Guest::load_cached(engine(), HOSTILE, test_limits(), dir.path()).expect("loads from cache");
    assert_eq!(a.info(), b.info());
    let mut db = Db::new();
    assert_eq!(text(db.apply(&b, b"global-inc")), "1");
    // A damaged cache file is ignored, not trusted.
    let path = files.into_iter().next().expect("one file").expect("entry").path();
    std::fs::write(&path, b"garbage").expect("overwrite");
    let c = Guest::load_cached(engine(), HOSTILE, test_limits(), dir.path()).expect("recompiles");
    assert_eq!(c.info().name, "hostile");
}

/// The KV guest's exported metrics, and what a put costs in fuel (deterministic: Wasm
/// instructions plus the host calls' charge). `WASMRAFT_KV_COMPARE=<component>` prints the same
/// figure for another build (e.g. main's, before the guest exported metrics):
/// `cargo test -p wasmraft-runtime --lib kv_put_fuel -- --nocapture --test-threads=1`.
#[test]
fn kv_put_fuel_and_metrics() {
    use prost::Message as _;
    use wasmraft_proto::etcdserverpb::{InternalRaftRequest, PutRequest};

    let fuel_per_put = |component: &[u8]| -> (u64, Applied) {
        let g = Guest::load(engine(), component, GuestLimits::default()).expect("kv guest loads");
        let mut db = Db::new();
        let (mut total, mut last) = (0, None);
        for i in 0..200u32 {
            let put = InternalRaftRequest {
                put: Some(PutRequest { key: format!("k{i:06}").into(), value: vec![b'v'; 128], ..Default::default() }),
                ..Default::default()
            };
            let before = wasmraft_metrics::metrics().guest_fuel_consumed.get();
            last = Some(db.apply(&g, &put.encode_to_vec()).expect("put applies"));
            // Other tests in this binary may add to the counter meanwhile: only a lone run
            // (the filter above) gives the exact figure; the assertions below do not use it.
            total += wasmraft_metrics::metrics().guest_fuel_consumed.get() - before;
        }
        (total / 200, last.expect("200 puts"))
    };
    let (fuel, applied) = fuel_per_put(KV);
    let want: BTreeMap<String, MetricUpdate> = [
        ("etcd_debugging_mvcc_current_revision".to_string(), MetricUpdate::Set(201)),
        ("etcd_debugging_mvcc_keys_total".to_string(), MetricUpdate::Add(1)),
        ("etcd_mvcc_put_total".to_string(), MetricUpdate::Add(1)),
    ]
    .into();
    assert_eq!(applied.metrics, want);
    println!("KV guest: {fuel} fuel per put");
    if let Ok(path) = std::env::var("WASMRAFT_KV_COMPARE") {
        let other = std::fs::read(&path).expect("WASMRAFT_KV_COMPARE names a component");
        println!("{path}: {} fuel per put", fuel_per_put(&other).0);
    }
}

#[test]
fn kv_guest_puts_and_ranges_with_etcd_messages() {
    use prost::Message as _;
    use wasmraft_proto::etcdserverpb::{InternalRaftRequest, PutRequest, PutResponse, RangeRequest, RangeResponse};
    use wasmraft_proto::mvccpb;

    let g = Guest::load(engine(), KV, GuestLimits::default()).expect("kv guest loads");
    // The bundled guest names the API with the SDK's constant; the host checks for the
    // contract's: they must be one string.
    assert_eq!(wasmraft_guest_sdk::API_ETCD_KV, wasmraft_proto::contract::ETCD_KV_API);
    assert!(g.info().apis.iter().any(|a| a == wasmraft_proto::contract::ETCD_KV_API), "{:?}", g.info());
    let mut db = Db::new();
    for (k, v) in [("foo", "bar"), ("fop", "baz"), ("zzz", "last")] {
        let put = InternalRaftRequest {
            put: Some(PutRequest { key: k.into(), value: v.into(), ..Default::default() }),
            ..Default::default()
        };
        let applied = db.apply(&g, &put.encode_to_vec()).expect("put applies");
        let resp = PutResponse::decode(&applied.output[..]).expect("a PutResponse");
        assert!(resp.header.is_some());
        assert_eq!(applied.events.len(), 1);
        let ev = mvccpb::Event::decode(&applied.events[0][..]).expect("an mvccpb.Event");
        assert_eq!(ev.kv.map(|kv| kv.key), Some(k.as_bytes().to_vec()));
    }
    // A prefix range, through a query (read-only, its own instance)...
    let range = RangeRequest { key: b"fo".to_vec(), range_end: b"fp".to_vec(), ..Default::default() };
    let resp =
        RangeResponse::decode(&db.query(&g, &range.encode_to_vec()).expect("query")[..]).expect("a RangeResponse");
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = resp.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(kvs, vec![(b"foo".to_vec(), b"bar".to_vec()), (b"fop".to_vec(), b"baz".to_vec())]);
    assert_eq!(resp.count, 2);
    // ...and through apply (a linearizable range goes through the log in etcd).
    let req = InternalRaftRequest { range: Some(range), ..Default::default() };
    let applied = db.apply(&g, &req.encode_to_vec()).expect("range applies");
    let resp = RangeResponse::decode(&applied.output[..]).expect("a RangeResponse");
    assert_eq!(resp.kvs.len(), 2);
    assert!(applied.events.is_empty());
    // Garbage is the guest's error, verbatim, and writes nothing.
    let before = db.dump();
    let e = guest_err(db.apply(&g, b"\xff\xff\xff"));
    assert!(e.contains("InternalRaftRequest"), "{e}");
    assert_eq!(db.dump(), before);
}

#[test]
fn migrate_runs_in_the_callers_transaction() {
    let g = hostile();
    let mut db = Db::new();
    let from = GuestInfo { name: "old".into(), version: "1.0.0".into(), apis: vec![] };
    let result = g.migrate(&mut db.kv, &from);
    assert_eq!(result.expect("hostile accepts any predecessor"), Applied::default());
}

/// The deepest `recurse-to` that `guest` applies, by bisection (deeper ones trap).
fn max_depth(db: &mut Db, guest: &Guest) -> u64 {
    let (mut ok, mut trapped) = (0u64, 1u64 << 24);
    while trapped - ok > 1 {
        let mid = ok + (trapped - ok) / 2;
        match db.apply(guest, format!("recurse-to:{mid}").as_bytes()) {
            Ok(_) => ok = mid,
            Err(ApplyError::Guest(t)) if t.contains("exhausted its stack") => trapped = mid,
            other => panic!("recurse-to:{mid}: {other:?}"),
        }
    }
    ok
}

/// The stack limit comes with the limits a guest is loaded with, and the guest counts it
/// (stack_limit.rs): `recurse-to:<n>` is `n` frames of `descend`, each costing the same slots,
/// on top of the frames that called it, so the depth at a limit of `L` slots is exactly
/// `(L - below) / cost` for one whole `cost` and `below` at every limit: a function of the
/// bytes and the limit, not of the CPU or the build.
#[test]
fn the_stack_limit_decides_where_recursion_traps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = GuestRegistry::new(own_engine(2), dir.path().to_path_buf());
    let with = |stack_bytes| registry.load(HOSTILE, GuestLimits { stack_bytes, ..test_limits() }).expect("loads");
    let mut db = Db::new();
    let small = with(64 << 10);
    assert_eq!(small.limits().stack_bytes, 64 << 10);
    let at_64k = max_depth(&mut db, &small);
    assert_eq!(max_depth(&mut db, &with(64 << 10)), at_64k, "the same limit, the same depth");
    let depths: Vec<(u64, u64)> = [64 << 10, 128 << 10, 256 << 10, limits::DEFAULT_STACK_BYTES]
        .map(|b| (b, max_depth(&mut db, &with(b))))
        .to_vec();
    assert!(at_64k > 100, "{at_64k}");
    let slots = |bytes: u64| u64::from(crate::stack_limit::limit_slots(bytes));
    // The cost of a frame: what twice the smallest limit adds, rounded either way.
    let added = depths[1].1 - depths[0].1;
    let model = (slots(64 << 10) / (added + 1)..=slots(64 << 10) / added.max(1)).find_map(|cost| {
        let below = slots(64 << 10) - at_64k * cost;
        (below.saturating_sub(cost)..=below)
            .find(|&below| depths.iter().all(|&(b, d)| (slots(b) - below) / cost == d))
            .map(|below| (cost, below))
    });
    assert!(model.is_some(), "no single frame cost explains the depths {depths:?}");
    let e = guest_err(db.apply(&small, format!("recurse-to:{}", at_64k + 1).as_bytes()));
    assert_eq!(e, "wasmraft: guest exhausted its stack (limit 65536 bytes)");
    // Nothing of a trapped recursion was kept; every one that returned wrote its key.
    assert!(db.dump().iter().all(|(k, _)| k.starts_with(b"recursed/")));
    assert!(!db.dump().iter().any(|(k, _)| k == format!("recursed/{}", at_64k + 1).as_bytes()));
    assert!(
        registry.load(HOSTILE, GuestLimits { stack_bytes: 100_000, ..test_limits() }).is_err(),
        "not a power of two"
    );
    eprintln!("recursion depths (limit bytes, calls): {depths:?}; (frame cost, slots below) {model:?}");
}

/// A store that fails every read (`reads`), and every write.
struct Broken {
    reads: bool,
}

impl StoreRead for Broken {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.reads { Err(StoreError::new("disk on fire")) } else { Ok(None) }
    }

    fn scan(
        &self,
        _start: &[u8],
        _end: Option<&[u8]>,
        _reverse: bool,
        _visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        if self.reads { Err(StoreError::new("disk on fire")) } else { Ok(()) }
    }
}

impl StoreWrite for Broken {
    fn write(&mut self, _writes: &Writes) -> Result<(), StoreError> {
        Err(StoreError::new("disk full"))
    }
}

#[test]
fn a_failing_store_is_a_storage_error_not_the_guests() {
    let g = hostile();
    let ctx = ApplyContext::default();
    let mut kv = Broken { reads: true };
    for command in [&b"script:get a"[..], b"script:scan - - 0 fwd"] {
        let e = g.apply(&mut kv, ctx, command).expect_err("a read failed");
        assert!(matches!(e, ApplyError::Storage(_)), "{e:?}");
        assert_eq!(e.to_string(), "wasmraft: storage failure while running the guest: disk on fire");
        assert!(matches!(g.query(&kv, command), Err(ApplyError::Storage(_))));
    }
    let mut kv = Broken { reads: false };
    let e = g.apply(&mut kv, ctx, b"ok:a=1").expect_err("the write failed");
    assert!(matches!(e, ApplyError::Storage(_)), "{e:?}");
    // An entry without writes never asks the store to write.
    assert_eq!(text(g.apply(&mut kv, ctx, b"script:get a")), "none");
}

/// The commands of one entry, run in one instance (`EntryRun`), end exactly as they end with an
/// instance each: outputs, errors, writes and events, whatever failed before them (a guest
/// `Err`, a trap, fuel, memory, the stack) and whatever the failing one wrote first.
#[test]
fn an_entrys_commands_in_one_instance_end_as_they_would_alone() {
    let g = hostile();
    let commands: &[&[u8]] = &[
        b"ok:a=1",
        b"put-then-err",
        b"ok:b=2",
        b"alloc:40000000",
        b"put-then-trap:c=3",
        b"ok:c=4",
        b"loop",
        b"ok:d=5",
        b"alloc:100000000",
        b"alloc:40000000",
        b"recurse",
        b"script:put e 6;emit 3;madd hits 2",
        b"put-then-panic",
        b"script:get a;get c;get err",
    ];
    let outcome = |r: Result<Applied, ApplyError>| match r {
        Ok(a) => Ok((a.output, a.events, a.metrics)),
        Err(ApplyError::Guest(t)) => Err(t),
        Err(other) => panic!("not the guest's failure: {other:?}"),
    };
    let mut alone = Db::new();
    let expected: Vec<_> = commands.iter().map(|c| outcome(alone.apply(&g, c))).collect();

    let mut shared = Db::new();
    let mut run = g.entry_run();
    let got: Vec<_> = commands
        .iter()
        .map(|c| {
            shared.index += 1;
            let ctx = ApplyContext { index: shared.index, term: 1, time_unix_ms: 1_700_000_000_000 + shared.index };
            outcome(run.apply(&mut shared.kv, ctx, c))
        })
        .collect();
    drop(run);
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g, e, "command {i} ({})", String::from_utf8_lossy(commands[i]));
    }
    assert_eq!(shared.dump(), alone.dump());
    assert!(expected.iter().filter(|e| e.is_err()).count() >= 6, "the failures happened: {expected:?}");
}

/// What sharing gives up, stated: a `static` carries from one command to the next of the same
/// entry (the same on every member: the grouping is in the log), never into the next entry.
#[test]
fn a_static_carries_only_within_an_entry() {
    let g = hostile();
    let mut db = Db::new();
    for _ in 0..2 {
        let mut run = g.entry_run();
        let counts: Vec<String> = (0..3)
            .map(|_| {
                db.index += 1;
                let ctx = ApplyContext { index: db.index, term: 1, time_unix_ms: 0 };
                text(run.apply(&mut db.kv, ctx, b"global-inc"))
            })
            .collect();
        assert_eq!(counts, ["1", "2", "3"]);
    }
}

/// The test guests (the KV guest is a release build of a real etcd-compatible state machine)
/// are far inside the compile budget: its limits refuse bombs, not guests.
#[test]
fn real_guests_are_far_inside_the_compile_budget() {
    use crate::compile_budget::{self, MAX_CODE_BYTES, MAX_FUNCTION_BYTES, MAX_FUNCTIONS, MAX_LOCALS, MAX_NESTING};
    for (name, wasm) in [("kv", KV), ("hostile", HOSTILE)] {
        let s = compile_budget::check(wasm).expect("within the budget");
        eprintln!("{name}: {s:?}");
        assert!(s.functions > 0 && s.functions * 10 <= MAX_FUNCTIONS, "{name}: {s:?}");
        assert!(s.code_bytes * 4 <= MAX_CODE_BYTES, "{name}: {s:?}");
        assert!(s.max_function_bytes * 4 <= MAX_FUNCTION_BYTES, "{name}: {s:?}");
        assert!(s.max_locals * 4 <= MAX_LOCALS, "{name}: {s:?}");
        assert!(s.max_nesting * 4 <= MAX_NESTING, "{name}: {s:?}");
    }
}
