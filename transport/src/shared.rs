//! The transport's peer set (etcd's `peerGetter` and the remotes `Transport` keeps): the state
//! the host's calls change (in `transport.rs`) and the router's handlers read (in `http.rs`), in
//! its own file so the router can reach it without depending on the API above it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::ctx::Ctx;
use crate::peer::{Peer, Remote};
use crate::urlpick::parse_urls;
use crate::util::id_str;

pub(crate) struct Shared {
    pub ctx: Arc<Ctx>,
    pub peers: RwLock<HashMap<u64, Arc<Peer>>>,
    pub remotes: RwLock<HashMap<u64, Arc<Remote>>>,
    pub stopped: AtomicBool,
}

impl Shared {
    pub(crate) fn peer(&self, id: u64) -> Option<Arc<Peer>> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
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
