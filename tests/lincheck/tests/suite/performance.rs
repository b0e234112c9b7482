//! Budget behaviour: a realistic run fits easily; a pathological one stops instead of hanging.

use std::time::Duration;

use wasmraft_lincheck::{Budget, CheckResult, KeyVerdict, Operation, check};

use crate::generate::{Rng, Shape, linearizable_history};
use crate::ops::*;

#[test]
fn two_thousand_operations_on_five_keys_from_eight_clients_fit_a_one_second_budget() {
    let mut rng = Rng::new(0x5eed_0003);
    let shape = Shape { ops: 2000, processes: 8, keys: 5, gap: 20, window: 40, unknown_percent: 3, failed_percent: 2 };
    let history = linearizable_history(&mut rng, &shape);
    let budget = Budget { max_steps: Some(2_000_000), max_time: Some(Duration::from_secs(1)) };
    let report = check(&history, budget).expect("valid");
    assert_eq!(report.result, CheckResult::Linearizable, "{report}");
    eprintln!("{report}");
    assert_eq!(report.keys.len(), 5);
    assert!(report.keys.iter().all(|k| k.required > 300), "{report}");
}

/// Many concurrent unknown writes, then a read of a value none of them wrote: proving that
/// no subset of them explains the read means visiting every subset.
fn pathological() -> Vec<Operation> {
    let mut ops: Vec<Operation> = (0..24).map(|p| write_unknown(p, "x", p + 1, p)).collect();
    ops.push(read(100, "x", Some(1000), 50, 60));
    ops
}

#[test]
fn an_exhausted_step_budget_is_a_timeout_not_a_hang() {
    let report = check(&history(pathological()), Budget::steps(20_000)).expect("valid");
    assert_eq!(report.result, CheckResult::Timeout { keys: vec!["x".to_string()] });
    assert_eq!(report.keys[0].verdict, KeyVerdict::Timeout);
    assert!(report.keys[0].steps <= 20_001);
    assert!(report.to_string().starts_with("UNDECIDED"), "{report}");
}

#[test]
fn an_exhausted_time_budget_is_a_timeout_not_a_hang() {
    let report = check(&history(pathological()), Budget::time(Duration::from_millis(50))).expect("valid");
    assert_eq!(report.result, CheckResult::Timeout { keys: vec!["x".to_string()] });
    assert!(report.elapsed < Duration::from_secs(5), "{report}");
}

#[test]
fn a_violation_found_elsewhere_still_wins_over_a_timeout() {
    let mut ops = pathological();
    ops.push(write(200, "y", 1, 0, 10));
    ops.push(read(200, "y", Some(2), 20, 30));
    // Keys are checked in order: "x" spends the budget, "y" is then not searched.
    let report = check(&history(ops.clone()), Budget::steps(20_000)).expect("valid");
    assert!(matches!(report.result, CheckResult::Timeout { .. }), "{report}");
    // With "x" renamed to come after "y", the violation is found first and reported.
    for op in &mut ops {
        if let wasmraft_lincheck::Call::Write { key, .. } | wasmraft_lincheck::Call::Read { key } = &mut op.call
            && key == "x"
        {
            *key = "z".to_string();
        }
    }
    let report = check(&history(ops), Budget::steps(20_000)).expect("valid");
    let CheckResult::NotLinearizable(violations) = &report.result else { panic!("{report}") };
    assert_eq!(violations[0].key, "y");
    assert_eq!(report.keys[1].verdict, KeyVerdict::Timeout);
}
