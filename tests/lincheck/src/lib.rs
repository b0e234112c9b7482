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

mod history;

pub use history::{Call, History, Operation, Outcome, Return};
