//! The watch check of a fault run: every watcher saw every revision of the run exactly once and
//! in order, across its reconnects, except revisions it could not get because they were
//! compacted (and then etcd must have said so, at a revision the nemesis really compacted at),
//! and what it saw agrees with the acknowledged writes and with the other watchers.
//!
//! Complete coverage is checkable because the watchers watch the whole key space and every
//! revision is made by a write with at least one event (puts and successful compare-and-swaps
//! of the clients, a guest swap's migration put); nothing in a run makes a revision without one.
//!
//! Also etcd's watch guarantees as its robustness tests state them: *atomic* — a revision's events
//! (a transaction's several puts) arrive in one watch response, never split across two;
//! *bookmarkable* — a progress notification at revision R is never followed by an event at or
//! below R, on that watch or on the watcher's later ones (it would have run ahead of that event). `prev_kv` is checked against
//! the rebuilt state in [`crate::kv_model`].

use std::collections::BTreeMap;

use crate::history_recorder::AckedWrite;
use crate::watchers::WatchLog;

/// What the check knows about the run.
pub struct WatchExpectations<'a> {
    /// The first revision the watchers asked for.
    pub start: i64,
    /// The store's revision once everything healed and writes stopped.
    pub end: i64,
    pub acked: &'a [AckedWrite],
    /// The highest revision any compaction was requested at (0: none).
    pub max_compaction: i64,
    /// The subject is etcd 3.4.23, whose watch drops a delete made at exactly the compaction
    /// revision for a watch resuming there (etcd#18089, fixed in 3.4.34): such a revision, all
    /// deletes by the other watchers' account, is excused for a watcher whose compacted gap ends
    /// right before it.
    pub etcd_18089: bool,
}

/// An event's key and value (`None`: a delete).
type KeyValue = (String, Option<String>);

/// Every problem found (empty: the watchers saw what they should).
pub fn check_watchers(logs: &[WatchLog], exp: &WatchExpectations<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    // revision -> (key, value) events, from the first watcher that saw the revision.
    let mut reference: BTreeMap<i64, (usize, Vec<KeyValue>)> = BTreeMap::new();
    // revision -> whether every event any watcher saw at it is a delete.
    let mut deletes_only: BTreeMap<i64, bool> = BTreeMap::new();
    for ev in logs.iter().flat_map(|l| &l.events) {
        let d = deletes_only.entry(ev.revision).or_insert(true);
        *d &= ev.value.is_none();
    }
    for (w, log) in logs.iter().enumerate() {
        let mut by_rev: BTreeMap<i64, Vec<KeyValue>> = BTreeMap::new();
        let mut last = i64::MIN;
        for ev in &log.events {
            if ev.revision < last {
                problems.push(format!("watcher {w}: revision {} after {last} (out of order)", ev.revision));
            }
            let evs = by_rev.entry(ev.revision).or_default();
            if evs.iter().any(|(k, _)| k == &ev.key) {
                problems.push(format!("watcher {w}: duplicate event for {:?} at revision {}", ev.key, ev.revision));
            }
            evs.push((ev.key.clone(), ev.value.clone()));
            last = ev.revision;
        }
        problems.extend(check_atomic_and_bookmarks(w, log));
        for g in &log.gaps {
            if g.to + 1 > exp.max_compaction {
                problems.push(format!(
                    "watcher {w}: told revisions {}..={} were compacted, but no compaction went past {}",
                    g.from, g.to, exp.max_compaction
                ));
            }
        }
        let in_gap = |r: i64| log.gaps.iter().any(|g| g.from <= r && r <= g.to);
        let mut missed = Vec::new();
        for r in exp.start..=exp.end {
            let seen = by_rev.contains_key(&r);
            if in_gap(r) && seen {
                problems.push(format!("watcher {w}: saw revision {r} inside a compacted gap"));
            }
            let dropped_by_etcd_18089 =
                exp.etcd_18089 && deletes_only.get(&r) == Some(&true) && log.gaps.iter().any(|g| g.to + 1 == r);
            if !in_gap(r) && !seen && !dropped_by_etcd_18089 {
                missed.push(r);
            }
        }
        if !missed.is_empty() {
            problems.push(format!(
                "watcher {w}: missed {} revisions in {}..={}: {}",
                missed.len(),
                exp.start,
                exp.end,
                summarize(&missed)
            ));
        }
        for a in exp.acked {
            if a.revision < exp.start || a.revision > exp.end || in_gap(a.revision) {
                continue;
            }
            let want = (a.key.clone(), Some(a.value.to_string()));
            if by_rev.get(&a.revision).is_some_and(|evs| !evs.contains(&want)) {
                problems.push(format!(
                    "watcher {w}: revision {} has {:?}, but the put of {}={} was acknowledged at it",
                    a.revision, by_rev[&a.revision], a.key, a.value
                ));
            }
        }
        for (r, evs) in by_rev {
            match reference.get(&r) {
                Some((other, theirs)) if *theirs != evs => {
                    problems.push(format!("watchers {other} and {w} disagree at revision {r}: {theirs:?} vs {evs:?}"))
                }
                Some(_) => {}
                None => {
                    reference.insert(r, (w, evs));
                }
            }
        }
    }
    problems
}

/// A revision's events all in one response; no event at or below a progress notification's
/// revision after it.
fn check_atomic_and_bookmarks(w: usize, log: &WatchLog) -> Vec<String> {
    let mut problems = Vec::new();
    let mut response_of: BTreeMap<i64, usize> = BTreeMap::new();
    for ev in &log.events {
        let first = *response_of.entry(ev.revision).or_insert(ev.response);
        if first != ev.response {
            problems.push(format!(
                "watcher {w}: revision {} split across responses {first} and {} (not atomic)",
                ev.revision, ev.response
            ));
        }
    }
    // The latest progress notification: (revision, response, watch). It binds the watcher's
    // later streams too: a new stream resumes after the last event seen, so an event at or below
    // a notification's revision arriving on it was not delivered before that notification.
    let mut progress: Option<(i64, usize, u64)> = None;
    // One line per event would bury the report (a catching-up watcher can get thousands behind
    // one notification): the first three, then a count.
    let mut ahead = 0u64;
    let mut events = log.events.iter().peekable();
    for (i, resp) in log.responses.iter().enumerate() {
        while let Some(ev) = events.next_if(|e| e.response == i) {
            if let Some((p, at, watch)) = progress
                && ev.revision <= p
            {
                ahead += 1;
                if ahead > 3 {
                    continue;
                }
                problems.push(format!(
                    "watcher {w}: event at revision {} for {:?} (response {i}, watch {}) after a progress notification at {p} (response {at}, watch {watch})",
                    ev.revision, ev.key, resp.watch
                ));
            }
        }
        if resp.progress && progress.is_none_or(|(p, _, _)| resp.revision >= p) {
            progress = Some((resp.revision, i, resp.watch));
        }
    }
    if ahead > 3 {
        problems.push(format!(
            "watcher {w}: {ahead} events in all after a progress notification at or above their revision"
        ));
    }
    problems
}

/// `1..=3, 7, 9..=12` for a sorted list.
fn summarize(revs: &[i64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < revs.len() && parts.len() < 20 {
        let start = revs[i];
        while i + 1 < revs.len() && revs[i + 1] == revs[i] + 1 {
            i += 1;
        }
        parts.push(if revs[i] == start { start.to_string() } else { format!("{start}..={}", revs[i]) });
        i += 1;
    }
    if i < revs.len() {
        parts.push("…".into());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchers::{CompactedGap, SeenEvent, SeenResponse};

    fn ev(revision: i64, key: &str, value: u64) -> SeenEvent {
        SeenEvent { revision, key: key.into(), value: Some(value.to_string()), ..Default::default() }
    }

    fn acked(revision: i64, key: &str, value: u64) -> AckedWrite {
        AckedWrite { revision, key: key.into(), value }
    }

    #[test]
    fn complete_ordered_logs_pass_and_each_fault_is_named() {
        let acked = [acked(2, "a", 1), acked(3, "b", 2), acked(4, "a", 3)];
        let exp = WatchExpectations { start: 2, end: 4, acked: &acked, max_compaction: 0, etcd_18089: false };
        let good = WatchLog { events: vec![ev(2, "a", 1), ev(3, "b", 2), ev(4, "a", 3)], ..Default::default() };
        assert!(check_watchers(&[good.clone(), good.clone()], &exp).is_empty());

        let missed = WatchLog { events: vec![ev(2, "a", 1), ev(4, "a", 3)], ..Default::default() };
        let p = check_watchers(&[missed], &exp);
        assert_eq!(p, vec!["watcher 0: missed 1 revisions in 2..=4: 3".to_string()]);

        let dup =
            WatchLog { events: vec![ev(2, "a", 1), ev(3, "b", 2), ev(3, "b", 2), ev(4, "a", 3)], ..Default::default() };
        assert!(check_watchers(&[dup], &exp)[0].contains("duplicate event for \"b\" at revision 3"));

        let reordered = WatchLog { events: vec![ev(2, "a", 1), ev(4, "a", 3), ev(3, "b", 2)], ..Default::default() };
        assert!(check_watchers(&[reordered], &exp)[0].contains("out of order"));

        let wrong = WatchLog { events: vec![ev(2, "a", 1), ev(3, "b", 9), ev(4, "a", 3)], ..Default::default() };
        let p = check_watchers(&[good.clone(), wrong], &exp);
        assert!(p.iter().any(|s| s.contains("acknowledged")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("disagree at revision 3")), "{p:?}");
    }

    #[test]
    fn compacted_gaps_are_accounted_for_only_when_real() {
        let acked = [acked(2, "a", 1), acked(3, "b", 2), acked(4, "a", 3)];
        let log =
            WatchLog { events: vec![ev(4, "a", 3)], gaps: vec![CompactedGap { from: 2, to: 3 }], ..Default::default() };
        let compacted = WatchExpectations { start: 2, end: 4, acked: &acked, max_compaction: 4, etcd_18089: false };
        assert!(check_watchers(std::slice::from_ref(&log), &compacted).is_empty());
        let never = WatchExpectations { start: 2, end: 4, acked: &acked, max_compaction: 3, etcd_18089: false };
        assert!(check_watchers(&[log], &never)[0].contains("no compaction went past 3"));
        assert_eq!(summarize(&[1, 2, 3, 7, 9, 10]), "1..=3, 7, 9..=10");
    }

    fn resp(watch: u64, revision: i64, progress: bool, events: usize) -> SeenResponse {
        SeenResponse { watch, received_ns: 0, revision, progress, events }
    }

    #[test]
    fn a_split_revision_and_a_bookmark_ahead_of_an_event_are_found() {
        let acked = [acked(2, "a", 1), acked(3, "b", 2)];
        let exp = WatchExpectations { start: 2, end: 3, acked: &acked, max_compaction: 0, etcd_18089: false };
        let at = |mut e: SeenEvent, response| {
            e.response = response;
            e
        };
        // Revision 3's two events (one transaction) in one response, a progress notification
        // at 3 after them: right.
        let good = WatchLog {
            events: vec![at(ev(2, "a", 1), 0), at(ev(3, "b", 2), 1), at(ev(3, "c", 4), 1)],
            responses: vec![resp(1, 2, false, 1), resp(1, 3, false, 2), resp(1, 3, true, 0)],
            ..Default::default()
        };
        assert!(check_watchers(std::slice::from_ref(&good), &exp).is_empty());
        // The same two events in two responses.
        let split = WatchLog {
            events: vec![at(ev(2, "a", 1), 0), at(ev(3, "b", 2), 1), at(ev(3, "c", 4), 2)],
            responses: vec![resp(1, 2, false, 1), resp(1, 3, false, 1), resp(1, 3, false, 1)],
            ..Default::default()
        };
        let p = check_watchers(&[split], &exp);
        assert!(p.iter().any(|s| s.contains("revision 3 split across responses 1 and 2")), "{p:?}");
        // A progress notification at 3 before revision 3's events: it ran ahead of them.
        let ahead = WatchLog {
            events: vec![at(ev(2, "a", 1), 0), at(ev(3, "b", 2), 2), at(ev(3, "c", 4), 2)],
            responses: vec![resp(1, 2, false, 1), resp(1, 3, true, 0), resp(1, 3, false, 2)],
            ..Default::default()
        };
        let p = check_watchers(&[ahead], &exp);
        assert!(p.iter().any(|s| s.contains("after a progress notification at 3")), "{p:?}");
        // Nor on the watcher's next stream: it was owed before the notification.
        let other = WatchLog {
            events: vec![at(ev(2, "a", 1), 0), at(ev(3, "b", 2), 2), at(ev(3, "c", 4), 2)],
            responses: vec![resp(1, 2, false, 1), resp(1, 3, true, 0), resp(2, 3, false, 2)],
            ..Default::default()
        };
        let p = check_watchers(&[other], &exp);
        assert!(p.iter().any(|s| s.contains("watch 2) after a progress notification at 3")), "{p:?}");
    }

    #[test]
    fn a_delete_at_the_compaction_revision_is_excused_only_on_etcd_3_4_23() {
        let acked = [acked(2, "a", 1)];
        let del = SeenEvent { revision: 4, key: "a".into(), value: None, ..Default::default() };
        // The lagging watcher: told 2..=3 were compacted (compact_revision 4), then never sent
        // the delete at 4; the other watcher saw it.
        let lagging =
            WatchLog { events: vec![ev(5, "b", 2)], gaps: vec![CompactedGap { from: 2, to: 3 }], ..Default::default() };
        let other = WatchLog { events: vec![ev(2, "a", 1), ev(3, "b", 1), del, ev(5, "b", 2)], ..Default::default() };
        let mut exp = WatchExpectations { start: 2, end: 5, acked: &acked, max_compaction: 4, etcd_18089: true };
        assert!(check_watchers(&[other.clone(), lagging.clone()], &exp).is_empty());
        exp.etcd_18089 = false;
        let p = check_watchers(&[other, lagging], &exp);
        assert_eq!(p, vec!["watcher 1: missed 1 revisions in 2..=5: 4".to_string()]);
    }
}
