//! The member's state as etcd's backend file: the encoder the API hands the node's snapshot
//! stream when the bundled KV guest is active.

use std::collections::BTreeMap;

use prost::Message as _;
use redb::ReadableTable;
use wasmraft_kv_guest::etcd_backend as kv;
use wasmraft_node::auth::AuthState;
use wasmraft_node::maintenance::{EncodeError, StateEncoder};
use wasmraft_proto::wasmraft::v1::Member;
use wasmraft_storage::bbolt::{DEFAULT_PAGE_SIZE, Writer};
use wasmraft_storage::tables::{MEMBERS, REMOVED_MEMBERS};

use crate::BackupError;
use crate::buckets::{self, EtcdMember};
use crate::store::TableStore;

/// Writes etcd 3.4's backend from a state whose guest keyspace is the bundled KV guest's.
pub struct EtcdBackend {
    /// What `cluster/clusterVersion` says.
    pub cluster_version: String,
}

impl StateEncoder for EtcdBackend {
    fn name(&self) -> &'static str {
        "etcd backend"
    }

    fn encode(&self, txn: &redb::ReadTransaction, out: &mut std::fs::File) -> Result<(), EncodeError> {
        let file = out.try_clone()?;
        write(txn, file, &self.cluster_version).map_err(|e| Box::new(e) as EncodeError)
    }
}

/// Every bucket etcd 3.4 creates, each complete, from one read transaction.
pub fn write(txn: &redb::ReadTransaction, file: std::fs::File, cluster_version: &str) -> Result<(), BackupError> {
    let mut w = Writer::create(file, DEFAULT_PAGE_SIZE)?;
    let store = TableStore::open(txn)?;

    w.begin_bucket(kv::KEY_BUCKET)?;
    kv::export_key_bucket(&store, &mut |k, v| w.put(k, v))?;
    w.end_bucket()?;
    w.begin_bucket(kv::LEASE_BUCKET)?;
    kv::export_leases(&store, &mut |k, v| w.put(k, v))?;
    w.end_bucket()?;
    let mut meta: BTreeMap<Vec<u8>, Vec<u8>> = kv::export_meta(&store)?.into_iter().collect();
    if let Some(e) = store.failure() {
        return Err(BackupError::Db(e.into()));
    }
    let applied = wasmraft_storage::snapshot::applied_index(txn)
        .map_err(|e| BackupError::Bucket { bucket: "meta".into(), reason: e.to_string() })?;
    meta.insert(buckets::CONSISTENT_INDEX_KEY.to_vec(), applied.to_be_bytes().to_vec());
    sorted(&mut w, kv::META_BUCKET, meta)?;

    let auth = AuthState::read_txn(txn)?;
    sorted(
        &mut w,
        buckets::AUTH,
        BTreeMap::from([
            (buckets::AUTH_ENABLED_KEY.to_vec(), vec![u8::from(auth.enabled)]),
            (buckets::AUTH_REVISION_KEY.to_vec(), auth.revision.to_be_bytes().to_vec()),
        ]),
    )?;
    sorted(
        &mut w,
        buckets::AUTH_ROLES,
        auth.roles.iter().map(|(name, r)| (name.clone().into_bytes(), r.encode_to_vec())).collect(),
    )?;
    sorted(
        &mut w,
        buckets::AUTH_USERS,
        auth.users.iter().map(|(name, u)| (name.clone().into_bytes(), u.encode_to_vec())).collect(),
    )?;

    let mut members = BTreeMap::new();
    for item in txn.open_table(MEMBERS)?.iter()? {
        let (id, bytes) = item?;
        let m = Member::decode(bytes.value()).map_err(|e| BackupError::Bucket {
            bucket: "members".into(),
            reason: format!("member {:x}: {e}", id.value()),
        })?;
        let json = serde_json::to_vec(&EtcdMember {
            id: m.id,
            peer_urls: m.peer_urls,
            is_learner: m.is_learner,
            name: m.name,
            client_urls: m.client_urls,
        })
        .map_err(|e| BackupError::Bucket { bucket: "members".into(), reason: e.to_string() })?;
        members.insert(buckets::member_key(m.id), json);
    }
    sorted(&mut w, buckets::MEMBERS, members)?;
    let mut removed = BTreeMap::new();
    for item in txn.open_table(REMOVED_MEMBERS)?.iter()? {
        let (id, _) = item?;
        removed.insert(buckets::member_key(id.value()), buckets::REMOVED.to_vec());
    }
    sorted(&mut w, buckets::MEMBERS_REMOVED, removed)?;
    sorted(
        &mut w,
        buckets::CLUSTER,
        BTreeMap::from([(buckets::CLUSTER_VERSION_KEY.to_vec(), cluster_version.as_bytes().to_vec())]),
    )?;
    let alarms = wasmraft_node::alarms::read_in(txn)?;
    sorted(&mut w, buckets::ALARM, alarms.iter().map(|a| (a.encode_to_vec(), Vec::new())).collect())?;
    w.finish()?;
    Ok(())
}

/// A small bucket gathered in memory, in key order.
fn sorted(w: &mut Writer, bucket: &[u8], pairs: BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), BackupError> {
    w.begin_bucket(bucket)?;
    for (k, v) in pairs {
        w.put(&k, &v)?;
    }
    w.end_bucket()?;
    Ok(())
}
