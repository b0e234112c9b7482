//! etcd's `applierV3Corrupt`: once a CORRUPT alarm is active (the corruption check found
//! members whose keyspaces differ at the same revision), what would change the keyspace — puts,
//! deletes, txns that write, compactions, lease grants and revokes — is refused with "corrupt
//! cluster" on every member, so the divergence does not spread; reads go on. As for NOSPACE,
//! only a guest that speaks etcd's KV encodings is stopped: for another guest the host cannot
//! tell a write from a read.

use super::super::super::NodeError;
use super::super::batch::Batch;
use super::{Command, Rule};
use crate::alarms::{CORRUPT, refused_when_corrupt};

pub(super) struct Corrupt;

impl Rule for Corrupt {
    fn refuse(&self, b: &Batch, cmd: &Command) -> Option<NodeError> {
        let speaks_etcd = cmd.active?.record.apis.iter().any(|api| api == wasmraft_proto::contract::ETCD_KV_API);
        (b.staged.alarms.corrupt() && speaks_etcd && refused_when_corrupt(cmd.bytes))
            .then(|| NodeError::Guest(CORRUPT.to_string()))
    }
}
