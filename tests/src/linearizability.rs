//! The one place the harness asks the linearizability checker (`wasmraft-lincheck`) for a
//! verdict on a recorded history. A budget exhausted is not a pass: an undecided history fails
//! the run as loudly as a violation (the run is then too long or too concurrent for the budget).

use wasmraft_lincheck::{Budget, CheckResult, History};

/// `Ok` with a one-line cost summary when the history is linearizable; `Err` with the
/// checker's explanation otherwise (a violation, an undecided key, or a malformed history —
/// the last one is the harness's bug).
pub fn check_linearizable(h: &History) -> Result<String, String> {
    let report = wasmraft_lincheck::check(h, Budget::default()).map_err(|e| format!("malformed history: {e}"))?;
    match &report.result {
        CheckResult::Linearizable => {
            let steps: u64 = report.keys.iter().map(|k| k.steps).sum();
            Ok(format!("{} keys linearizable, {steps} search steps, {:?}", report.keys.len(), report.elapsed))
        }
        CheckResult::NotLinearizable(_) | CheckResult::Timeout { .. } => Err(report.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_lincheck::{Call, Operation, Outcome, Return};

    fn op(process: u64, call: Call, invoked_ns: u64, completed: Option<(Return, u64)>) -> Operation {
        let outcome = match completed {
            Some((returned, completed_ns)) => Outcome::Ok { returned, completed_ns },
            None => Outcome::Unknown,
        };
        Operation { process, call, invoked_ns, outcome }
    }

    #[test]
    fn a_stale_read_is_a_violation_and_an_unknown_write_may_explain_one() {
        let w = |v| Call::Write { key: "k".into(), value: v };
        let r = || Call::Read { key: "k".into() };
        // Write 1 completes, then a read that starts later sees nothing: not linearizable.
        let stale = History {
            operations: vec![op(0, w(1), 0, Some((Return::Write, 10))), op(1, r(), 20, Some((Return::Read(None), 30)))],
        };
        let e = check_linearizable(&stale).unwrap_err();
        assert!(!e.is_empty());
        // A read of 2 explained by an unknown write of 2.
        let ok = History { operations: vec![op(0, w(2), 0, None), op(1, r(), 20, Some((Return::Read(Some(2)), 30)))] };
        assert!(check_linearizable(&ok).is_ok());
    }
}
