//! The sequential specification of one key: a register that may be absent.
//!
//! The search asks one question of the model, over and over: "if this operation took effect now,
//! with the register in this state, could it have returned what was recorded, and what state
//! would follow?" Operations are reduced to [`RegisterOp`] once, so that question costs a match on
//! small copies instead of string comparisons.

use crate::history::{Call, Operation, Outcome, Return, Value};

/// The value of one key; `None` is "the key does not exist" (every key starts absent).
pub type State = Option<Value>;

/// One operation as the register sees it: the key is gone (the history was partitioned by key),
/// and what it returned is folded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegisterOp {
    /// A completed read and the value it saw.
    Read { saw: State },
    /// A write, completed or not: a write's return carries no information.
    Write { value: Value },
    /// A compare-and-swap; `succeeded` is `None` when its outcome is unknown.
    Cas { expect: State, new: Value, succeeded: Option<bool> },
}

impl RegisterOp {
    /// The register's view of `op`, or `None` when the checker must ignore it: a failed
    /// operation had no effect, and an unknown read constrains nothing. Also `None` for a call
    /// whose return is of another kind, which [`crate::History::validate`] rejects beforehand.
    pub(crate) fn from_operation(op: &Operation) -> Option<RegisterOp> {
        match (&op.call, &op.outcome) {
            (_, Outcome::Failed) | (Call::Read { .. }, Outcome::Unknown) => None,
            (Call::Read { .. }, Outcome::Ok { returned: Return::Read(saw), .. }) => {
                Some(RegisterOp::Read { saw: *saw })
            }
            (Call::Write { value, .. }, Outcome::Ok { returned: Return::Write, .. } | Outcome::Unknown) => {
                Some(RegisterOp::Write { value: *value })
            }
            (Call::Cas { expect, new, .. }, Outcome::Ok { returned: Return::Cas(succeeded), .. }) => {
                Some(RegisterOp::Cas { expect: *expect, new: *new, succeeded: Some(*succeeded) })
            }
            (Call::Cas { expect, new, .. }, Outcome::Unknown) => {
                Some(RegisterOp::Cas { expect: *expect, new: *new, succeeded: None })
            }
            (Call::Read { .. } | Call::Write { .. } | Call::Cas { .. }, Outcome::Ok { .. }) => None,
        }
    }

    /// The state after this operation takes effect in `state`, or `None` if it could not have
    /// returned what it did from `state`.
    ///
    /// An unknown CAS is only accepted where it succeeds: where it would fail it changes nothing
    /// and returns nothing anyone saw, which is exactly "it never took effect", a choice the
    /// search already has. Refusing it there keeps the search from exploring that twice.
    pub(crate) fn apply(self, state: State) -> Option<State> {
        match self {
            RegisterOp::Read { saw } => (saw == state).then_some(state),
            RegisterOp::Write { value } => Some(Some(value)),
            RegisterOp::Cas { expect, new, succeeded: Some(true) | None } => (state == expect).then_some(Some(new)),
            RegisterOp::Cas { expect, succeeded: Some(false), .. } => (state != expect).then_some(state),
        }
    }
}
