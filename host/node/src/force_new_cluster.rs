//! etcd's `--force-new-cluster` (`restartAsStandaloneNode`), the disaster-recovery path: a
//! member whose cluster lost its quorum for good restarts from its own data as a cluster of
//! one. Its log keeps everything committed; what was not committed is discarded; then, as
//! committed entries of its own, it writes conf changes that remove every other member (and
//! add itself if it was not a voter). Applied like any conf change, they shrink raft's
//! configuration and the members table to this member, which then elects itself. The member
//! and cluster ids stay, so clients and data are unchanged; the removed members must not come
//! back with their old data (they are in the removed list, as after `member remove`).

use std::collections::BTreeSet;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType};
use wasmraft_storage::{Entry, EntryKind, HardState, RaftLog};

use crate::StartError;
use crate::conf_change::{Change, EtcdMember};
use crate::log_store::entry_to_raft;
use crate::membership::Member;

/// Rewrites the end of `log` so that this member restarts alone. `members` is the members
/// table as the state database holds it (applied up to `applied`).
pub(crate) fn rewrite(log: &mut RaftLog, member_id: u64, members: &[Member], applied: u64) -> Result<(), StartError> {
    let hs = *log.hard_state();
    let commit = hs.commit.max(applied);
    tracing::info!(
        "etcdserver: forcing restart of member {member_id:x} in cluster {:x} at commit index {commit}",
        log.identity().map_or(0, |i| i.cluster_id)
    );
    let discarded = log.last_index().saturating_sub(commit);
    if discarded > 0 {
        tracing::info!("etcdserver: discarding {discarded} uncommitted WAL entries");
    }

    // Who raft will count as a member once the committed entries are applied: the applied
    // configuration, then the conf changes committed after it (etcd's `getIDs`).
    let cs = log.conf_state();
    let mut ids: BTreeSet<u64> = cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).copied().collect();
    ids.extend(members.iter().map(|m| m.id));
    let from = (applied + 1).max(log.first_index());
    if from <= commit {
        for e in log.entries(from, commit + 1, None)? {
            if e.kind == EntryKind::Normal {
                continue;
            }
            let raft_entry = entry_to_raft(e);
            match Change::from_entry(&raft_entry).ok().map(|d| d.change) {
                Some(Change::Add(m)) => {
                    ids.insert(m.id);
                }
                Some(Change::Remove(id)) => {
                    ids.remove(&id);
                }
                _ => {}
            }
        }
    }

    let mut changes = Vec::new();
    for id in ids.iter().filter(|id| **id != member_id) {
        changes.push(conf_change_entry(ConfChangeType::RemoveNode, *id, Vec::new())?);
    }
    if !cs.voters.contains(&member_id) {
        let me = members.iter().find(|m| m.id == member_id);
        let ctx = EtcdMember {
            id: member_id,
            peer_urls: Some(me.map(|m| m.peer_urls.clone()).unwrap_or_default()),
            ..Default::default()
        };
        let ctx = serde_json::to_vec(&ctx).map_err(|e| StartError::ForceNewCluster(e.to_string()))?;
        changes.push(conf_change_entry(ConfChangeType::AddNode, member_id, ctx)?);
    }
    if changes.is_empty() && discarded == 0 {
        return Ok(());
    }
    // Written where the uncommitted tail began, replacing it (an empty entry, as a new leader
    // writes, when there is nothing to change but something to discard).
    let mut entries = Vec::new();
    let mut index = commit;
    for data in changes {
        index += 1;
        entries.push(Entry { index, term: hs.term, kind: EntryKind::ConfChange, data, context: Bytes::new() });
    }
    if entries.is_empty() {
        index += 1;
        entries.push(Entry {
            index,
            term: hs.term,
            kind: EntryKind::Normal,
            data: Bytes::new(),
            context: Bytes::new(),
        });
    }
    log.append(entries, Some(HardState { commit: index, ..hs }), true)?;
    Ok(())
}

fn conf_change_entry(ty: ConfChangeType, id: u64, context: Vec<u8>) -> Result<Bytes, StartError> {
    let mut cc = ConfChange::default();
    cc.set_change_type(ty);
    cc.node_id = id;
    cc.context = Bytes::from(context);
    cc.write_to_bytes().map(Bytes::from).map_err(|e| StartError::ForceNewCluster(e.to_string()))
}
