//! Peer status (`peer_status.go`): whether any channel to the peer works, and since when.
//! Every role activates it on success and deactivates it on failure; `active_since` is what
//! etcd's `ActiveSince` reports (used by the server to decide whether a member is connected).
//! It also counts the bytes the streams and the pipeline carry to and from the peer (etcd's
//! `etcd_network_peer_{sent,received}_bytes_total`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

#[derive(Debug)]
pub(crate) struct PeerStatus {
    local: u64,
    id: u64,
    inner: Mutex<Option<SystemTime>>,
    sent_bytes: AtomicU64,
    received_bytes: AtomicU64,
}

impl PeerStatus {
    pub(crate) fn new(local: u64, id: u64) -> Self {
        PeerStatus {
            local,
            id,
            inner: Mutex::new(None),
            sent_bytes: AtomicU64::new(0),
            received_bytes: AtomicU64::new(0),
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

    /// Counts bytes written to the peer (encoded frames and pipeline bodies).
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts bytes read from the peer.
    pub(crate) fn received(&self, bytes: u64) {
        self.received_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (sent, received) bytes so far.
    pub(crate) fn traffic(&self) -> (u64, u64) {
        (self.sent_bytes.load(Ordering::Relaxed), self.received_bytes.load(Ordering::Relaxed))
    }
}
