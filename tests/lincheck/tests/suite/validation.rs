//! Histories no recorder could produce are refused with an error, never checked or panicked on.

use wasmraft_lincheck::{Budget, Call, HistoryError, Outcome, Return, check};

use crate::ops::*;

#[test]
fn completion_before_invocation() {
    let h = history(vec![write(1, "x", 1, 0, 10), read(2, "x", Some(1), 50, 40)]);
    let error = check(&h, Budget::default()).expect_err("invalid");
    assert_eq!(error, HistoryError::CompletedBeforeInvoked { index: 1, invoked_ns: 50, completed_ns: 40 });
    assert!(error.to_string().contains("operation #1 completed at 40ns, before it was invoked at 50ns"));
}

#[test]
fn a_process_with_two_operations_in_flight() {
    let h = history(vec![write(1, "x", 1, 0, 100), read(2, "x", None, 0, 5), read(1, "y", None, 50, 60)]);
    let error = check(&h, Budget::default()).expect_err("invalid");
    assert_eq!(error, HistoryError::Overlapping { process: 1, first: 0, second: 2 });
    assert!(error.to_string().contains("process 1 invoked operation #2 while its operation #0 was still in flight"));
}

#[test]
fn a_process_invoking_two_operations_at_once() {
    let h = history(vec![read(1, "x", None, 10, 20), write(1, "y", 1, 10, 30)]);
    assert!(matches!(check(&h, Budget::default()), Err(HistoryError::Overlapping { process: 1, first: 0, second: 1 })));
}

#[test]
fn operations_at_one_instant_are_fine_if_they_could_have_been_in_turn() {
    // A coarse clock: a request given up on, an instant one, then one that took a while.
    let h = history(vec![read(1, "x", None, 10, 20), read(1, "x", None, 10, 10), write_unknown(1, "y", 1, 10)]);
    assert_eq!(h.validate(), Ok(()));
}

#[test]
fn a_return_of_the_wrong_kind() {
    let mut op = read(1, "x", None, 0, 10);
    op.outcome = Outcome::Ok { returned: Return::Cas(true), completed_ns: 10 };
    let error = check(&history(vec![op]), Budget::default()).expect_err("invalid");
    assert_eq!(
        error,
        HistoryError::ReturnMismatch { index: 0, call: Call::Read { key: "x".into() }, returned: Return::Cas(true) }
    );
}

#[test]
fn back_to_back_and_abandoned_operations_are_fine() {
    let h = history(vec![
        write(1, "x", 1, 0, 10),
        read(1, "x", Some(1), 10, 20),
        write_unknown(1, "x", 2, 20),
        write_failed(1, "x", 3, 25),
        read(1, "x", Some(2), 30, 40),
    ]);
    assert_eq!(h.validate(), Ok(()));
}
