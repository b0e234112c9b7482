//! The active guest as the apply thread last left it, and the notice that one was deployed.
//!
//! Queries do not use it: they take the guest the state they read records (see
//! [`Reads::query`](super::Reads::query)); the apply thread and the per-request checks
//! (`guest_serves`) do.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use wasmraft_proto::wasmraft::v1 as pb;

use crate::deployment::Active;
use wasmraft_runtime::GuestRegistry;

pub(crate) struct ActiveGuestCell {
    /// None until the first deploy is applied.
    active: RwLock<Option<Arc<Active>>>,
    /// Tells waiters (the server before it serves, `guest status`) that a deploy was applied.
    deployed: watch::Sender<Option<pb::GuestDeployment>>,
    /// Where a reload after a snapshot finds the guest the snapshot says is active.
    registry: Arc<GuestRegistry>,
}

/// The guest as an apply batch changes it: a deploy entry in the batch replaces it for the
/// entries after it.
pub(crate) struct StagedGuest {
    pub active: Option<Arc<Active>>,
    pub switched: bool,
}

impl ActiveGuestCell {
    pub fn new(active: Option<Active>, registry: Arc<GuestRegistry>) -> ActiveGuestCell {
        ActiveGuestCell {
            deployed: watch::channel(active.as_ref().map(|a| a.record.clone())).0,
            active: RwLock::new(active.map(Arc::new)),
            registry,
        }
    }

    pub fn current(&self) -> Option<Arc<Active>> {
        self.active.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The cell itself, for the queries that compare it with the state they read
    /// (`deployment::guest_in`).
    pub fn slot(&self) -> &RwLock<Option<Arc<Active>>> {
        &self.active
    }

    pub fn registry(&self) -> &GuestRegistry {
        &self.registry
    }

    /// The deployment record of the active guest, and its changes.
    pub fn deployed(&self) -> &watch::Sender<Option<pb::GuestDeployment>> {
        &self.deployed
    }

    pub fn replace(&self, active: Option<Arc<Active>>) {
        self.deployed.send_replace(active.as_ref().map(|a| a.record.clone()));
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = active;
    }
}
