//! Histories no linearizable store can produce: the checker must reject each, and say why.

use wasmraft_lincheck::{CheckResult, KeyVerdict, Operation, StuckReason, Violation};

use crate::ops::*;

/// The single violation the history must have.
fn violation(ops: Vec<Operation>) -> Violation {
    match result(ops) {
        CheckResult::NotLinearizable(mut violations) => {
            assert_eq!(violations.len(), 1, "{violations:?}");
            violations.remove(0)
        }
        other => panic!("expected a violation, got {other}"),
    }
}

/// The history index of each operation that could not come next, and why.
fn stuck(violation: &Violation) -> Vec<(usize, StuckReason)> {
    violation.next.iter().map(|s| (s.op.index, s.reason)).collect()
}

#[test]
fn stale_read_after_a_completed_write() {
    let v = violation(vec![write(1, "x", 1, 0, 10), write(1, "x", 2, 20, 30), read(2, "x", Some(1), 40, 50)]);
    assert_eq!(v.key, "x");
    let prefix: Vec<usize> = v.prefix.iter().map(|p| p.op.index).collect();
    assert_eq!(prefix, [0, 1]);
    assert_eq!(v.state, Some(2));
    assert_eq!(v.deadline.as_ref().map(|d| d.index), Some(2));
    assert_eq!(stuck(&v), [(2, StuckReason::Contradicts)]);
    let text = v.to_string();
    assert!(text.contains("#2 p2 read = 1 [0.000000040s .. 0.000000050s]: read 1, but the key holds 2"), "{text}");
    assert!(text.contains("Longest linearizable prefix: 2 operation(s)"), "{text}");
}

#[test]
fn read_of_a_value_never_written() {
    let v = violation(vec![write(1, "x", 1, 0, 10), read(2, "x", Some(7), 5, 20)]);
    assert!(v.next.iter().any(|s| s.op.index == 1 && s.reason == StuckReason::Contradicts), "{v}");
    assert!(v.to_string().contains("read 7, but the key holds"), "{v}");
}

#[test]
fn two_successful_cas_from_the_same_value() {
    let v = violation(vec![
        write(1, "x", 1, 0, 10),
        cas(2, "x", Some(1), 2, true, 20, 40),
        cas(3, "x", Some(1), 3, true, 25, 45),
    ]);
    assert_eq!(v.prefix.len(), 2, "{v}");
    assert_eq!(v.next.len(), 1, "{v}");
    assert_eq!(v.next[0].reason, StuckReason::Contradicts);
    assert!(v.to_string().contains("succeeded, so the key held 1, but it holds"), "{v}");
}

#[test]
fn a_failed_cas_whose_expectation_held() {
    let v = violation(vec![write(1, "x", 1, 0, 10), cas(2, "x", Some(1), 2, false, 20, 30)]);
    assert!(v.to_string().contains("failed, so the key did not hold 1, but it does"), "{v}");
}

#[test]
fn a_read_going_back_in_time() {
    // A write in flight: one read sees it, a later read does not.
    let v = violation(vec![
        write(1, "x", 1, 0, 10),
        write(2, "x", 2, 20, 100),
        read(3, "x", Some(2), 30, 40),
        read(4, "x", Some(1), 50, 60),
    ]);
    assert_eq!(v.deadline.as_ref().map(|d| d.index), Some(3), "{v}");
    // The search got furthest by placing the second write, the new read... and the old read then
    // contradicts; before the new read it is a dead end instead. Either way it is stuck.
    assert!(v.next.iter().any(|s| s.op.index == 3), "{v}");
}

#[test]
fn a_lost_acknowledged_write() {
    let v = violation(vec![write(1, "x", 1, 0, 10), read(2, "x", None, 20, 30)]);
    assert_eq!(v.state, Some(1));
    assert_eq!(stuck(&v), [(1, StuckReason::Contradicts)]);
}

#[test]
fn an_unknown_writes_value_then_the_older_value() {
    // An unknown write may take effect any time, but only once: after a read saw it, a read
    // that starts later cannot see what it overwrote.
    let v = violation(vec![
        write(1, "x", 1, 0, 10),
        write_unknown(2, "x", 2, 20),
        read(3, "x", Some(2), 30, 40),
        read(3, "x", Some(1), 50, 60),
    ]);
    assert_eq!(v.deadline.as_ref().map(|d| d.index), Some(3), "{v}");
    assert!(v.to_string().contains("unknown [0.000000020s .. never]"), "{v}");
}

#[test]
fn an_unknown_write_cannot_take_effect_before_its_invocation() {
    let v = violation(vec![read(1, "x", Some(5), 0, 10), write_unknown(2, "x", 5, 20)]);
    assert_eq!(v.prefix.len(), 0);
    assert_eq!(stuck(&v), [(0, StuckReason::Contradicts)]);
}

#[test]
fn a_failed_write_is_never_seen() {
    let v = violation(vec![write_failed(1, "x", 5, 0), read(2, "x", Some(5), 10, 20)]);
    assert_eq!(v.ops_on_key, 1);
}

#[test]
fn only_the_violating_key_is_reported_and_every_violating_key_is() {
    let ops = vec![
        write(1, "a", 1, 0, 10),
        read(1, "a", Some(1), 20, 30),
        write(1, "b", 1, 40, 50),
        read(1, "b", None, 60, 70),
        write(1, "c", 1, 80, 90),
        read(1, "c", Some(9), 100, 110),
    ];
    let report = report(ops);
    let CheckResult::NotLinearizable(violations) = &report.result else { panic!("{report}") };
    let keys: Vec<&str> = violations.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["b", "c"]);
    let verdicts: Vec<KeyVerdict> = report.keys.iter().map(|k| k.verdict).collect();
    assert_eq!(verdicts, [KeyVerdict::Linearizable, KeyVerdict::NotLinearizable, KeyVerdict::NotLinearizable]);
    let text = report.to_string();
    assert!(text.starts_with("NOT LINEARIZABLE: 2 key(s): b, c\n"), "{text}");
    assert!(text.contains("checked 3 key(s)"), "{text}");
}
