//! Membership changes as raft conf changes, laid out as etcd 3.4 lays them out: a `ConfChange`
//! whose `id` is the request's wait id, whose `node_id` is the member, and whose `context` is
//! etcd's member JSON (`{"id":…,"peerURLs":[…],"isLearner":true}`; a promotion adds
//! `"isPromote":true`).
//!
//! raft-rs 0.7 has no `ConfChangeUpdateNode` (etcd's raft treats it as a no-op anyway), so a
//! peer URL update travels as a `ConfChangeV2` entry that keeps the member's role, with the same
//! JSON context; it is never handed to raft's `apply_conf_change`, only to the members table.
//! This host proposes V2 entries for nothing else.

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};
use serde::{Deserialize, Serialize};
// The record itself, not `crate::membership`'s re-export: membership validates and applies
// `Change`s, so the dependency runs from it to this file and never back.
use wasmraft_proto::wasmraft::v1::Member;

/// Largest conf change entry we decode (they hold one member's id and URLs).
const MAX_CONF_CHANGE_BYTES: usize = 64 * 1024;

/// Why a committed entry is not a conf change this member can read. Every member reads the
/// same bytes the same way, so each skips the same entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfChangeError {
    /// Larger than a conf change could be: not handed to the protobuf 2 parser.
    #[error("conf change entry of {len} bytes is too large")]
    TooLarge { len: usize },
    #[error(transparent)]
    Protobuf(#[from] protobuf::ProtobufError),
    /// The context is not etcd's member JSON.
    #[error(transparent)]
    Context(#[from] serde_json::Error),
    #[error("conf change for {node_id:x} carries member {member_id:x}")]
    OtherMember { node_id: u64, member_id: u64 },
    #[error("a promotion must add a voter")]
    PromotionNotAdd,
    #[error("update conf change names another member")]
    UpdateNamesOther,
    #[error("not a conf change entry")]
    NotConfChange,
}

/// A membership change, as the Cluster API asks for it and as every member applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new member (voter, or learner with `is_learner`); name and client URLs stay empty
    /// until it publishes them.
    Add(Member),
    Remove(u64),
    Update {
        id: u64,
        peer_urls: Vec<String>,
    },
    Promote(u64),
}

/// etcd's `membership.Member` in JSON, field for field (`ID`, then the embedded
/// `RaftAttributes` and `Attributes`), with `ConfigChangeContext`'s `isPromote`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EtcdMember {
    pub id: u64,
    /// Go marshals a nil slice as `null` (a promotion's context has no URLs).
    #[serde(rename = "peerURLs")]
    pub peer_urls: Option<Vec<String>>,
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Option::is_none")]
    pub client_urls: Option<Vec<String>>,
    #[serde(rename = "isPromote", default, skip_serializing_if = "Option::is_none")]
    pub is_promote: Option<bool>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl EtcdMember {
    /// A member record as etcd serves it on the peer port's `/members`.
    pub fn from_member(m: &Member) -> EtcdMember {
        EtcdMember {
            id: m.id,
            peer_urls: Some(m.peer_urls.clone()),
            is_learner: m.is_learner,
            name: m.name.clone(),
            client_urls: (!m.client_urls.is_empty()).then(|| m.client_urls.clone()),
            is_promote: None,
        }
    }

    pub fn into_member(self) -> Member {
        Member {
            id: self.id,
            name: self.name,
            peer_urls: self.peer_urls.unwrap_or_default(),
            client_urls: self.client_urls.unwrap_or_default(),
            is_learner: self.is_learner,
        }
    }
}

/// Members as etcd's JSON array (the peer port's `/members`, a forwarded promotion's answer).
pub fn members_json(members: &[Member]) -> Result<String, serde_json::Error> {
    serde_json::to_string(&members.iter().map(EtcdMember::from_member).collect::<Vec<_>>())
}

/// What a committed conf change entry means to this host: the change, and the wait id of the
/// request that proposed it (0 for none).
pub struct Decoded {
    pub change: Change,
    pub request_id: u64,
}

impl Change {
    /// The member the change is about.
    pub fn id(&self) -> u64 {
        match self {
            Change::Add(m) => m.id,
            Change::Remove(id) | Change::Promote(id) | Change::Update { id, .. } => *id,
        }
    }

    /// The conf change to propose for this change, carrying `request_id` for the wait.
    /// `is_learner` is the member's current role (for an update, whose V2 entry keeps it).
    pub fn to_raft(&self, request_id: u64, is_learner: bool) -> Result<Proposal, serde_json::Error> {
        let (ty, context) = match self {
            Change::Add(m) => {
                let ty = if m.is_learner { ConfChangeType::AddLearnerNode } else { ConfChangeType::AddNode };
                let ctx = EtcdMember {
                    id: m.id,
                    peer_urls: Some(m.peer_urls.clone()),
                    is_learner: m.is_learner,
                    ..Default::default()
                };
                (ty, serde_json::to_vec(&ctx)?)
            }
            Change::Promote(id) => {
                let ctx = EtcdMember { id: *id, is_promote: Some(true), ..Default::default() };
                (ConfChangeType::AddNode, serde_json::to_vec(&ctx)?)
            }
            Change::Remove(_) => (ConfChangeType::RemoveNode, Vec::new()),
            Change::Update { id, peer_urls } => {
                let ctx = EtcdMember { id: *id, peer_urls: Some(peer_urls.clone()), ..Default::default() };
                let mut single = ConfChangeSingle::default();
                single.set_change_type(if is_learner {
                    ConfChangeType::AddLearnerNode
                } else {
                    ConfChangeType::AddNode
                });
                single.node_id = *id;
                let mut cc = ConfChangeV2::default();
                cc.set_changes(vec![single].into());
                cc.context = Bytes::from(serde_json::to_vec(&ctx)?);
                return Ok(Proposal::V2(cc));
            }
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(ty);
        cc.node_id = self.id();
        cc.id = request_id;
        cc.context = Bytes::from(context);
        Ok(Proposal::V1(cc))
    }

    /// Reads a committed conf change entry. Every member reads the same bytes the same way, so
    /// an entry this cannot read is skipped by all (an Err).
    pub fn from_entry(e: &Entry) -> Result<Decoded, ConfChangeError> {
        // The protobuf 2 parser recurses without bound on hostile input (RUSTSEC-2024-0437); a
        // conf change is small and flat, so refuse anything larger than one could be.
        if e.data.len() > MAX_CONF_CHANGE_BYTES {
            return Err(ConfChangeError::TooLarge { len: e.data.len() });
        }
        match e.get_entry_type() {
            EntryType::EntryConfChange => {
                let cc = ConfChange::parse_from_bytes(&e.data)?;
                let change = match cc.get_change_type() {
                    ConfChangeType::RemoveNode => Change::Remove(cc.node_id),
                    ty => {
                        let ctx: EtcdMember = serde_json::from_slice(&cc.context)?;
                        if ctx.id != cc.node_id {
                            return Err(ConfChangeError::OtherMember { node_id: cc.node_id, member_id: ctx.id });
                        }
                        if ctx.is_promote == Some(true) {
                            if ty != ConfChangeType::AddNode {
                                return Err(ConfChangeError::PromotionNotAdd);
                            }
                            Change::Promote(cc.node_id)
                        } else {
                            let is_learner = ty == ConfChangeType::AddLearnerNode;
                            Change::Add(Member {
                                id: cc.node_id,
                                peer_urls: ctx.peer_urls.unwrap_or_default(),
                                is_learner,
                                ..Default::default()
                            })
                        }
                    }
                };
                Ok(Decoded { change, request_id: cc.id })
            }
            EntryType::EntryConfChangeV2 => {
                let cc = ConfChangeV2::parse_from_bytes(&e.data)?;
                let ctx: EtcdMember = serde_json::from_slice(&cc.context)?;
                if cc.get_changes().iter().any(|c| c.node_id != ctx.id) {
                    return Err(ConfChangeError::UpdateNamesOther);
                }
                // The V2 entry has no id field; the wait id is the entry's context (8 bytes).
                let request_id = e.context.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                Ok(Decoded {
                    change: Change::Update { id: ctx.id, peer_urls: ctx.peer_urls.unwrap_or_default() },
                    request_id,
                })
            }
            EntryType::EntryNormal => Err(ConfChangeError::NotConfChange),
        }
    }

    /// What raft applies for this change (None: raft's configuration does not change).
    pub fn raft_change(&self) -> Option<ConfChange> {
        let (ty, id) = match self {
            Change::Add(m) if m.is_learner => (ConfChangeType::AddLearnerNode, m.id),
            Change::Add(m) => (ConfChangeType::AddNode, m.id),
            Change::Promote(id) => (ConfChangeType::AddNode, *id),
            Change::Remove(id) => (ConfChangeType::RemoveNode, *id),
            Change::Update { .. } => return None,
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(ty);
        cc.node_id = id;
        Some(cc)
    }
}

/// A conf change ready for raft-rs's `propose_conf_change`.
pub enum Proposal {
    V1(ConfChange),
    V2(ConfChangeV2),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: Proposal, ctx: Vec<u8>) -> Entry {
        let mut e = Entry::default();
        match p {
            Proposal::V1(cc) => {
                e.set_entry_type(EntryType::EntryConfChange);
                e.data = Bytes::from(cc.write_to_bytes().unwrap());
            }
            Proposal::V2(cc) => {
                e.set_entry_type(EntryType::EntryConfChangeV2);
                e.data = Bytes::from(cc.write_to_bytes().unwrap());
            }
        }
        e.context = Bytes::from(ctx);
        e
    }

    #[test]
    fn contexts_are_etcds_json() {
        let add = Change::Add(Member {
            id: 0x1234,
            peer_urls: vec!["http://a:2380".into()],
            is_learner: true,
            ..Default::default()
        });
        let Proposal::V1(cc) = add.to_raft(7, false).unwrap() else { panic!("add is a v1 conf change") };
        assert_eq!(
            std::str::from_utf8(&cc.context).unwrap(),
            r#"{"id":4660,"peerURLs":["http://a:2380"],"isLearner":true}"#
        );
        assert_eq!(cc.get_change_type(), ConfChangeType::AddLearnerNode);
        let Proposal::V1(cc) = Change::Promote(0x1234).to_raft(8, true).unwrap() else { panic!() };
        assert_eq!(std::str::from_utf8(&cc.context).unwrap(), r#"{"id":4660,"peerURLs":null,"isPromote":true}"#);
    }

    #[test]
    fn every_change_round_trips_through_an_entry() {
        let changes = [
            Change::Add(Member { id: 9, peer_urls: vec!["http://a:1".into()], ..Default::default() }),
            Change::Add(Member { id: 9, peer_urls: vec!["http://a:1".into()], is_learner: true, ..Default::default() }),
            Change::Remove(9),
            Change::Promote(9),
            Change::Update { id: 9, peer_urls: vec!["http://b:2".into()] },
        ];
        for c in changes {
            let d = Change::from_entry(&entry(c.to_raft(42, false).unwrap(), 42u64.to_be_bytes().to_vec())).unwrap();
            assert_eq!(d.change, c);
            assert_eq!(d.request_id, 42);
        }
    }

    #[test]
    fn a_context_naming_another_member_is_refused() {
        let cc =
            ConfChange { node_id: 1, context: Bytes::from_static(br#"{"id":2,"peerURLs":[]}"#), ..Default::default() };
        let Err(refused) = Change::from_entry(&entry(Proposal::V1(cc), vec![])) else { panic!("accepted") };
        assert!(matches!(refused, ConfChangeError::OtherMember { node_id: 1, member_id: 2 }), "{refused:?}");
        assert_eq!(refused.to_string(), "conf change for 1 carries member 2");
    }
}
