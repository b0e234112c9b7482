//! The transport's peer set (etcd's `peerGetter` and the remotes `Transport` keeps): the state
//! the host's calls change (in `transport.rs`) and the router's handlers read (in `http.rs`), in
//! its own file so the router can reach it without depending on the API above it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use raft::eraftpb::Message;

use crate::ctx::Ctx;
use crate::fault::DelayLines;
use crate::peer::{Peer, Picked, Remote};
use crate::urlpick::parse_urls;
use crate::util::id_str;

pub(crate) struct Shared {
    pub ctx: Arc<Ctx>,
    pub peers: RwLock<HashMap<u64, Arc<Peer>>>,
    pub remotes: RwLock<HashMap<u64, Arc<Remote>>>,
    pub stopped: AtomicBool,
    /// Messages held back by a `delay` fault rule (fault injection only).
    pub delays: DelayLines,
}

impl Shared {
    pub(crate) fn peer(&self, id: u64) -> Option<Arc<Peer>> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Hands `m` to its peer's channels, or to the remote's pipeline; `None` when its target is
    /// unknown (dropped, as etcd drops it). Fault rules were applied before.
    pub(crate) fn deliver(&self, m: Message) -> Option<Picked> {
        if let Some(p) = self.peer(m.to) {
            return p.send(m);
        }
        let remote = self.remotes.read().unwrap_or_else(|p| p.into_inner()).get(&m.to).cloned();
        if let Some(r) = remote {
            r.send(m);
            return Some(Picked::Pipeline);
        }
        tracing::debug!(to = %id_str(m.to), "ignored message send request; unknown remote peer target");
        None
    }

    /// etcd's `AddRemote`: ignored for known peers/remotes, bad URLs and after `stop`.
    pub(crate) fn add_remote(&self, id: u64, urls: &[String]) {
        if self.stopped.load(Ordering::SeqCst) || id == self.ctx.cfg.member_id || self.peer(id).is_some() {
            return;
        }
        let Ok(urls) = parse_urls(urls) else { return };
        let mut g = self.remotes.write().unwrap_or_else(|p| p.into_inner());
        if g.contains_key(&id) {
            return;
        }
        tracing::info!(remote = %id_str(id), "added new remote peer");
        g.insert(id, Arc::new(Remote::start(self.ctx.clone(), id, urls)));
    }
}
