//! The cluster's membership as the log defines it: who the members are (from the initial
//! cluster, later from conf changes) and what each published about itself (name, client URLs).
//!
//! The records live in the state database's `members` table, written in the same transactions
//! as the entries that change them, so they travel with the state; a copy in memory answers
//! `MemberList` and status calls without touching the disk.
//!
//! Conf changes (host/node/src/conf_change.rs) are validated here against the records as of their
//! entry, as etcd's `ValidateConfigurationChange` does, so every member accepts or refuses the
//! same change. Removed ids are kept for good (`removed_members`): a removed id never returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use prost::Message as _;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use wasmraft_proto::wasmraft::v1 as pb;

use crate::StateError;
use crate::conf_change::Change;
use wasmraft_storage::tables::{MEMBERS, REMOVED_MEMBERS};

pub use pb::{Member, MemberAttributes};

/// etcd 3.4's `maxLearners`.
pub const MAX_LEARNERS: usize = 1;

pub struct Membership {
    members: RwLock<BTreeMap<u64, Member>>,
    removed: RwLock<BTreeSet<u64>>,
}

/// Why a conf change was refused at apply (etcd's membership errors); the text is the one etcd
/// sends to clients for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// etcd's ErrIDRemoved, which clients see as "member not found".
    #[error("etcdserver: member not found")]
    IdRemoved,
    #[error("etcdserver: member not found")]
    IdNotFound,
    #[error("etcdserver: member ID already exist")]
    IdExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
}

/// Records written by the apply batch's transaction but not yet committed: later entries of the
/// same batch must see them (batch boundaries differ between members), and they become visible
/// to readers with [`Membership::commit`].
#[derive(Default)]
pub struct Staged {
    /// id → the new record, or None for a removed member.
    members: BTreeMap<u64, Option<Member>>,
    removed: BTreeSet<u64>,
}

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.removed.is_empty()
    }
}

impl Membership {
    /// Reads the membership recorded in the state database (empty for a new member).
    pub fn load(db: &redb::Database) -> Result<Membership, StateError> {
        let txn = db.begin_write()?;
        txn.open_table(MEMBERS)?;
        txn.open_table(REMOVED_MEMBERS)?;
        txn.commit()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(MEMBERS)?;
        let mut members = BTreeMap::new();
        for item in table.iter()? {
            let (id, bytes) = item?;
            let m = Member::decode(bytes.value())
                .map_err(|e| StateError::corrupt("member record", format!("{:x}: {e}", id.value())))?;
            members.insert(id.value(), m);
        }
        let mut removed = BTreeSet::new();
        for item in txn.open_table(REMOVED_MEMBERS)?.iter()? {
            removed.insert(item?.0.value());
        }
        Ok(Membership { members: RwLock::new(members), removed: RwLock::new(removed) })
    }

    /// Records the initial cluster when the state database has no members yet. Every initial
    /// member writes the same records from the same flags, as etcd's bootstrap conf changes do;
    /// names stay empty until each member publishes itself.
    ///
    /// A member joining an existing cluster records the members the cluster told it about
    /// instead (learners included), with what they published.
    pub fn bootstrap(&self, db: &redb::Database, initial: &[Member]) -> Result<(), StateError> {
        if !self.read().is_empty() {
            return Ok(());
        }
        let txn = db.begin_write()?;
        let mut added = Vec::new();
        {
            let mut table = txn.open_table(MEMBERS)?;
            for m in initial {
                table.insert(m.id, m.encode_to_vec().as_slice())?;
                added.push(m.clone());
            }
        }
        txn.commit()?;
        let mut members = self.write();
        for m in added {
            members.insert(m.id, m);
        }
        Ok(())
    }

    /// Applies a publish entry inside the apply batch's transaction, staging the updated record
    /// to be made visible with [`Membership::commit`] once the transaction commits. A
    /// publish from a member that is not (or no longer) in the cluster is ignored, as etcd does.
    pub fn apply_publish(
        &self,
        txn: &WriteTransaction,
        attrs: &MemberAttributes,
        staged: &mut Staged,
    ) -> Result<(), redb::Error> {
        let Some(mut m) = self.staged_get(staged, attrs.id) else {
            tracing::warn!("ignoring a publish from member {:x}, which is not in the cluster", attrs.id);
            return Ok(());
        };
        m.name = attrs.name.clone();
        m.client_urls = attrs.client_urls.clone();
        txn.open_table(MEMBERS)?.insert(m.id, m.encode_to_vec().as_slice())?;
        staged.members.insert(m.id, Some(m));
        Ok(())
    }

    /// etcd's `ValidateConfigurationChange`: whether `change` may be applied to the members as
    /// of its entry (the records plus what this batch staged).
    pub fn validate(&self, change: &Change, staged: &Staged) -> Result<(), MembershipError> {
        let members = self.staged_members(staged);
        let id = change.id();
        if self.read_removed().contains(&id) || staged.removed.contains(&id) {
            return Err(MembershipError::IdRemoved);
        }
        let urls_of_others = |except: Option<u64>| -> BTreeSet<&str> {
            members
                .values()
                .filter(|m| Some(m.id) != except)
                .flat_map(|m| m.peer_urls.iter().map(String::as_str))
                .collect()
        };
        match change {
            Change::Add(m) => {
                if members.contains_key(&id) {
                    return Err(MembershipError::IdExists);
                }
                let urls = urls_of_others(None);
                if m.peer_urls.iter().any(|u| urls.contains(u.as_str())) {
                    return Err(MembershipError::PeerUrlExists);
                }
                if m.is_learner && members.values().filter(|m| m.is_learner).count() + 1 > MAX_LEARNERS {
                    return Err(MembershipError::TooManyLearners);
                }
            }
            Change::Promote(_) => match members.get(&id) {
                None => return Err(MembershipError::IdNotFound),
                Some(m) if !m.is_learner => return Err(MembershipError::NotLearner),
                Some(_) => {}
            },
            Change::Remove(_) => {
                if !members.contains_key(&id) {
                    return Err(MembershipError::IdNotFound);
                }
            }
            Change::Update { peer_urls, .. } => {
                if !members.contains_key(&id) {
                    return Err(MembershipError::IdNotFound);
                }
                let urls = urls_of_others(Some(id));
                if peer_urls.iter().any(|u| urls.contains(u.as_str())) {
                    return Err(MembershipError::PeerUrlExists);
                }
            }
        }
        Ok(())
    }

    /// Writes a validated change into the members tables of the apply transaction, staging it.
    /// An update keeps the member's learner flag and what it published (etcd 3.4 would also clear
    /// a learner's flag in its record, though raft keeps it a learner: we keep the two agreeing).
    pub fn apply_change(
        &self,
        txn: &WriteTransaction,
        change: &Change,
        staged: &mut Staged,
    ) -> Result<(), redb::Error> {
        let mut table = txn.open_table(MEMBERS)?;
        let updated = match change {
            Change::Add(m) => Some(Member {
                id: m.id,
                peer_urls: m.peer_urls.clone(),
                is_learner: m.is_learner,
                ..Default::default()
            }),
            Change::Promote(id) => self.staged_get(staged, *id).map(|m| Member { is_learner: false, ..m }),
            Change::Update { id, peer_urls } => {
                self.staged_get(staged, *id).map(|m| Member { peer_urls: peer_urls.clone(), ..m })
            }
            Change::Remove(id) => {
                table.remove(*id)?;
                txn.open_table(REMOVED_MEMBERS)?.insert(*id, [].as_slice())?;
                staged.members.insert(*id, None);
                staged.removed.insert(*id);
                return Ok(());
            }
        };
        if let Some(m) = updated {
            table.insert(m.id, m.encode_to_vec().as_slice())?;
            staged.members.insert(m.id, Some(m));
        }
        Ok(())
    }

    /// Makes records written by a committed transaction visible.
    pub fn commit(&self, staged: Staged) {
        if staged.is_empty() {
            return;
        }
        let mut members = self.write();
        for (id, m) in staged.members {
            match m {
                Some(m) => members.insert(id, m),
                None => members.remove(&id),
            };
        }
        drop(members);
        if !staged.removed.is_empty() {
            self.removed.write().unwrap_or_else(|p| p.into_inner()).extend(staged.removed);
        }
    }

    /// Whether `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.read_removed().contains(&id)
    }

    fn staged_get(&self, staged: &Staged, id: u64) -> Option<Member> {
        match staged.members.get(&id) {
            Some(m) => m.clone(),
            None => self.read().get(&id).cloned(),
        }
    }

    fn staged_members(&self, staged: &Staged) -> BTreeMap<u64, Member> {
        let mut members = self.read().clone();
        for (id, m) in &staged.members {
            match m {
                Some(m) => members.insert(*id, m.clone()),
                None => members.remove(id),
            };
        }
        members
    }

    fn read_removed(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<u64>> {
        self.removed.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes over the records of `other` (after a snapshot replaced the state database).
    pub fn replace_with(&self, other: Membership) {
        let fresh = other.members.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.write() = fresh;
        let removed = other.removed.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.removed.write().unwrap_or_else(|p| p.into_inner()) = removed;
    }

    /// All members, ordered by id.
    pub fn list(&self) -> Vec<Member> {
        self.read().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Member> {
        self.read().get(&id).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Member>> {
        self.members.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Member>> {
        self.members.write().unwrap_or_else(|p| p.into_inner())
    }
}
