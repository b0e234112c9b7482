//! etcd's `ErrAuthOldRevision`: a command whose permissions were checked against an auth store
//! that has changed since (a user or role changed between the check and this entry) is refused,
//! so a revoked permission cannot slip in behind its revocation. With auth off nothing is
//! checked, as in etcd.

use super::super::super::NodeError;
use super::super::batch::Batch;
use super::{Command, Rule};
use crate::auth::AuthError;

pub(super) struct AuthRevision;

impl Rule for AuthRevision {
    fn refuse(&self, b: &Batch, cmd: &Command) -> Option<NodeError> {
        b.staged
            .auth
            .is_stale(&b.shared.replicated.auth, cmd.auth_revision)
            .then_some(NodeError::Auth(AuthError::AuthOldRevision))
    }
}
