//! Histories a correct store can produce: the checker must accept them all.

use wasmraft_lincheck::{CheckResult, KeyVerdict};

use crate::ops::*;

#[test]
fn empty_history() {
    assert_eq!(result(vec![]), CheckResult::Linearizable);
}

#[test]
fn sequential_reads_writes_and_cas() {
    let ops = vec![
        read(1, "x", None, 0, 10),
        write(1, "x", 1, 20, 30),
        read(2, "x", Some(1), 40, 50),
        cas(1, "x", Some(1), 2, true, 60, 70),
        cas(2, "x", Some(1), 3, false, 80, 90),
        cas(2, "x", None, 4, false, 100, 110),
        read(1, "x", Some(2), 120, 130),
        write(2, "x", 5, 140, 150),
        read(1, "x", Some(5), 160, 170),
    ];
    let report = report(ops);
    assert_eq!(report.result, CheckResult::Linearizable);
    assert_eq!(report.keys.len(), 1);
    assert_eq!(report.keys[0].required, 9);
    assert!(report.keys[0].states >= 9, "each placed operation is a configuration");
}

#[test]
fn cas_on_an_absent_key_creates_it() {
    let ops = vec![cas(1, "x", None, 7, true, 0, 10), read(2, "x", Some(7), 20, 30)];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn concurrent_writes_may_be_seen_in_either_order() {
    // Two overlapping writes; overlapping reads see 2 then 1: w2, r=2, w1, r=1.
    let ops = vec![
        write(1, "x", 1, 0, 50),
        write(2, "x", 2, 10, 60),
        read(3, "x", Some(2), 20, 30),
        read(3, "x", Some(1), 40, 70),
        read(4, "x", Some(1), 80, 90),
    ];
    assert_eq!(result(ops.clone()), CheckResult::Linearizable);
    // ...and the other way round.
    let mut swapped = ops;
    swapped[2] = read(3, "x", Some(1), 20, 30);
    swapped[3] = read(3, "x", Some(2), 40, 70);
    swapped[4] = read(4, "x", Some(2), 80, 90);
    assert_eq!(result(swapped), CheckResult::Linearizable);
}

#[test]
fn a_read_concurrent_with_a_write_sees_before_or_after() {
    for saw in [None, Some(1)] {
        let ops = vec![write(1, "x", 1, 0, 100), read(2, "x", saw, 10, 20)];
        assert_eq!(result(ops), CheckResult::Linearizable, "read saw {saw:?}");
    }
}

#[test]
fn an_unknown_write_that_took_effect() {
    let ops = vec![write(1, "x", 1, 0, 10), write_unknown(2, "x", 2, 20), read(3, "x", Some(2), 1000, 1010)];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn an_unknown_write_that_never_took_effect() {
    let ops = vec![
        write(1, "x", 1, 0, 10),
        write_unknown(2, "x", 2, 20),
        read(3, "x", Some(1), 30, 40),
        read(3, "x", Some(1), 5000, 5010),
    ];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn an_unknown_write_may_take_effect_long_after_its_client_gave_up() {
    let ops = vec![
        write(1, "x", 1, 0, 10),
        write_unknown(2, "x", 2, 20),
        // The same client moves on: that is not an overlap, its request was abandoned.
        read(2, "x", Some(1), 30, 40),
        read(3, "x", Some(1), 50, 60),
        read(3, "x", Some(2), 9000, 9010),
    ];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn unknown_cas_did_or_did_not_take_effect() {
    let took = vec![write(1, "x", 1, 0, 10), cas_unknown(2, "x", Some(1), 2, 20), read(3, "x", Some(2), 30, 40)];
    assert_eq!(result(took), CheckResult::Linearizable);
    let did_not = vec![write(1, "x", 1, 0, 10), cas_unknown(2, "x", Some(1), 2, 20), read(3, "x", Some(1), 30, 40)];
    assert_eq!(result(did_not), CheckResult::Linearizable);
}

#[test]
fn an_unknown_cas_whose_expectation_never_held() {
    // It cannot have taken effect anywhere, so it must be allowed to never take effect.
    let ops = vec![write(1, "x", 1, 0, 10), cas_unknown(2, "x", Some(7), 2, 20), read(3, "x", Some(1), 30, 40)];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn cas_race_one_winner() {
    let ops = vec![
        write(1, "x", 1, 0, 10),
        cas(2, "x", Some(1), 2, false, 20, 40),
        cas(3, "x", Some(1), 3, true, 25, 45),
        cas(4, "x", Some(1), 4, false, 22, 50),
        read(1, "x", Some(3), 60, 70),
    ];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn cas_chain_through_concurrent_clients() {
    // 1 -> 2 -> 3, each CAS overlapping the others; only that order explains all three succeeding.
    let ops = vec![
        write(1, "x", 1, 0, 10),
        cas(3, "x", Some(2), 3, true, 20, 60),
        cas(2, "x", Some(1), 2, true, 21, 61),
        read(4, "x", Some(2), 22, 23),
        read(4, "x", Some(3), 70, 80),
    ];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn failed_operations_and_unknown_reads_are_ignored() {
    let ops = vec![write_failed(1, "x", 9, 0), read_unknown(2, "x", 5), read(3, "x", None, 100, 110)];
    let report = report(ops);
    assert_eq!(report.result, CheckResult::Linearizable);
    assert_eq!((report.keys[0].required, report.keys[0].optional, report.keys[0].ignored), (1, 0, 2));
}

#[test]
fn an_operation_invoked_when_another_completed_counts_as_concurrent() {
    let ops = vec![write(1, "x", 1, 0, 10), read(2, "x", None, 10, 20)];
    assert_eq!(result(ops), CheckResult::Linearizable);
}

#[test]
fn keys_are_checked_separately() {
    // The same value on two keys, read in ways fine for each key's own register.
    let ops = vec![
        write(1, "a", 1, 0, 100),
        write(2, "b", 1, 0, 100),
        read(3, "a", Some(1), 10, 20),
        read(3, "b", None, 30, 40),
        read(4, "b", Some(1), 10, 50),
        read(4, "a", Some(1), 60, 70),
    ];
    let report = report(ops);
    assert_eq!(report.result, CheckResult::Linearizable);
    let keys: Vec<(&str, KeyVerdict)> = report.keys.iter().map(|k| (k.key.as_str(), k.verdict)).collect();
    assert_eq!(keys, [("a", KeyVerdict::Linearizable), ("b", KeyVerdict::Linearizable)]);
}
