//! etcd's `--initial-election-tick-advance` (`adjustTicks`): a member of a multi-member
//! cluster that has just started would otherwise wait a whole election timeout before it may
//! campaign, even when the cluster has no leader. Once its peers answer (more than one active,
//! as etcd counts), it fast-forwards all but two election ticks, leaving enough time to hear
//! from a leader that exists. Peers that do not answer within etcd's 5 s leave the ticks alone:
//! advancing them would achieve nothing without a quorum to vote.
//!
//! (A lone member campaigns at once instead: `start.rs`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{RaftMsg, Shared};

/// rafthttp's `ConnReadTimeout`: how long etcd waits for its peers' connections.
const WAIT_FOR_PEERS: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

pub(crate) fn spawn(shared: &Arc<Shared>, election_ticks: usize) {
    if election_ticks <= 2 {
        return;
    }
    let shared = shared.clone();
    let spawned = std::thread::Builder::new().name("tick-advance".into()).spawn(move || {
        let deadline = Instant::now() + WAIT_FOR_PEERS;
        while Instant::now() < deadline && !shared.life.stopped.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            let active = active_peers(&shared);
            if active > 1 {
                let ticks = election_ticks - 2;
                tracing::info!(
                    "{:x} initialized peer connections; fast-forwarding election ticks by {ticks} (election ticks {election_ticks}) with {active} active peer(s)",
                    shared.member_id
                );
                let _ = shared.to_raft.send(RaftMsg::AdvanceTicks(ticks));
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("skipping initial election tick advance: {e}");
    }
}

/// The other members the transport has a live connection to.
fn active_peers(shared: &Shared) -> usize {
    let Some(peers) = shared.peers.get() else { return 0 };
    shared
        .replicated
        .membership
        .list()
        .iter()
        .filter(|m| m.id != shared.member_id && peers.active_since(m.id).is_some())
        .count()
}
