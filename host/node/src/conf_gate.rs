//! Conf change proposals that wait for the previous one.
//!
//! raft-rs accepts one unapplied conf change at a time; a second one proposed before the
//! leader's raft has *applied* the first (or right after an election, until the new leader has
//! applied its whole log) is not refused: raft turns it into an empty normal entry, and whoever
//! proposed it waits for an answer that never comes. The window is real: a client's second
//! `member remove` arrives as soon as the member it talks to has applied the first, which can be
//! before the leader's apply thread has reported the index back to raft.
//!
//! So the leader holds such proposals (its own and the ones followers forward as `MsgPropose`)
//! and proposes them once raft has no pending conf change. A held proposal is dropped after the
//! request timeout, when its client has given up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use raft::eraftpb::{EntryType, Message, MessageType};
use raft::{RawNode, StateRole};

use super::log_store::LogStore;
use super::{NodeError, Shared};
use crate::conf_change::Proposal;

/// Past this many held conf changes, new ones are dropped (their clients time out, as they
/// would have without the gate). Reconfiguration is rare; a burst this size is a misbehaving
/// client.
const MAX_HELD: usize = 64;

enum Held {
    /// Proposed on this member: `id` is the proposer's wait.
    Local { id: u64, proposal: Proposal },
    /// Forwarded by a follower.
    Forwarded(Message),
}

#[derive(Default)]
pub(crate) struct ConfGate {
    held: VecDeque<(Instant, Held)>,
}

/// Whether raft would turn a conf change proposed now into an empty entry.
fn must_wait(node: &RawNode<LogStore>) -> bool {
    node.raft.state == StateRole::Leader && node.raft.has_pending_conf()
}

/// Whether a message is a follower's forwarded conf change.
pub(crate) fn is_forwarded_conf_change(m: &Message) -> bool {
    m.get_msg_type() == MessageType::MsgPropose
        && m.get_entries()
            .iter()
            .any(|e| matches!(e.get_entry_type(), EntryType::EntryConfChange | EntryType::EntryConfChangeV2))
}

impl ConfGate {
    /// Proposes a conf change made on this member, or holds it until raft can take it.
    pub(crate) fn propose(&mut self, node: &mut RawNode<LogStore>, shared: &Shared, id: u64, proposal: Proposal) {
        if node.raft.leader_id == raft::INVALID_ID {
            shared.waits.trigger(id, Err(NodeError::NoLeader));
        } else if must_wait(node) || !self.held.is_empty() {
            self.hold(Held::Local { id, proposal }, shared);
        } else {
            propose_now(node, shared, id, proposal);
        }
    }

    /// Steps a follower's forwarded conf change, or holds it until raft can take it.
    pub(crate) fn step(&mut self, node: &mut RawNode<LogStore>, shared: &Shared, m: Message) {
        if must_wait(node) || !self.held.is_empty() {
            self.hold(Held::Forwarded(m), shared);
        } else {
            step_now(node, m);
        }
    }

    fn hold(&mut self, h: Held, shared: &Shared) {
        if self.held.len() >= MAX_HELD {
            tracing::warn!("{MAX_HELD} conf changes are already waiting; dropping another");
            if let Held::Local { id, .. } = h {
                shared.waits.trigger(id, Err(NodeError::Timeout));
            }
            return;
        }
        self.held.push_back((Instant::now(), h));
    }

    /// Whether a conf change is held (the raft thread then wants the applied index promptly).
    pub(crate) fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Called every turn: drops what waited too long, then proposes in arrival order while raft
    /// takes conf changes (one per applied change: each one proposed makes the next wait).
    pub(crate) fn release(&mut self, node: &mut RawNode<LogStore>, shared: &Shared, timeout: Duration) {
        while self.held.front().is_some_and(|(since, _)| since.elapsed() >= timeout) {
            if let Some((_, Held::Local { id, .. })) = self.held.pop_front() {
                shared.waits.trigger(id, Err(NodeError::Timeout));
            }
        }
        while !self.held.is_empty() && !must_wait(node) {
            match self.held.pop_front() {
                Some((_, Held::Local { id, proposal })) => {
                    if node.raft.leader_id == raft::INVALID_ID {
                        shared.waits.trigger(id, Err(NodeError::NoLeader));
                    } else {
                        propose_now(node, shared, id, proposal);
                    }
                }
                // A follower's proposal held by a member that lost leadership: raft forwards
                // it to the new leader (or drops it if there is none; its client times out).
                Some((_, Held::Forwarded(m))) => step_now(node, m),
                None => break,
            }
        }
    }
}

fn propose_now(node: &mut RawNode<LogStore>, shared: &Shared, id: u64, proposal: Proposal) {
    // The V2 entry (an update) has no id field: its wait id rides in the entry's context.
    let proposed = match proposal {
        Proposal::V1(cc) => node.propose_conf_change(Vec::new(), cc),
        Proposal::V2(cc) => node.propose_conf_change(id.to_be_bytes().to_vec(), cc),
    };
    if let Err(e) = proposed {
        tracing::debug!("conf change {id:x} dropped: {e}");
        shared.waits.trigger(id, Err(NodeError::NoLeader));
    }
}

fn step_now(node: &mut RawNode<LogStore>, m: Message) {
    let from = m.from;
    if let Err(e) = node.step(m) {
        tracing::debug!("dropping a forwarded conf change from {from:x}: {e}");
    }
}
