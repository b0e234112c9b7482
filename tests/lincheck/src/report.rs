//! What a check found, in a form a failing CI run's log can explain itself with.
//!
//! Every type here prints with `Display`: a verdict line, then for each violating key the
//! longest order that did work and the operations that could not come next, with why, then a
//! table of what each key cost. Operations are named `#index` (their position in
//! [`crate::History::operations`]) so they can be found in the saved history.

use std::fmt;
use std::time::Duration;

use crate::history::{Call, Operation, Outcome, Return};
use crate::model::State;

/// The verdict on a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    Linearizable,
    /// At least one key has no linearization; one [`Violation`] per such key, in key order.
    NotLinearizable(Vec<Violation>),
    /// No key was found to violate linearizability, but these keys could not be decided within
    /// the [`crate::Budget`]. Not a pass.
    Timeout {
        keys: Vec<String>,
    },
}

/// A check's verdict and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub result: CheckResult,
    /// One entry per key, in key order.
    pub keys: Vec<KeyStats>,
    pub elapsed: Duration,
}

impl Report {
    pub fn is_linearizable(&self) -> bool {
        self.result == CheckResult::Linearizable
    }
}

/// One key's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    Linearizable,
    NotLinearizable,
    Timeout,
}

/// What checking one key involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStats {
    pub key: String,
    /// Operations the search had to place (completed ones).
    pub required: usize,
    /// Unknown writes and CASes: placed only if that helps.
    pub optional: usize,
    /// Failed operations and unknown reads, which constrain nothing.
    pub ignored: usize,
    /// Search steps (tries and backtracks).
    pub steps: u64,
    /// Distinct configurations (placed set, register value) explored.
    pub states: usize,
    pub verdict: KeyVerdict,
}

/// An operation of the history, with its position there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRef {
    pub index: usize,
    pub operation: Operation,
}

/// An operation of the longest linearizable prefix, and the key's value after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub op: OpRef,
    pub state_after: State,
}

/// Why an operation could not come next after the longest prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StuckReason {
    /// The register's value contradicts what the operation returned (or, for an unknown CAS,
    /// the value it expects).
    Contradicts,
    /// It fits there, but no order of the remaining operations does after it.
    DeadEnd,
}

/// An operation that could have come next, but cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub op: OpRef,
    pub reason: StuckReason,
}

/// Why one key's history is not linearizable.
///
/// The search found no order; the explanation is the deepest point it reached: `prefix`, an
/// order of some operations consistent with real time and the register, after which every
/// operation that could come next (`next`: those invoked before `deadline` completed) fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// Operations on the key that the search considered (required and optional).
    pub ops_on_key: usize,
    pub prefix: Vec<Placed>,
    /// The key's value after `prefix` (`None`: absent).
    pub state: State,
    /// The completed operation not in `prefix` that completed first: it, or some operation
    /// invoked before its completion, must come next.
    pub deadline: Option<OpRef>,
    pub next: Vec<Stuck>,
}

/// How many operations of the prefix, and of the candidates, a printed violation shows.
const SHOWN_PREFIX: usize = 12;
const SHOWN_NEXT: usize = 24;

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Linearizable => writeln!(f, "LINEARIZABLE"),
            CheckResult::NotLinearizable(violations) => {
                let keys: Vec<&str> = violations.iter().map(|v| v.key.as_str()).collect();
                writeln!(f, "NOT LINEARIZABLE: {} key(s): {}", violations.len(), keys.join(", "))?;
                for violation in violations {
                    write!(f, "\n{violation}")?;
                }
                Ok(())
            }
            CheckResult::Timeout { keys } => writeln!(
                f,
                "UNDECIDED (budget exhausted): no violation found, but {} key(s) not fully checked: {}",
                keys.len(),
                keys.join(", ")
            ),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.result)?;
        writeln!(f, "\nchecked {} key(s) in {:.3?}:", self.keys.len(), self.elapsed)?;
        writeln!(
            f,
            "  {:<24} {:>9} {:>9} {:>8} {:>10} {:>10}  verdict",
            "key", "required", "optional", "ignored", "steps", "states"
        )?;
        for key in &self.keys {
            writeln!(
                f,
                "  {:<24} {:>9} {:>9} {:>8} {:>10} {:>10}  {:?}",
                key.key, key.required, key.optional, key.ignored, key.steps, key.states, key.verdict
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?}: no linearization of its {} operation(s). Longest linearizable prefix: {} operation(s){}",
            self.key,
            self.ops_on_key,
            self.prefix.len(),
            if self.prefix.len() > SHOWN_PREFIX { format!(", the last {SHOWN_PREFIX}:") } else { ":".to_string() }
        )?;
        let skipped = self.prefix.len().saturating_sub(SHOWN_PREFIX);
        for placed in &self.prefix[skipped..] {
            writeln!(f, "    {}   => {}", placed.op, value(placed.state_after))?;
        }
        writeln!(f, "  then the key holds {}.", value(self.state))?;
        if let Some(deadline) = &self.deadline {
            writeln!(f, "  It must go on with {deadline}, or an operation invoked before it completed;")?;
        }
        writeln!(f, "  none of those can come next:")?;
        for stuck in self.next.iter().take(SHOWN_NEXT) {
            writeln!(f, "    {}: {}", stuck.op, why(stuck, self.state))?;
        }
        if self.next.len() > SHOWN_NEXT {
            writeln!(f, "    ... and {} more", self.next.len() - SHOWN_NEXT)?;
        }
        Ok(())
    }
}

impl fmt::Display for OpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = &self.operation;
        write!(f, "#{} p{} ", self.index, op.process)?;
        match &op.call {
            Call::Read { .. } => write!(f, "read")?,
            Call::Write { value, .. } => write!(f, "write({value})")?,
            Call::Cas { expect, new, .. } => write!(f, "cas({} -> {new})", self::value(*expect))?,
        }
        match &op.outcome {
            Outcome::Ok { returned, completed_ns } => {
                match returned {
                    Return::Read(seen) => write!(f, " = {}", self::value(*seen))?,
                    Return::Write => write!(f, " ok")?,
                    Return::Cas(succeeded) => write!(f, " = {succeeded}")?,
                }
                write!(f, " [{} .. {}]", time(op.invoked_ns), time(*completed_ns))
            }
            Outcome::Failed => write!(f, " failed [{} ..]", time(op.invoked_ns)),
            Outcome::Unknown => write!(f, " unknown [{} .. never]", time(op.invoked_ns)),
        }
    }
}

/// The reason in words, with the values involved.
fn why(stuck: &Stuck, state: State) -> String {
    let holds = value(state);
    match (stuck.reason, &stuck.op.operation.call, stuck.op.operation.returned()) {
        (StuckReason::DeadEnd, ..) => "fits here, but nothing linearizes the rest after it".to_string(),
        (StuckReason::Contradicts, _, Some(Return::Read(seen))) => {
            format!("read {}, but the key holds {holds}", value(*seen))
        }
        (StuckReason::Contradicts, Call::Cas { expect, .. }, Some(Return::Cas(true))) => {
            format!("succeeded, so the key held {}, but it holds {holds}", value(*expect))
        }
        (StuckReason::Contradicts, Call::Cas { expect, .. }, Some(Return::Cas(false))) => {
            format!("failed, so the key did not hold {}, but it does", value(*expect))
        }
        (StuckReason::Contradicts, Call::Cas { expect, .. }, None) => {
            format!("could only take effect where the key holds {}, but it holds {holds}", value(*expect))
        }
        (StuckReason::Contradicts, ..) => format!("contradicts the key's value {holds}"),
    }
}

fn value(state: State) -> String {
    match state {
        Some(v) => v.to_string(),
        None => "(absent)".to_string(),
    }
}

/// Nanoseconds since the run started, as seconds: readable, and still exact.
fn time(ns: u64) -> String {
    format!("{}.{:09}s", ns / 1_000_000_000, ns % 1_000_000_000)
}
