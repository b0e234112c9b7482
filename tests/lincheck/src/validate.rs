//! Rejecting histories that no client could have recorded.
//!
//! The checker trusts the recorded times: a history whose clock runs backwards, or whose client
//! had two operations in flight at once, would make the search's verdict meaningless (it could
//! call a broken recorder "not linearizable", or hide a real violation). Such a history is
//! a harness bug, so it is refused with an error naming the operations, never a panic.

use std::fmt;

use crate::history::{Call, History, Operation, Outcome, Return};

/// Why a history cannot be checked. Indices are positions in [`History::operations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// An operation completed before it was invoked.
    CompletedBeforeInvoked { index: usize, invoked_ns: u64, completed_ns: u64 },
    /// One process invoked an operation (`second`) before its previous one (`first`) completed.
    Overlapping { process: u64, first: usize, second: usize },
    /// An operation returned a result of another kind than its call (e.g. a read returned
    /// a CAS's boolean).
    ReturnMismatch { index: usize, call: Call, returned: Return },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::CompletedBeforeInvoked { index, invoked_ns, completed_ns } => write!(
                f,
                "invalid history: operation #{index} completed at {completed_ns}ns, before it was invoked at {invoked_ns}ns"
            ),
            HistoryError::Overlapping { process, first, second } => write!(
                f,
                "invalid history: process {process} invoked operation #{second} while its operation #{first} was still in flight (a client has one operation in flight at a time)"
            ),
            HistoryError::ReturnMismatch { index, call, returned } => {
                write!(f, "invalid history: operation #{index} is {call:?} but returned {returned:?}")
            }
        }
    }
}

impl std::error::Error for HistoryError {}

impl History {
    /// Checks that the history is one real clients could have recorded (see [`HistoryError`]).
    ///
    /// Only a completed ([`Outcome::Ok`]) operation has a known end, so only it can be seen to
    /// overlap its process's next operation. A client that gave up on a request (failed or
    /// unknown) may go on with the next one: the abandoned request may still take effect later,
    /// which the checker models anyway, whatever process issued it.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (index, op) in self.operations.iter().enumerate() {
            check_times(index, op)?;
            check_return(index, op)?;
        }
        // Each process's operations in invocation order. Several invoked at one instant (a coarse
        // clock) are ordered as they could have happened: the ones given up on (no completion)
        // first, then by completion, so that only a certain overlap is reported.
        let mut by_process: Vec<(u64, u64, u64, usize)> = self
            .operations
            .iter()
            .enumerate()
            .map(|(index, op)| (op.process, op.invoked_ns, op.completed_ns().unwrap_or(op.invoked_ns), index))
            .collect();
        by_process.sort_unstable();
        for pair in by_process.windows(2) {
            let [(process, _, _, first), (next_process, next_invoked, _, second)] = *pair else {
                continue;
            };
            let still_in_flight = self.operations[first].completed_ns().is_some_and(|done| done > next_invoked);
            if process == next_process && still_in_flight {
                return Err(HistoryError::Overlapping { process, first, second });
            }
        }
        Ok(())
    }
}

fn check_times(index: usize, op: &Operation) -> Result<(), HistoryError> {
    match op.completed_ns() {
        Some(completed_ns) if completed_ns < op.invoked_ns => {
            Err(HistoryError::CompletedBeforeInvoked { index, invoked_ns: op.invoked_ns, completed_ns })
        }
        _ => Ok(()),
    }
}

fn check_return(index: usize, op: &Operation) -> Result<(), HistoryError> {
    let Outcome::Ok { returned, .. } = &op.outcome else {
        return Ok(());
    };
    let matches = matches!(
        (&op.call, returned),
        (Call::Read { .. }, Return::Read(_)) | (Call::Write { .. }, Return::Write) | (Call::Cas { .. }, Return::Cas(_))
    );
    if matches {
        Ok(())
    } else {
        Err(HistoryError::ReturnMismatch { index, call: op.call.clone(), returned: returned.clone() })
    }
}
