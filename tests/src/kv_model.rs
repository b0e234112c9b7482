//! The revision model of a fault run (issue 27, part 4): every completed client operation checked
//! against the key-value state at the revision its response carried, as etcd's robustness tests
//! do (`tests/robustness/validate` in etcd 3.5/3.6).
//!
//! Why a revision model and not only the per-key linearizability checker: deletes, ranges over
//! several keys, multi-key transactions and lease expiries are not register operations, and a
//! per-key search cannot see a transaction split in two or a range that mixes two revisions. etcd
//! names every state by its revision, and the watchers saw every revision in order (checked in
//! [`crate::watch_check`]), so the whole state at every revision can be rebuilt from their events;
//! then each answer is compared with the state it claims to have seen:
//!
//! - a get or range answered at revision R returns exactly the keys of its range at R: values,
//!   create and mod revisions, versions, leases, count;
//! - a write answered at R has exactly its own effects as the events at R (a put, both puts of a
//!   transaction, a delete), and the state at R − 1 satisfied its compare; a transaction whose
//!   compare failed, or a delete of nothing, wrote nothing and was answered at a revision whose
//!   state fails the compare (or lacks the key);
//! - real time: an operation invoked after another completed carries a revision at least as high
//!   (strictly higher for a write); serializable reads only bound later operations, they may be
//!   stale themselves;
//! - every put event is a value some client tried to write and that was not refused, at the
//!   revision its acknowledgement carried if it had one;
//! - events are consistent with the state before them (version + 1, create revision kept or set,
//!   mod revision = the event's revision) and carry the right `prev_kv`;
//! - a lease key disappears only by its lease's expiry, never before its TTL has run from the
//!   moment its grant was sent (minus a margin), and is gone once the run has waited long enough.
//!
//! A revision no watcher saw (compacted away from every one of them) leaves the state after it
//! unknown: operations answered past it are counted as unchecked, not passed.

use std::collections::{BTreeMap, HashMap};

use crate::watchers::{SeenEvent, WatchLog};

/// A key as a response or an event carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl Kv {
    pub fn from_etcd(kv: &etcd_client::KeyValue) -> Kv {
        Kv {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: String::from_utf8_lossy(kv.value()).into_owned(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A single-key get.
    Get { key: String, serializable: bool },
    /// A range over every key starting with `prefix`.
    Range { prefix: String, serializable: bool },
    /// A put; `lease` 0 for none.
    Put { key: String, value: String, lease: i64 },
    /// A single-key delete, asking for the previous key.
    Delete { key: String },
    /// If the key's value is `expect` (`None`: the key does not exist), put `new`.
    Cas { key: String, expect: Option<String>, new: String },
    /// If both keys' mod revisions are as given (0: absent), put both values; else get both.
    Txn2 { keys: [String; 2], mod_revisions: [i64; 2], values: [String; 2] },
    /// A lease grant (no revision of its own).
    LeaseGrant { ttl: i64 },
}

impl Request {
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Get { serializable: false, .. } => "get",
            Request::Get { serializable: true, .. } => "get-serializable",
            Request::Range { serializable: false, .. } => "range",
            Request::Range { serializable: true, .. } => "range-serializable",
            Request::Put { lease: 0, .. } => "put",
            Request::Put { .. } => "put-leased",
            Request::Delete { .. } => "delete",
            Request::Cas { .. } => "cas",
            Request::Txn2 { .. } => "txn2",
            Request::LeaseGrant { .. } => "lease-grant",
        }
    }

    fn serializable(&self) -> bool {
        matches!(self, Request::Get { serializable: true, .. } | Request::Range { serializable: true, .. })
    }
}

/// What an answered request returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A get or range: the keys and the count.
    Range {
        kvs: Vec<Kv>,
        count: i64,
    },
    Put,
    Delete {
        deleted: i64,
        prev: Vec<Kv>,
    },
    /// `reads`: the else branch's two gets when the compare failed.
    Txn {
        succeeded: bool,
        reads: Vec<Vec<Kv>>,
    },
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
}

/// How an operation ended: answered (with the header's revision), refused before it left
/// (`Failed`), or unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    Answered { revision: i64, response: Response, completed_ns: u64 },
    Failed,
    Unknown,
}

/// One client operation, on the history's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOp {
    pub client: u64,
    pub invoked_ns: u64,
    pub request: Request,
    pub ended: Ended,
}

impl ModelOp {
    /// Whether it was answered as a write that made a revision.
    fn wrote(&self) -> bool {
        let Ended::Answered { response, .. } = &self.ended else { return false };
        match (&self.request, response) {
            (Request::Put { .. }, _) => true,
            (Request::Delete { .. }, Response::Delete { deleted, .. }) => *deleted > 0,
            (Request::Cas { .. } | Request::Txn2 { .. }, Response::Txn { succeeded, .. }) => *succeeded,
            _ => false,
        }
    }
}

/// What the check needs besides the operations and the watchers' logs.
pub struct ModelInput<'a> {
    /// The state before the run's first write, and its revision.
    pub initial: BTreeMap<String, Kv>,
    pub initial_revision: i64,
    /// The last revision (everything healed, writes stopped).
    pub end: i64,
    /// When `end` was measured (history clock).
    pub end_ns: u64,
    pub ops: &'a [ModelOp],
    pub logs: &'a [WatchLog],
    /// Every key the clients operate on starts with this.
    pub prefix: &'a str,
    /// Keys under this prefix are only ever written with a lease and deleted by its expiry.
    pub lease_prefix: &'a str,
    /// How much earlier than its TTL a lease may seem to expire (clock and scheduling slack).
    pub lease_margin_ns: u64,
    /// How long after its TTL a lease key may still be there at the end.
    pub lease_grace_ns: u64,
    /// The highest revision a compaction was requested at (0: none). etcd reads an event's
    /// `prev_kv` at the revision before it, so an event right after a compaction point comes
    /// without one; only then may it be missing.
    pub max_compaction: i64,
}

/// What the check did and found.
#[derive(Clone, Debug, Default)]
pub struct ModelReport {
    /// Answered operations compared with the state at their revision.
    pub checked: u64,
    /// Answered operations past the last revision the watchers could rebuild.
    pub unchecked: u64,
    /// Operations by kind: (answered, failed, unknown).
    pub by_kind: BTreeMap<&'static str, (u64, u64, u64)>,
    /// Events applied to rebuild the state, and `prev_kv`s compared.
    pub events: u64,
    pub prev_kvs: u64,
    /// `prev_kv`s left out because the revision before the event was compacted.
    pub prev_kvs_compacted: u64,
    /// Revisions with more than one event (a two-key transaction's): what the atomicity and
    /// transaction checks bite on.
    pub multi_event_revisions: u64,
    /// Lease keys that expired (delete events no client made).
    pub lease_expiries: u64,
    /// The state is known up to this revision.
    pub known_until: i64,
    pub problems: Vec<String>,
    /// Lease keys still present at the end, long after their lease's TTL. Kept apart from
    /// `problems` while the bug behind it is open (docs/reliability.md, "Open"): the fault run
    /// reports them without failing.
    pub outlived: Vec<String>,
}

impl ModelReport {
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, (ok, f, u))| format!("{k}={ok}/{f}/{u}")).collect();
        format!(
            "model: {} ops checked ({} unchecked), {} events ({} revisions with several), {} prev_kv ({} compacted), {} lease expiries, known to revision {}, by kind ok/failed/unknown [{}]",
            self.checked,
            self.unchecked,
            self.events,
            self.multi_event_revisions,
            self.prev_kvs,
            self.prev_kvs_compacted,
            self.lease_expiries,
            self.known_until,
            kinds.join(" ")
        )
    }
}

type State = BTreeMap<String, Kv>;

/// One revision's events: from the first watcher that saw it (the watch check makes the others
/// agree), and every watcher's copy for the `prev_kv` check.
struct Revision<'a> {
    events: Vec<&'a SeenEvent>,
    copies: Vec<(usize, &'a SeenEvent)>,
}

/// Runs every check; the problems are in the report.
pub fn check_model(input: &ModelInput<'_>) -> ModelReport {
    let mut report = ModelReport::default();
    for op in input.ops {
        let e = report.by_kind.entry(op.request.kind()).or_default();
        match op.ended {
            Ended::Answered { .. } => e.0 += 1,
            Ended::Failed => e.1 += 1,
            Ended::Unknown => e.2 += 1,
        }
    }
    let revisions = collect_revisions(input.logs);
    let mut known_until = input.initial_revision;
    while known_until < input.end && revisions.contains_key(&(known_until + 1)) {
        known_until += 1;
    }
    report.known_until = known_until;
    let after = times_after(input);
    let leases: HashMap<i64, (u64, i64)> = input
        .ops
        .iter()
        .filter_map(|op| match &op.ended {
            Ended::Answered { response: Response::LeaseGrant { id, ttl }, .. } => Some((*id, (op.invoked_ns, *ttl))),
            _ => None,
        })
        .collect();

    let mut by_rev: BTreeMap<i64, Vec<&ModelOp>> = BTreeMap::new();
    for op in input.ops {
        match &op.ended {
            Ended::Answered { response: Response::LeaseGrant { .. }, .. } => {}
            Ended::Answered { revision, .. } if *revision <= 0 => {
                report.problems.push(format!("{} answered without a revision: {op:?}", op.request.kind()))
            }
            Ended::Answered { revision, .. } if *revision > known_until => report.unchecked += 1,
            Ended::Answered { revision, .. } if *revision < input.initial_revision => report
                .problems
                .push(format!("{} answered at revision {revision}, before the run began: {op:?}", op.request.kind())),
            Ended::Answered { revision, .. } => by_rev.entry(*revision).or_default().push(op),
            Ended::Failed | Ended::Unknown => {}
        }
    }

    let writers = writers_by_value(input.ops);
    let mut state = input.initial.clone();
    for op in by_rev.get(&input.initial_revision).into_iter().flatten() {
        report.checked += 1;
        check_op(op, input.initial_revision, &state, &state, &[], &mut report.problems);
    }
    for r in input.initial_revision + 1..=known_until {
        let before = state.clone();
        let Some(rev) = revisions.get(&r) else { break };
        report.multi_event_revisions += u64::from(rev.events.len() > 1);
        for ev in &rev.events {
            report.events += 1;
            check_event(ev, &before, &mut report.problems);
            check_attribution(ev, &before, &writers, input, &leases, &after, &mut report);
            match &ev.value {
                Some(_) => {
                    state.insert(ev.key.clone(), event_kv(ev));
                }
                None => {
                    state.remove(&ev.key);
                }
            }
        }
        for (w, ev) in &rev.copies {
            if ev.prev.is_none() && before.contains_key(&ev.key) && r - 1 < input.max_compaction {
                report.prev_kvs_compacted += 1;
                continue;
            }
            report.prev_kvs += 1;
            if ev.prev.as_ref() != before.get(&ev.key) {
                report.problems.push(format!(
                    "watcher {w}: prev_kv of {:?} at revision {r} is {:?}, the state before had {:?}",
                    ev.key,
                    ev.prev,
                    before.get(&ev.key)
                ));
            }
        }
        for op in by_rev.get(&r).into_iter().flatten() {
            report.checked += 1;
            check_op(op, r, &before, &state, &rev.events, &mut report.problems);
        }
    }
    if known_until == input.end {
        for kv in state.values().filter(|kv| kv.key.starts_with(input.lease_prefix)) {
            let deadline = leases.get(&kv.lease).map(|(granted, ttl)| granted + secs(*ttl) + input.lease_grace_ns);
            if deadline.is_none_or(|d| d < input.end_ns) {
                report.outlived.push(format!(
                    "lease key {:?} (lease {:x}) still present at the end (revision {}), {:?} after its lease's TTL plus grace",
                    kv.key,
                    kv.lease,
                    input.end,
                    deadline.map(|d| std::time::Duration::from_nanos(input.end_ns.saturating_sub(d)))
                ));
            }
        }
    }
    report.problems.extend(check_real_time(input.ops));
    report
}

fn secs(s: i64) -> u64 {
    u64::try_from(s).unwrap_or(0) * 1_000_000_000
}

fn event_kv(ev: &SeenEvent) -> Kv {
    Kv {
        key: ev.key.clone(),
        value: ev.value.clone().unwrap_or_default(),
        create_revision: ev.create_revision,
        mod_revision: ev.revision,
        version: ev.version,
        lease: ev.lease,
    }
}

fn collect_revisions(logs: &[WatchLog]) -> BTreeMap<i64, Revision<'_>> {
    let mut out: BTreeMap<i64, Revision<'_>> = BTreeMap::new();
    let mut owner: BTreeMap<i64, usize> = BTreeMap::new();
    for (w, log) in logs.iter().enumerate() {
        for ev in &log.events {
            let rev = out.entry(ev.revision).or_insert_with(|| Revision { events: Vec::new(), copies: Vec::new() });
            let first = *owner.entry(ev.revision).or_insert(w);
            if first == w {
                rev.events.push(ev);
            }
            rev.copies.push((w, ev));
        }
    }
    out
}

/// For each revision, the earliest moment someone had evidence it existed (an answer at it or
/// later, a watch response carrying it or later): the revision was made before then.
fn times_after(input: &ModelInput<'_>) -> BTreeMap<i64, u64> {
    let mut first: BTreeMap<i64, u64> = BTreeMap::new();
    let mut note = |rev: i64, t: u64| {
        let e = first.entry(rev).or_insert(t);
        *e = (*e).min(t);
    };
    for op in input.ops {
        if let Ended::Answered { revision, completed_ns, response } = &op.ended
            && !matches!(response, Response::LeaseGrant { .. })
        {
            note(*revision, *completed_ns);
        }
    }
    for log in input.logs {
        for resp in &log.responses {
            note(resp.revision, resp.received_ns);
        }
    }
    // Suffix minimum: a revision existed before any later one was seen.
    let mut min = u64::MAX;
    let mut out = BTreeMap::new();
    for (rev, t) in first.into_iter().rev() {
        min = min.min(t);
        out.insert(rev, min);
    }
    out
}

fn seen_by(after: &BTreeMap<i64, u64>, rev: i64) -> Option<u64> {
    after.range(rev..).next().map(|(_, t)| *t)
}

/// Which operations tried to write each value (values are unique across the run, and never a
/// key), and which tried to delete each key.
fn writers_by_value(ops: &[ModelOp]) -> HashMap<&str, Vec<&ModelOp>> {
    let mut out: HashMap<&str, Vec<&ModelOp>> = HashMap::new();
    for op in ops {
        match &op.request {
            Request::Delete { key } => out.entry(key).or_default().push(op),
            Request::Put { value, .. } | Request::Cas { new: value, .. } => out.entry(value).or_default().push(op),
            Request::Txn2 { values, .. } => {
                for v in values {
                    out.entry(v).or_default().push(op);
                }
            }
            _ => {}
        }
    }
    out
}

/// An event's own fields agree with the state before it.
fn check_event(ev: &SeenEvent, before: &State, problems: &mut Vec<String>) {
    let r = ev.revision;
    match (&ev.value, before.get(&ev.key)) {
        (Some(_), Some(old)) => {
            if ev.create_revision != old.create_revision || ev.version != old.version + 1 {
                problems.push(format!(
                    "event at revision {r}: put of {:?} has create revision {} version {}, the key had {} and {}",
                    ev.key, ev.create_revision, ev.version, old.create_revision, old.version
                ));
            }
        }
        (Some(_), None) => {
            if ev.create_revision != r || ev.version != 1 {
                problems.push(format!(
                    "event at revision {r}: put creating {:?} has create revision {} version {}",
                    ev.key, ev.create_revision, ev.version
                ));
            }
        }
        (None, None) => problems.push(format!("event at revision {r}: delete of {:?}, which did not exist", ev.key)),
        (None, Some(_)) => {}
    }
}

/// Every put is a value a client tried to write, not refused, at its acknowledged revision;
/// deletes of lease keys are expiries that came no earlier than the lease's TTL.
fn check_attribution(
    ev: &SeenEvent,
    before: &State,
    writers: &HashMap<&str, Vec<&ModelOp>>,
    input: &ModelInput<'_>,
    leases: &HashMap<i64, (u64, i64)>,
    after: &BTreeMap<i64, u64>,
    report: &mut ModelReport,
) {
    let r = ev.revision;
    if !ev.key.starts_with(input.prefix) {
        return;
    }
    match &ev.value {
        Some(value) => {
            let ops = writers.get(value.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let explained = ops.iter().any(|op| match &op.ended {
                Ended::Answered { revision, response, .. } => {
                    *revision == r && !matches!(response, Response::Txn { succeeded: false, .. })
                }
                Ended::Unknown => true,
                Ended::Failed => false,
            });
            if !explained {
                report.problems.push(format!(
                    "event at revision {r}: put {:?}={value:?} that no client's write explains (writers: {ops:?})",
                    ev.key
                ));
            }
            if let Some(op) = ops.first()
                && let Request::Put { lease, .. } = &op.request
                && *lease != ev.lease
            {
                report.problems.push(format!(
                    "event at revision {r}: put {:?} has lease {:x}, its put asked for {lease:x}",
                    ev.key, ev.lease
                ));
            }
        }
        None if ev.key.starts_with(input.lease_prefix) => {
            report.lease_expiries += 1;
            let lease = before.get(&ev.key).map_or(0, |kv| kv.lease);
            let Some((granted, ttl)) = leases.get(&lease) else {
                report.problems.push(format!(
                    "event at revision {r}: lease key {:?} deleted, but its lease {lease:x} is not one a client was granted",
                    ev.key
                ));
                return;
            };
            let earliest = (granted + secs(*ttl)).saturating_sub(input.lease_margin_ns);
            if let Some(seen) = seen_by(after, r)
                && seen < earliest
            {
                report.problems.push(format!(
                    "lease {lease:x} (TTL {ttl} s) expired early: {:?} deleted at revision {r}, seen {:?} before its grant was sent + TTL",
                    ev.key,
                    std::time::Duration::from_nanos(granted + secs(*ttl) - seen)
                ));
            }
        }
        None => {
            let deletes = writers.get(ev.key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let explained = deletes.iter().any(|op| {
                matches!(&op.request, Request::Delete { .. })
                    && match &op.ended {
                        Ended::Answered { revision, .. } => *revision == r,
                        Ended::Unknown => true,
                        Ended::Failed => false,
                    }
            });
            if !explained {
                report
                    .problems
                    .push(format!("event at revision {r}: delete of {:?} that no client's delete explains", ev.key));
            }
        }
    }
}

/// The effects of one answered operation against the state before and at its revision.
fn check_op(op: &ModelOp, r: i64, before: &State, at: &State, events: &[&SeenEvent], problems: &mut Vec<String>) {
    let Ended::Answered { response, .. } = &op.ended else { return };
    let kind = op.request.kind();
    let mut fail = |what: String| problems.push(format!("{kind} answered at revision {r}: {what} (op: {op:?})"));
    let own = |evs: &[(&str, Option<&str>)]| -> bool {
        events.len() == evs.len()
            && evs.iter().all(|(k, v)| events.iter().any(|e| e.key == *k && e.value.as_deref() == *v))
    };
    let shown = |evs: &[&SeenEvent]| -> Vec<(String, Option<String>)> {
        evs.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
    };
    match (&op.request, response) {
        (Request::Get { key, .. }, Response::Range { kvs, count }) => {
            let want: Vec<Kv> = at.get(key).cloned().into_iter().collect();
            if *kvs != want || *count != want.len() as i64 {
                fail(format!("returned {kvs:?} (count {count}), the state had {want:?}"));
            }
        }
        (Request::Range { prefix, .. }, Response::Range { kvs, count }) => {
            let want: Vec<Kv> = at
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                .map(|(_, v)| v.clone())
                .collect();
            if *kvs != want || *count != want.len() as i64 {
                fail(format!(
                    "returned {} keys (count {count}), the state had {}: {}",
                    kvs.len(),
                    want.len(),
                    diff(kvs, &want)
                ));
            }
        }
        (Request::Put { key, value, .. }, Response::Put) => {
            if !own(&[(key, Some(value))]) {
                fail(format!("the events at {r} are {:?}", shown(events)));
            }
        }
        (Request::Delete { key }, Response::Delete { deleted, prev }) => {
            let had: Vec<Kv> = before.get(key).cloned().into_iter().collect();
            if *deleted > 0 {
                if !own(&[(key, None)]) || *deleted != 1 || *prev != had {
                    fail(format!(
                        "deleted {deleted} with prev {prev:?}; before it {had:?}, events {:?}",
                        shown(events)
                    ));
                }
            } else if at.contains_key(key) {
                fail(format!("deleted nothing, but the state at {r} has {:?}", at.get(key)));
            }
        }
        (Request::Cas { key, expect, new }, Response::Txn { succeeded, .. }) => {
            if *succeeded {
                let had = before.get(key).map(|kv| kv.value.clone());
                if had != *expect || !own(&[(key, Some(new))]) {
                    fail(format!("succeeded, but before it the key was {had:?}; events {:?}", shown(events)));
                }
            } else {
                let has = at.get(key).map(|kv| kv.value.clone());
                if has == *expect {
                    fail(format!("failed, but the state at {r} has {has:?}, what it expected"));
                }
            }
        }
        (Request::Txn2 { keys, mod_revisions, values }, Response::Txn { succeeded, reads }) => {
            let mods = |s: &State| keys.clone().map(|k| s.get(&k).map_or(0, |kv| kv.mod_revision));
            if *succeeded {
                let puts = [(keys[0].as_str(), Some(values[0].as_str())), (keys[1].as_str(), Some(values[1].as_str()))];
                if mods(before) != *mod_revisions || !own(&puts) {
                    fail(format!("succeeded; mod revisions before it {:?}, events {:?}", mods(before), shown(events)));
                }
            } else {
                let want: Vec<Vec<Kv>> = keys.iter().map(|k| at.get(k).cloned().into_iter().collect()).collect();
                if mods(at) == *mod_revisions || *reads != want {
                    fail(format!(
                        "failed; the state at {r} has mod revisions {:?} and {want:?}, it read {reads:?}",
                        mods(at)
                    ));
                }
            }
        }
        (req, resp) => fail(format!("a {resp:?} answer to {req:?}")),
    }
}

fn diff(got: &[Kv], want: &[Kv]) -> String {
    let extra: Vec<&Kv> = got.iter().filter(|k| !want.contains(k)).collect();
    let missing: Vec<&Kv> = want.iter().filter(|k| !got.contains(k)).collect();
    format!("not in the state {extra:?}; missing {missing:?}")
}

/// If A completed before B was invoked, rev(A) ≤ rev(B), and rev(A) < rev(B) when B wrote.
/// B is only checked when linearizable; A counts even when serializable (it saw a committed
/// revision, which any later linearizable operation must include).
fn check_real_time(ops: &[ModelOp]) -> Vec<String> {
    let answered: Vec<(&ModelOp, i64, u64)> = ops
        .iter()
        .filter_map(|op| match &op.ended {
            Ended::Answered { revision, completed_ns, response }
                if !matches!(response, Response::LeaseGrant { .. }) =>
            {
                Some((op, *revision, *completed_ns))
            }
            _ => None,
        })
        .collect();
    let mut by_completion: Vec<&(&ModelOp, i64, u64)> = answered.iter().collect();
    by_completion.sort_by_key(|(_, _, c)| *c);
    let mut by_invocation: Vec<&(&ModelOp, i64, u64)> = answered.iter().collect();
    by_invocation.sort_by_key(|(op, _, _)| op.invoked_ns);
    let mut problems = Vec::new();
    let mut next = 0;
    let mut max: Option<(i64, &ModelOp)> = None;
    for (b, rev_b, _) in by_invocation {
        while next < by_completion.len() && by_completion[next].2 < b.invoked_ns {
            let (a, rev_a, _) = by_completion[next];
            if max.is_none_or(|(m, _)| *rev_a > m) {
                max = Some((*rev_a, a));
            }
            next += 1;
        }
        if b.request.serializable() {
            continue;
        }
        if let Some((m, a)) = max {
            let bad = if b.wrote() { *rev_b <= m } else { *rev_b < m };
            if bad {
                problems.push(format!(
                    "real time: {} answered at revision {rev_b} was invoked after {} completed at revision {m} ({b:?} after {a:?})",
                    b.request.kind(),
                    a.request.kind()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchers::SeenResponse;

    /// A key as it would be after its `version`-th put at `rev`, created at `create`.
    fn kv(key: &str, value: &str, create: i64, rev: i64, version: i64, lease: i64) -> Kv {
        Kv { key: key.into(), value: value.into(), create_revision: create, mod_revision: rev, version, lease }
    }

    /// A watcher's log of these revisions, one response each (received at `at_ns`), with every
    /// event's fields and `prev_kv` derived from the running state, as a correct server sends them.
    /// A revision's events: key, value (`None`: a delete), lease.
    type Events<'a> = Vec<(&'a str, Option<&'a str>, i64)>;

    fn log(revisions: &[(i64, u64, Events<'_>)]) -> WatchLog {
        let mut state = State::new();
        let mut out = WatchLog::default();
        for (rev, at_ns, evs) in revisions {
            let response = out.responses.len();
            out.responses.push(SeenResponse {
                watch: 1,
                received_ns: *at_ns,
                revision: *rev,
                progress: false,
                events: evs.len(),
            });
            for (key, value, lease) in evs {
                let prev = state.get(*key).cloned();
                let (create, version) = prev.as_ref().map_or((*rev, 1), |p| (p.create_revision, p.version + 1));
                let ev = SeenEvent {
                    revision: *rev,
                    key: key.to_string(),
                    value: value.map(str::to_string),
                    create_revision: if value.is_some() { create } else { 0 },
                    version: if value.is_some() { version } else { 0 },
                    lease: if value.is_some() { *lease } else { 0 },
                    prev,
                    response,
                };
                match value {
                    Some(_) => {
                        state.insert(key.to_string(), event_kv(&ev));
                    }
                    None => {
                        state.remove(*key);
                    }
                }
                out.events.push(ev);
            }
        }
        out
    }

    fn op(invoked_ns: u64, completed_ns: u64, request: Request, revision: i64, response: Response) -> ModelOp {
        ModelOp { client: 0, invoked_ns, request, ended: Ended::Answered { revision, response, completed_ns } }
    }

    const S: u64 = 1_000_000_000;

    /// A run in which every answer is right: puts, a two-key transaction, a delete, ranges, a
    /// stale serializable get, a leased put whose lease expires after its TTL.
    fn good() -> (Vec<ModelOp>, WatchLog) {
        let ops = vec![
            op(0, 10, Request::Put { key: "p/k0".into(), value: "1".into(), lease: 0 }, 2, Response::Put),
            op(
                20,
                30,
                Request::Txn2 {
                    keys: ["p/m0".into(), "p/m1".into()],
                    mod_revisions: [0, 0],
                    values: ["2".into(), "3".into()],
                },
                3,
                Response::Txn { succeeded: true, reads: vec![] },
            ),
            op(
                40,
                50,
                Request::Delete { key: "p/m0".into() },
                4,
                Response::Delete { deleted: 1, prev: vec![kv("p/m0", "2", 3, 3, 1, 0)] },
            ),
            op(
                60,
                70,
                Request::Range { prefix: "p/".into(), serializable: false },
                4,
                Response::Range { kvs: vec![kv("p/k0", "1", 2, 2, 1, 0), kv("p/m1", "3", 3, 3, 1, 0)], count: 2 },
            ),
            op(
                80,
                90,
                Request::Get { key: "p/k0".into(), serializable: true },
                1,
                Response::Range { kvs: vec![], count: 0 },
            ),
            op(
                95,
                98,
                Request::Txn2 {
                    keys: ["p/m0".into(), "p/m1".into()],
                    mod_revisions: [3, 3],
                    values: ["8".into(), "9".into()],
                },
                4,
                Response::Txn { succeeded: false, reads: vec![vec![], vec![kv("p/m1", "3", 3, 3, 1, 0)]] },
            ),
            op(99, 100, Request::LeaseGrant { ttl: 2 }, 4, Response::LeaseGrant { id: 7, ttl: 2 }),
            op(100, 110, Request::Put { key: "p/l0".into(), value: "5".into(), lease: 7 }, 5, Response::Put),
        ];
        let log = log(&[
            (2, 10, vec![("p/k0", Some("1"), 0)]),
            (3, 30, vec![("p/m0", Some("2"), 0), ("p/m1", Some("3"), 0)]),
            (4, 50, vec![("p/m0", None, 0)]),
            (5, 110, vec![("p/l0", Some("5"), 7)]),
            (6, 3 * S, vec![("p/l0", None, 0)]),
        ]);
        (ops, log)
    }

    fn check(ops: &[ModelOp], logs: &[WatchLog], end: i64) -> ModelReport {
        check_model(&ModelInput {
            initial: State::new(),
            initial_revision: 1,
            end,
            end_ns: 20 * S,
            ops,
            logs,
            prefix: "p/",
            lease_prefix: "p/l",
            lease_margin_ns: S / 4,
            lease_grace_ns: 10 * S,
            max_compaction: 0,
        })
    }

    fn assert_finds(report: &ModelReport, what: &str) {
        assert!(report.problems.iter().any(|p| p.contains(what)), "expected {what:?} in {:#?}", report.problems);
    }

    #[test]
    fn a_correct_history_passes() {
        let (ops, log) = good();
        let r = check(&ops, &[log], 6);
        assert!(r.problems.is_empty(), "{:#?}", r.problems);
        assert_eq!((r.checked, r.unchecked, r.events, r.lease_expiries, r.known_until), (7, 0, 6, 1, 6));
    }

    #[test]
    fn a_stale_read_is_found() {
        let (mut ops, log) = good();
        // Invoked after the put of k0 completed, answered at the revision before it.
        ops.push(op(
            15,
            16,
            Request::Get { key: "p/k0".into(), serializable: false },
            1,
            Response::Range { kvs: vec![], count: 0 },
        ));
        assert_finds(&check(&ops, std::slice::from_ref(&log), 6), "real time: get answered at revision 1");
        // Claiming the current revision with the old value.
        let (mut ops, _) = good();
        ops.push(op(
            15,
            16,
            Request::Get { key: "p/k0".into(), serializable: false },
            2,
            Response::Range { kvs: vec![], count: 0 },
        ));
        assert_finds(&check(&ops, &[log], 6), "get answered at revision 2: returned []");
    }

    #[test]
    fn a_lost_delete_is_found() {
        let (mut ops, log) = good();
        // The range at 4 still shows m0, which the delete at 4 removed.
        ops[3] = op(
            60,
            70,
            Request::Range { prefix: "p/".into(), serializable: false },
            4,
            Response::Range {
                kvs: vec![kv("p/k0", "1", 2, 2, 1, 0), kv("p/m0", "2", 3, 3, 1, 0), kv("p/m1", "3", 3, 3, 1, 0)],
                count: 3,
            },
        );
        assert_finds(&check(&ops, &[log], 6), "range answered at revision 4: returned 3 keys");
        // The delete was acknowledged, but no event deleted anything at its revision.
        let (ops, _) = good();
        let lost = super::tests::log(&[
            (2, 10, vec![("p/k0", Some("1"), 0)]),
            (3, 30, vec![("p/m0", Some("2"), 0), ("p/m1", Some("3"), 0)]),
            (4, 50, vec![("p/k0", Some("1"), 0)]),
        ]);
        let r = check(&ops[..5], &[lost], 4);
        assert_finds(&r, "delete answered at revision 4");
    }

    #[test]
    fn a_split_transaction_is_found() {
        let (ops, _) = good();
        // The transaction's two puts at two revisions: its own revision lacks one of them.
        let split = log(&[
            (2, 10, vec![("p/k0", Some("1"), 0)]),
            (3, 30, vec![("p/m0", Some("2"), 0)]),
            (4, 31, vec![("p/m1", Some("3"), 0)]),
        ]);
        assert_finds(&check(&ops[..2], &[split], 4), "txn2 answered at revision 3");
    }

    #[test]
    fn a_wrong_prev_kv_is_found() {
        let (ops, mut log) = good();
        // The delete of m0 at 4 names a previous value the key never had.
        log.events[3].prev = Some(kv("p/m0", "7", 3, 3, 1, 0));
        assert_finds(&check(&ops, std::slice::from_ref(&log), 6), "prev_kv of \"p/m0\" at revision 4");
        // Left out: only right when the revision before it was compacted.
        log.events[3].prev = None;
        assert_finds(&check(&ops, std::slice::from_ref(&log), 6), "prev_kv of \"p/m0\" at revision 4 is None");
        let mut input = ModelInput {
            initial: State::new(),
            initial_revision: 1,
            end: 6,
            end_ns: 20 * S,
            ops: &ops,
            logs: std::slice::from_ref(&log),
            prefix: "p/",
            lease_prefix: "p/l",
            lease_margin_ns: S / 4,
            lease_grace_ns: 10 * S,
            max_compaction: 4,
        };
        let r = check_model(&input);
        assert!(r.problems.is_empty() && r.prev_kvs_compacted == 1, "{:#?}", r.problems);
        input.max_compaction = 3;
        assert_finds(&check_model(&input), "is None");
    }

    #[test]
    fn a_wrong_version_and_a_phantom_write_are_found() {
        let (ops, mut log) = good();
        log.events[0].version = 2;
        log.events[1].value = Some("77".into());
        let r = check(&ops, &[log], 6);
        assert_finds(&r, "has create revision 2 version 2");
        assert_finds(&r, "that no client's write explains");
    }

    #[test]
    fn leases_expiring_early_or_never_are_found() {
        let (ops, mut log) = good();
        // Seen deleted 1 s after a 2 s lease was granted.
        log.responses[4].received_ns = S;
        assert_finds(&check(&ops, &[log], 6), "expired early");
        // Never deleted, 20 s later.
        let (ops, mut log) = good();
        log.events.pop();
        log.responses.pop();
        let r = check(&ops, &[log], 5);
        assert!(r.outlived.iter().any(|p| p.contains("still present at the end")), "{:#?}", r.outlived);
    }

    #[test]
    fn revisions_no_watcher_saw_leave_later_answers_unchecked() {
        let (ops, mut log) = good();
        log.events.retain(|e| e.revision != 3);
        let r = check(&ops, &[log], 6);
        assert_eq!((r.known_until, r.checked, r.unchecked), (2, 2, 5));
        assert!(r.problems.is_empty(), "{:#?}", r.problems);
    }
}
