//! The entry point: validate, split by key, search each key, and report.

use std::time::Instant;

use crate::budget::{Budget, Meter};
use crate::explain::violation;
use crate::history::History;
use crate::partition::by_key;
use crate::report::{CheckResult, KeyStats, KeyVerdict, Report};
use crate::validate::HistoryError;
use crate::wgl::{Search, search};

/// Checks that `history` is linearizable with respect to one register per key, every key
/// starting absent, within `budget` (shared by all keys).
///
/// Every key is checked, even after one is found to violate: a CI log then shows all of them.
/// Once the budget is spent, the keys left are reported as timed out without being searched.
pub fn check(history: &History, budget: Budget) -> Result<Report, HistoryError> {
    let started = Instant::now();
    history.validate()?;
    let mut meter = Meter::start(budget);
    let mut violations = Vec::new();
    let mut timed_out = Vec::new();
    let mut keys = Vec::new();
    for key in by_key(history) {
        let (outcome, stats) = search(&key.ops, &mut meter);
        let verdict = match outcome {
            Search::Linearizable => KeyVerdict::Linearizable,
            Search::NotLinearizable { longest } => {
                violations.push(violation(history, &key, &longest));
                KeyVerdict::NotLinearizable
            }
            Search::Timeout => {
                timed_out.push(key.key.to_string());
                KeyVerdict::Timeout
            }
        };
        let required = key.ops.iter().filter(|op| op.required()).count();
        keys.push(KeyStats {
            key: key.key.to_string(),
            required,
            optional: key.ops.len() - required,
            ignored: key.ignored,
            steps: stats.steps,
            states: stats.states,
            verdict,
        });
    }
    let result = if !violations.is_empty() {
        CheckResult::NotLinearizable(violations)
    } else if !timed_out.is_empty() {
        CheckResult::Timeout { keys: timed_out }
    } else {
        CheckResult::Linearizable
    };
    Ok(Report { result, keys, elapsed: started.elapsed().max(meter.elapsed()) })
}
