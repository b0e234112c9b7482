//! The cluster's membership as the log defines it: who the members are (from the initial
//! cluster, later from conf changes) and what each published about itself (name, client URLs).
//!
//! The records live in the state database's `members` table, written in the same transactions
//! as the entries that change them, so they travel with the state; a copy in memory answers
//! `MemberList` and status calls without touching the disk.

use std::collections::BTreeMap;
use std::sync::RwLock;

use prost::Message as _;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use wasmraft_proto::wasmraft::v1 as pb;

use crate::storage::tables::MEMBERS;

pub use pb::{Member, MemberAttributes};

pub struct Membership {
    members: RwLock<BTreeMap<u64, Member>>,
}

impl Membership {
    /// Reads the membership recorded in the state database (empty for a new member).
    pub fn load(db: &redb::Database) -> anyhow::Result<Membership> {
        let txn = db.begin_write()?;
        txn.open_table(MEMBERS)?;
        txn.commit()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(MEMBERS)?;
        let mut members = BTreeMap::new();
        for item in table.iter()? {
            let (id, bytes) = item?;
            let m = Member::decode(bytes.value()).map_err(|e| anyhow::anyhow!("corrupt member record {:x}: {e}", id.value()))?;
            members.insert(id.value(), m);
        }
        Ok(Membership { members: RwLock::new(members) })
    }

    /// Records the initial cluster when the state database has no members yet. Every initial
    /// member writes the same records from the same flags, as etcd's bootstrap conf changes do;
    /// names stay empty until each member publishes itself.
    pub fn bootstrap(&self, db: &redb::Database, initial: &[(u64, Vec<String>)]) -> anyhow::Result<()> {
        if !self.read().is_empty() {
            return Ok(());
        }
        let txn = db.begin_write()?;
        let mut added = Vec::new();
        {
            let mut table = txn.open_table(MEMBERS)?;
            for (id, peer_urls) in initial {
                let m = Member { id: *id, peer_urls: peer_urls.clone(), ..Default::default() };
                table.insert(*id, m.encode_to_vec().as_slice())?;
                added.push(m);
            }
        }
        txn.commit()?;
        let mut members = self.write();
        for m in added {
            members.insert(m.id, m);
        }
        Ok(())
    }

    /// Applies a publish entry inside the apply batch's transaction and returns the updated
    /// record, to be made visible with [`Membership::commit`] once the transaction commits. A
    /// publish from a member that is not (or no longer) in the cluster is ignored, as etcd does.
    pub fn apply_publish(&self, txn: &WriteTransaction, attrs: &MemberAttributes) -> anyhow::Result<Option<Member>> {
        let Some(mut m) = self.read().get(&attrs.id).cloned() else {
            tracing::warn!("ignoring a publish from member {:x}, which is not in the cluster", attrs.id);
            return Ok(None);
        };
        m.name = attrs.name.clone();
        m.client_urls = attrs.client_urls.clone();
        txn.open_table(MEMBERS)?.insert(m.id, m.encode_to_vec().as_slice())?;
        Ok(Some(m))
    }

    /// Makes records written by a committed transaction visible.
    pub fn commit(&self, updated: Vec<Member>) {
        if updated.is_empty() {
            return;
        }
        let mut members = self.write();
        for m in updated {
            members.insert(m.id, m);
        }
    }

    /// Takes over the records of `other` (after a snapshot replaced the state database).
    pub fn replace_with(&self, other: Membership) {
        let fresh = other.members.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.write() = fresh;
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
