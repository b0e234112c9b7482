//! etcd's `applierV3Capped`: while a NOSPACE alarm is active, what would grow the store — puts,
//! txns with a put in a branch, lease grants — is refused with "database space exceeded";
//! reads, deletes and compactions still apply, which is how an operator frees space before
//! disarming. Only a guest that speaks etcd's KV encodings is capped: for another guest the
//! host cannot tell a write that grows the store from one that does not.

use super::super::super::NodeError;
use super::super::batch::Batch;
use super::{Command, Rule};
use crate::alarms::{NO_SPACE, refused_when_capped};

pub(super) struct Capped;

impl Rule for Capped {
    fn refuse(&self, b: &Batch, cmd: &Command) -> Option<NodeError> {
        let speaks_etcd = cmd.active?.record.apis.iter().any(|api| api == wasmraft_proto::contract::ETCD_KV_API);
        (b.staged.alarms.capped() && speaks_etcd && refused_when_capped(cmd.bytes))
            .then(|| NodeError::Guest(NO_SPACE.to_string()))
    }
}
