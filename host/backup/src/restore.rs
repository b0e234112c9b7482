//! A real etcd's backend file into a new data dir's state database: the KV guest's keyspace
//! (through the guest's own importer) and the auth store. Membership and alarms are not taken:
//! as etcd's restore, the result is a new cluster whose members come from the restore's flags.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message as _;
use wasmraft_kv_guest::etcd_backend::{self as kv, ImportSummary, Importer};
use wasmraft_node::auth::AuthState;
use wasmraft_proto::authpb::{Role, User};
use wasmraft_storage::bbolt::{Bucket, Reader, Value};

use crate::BackupError;
use crate::buckets;
use crate::store::ImportStore;

/// What a restore brought over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub kv: ImportSummary,
    pub auth_enabled: bool,
    pub users: usize,
    pub roles: usize,
}

/// Fills `db` (a new data dir's state database, its tables created, the guest table empty)
/// from the bbolt file at `path`. The file's trailing sha256, if any, is the caller's to check.
pub fn restore(path: &Path, db: &redb::Database) -> Result<RestoreSummary, BackupError> {
    let reader = Reader::open(std::fs::File::open(path)?)?;
    reader.check()?;

    let mut store = ImportStore::new(db)?;
    let mut importer = Importer::new(&mut store)?;
    if let Some(b) = reader.bucket(kv::KEY_BUCKET)? {
        for_each(&reader, &b, kv::KEY_BUCKET, |k, v| importer.key(k, v).map_err(Into::into))?;
    }
    if let Some(b) = reader.bucket(kv::LEASE_BUCKET)? {
        for_each(&reader, &b, kv::LEASE_BUCKET, |k, v| importer.lease(k, v).map_err(Into::into))?;
    }
    if let Some(b) = reader.bucket(kv::META_BUCKET)? {
        for_each(&reader, &b, kv::META_BUCKET, |k, v| importer.meta(k, v).map_err(Into::into))?;
    }
    let summary = importer.finish()?;
    store.finish()?;

    let auth = read_auth(&reader)?;
    let txn = db.begin_write()?;
    auth.install(&txn)?;
    txn.commit()?;
    Ok(RestoreSummary { kv: summary, auth_enabled: auth.enabled, users: auth.users.len(), roles: auth.roles.len() })
}

/// Calls `f` with each pair of a bucket that holds data only (etcd nests no buckets).
fn for_each(
    reader: &Reader,
    bucket: &Bucket,
    name: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    for entry in reader.entries(bucket) {
        let entry = entry?;
        match &entry.value {
            Value::Data(v) => f(&entry.key, v)?,
            Value::Bucket(_) => {
                return Err(BackupError::Bucket {
                    bucket: String::from_utf8_lossy(name).into_owned(),
                    reason: format!("a nested bucket {:?} where etcd keeps data", String::from_utf8_lossy(&entry.key)),
                });
            }
        }
    }
    Ok(())
}

fn bad(bucket: &[u8], reason: String) -> BackupError {
    BackupError::Bucket { bucket: String::from_utf8_lossy(bucket).into_owned(), reason }
}

/// etcd's auth store from `auth`, `authUsers` and `authRoles` (each may be missing: an etcd
/// that never touched auth has them empty).
fn read_auth(reader: &Reader) -> Result<AuthState, BackupError> {
    let mut state = AuthState::default();
    if let Some(b) = reader.bucket(buckets::AUTH)? {
        for_each(reader, &b, buckets::AUTH, |k, v| {
            if k == buckets::AUTH_ENABLED_KEY {
                state.enabled = v == [1];
            } else if k == buckets::AUTH_REVISION_KEY {
                let bytes: [u8; 8] = v
                    .try_into()
                    .map_err(|_| bad(buckets::AUTH, format!("authRevision of {} bytes, not 8", v.len())))?;
                // etcd's store starts at revision 1 (see the node's auth store).
                state.revision = u64::from_be_bytes(bytes).max(1);
            }
            Ok(())
        })?;
    }
    let mut users = BTreeMap::new();
    if let Some(b) = reader.bucket(buckets::AUTH_USERS)? {
        for_each(reader, &b, buckets::AUTH_USERS, |k, v| {
            let user = User::decode(v)
                .map_err(|e| bad(buckets::AUTH_USERS, format!("{:?}: {e}", String::from_utf8_lossy(k))))?;
            let name = String::from_utf8(k.to_vec()).map_err(|e| bad(buckets::AUTH_USERS, e.to_string()))?;
            users.insert(name, user);
            Ok(())
        })?;
    }
    let mut roles = BTreeMap::new();
    if let Some(b) = reader.bucket(buckets::AUTH_ROLES)? {
        for_each(reader, &b, buckets::AUTH_ROLES, |k, v| {
            let role = Role::decode(v)
                .map_err(|e| bad(buckets::AUTH_ROLES, format!("{:?}: {e}", String::from_utf8_lossy(k))))?;
            let name = String::from_utf8(k.to_vec()).map_err(|e| bad(buckets::AUTH_ROLES, e.to_string()))?;
            roles.insert(name, role);
            Ok(())
        })?;
    }
    state.users = users;
    state.roles = roles;
    Ok(state)
}
