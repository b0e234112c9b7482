//! How much work a check may do before it gives up.
//!
//! Linearizability checking is NP-complete: a history with many concurrent operations (a long
//! partition with dozens of unknown writes, say) can make the search exponential even with
//! memoization. A CI run must end with a verdict, so the search is metered and a history that
//! exhausts its budget yields [`crate::CheckResult::Timeout`], which says "undecided", not "ok".

use std::time::{Duration, Instant};

/// Limits for one whole [`crate::check`] call, shared by all keys. `None` is no limit.
///
/// A step is one move of the search (trying an operation, or backtracking); each step adds at
/// most one entry to the memo, so `max_steps` also bounds the memory the check uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_steps: Option<u64>,
    pub max_time: Option<Duration>,
}

impl Budget {
    /// No limit at all: only for histories known to be small.
    pub const UNLIMITED: Budget = Budget { max_steps: None, max_time: None };

    pub fn steps(max_steps: u64) -> Budget {
        Budget { max_steps: Some(max_steps), max_time: None }
    }

    pub fn time(max_time: Duration) -> Budget {
        Budget { max_steps: None, max_time: Some(max_time) }
    }
}

impl Default for Budget {
    /// Ten million steps or a minute, whichever comes first: far more than a fault-injection
    /// run's history needs (thousands of steps per key), and bounded memory (a few hundred MB
    /// at worst).
    fn default() -> Budget {
        Budget { max_steps: Some(10_000_000), max_time: Some(Duration::from_secs(60)) }
    }
}

/// The running count against a [`Budget`].
#[derive(Debug)]
pub(crate) struct Meter {
    budget: Budget,
    started: Instant,
    steps: u64,
    exhausted: bool,
}

/// Reading the clock on every step would cost more than the step; every this many is enough.
const CLOCK_EVERY: u64 = 4096;

impl Meter {
    pub(crate) fn start(budget: Budget) -> Meter {
        Meter { budget, started: Instant::now(), steps: 0, exhausted: false }
    }

    /// Counts one step; `false` once the budget is spent (and from then on).
    pub(crate) fn tick(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        self.steps += 1;
        let out_of_steps = self.budget.max_steps.is_some_and(|max| self.steps > max);
        let out_of_time = self.steps.is_multiple_of(CLOCK_EVERY)
            && self.budget.max_time.is_some_and(|max| self.started.elapsed() > max);
        self.exhausted = out_of_steps || out_of_time;
        !self.exhausted
    }

    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
