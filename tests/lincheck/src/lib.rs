//! Linearizability checking of key-value histories (Wing & Gong's search with Lowe's
//! memoization, checked key by key: linearizability is compositional, P-compositionality).
//!
//! A [`History`] is what concurrent clients recorded while a nemesis injected faults: for every
//! operation, when it was invoked, and how it ended. The checker decides whether some total
//! order of the operations, consistent with real time (an operation that completed before
//! another was invoked comes first) and with a sequential register per key, explains every
//! result that came back.
//!
//! How an operation ended matters:
//! - [`Outcome::Ok`]: it took effect exactly once, somewhere between invocation and completion,
//!   and returned what is recorded.
//! - [`Outcome::Failed`]: it certainly did not take effect (the client knows, e.g. the request
//!   never left). It is ignored.
//! - [`Outcome::Unknown`]: a timeout or a lost connection: it may or may not have taken effect,
//!   at any time after its invocation (its completion is "never"). A read that ended unknown
//!   tells nothing and is ignored; a write or compare-and-swap is kept as optional.

//!
//! Every key starts absent. The entry point is [`check`]; its [`Report`] prints (`Display`) a
//! verdict that explains itself: for a violation, the longest order of operations that works
//! and why each operation that could come next cannot.
//!
//! Two histories are refused rather than checked (see [`HistoryError`]): one where an
//! operation completes before it is invoked, and one where a process invokes an operation
//! before its previous one completed. An operation invoked at the very instant another
//! completed is taken as concurrent with it (clock resolution must not fake a violation).

mod bitset;
mod budget;
mod check;
mod explain;
mod history;
mod model;
mod partition;
mod report;
mod validate;
mod wgl;

pub use budget::Budget;
pub use check::check;
pub use history::{Call, History, Operation, Outcome, Return, Value};
pub use model::State;
pub use report::{CheckResult, KeyStats, KeyVerdict, OpRef, Placed, Report, Stuck, StuckReason, Violation};
pub use validate::HistoryError;
