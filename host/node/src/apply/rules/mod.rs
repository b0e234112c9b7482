//! The refusals a guest command can meet at apply, before the guest sees it: etcd's `apply/`
//! wrappers around its backend applier (`authApplierV3`, `applierV3Corrupt`, `applierV3Capped`), one rule per
//! file, checked in etcd's order.
//!
//! A rule decides from the entry and from what the batch has staged before it, never from the
//! member's clock or its local view, so every member refuses the same command at the same
//! index with the same error. A refused command writes nothing; its refusal is its client's
//! answer and the observers see it like a guest's `Err`.
//!
//! A new rule is a file here with a [`Rule`] impl, and a place in [`RULES`].

mod auth_revision;
mod capped;
mod corrupt;

use super::super::NodeError;
use super::batch::Batch;
use crate::deployment::Active;

/// A guest command as the rules see it.
pub(super) struct Command<'a> {
    /// The bytes the guest would get.
    pub bytes: &'a [u8],
    /// The auth store revision the proposer checked the command's permissions at (0: unchecked).
    pub auth_revision: u64,
    /// The guest the command would run in (None before the first deploy).
    pub active: Option<&'a Active>,
}

/// One refusal rule.
pub(super) trait Rule: Sync {
    /// The error the command is refused with, or None to let it through.
    fn refuse(&self, b: &Batch, cmd: &Command) -> Option<NodeError>;
}

/// The rules in the order they are checked: the first refusal wins.
const RULES: &[&dyn Rule] = &[&auth_revision::AuthRevision, &corrupt::Corrupt, &capped::Capped];

/// The first refusal of `command`, if any rule refuses it.
pub(super) fn refusal(b: &Batch, active: Option<&Active>, command: &[u8], auth_revision: u64) -> Option<NodeError> {
    let cmd = Command { bytes: command, auth_revision, active };
    RULES.iter().find_map(|rule| rule.refuse(b, &cmd))
}
