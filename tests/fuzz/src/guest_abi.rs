//! The guest ABI, from the host's side: a real guest (`tests/guests/hostile`, compiled to a
//! component) run by the host's runtime (`wasmraft_runtime::Guest`, wasmtime, the `store` and
//! `events` imports of `host/runtime/src/host_store.rs`) on a fresh in-memory redb per input,
//! through the host's table adapter (`host/node/src/guest_store.rs`). The
//! fuzz input is turned into a sequence of entries (`apply`) and reads (`query`), most of them
//! the hostile guest's `script:` commands, which call the imports with the arguments the input
//! chose: odd scan ranges and limits, empty and oversized keys, big values and events, writes
//! during a query. The rest are its misbehaviours (trap or panic after a put, `Err` after a put,
//! allocating past the memory limit, deep recursion, global state).
//!
//! Why this and not fuzzing the host's decoders of guest output: what a guest hands back is
//! opaque bytes to the host (the canonical ABI lifts them, wasmtime checks them), and the
//! decoders above it are prost's; the host's own code at this boundary is the imports (limits,
//! fuel, the write overlay, the merged scan) and the error classification, which only a running
//! guest reaches.
//!
//! The oracle is a model of the store (a `BTreeMap` plus this entry's writes) and of the
//! imports' limits: every `get` and `scan` answer the guest prints must be the model's; an entry
//! that fails must leave the table exactly as it was; an entry the model says is within every
//! limit must succeed; one that breaks a limit for sure must fail; the table after every entry
//! must equal the model. Errors must be the guest's (never `Storage` or `Host`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use redb::{Database, ReadableDatabase, ReadableTable};
use wasmraft_node::guest_store::{self, GuestKv};
use wasmraft_node::uncommitted::StateView;
use wasmraft_runtime::limits::{MAX_KEY_BYTES, SCAN_PAGE_BYTES, SCAN_PAGE_PAIRS, SCAN_PAIR_OVERHEAD};
use wasmraft_runtime::{ApplyContext, ApplyError, EngineConfig, Guest, GuestEngine, GuestLimits};
use wasmraft_storage::tables::GUEST_KV;

static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_FUZZ_HOSTILE_GUEST"));

/// The per-entry budget: small enough that a runaway entry costs little fuzzing time.
const LIMITS: GuestLimits = GuestLimits {
    fuel_per_entry: 200_000_000,
    memory_bytes: 48 << 20,
    stack_bytes: wasmraft_runtime::limits::DEFAULT_STACK_BYTES,
};

/// Op sizes at or above this may exhaust the guest's memory or fuel: the model then accepts
/// either outcome (but still checks a success's output and that a failure wrote nothing).
const BIG: usize = 1 << 20;

/// At most this many ops per input, to keep an execution short.
const MAX_OPS: usize = 64;

fn guest() -> &'static Guest {
    static GUEST: OnceLock<Guest> = OnceLock::new();
    GUEST.get_or_init(|| {
        let engine = GuestEngine::new(EngineConfig::default()).expect("guest engine");
        Guest::load(&engine, HOSTILE, LIMITS).expect("the hostile guest loads")
    })
}

/// Keys from a small alphabet, so that ops collide; "-" is the script's empty string.
const KEYS: [&str; 8] = ["-", "a", "b", "ab", "b0", "c", "z", "\u{e9}"];
const VALUES: [&str; 4] = ["-", "1", "22", "v3"];
const LIMITS_SCAN: [u32; 8] = [0, 1, 2, 3, 1023, 1024, 1025, u32::MAX];
const SIZES: [usize; 8] = [0, 1, 7, 100, 4096, 1 << 20, MAX_KEY_BYTES, MAX_KEY_BYTES + 1];

fn bytes_of(word: &str) -> Vec<u8> {
    if word == "-" { Vec::new() } else { word.as_bytes().to_vec() }
}

#[derive(Debug, Clone)]
enum Op {
    Put(&'static str, &'static str),
    Del(&'static str),
    Get(&'static str),
    Scan { start: &'static str, end: &'static str, limit: u32, reverse: bool },
    Emit(usize),
    BigPut(usize, usize),
    Pad(usize),
}

impl Op {
    fn script(&self) -> String {
        match self {
            Op::Put(k, v) => format!("put {k} {v}"),
            Op::Del(k) => format!("del {k}"),
            Op::Get(k) => format!("get {k}"),
            Op::Scan { start, end, limit, reverse } => {
                format!("scan {start} {end} {limit} {}", if *reverse { "rev" } else { "fwd" })
            }
            Op::Emit(n) => format!("emit {n}"),
            Op::BigPut(k, v) => format!("bigput {k} {v}"),
            Op::Pad(n) => format!("pad {n}"),
        }
    }
    fn writes(&self) -> bool {
        matches!(self, Op::Put(..) | Op::Del(_) | Op::Emit(_) | Op::BigPut(..))
    }
}

/// One guest call.
#[derive(Debug)]
enum Call {
    Apply(Vec<Op>),
    Query(Vec<Op>),
    /// A raw hostile command (apply), or `put-in-query` (query).
    Raw(Raw),
}

#[derive(Debug, Clone, Copy)]
enum Raw {
    PutInQuery,
    Alloc(usize),
    EmitN(usize),
    HugeResult(usize),
    GlobalInc,
    GlobalPut,
    PutThenErr,
    PutThenTrap,
    PutThenPanic,
    Recurse,
    Unknown,
}

fn parse(data: &[u8]) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut ops = Vec::new();
    let mut query = false;
    let mut it = data.iter().copied();
    let mut next = || it.next();
    let mut n = 0;
    while let Some(b) = next() {
        n += 1;
        if n > MAX_OPS {
            break;
        }
        let a = usize::from(next().unwrap_or(0));
        let c = usize::from(next().unwrap_or(0));
        let op = match b % 10 {
            0 => Op::Put(KEYS[a % 8], VALUES[c % 4]),
            1 => Op::Del(KEYS[a % 8]),
            2 => Op::Get(KEYS[a % 8]),
            3 => {
                Op::Scan { start: KEYS[a % 8], end: KEYS[(a >> 3) % 8], limit: LIMITS_SCAN[c % 8], reverse: c & 8 != 0 }
            }
            4 => Op::Emit(SIZES[a % 6]),
            5 => Op::BigPut(SIZES[a % 8].max(1), SIZES[c % 6]),
            6 => Op::Pad(SIZES[a % 6]),
            7 | 8 => {
                let ops = std::mem::take(&mut ops);
                calls.push(if query { Call::Query(ops) } else { Call::Apply(ops) });
                query = b % 10 == 8;
                continue;
            }
            _ => {
                let small = [0, 1, 5, 100][c % 4];
                calls.push(Call::Raw(match a % 11 {
                    0 => Raw::PutInQuery,
                    1 => Raw::Alloc([0, 1000, BIG, 200 << 20][c % 4]),
                    2 => Raw::EmitN(small),
                    3 => Raw::HugeResult([0, 10, 4096, BIG][c % 4]),
                    4 => Raw::GlobalInc,
                    5 => Raw::GlobalPut,
                    6 => Raw::PutThenErr,
                    7 => Raw::PutThenTrap,
                    8 => Raw::PutThenPanic,
                    9 => Raw::Recurse,
                    _ => Raw::Unknown,
                }));
                continue;
            }
        };
        ops.push(op);
    }
    if !ops.is_empty() {
        calls.push(if query { Call::Query(ops) } else { Call::Apply(ops) });
    }
    calls
}

/// What the model expects of one call.
enum Expect {
    /// Exactly this output (and these events, and this new state).
    Ok(Vec<u8>, Vec<Vec<u8>>, BTreeMap<Vec<u8>, Vec<u8>>),
    /// Must fail; the text must contain this.
    Fail(&'static str),
    /// May fail (a budget the model does not track); if it succeeds, it is as given.
    Either(Vec<u8>, Vec<Vec<u8>>, BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The model of one script: the store as the entry sees it, the host's pending-bytes
/// accounting, and the lines the guest prints.
fn run_model(state: &BTreeMap<Vec<u8>, Vec<u8>>, ops: &[Op], write: bool) -> Expect {
    let mut store = state.clone();
    // host_store.rs: this entry's writes (key → Some(value) / None) for the pending-bytes cap.
    let mut overlay: BTreeMap<Vec<u8>, Option<usize>> = BTreeMap::new();
    let mut pending: u64 = 0;
    let cap = LIMITS.memory_bytes;
    let mut events = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut risky = false;
    for op in ops {
        // A failure the model predicts is certain, but if an earlier op may already have
        // exhausted a budget, the error may be that one instead.
        let fail = |text: &'static str| Expect::Fail(if risky { "" } else { text });
        if !write && op.writes() {
            return fail("in a query script");
        }
        let mut add_pending = |key: &[u8], add: usize| -> bool {
            let replaced = overlay.get(key).map_or(0, |old| key.len() + old.unwrap_or(0));
            pending = pending.saturating_sub(replaced as u64).saturating_add(add as u64);
            pending <= cap
        };
        match op {
            Op::Put(k, v) => {
                let (k, v) = (bytes_of(k), bytes_of(v));
                if !add_pending(&k, k.len() + v.len()) {
                    return fail("buffered more than");
                }
                overlay.insert(k.clone(), Some(v.len()));
                store.insert(k, v);
                lines.push(b"put".to_vec());
            }
            Op::BigPut(kl, vl) => {
                // The guest builds both before calling put: a budget may run out first.
                let fail_here = |text| Expect::Fail(if risky || kl + vl >= BIG { "" } else { text });
                let (k, v) = (vec![b'k'; *kl], vec![b'v'; *vl]);
                if k.len() > MAX_KEY_BYTES {
                    return fail_here("byte key");
                }
                if !add_pending(&k, k.len() + v.len()) {
                    return fail_here("buffered more than");
                }
                risky |= kl + vl >= BIG;
                overlay.insert(k.clone(), Some(v.len()));
                store.insert(k, v);
                lines.push(b"bigput".to_vec());
            }
            Op::Del(k) => {
                let k = bytes_of(k);
                if !add_pending(&k, k.len()) {
                    return fail("buffered more than");
                }
                overlay.insert(k.clone(), None);
                store.remove(&k);
                lines.push(b"del".to_vec());
            }
            Op::Get(k) => {
                let k = bytes_of(k);
                risky |= store.get(&k).is_some_and(|v| v.len() >= BIG);
                lines.push(store.get(&k).cloned().unwrap_or_else(|| b"none".to_vec()));
            }
            Op::Scan { start, end, limit, reverse } => {
                let page = scan_model(&store, &bytes_of(start), &bytes_of(end), *limit, *reverse);
                risky |= page.iter().any(|(k, v)| k.len() + v.len() >= BIG);
                let mut line = Vec::new();
                for (i, (k, v)) in page.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.extend_from_slice(k);
                    line.push(b'=');
                    line.extend_from_slice(v);
                }
                lines.push(line);
            }
            Op::Emit(n) => {
                pending = pending.saturating_add(*n as u64);
                if pending > cap {
                    return Expect::Fail(if risky || *n >= BIG { "" } else { "buffered more than" });
                }
                risky |= *n >= BIG;
                events.push(vec![b'e'; *n]);
                lines.push(b"emit".to_vec());
            }
            Op::Pad(n) => {
                risky |= *n >= BIG;
                lines.push(vec![b'x'; *n]);
            }
        }
    }
    let output = lines.join(&b'\n');
    if !write {
        // A query changes nothing and emits nothing.
        store = state.clone();
    }
    if risky { Expect::Either(output, events, store) } else { Expect::Ok(output, events, store) }
}

/// host_store.rs's scan, as its documentation states it: `start <= key < end` (empty end:
/// unbounded; nothing if `start >= end`), ascending or descending, at most `limit` pairs (0 or
/// more than a page: a page), stopping before the pair that would take the page past its byte
/// budget unless the page is empty.
fn scan_model(
    store: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: &[u8],
    limit: u32,
    reverse: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let limit = if limit == 0 || limit > SCAN_PAGE_PAIRS { SCAN_PAGE_PAIRS } else { limit } as usize;
    let mut pairs: Vec<(&Vec<u8>, &Vec<u8>)> =
        store.iter().filter(|(k, _)| k.as_slice() >= start && (end.is_empty() || k.as_slice() < end)).collect();
    if reverse {
        pairs.reverse();
    }
    let mut page = Vec::new();
    let mut bytes = 0;
    for (k, v) in pairs.into_iter().take(limit) {
        let size = k.len() + v.len() + SCAN_PAIR_OVERHEAD;
        if !page.is_empty() && bytes + size > SCAN_PAGE_BYTES {
            break;
        }
        bytes += size;
        page.push((k.clone(), v.clone()));
    }
    page
}

fn raw_expect(raw: Raw, state: &BTreeMap<Vec<u8>, Vec<u8>>) -> (String, bool, Expect) {
    let same = || state.clone();
    match raw {
        Raw::PutInQuery => ("put-in-query".into(), true, Expect::Fail("read-only")),
        Raw::Alloc(n) => {
            let out = n.to_string().into_bytes();
            let e = if n >= LIMITS.memory_bytes as usize {
                Expect::Fail("memory limit")
            } else if n >= BIG {
                Expect::Either(out, Vec::new(), same())
            } else {
                Expect::Ok(out, Vec::new(), same())
            };
            (format!("alloc:{n}"), false, e)
        }
        Raw::EmitN(n) => {
            let events = (0..n).map(|i| format!("e{i}").into_bytes()).collect();
            (format!("emit:{n}"), false, Expect::Ok(n.to_string().into_bytes(), events, same()))
        }
        Raw::HugeResult(n) => {
            let out = vec![b'x'; n];
            let e =
                if n >= BIG { Expect::Either(out, Vec::new(), same()) } else { Expect::Ok(out, Vec::new(), same()) };
            (format!("huge-result:{n}"), false, e)
        }
        // Every entry runs in a fresh instance: a global always starts from zero.
        Raw::GlobalInc => ("global-inc".into(), false, Expect::Ok(b"1".to_vec(), Vec::new(), same())),
        Raw::GlobalPut => {
            let mut s = same();
            s.insert(b"g".to_vec(), b"1".to_vec());
            ("global-put:g".into(), false, Expect::Ok(b"1".to_vec(), Vec::new(), s))
        }
        Raw::PutThenErr => ("put-then-err".into(), false, Expect::Fail("refused after put")),
        Raw::PutThenTrap => ("put-then-trap:t=1".into(), false, Expect::Fail("trapped")),
        Raw::PutThenPanic => ("put-then-panic".into(), false, Expect::Fail("trapped")),
        Raw::Recurse => ("recurse".into(), false, Expect::Fail("")),
        Raw::Unknown => ("no such command".into(), false, Expect::Fail("unknown command")),
    }
}

/// The start of a (possibly MiB-long) output, for a failure message.
fn short(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
    if b.len() > 300 { format!("{s}... ({} bytes)", b.len()) } else { s }
}

fn dump(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let txn = db.begin_read().expect("begin read");
    let table = match txn.open_table(GUEST_KV) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return BTreeMap::new(),
        Err(e) => panic!("open table: {e}"),
    };
    let range = table.iter().expect("iterate");
    range
        .map(|r| {
            let (k, v) = r.expect("row");
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect()
}

pub fn guest_abi(data: &[u8]) {
    let calls = parse(data);
    if calls.is_empty() {
        return;
    }
    let guest = guest();
    let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).expect("in-memory redb");
    let mut state: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (i, call) in calls.iter().enumerate() {
        let (command, query, expect) = match call {
            Call::Apply(ops) | Call::Query(ops) => {
                let query = matches!(call, Call::Query(_));
                let script: Vec<String> = ops.iter().map(Op::script).collect();
                (format!("script:{}", script.join(";")), query, run_model(&state, ops, !query))
            }
            Call::Raw(raw) => raw_expect(*raw, &state),
        };
        let what = || format!("call {i} ({}) {:.200}", if query { "query" } else { "apply" }, command);
        let (result, events) = if query {
            let view = StateView::committed(db.begin_read().expect("begin read"));
            (guest_store::query(guest, &view, command.as_bytes()), Vec::new())
        } else {
            let txn = db.begin_write().expect("begin write");
            let ctx = ApplyContext { index: i as u64 + 1, term: 1, time_unix_ms: 1_700_000_000_000 };
            let result = guest.apply(&mut GuestKv::new(&txn), ctx, command.as_bytes());
            txn.commit().expect("commit");
            match result {
                Ok(applied) => (Ok(applied.output), applied.events),
                Err(e) => (Err(e), Vec::new()),
            }
        };
        match (&result, &expect) {
            (Err(e @ (ApplyError::Storage(_) | ApplyError::Host(_))), _) => {
                panic!("{}: not the guest's error: {e}", what())
            }
            (Ok(out), Expect::Ok(want, want_events, want_state) | Expect::Either(want, want_events, want_state)) => {
                assert!(out == want, "{}: output {:?}, model {:?}", what(), short(out), short(want));
                assert!(&events == want_events, "{}: events differ from the model", what());
                state = want_state.clone();
            }
            (Ok(out), Expect::Fail(text)) => {
                panic!("{}: succeeded ({:?}), the model says it fails ({text})", what(), short(out))
            }
            (Err(e), Expect::Ok(..)) => panic!("{}: failed ({e}), the model says it is within every limit", what()),
            (Err(e), Expect::Fail(text)) => {
                assert!(e.to_string().contains(text), "{}: failed with {e:?}, expected {text:?}", what());
            }
            (Err(_), Expect::Either(..)) => {}
        }
        // A failed entry left nothing behind; a successful one left exactly the model's state.
        assert!(dump(&db) == state, "{}: the table differs from the model", what());
    }
}
