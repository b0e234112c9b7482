//! Peer status (`peer_status.go`): whether any channel to the peer works, and since when.
//! Every role activates it on success and deactivates it on failure; `active_since` is what
//! etcd's `ActiveSince` reports (used by the server to decide whether a member is connected).

use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug)]
pub(crate) struct PeerStatus {
    local: u64,
    id: u64,
    inner: Mutex<Option<SystemTime>>,
}

impl PeerStatus {
    pub(crate) fn new(local: u64, id: u64) -> Self {
        PeerStatus {
            local,
            id,
            inner: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SystemTime>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn activate(&self) {
        let mut g = self.lock();
        if g.is_none() {
            tracing::info!(local = %format!("{:x}", self.local), peer = %format!("{:x}", self.id), "peer became active");
            *g = Some(SystemTime::now());
        }
    }

    pub(crate) fn deactivate(&self, source: &str, action: &str, reason: &str) {
        let mut g = self.lock();
        if g.take().is_some() {
            tracing::warn!(local = %format!("{:x}", self.local), peer = %format!("{:x}", self.id), "peer became inactive (message send to peer failed): failed to {action} {:x} on {source} ({reason})", self.id);
        } else {
            tracing::debug!("failed to {action} {:x} on {source} ({reason})", self.id);
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.lock().is_some()
    }

    pub(crate) fn active_since(&self) -> Option<SystemTime> {
        *self.lock()
    }
}
