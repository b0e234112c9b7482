//! Guest deployment through the log: which guest runs, with which limits, since which index.
//!
//! A guest swap is replicated state, like membership. A module travels through the log in
//! pieces ([`apply_chunk`]) into the `guest_modules` table; a deploy entry ([`apply_deploy`])
//! then switches every member to it at that entry's index: the new guest's `migrate` runs inside
//! the entry's transaction, and the record of what is active (`meta["deployment"]`), with its
//! fuel and memory limits, is written in the same transaction. Because the record, the modules
//! and the keyspace live in the state database, a restart, a lagging member replaying the log
//! and a member restoring a snapshot all run the guest that was active at each index.
//!
//! The rules a swap must pass (`wasmraft_runtime::deployment`, pure functions of the record,
//! the module and its limits) are checked twice: by the member that receives the request, to
//! refuse early with a clear error, and at apply, on every member, against the replicated state,
//! so two racing deploys cannot both win.

use std::sync::Arc;

use prost::Message as _;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use sha2::Digest as _;
use wasmraft_proto::wasmraft::v1 as pb;
use wasmraft_runtime::deployment::{check_limits, check_transition, limits_of, requested_limits};
use wasmraft_runtime::{ApplyError, Guest, GuestLimits, GuestRegistry, StoreError};

use crate::error_chain::Chain;
use crate::guest_store::GuestKv;
use crate::state_error::from_redb;
use wasmraft_storage::tables::{DEPLOYMENTS, GUEST_KV, GUEST_MODULES, GUEST_UPLOADS, META, META_DEPLOYMENT};

mod pieces;
pub use pieces::apply_chunk;

/// Size of the pieces a module is proposed in: far below etcd's default request limit (1.5 MiB)
/// and raft's message size (1 MiB), so a module of any size moves like ordinary entries.
pub const MODULE_CHUNK_BYTES: usize = 512 << 10;

/// The largest module a deploy may carry.
pub const MAX_MODULE_BYTES: u64 = 64 << 20;

/// The active guest: its record and the loaded guest with the record's limits.
#[derive(Clone, Debug)]
pub struct Active {
    pub record: pb::GuestDeployment,
    pub guest: Arc<Guest>,
    /// The record as stored in `meta`, so a query can tell in one comparison whether the state
    /// it reads is this deployment's.
    pub encoded: Vec<u8>,
}

impl Active {
    pub fn hash_hex(&self) -> String {
        hex::encode(&self.record.sha256)
    }
}

/// Why the deployment records or a stored module could not be read, or the guest a record
/// names could not be loaded (at start, after a snapshot, for a query or a deploy request).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentError {
    /// The state database failed.
    #[error(transparent)]
    Db(#[from] redb::Error),
    /// A deployment record (the active one or one in the history) does not decode.
    #[error("corrupt deployment record: {0}")]
    CorruptRecord(prost::DecodeError),
    /// A record's module hash is not a sha256.
    #[error("wasmraft: a module hash is 32 bytes, not {len}")]
    BadHash { len: usize },
    /// The module the active record names is not in the state database.
    #[error("the active guest's module {} is not stored", hex::encode(hash))]
    ModuleMissing { hash: [u8; 32] },
    /// The stored module did not load. It loaded when it was deployed (every member checks
    /// that at apply), so the engine or the host failed, not the module.
    #[error(transparent)]
    Load(#[from] wasmraft_runtime::LoadError),
}

from_redb!(DeploymentError::Db);

/// What a deploy entry did.
#[derive(Debug)]
pub enum Deployed {
    /// The guest changed (or the first one arrived) at this entry; the events the new guest's
    /// `migrate` emitted (e.g. kv-v2's put of its version key), for watchers like any entry's.
    /// With them, the metric updates `migrate` made.
    Switched(Active, Vec<Vec<u8>>, std::collections::BTreeMap<String, wasmraft_runtime::MetricUpdate>),
    /// An initial deploy after a guest was already active: nothing changed.
    Unchanged(pb::GuestDeployment),
}

/// Creates the deployment tables (so read transactions can open them on a new member).
pub fn create_tables(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(GUEST_MODULES)?;
    txn.open_table(GUEST_UPLOADS)?;
    txn.open_table(DEPLOYMENTS)?;
    Ok(())
}

fn decode_record(bytes: &[u8]) -> Result<pb::GuestDeployment, DeploymentError> {
    pb::GuestDeployment::decode(bytes).map_err(DeploymentError::CorruptRecord)
}

/// The deployment record a read transaction sees (None before the first deploy).
pub fn record(txn: &ReadTransaction) -> Result<Option<pb::GuestDeployment>, DeploymentError> {
    record_from(&txn.open_table(META)?)
}

fn record_from(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<pb::GuestDeployment>, DeploymentError> {
    let value = meta.get(META_DEPLOYMENT)?;
    value.map(|v| decode_record(v.value())).transpose()
}

/// Whether the module hashing to `hash` was ever the active guest (a rollback may go only there).
pub fn was_active(txn: &ReadTransaction, hash: &[u8]) -> Result<bool, DeploymentError> {
    was_active_in(&txn.open_table(DEPLOYMENTS)?, hash)
}

fn was_active_in(deployments: &impl ReadableTable<u64, &'static [u8]>, hash: &[u8]) -> Result<bool, DeploymentError> {
    for item in deployments.iter()? {
        let (_, v) = item?;
        if decode_record(v.value())?.sha256 == hash {
            return Ok(true);
        }
    }
    Ok(false)
}

fn hash_of(bytes: &[u8]) -> Result<[u8; 32], DeploymentError> {
    bytes.try_into().map_err(|_| DeploymentError::BadHash { len: bytes.len() })
}

/// The guest a deployment record names, from the registry or loaded from the stored module.
pub fn guest_for(
    registry: &GuestRegistry,
    record: &pb::GuestDeployment,
    module: impl FnOnce() -> Result<Option<Vec<u8>>, redb::Error>,
) -> Result<Arc<Guest>, DeploymentError> {
    let hash = hash_of(&record.sha256)?;
    let limits = limits_of(record);
    if let Some(g) = registry.get(&hash, limits) {
        return Ok(g);
    }
    let wasm = module()?.ok_or(DeploymentError::ModuleMissing { hash })?;
    Ok(registry.load(&wasm, limits)?)
}

/// The active guest as the state database records it, loaded (at startup and after a snapshot).
pub fn load_active(db: &redb::Database, registry: &GuestRegistry) -> Result<Option<Active>, DeploymentError> {
    use redb::ReadableDatabase as _;
    let txn = db.begin_read()?;
    let Some(record) = record(&txn)? else { return Ok(None) };
    let guest = guest_for(registry, &record, || stored_module(&txn, &record.sha256))?;
    Ok(Some(Active { encoded: record.encode_to_vec(), record, guest }))
}

/// The guest for a query on `txn`: the one `txn`'s deployment record names. Usually that is
/// `active` (checked by comparing the stored record's bytes); around a swap it may not be, and
/// the record decides.
pub fn guest_in(
    txn: &ReadTransaction,
    active: &std::sync::RwLock<Option<Arc<Active>>>,
    registry: &GuestRegistry,
) -> Result<Option<Arc<Guest>>, DeploymentError> {
    if let Some(guest) = running_guest_in(txn, active)? {
        return Ok(Some(guest));
    }
    let Some(record) = record(txn)? else { return Ok(None) };
    guest_for(registry, &record, || stored_module(txn, &record.sha256)).map(Some)
}

/// [`guest_in`] when `txn`'s record names the running guest, which is cheap to find; `None`
/// otherwise (no guest recorded, or a swap between `txn` and now), where [`guest_in`] may
/// have to load or compile one.
pub fn running_guest_in(
    txn: &ReadTransaction,
    active: &std::sync::RwLock<Option<Arc<Active>>>,
) -> Result<Option<Arc<Guest>>, redb::Error> {
    let meta = txn.open_table(META)?;
    let Some(stored) = meta.get(META_DEPLOYMENT)? else { return Ok(None) };
    let active = active.read().unwrap_or_else(|p| p.into_inner());
    Ok(active.as_ref().filter(|a| a.encoded == stored.value()).map(|a| a.guest.clone()))
}

/// A stored module's bytes.
pub fn stored_module(txn: &ReadTransaction, hash: &[u8]) -> Result<Option<Vec<u8>>, redb::Error> {
    let t = txn.open_table(GUEST_MODULES)?;
    let value = t.get(hash)?;
    Ok(value.map(|v| v.value().to_vec()))
}

/// Every deployment ever made active, oldest first.
pub fn history(txn: &ReadTransaction) -> Result<Vec<pb::GuestDeployment>, DeploymentError> {
    let t = txn.open_table(DEPLOYMENTS)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (_, v) = item?;
        out.push(decode_record(v.value())?);
    }
    Ok(out)
}

/// The stored modules with what the deployment history says of them.
pub fn list(txn: &ReadTransaction) -> Result<Vec<pb::StoredModule>, DeploymentError> {
    let active = record(txn)?;
    let history = history(txn)?;
    let t = txn.open_table(GUEST_MODULES)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        let hash = k.value().to_vec();
        let mut m = pb::StoredModule { size: v.value().len() as u64, ..Default::default() };
        for d in history.iter().filter(|d| d.sha256 == hash) {
            m.name = d.name.clone();
            m.version = d.version.clone();
            m.deployed_at.push(d.since_index);
        }
        m.active = active.as_ref().is_some_and(|a| a.sha256 == hash);
        m.sha256 = hash;
        out.push(m);
    }
    Ok(out)
}

/// sha256 over the guest keyspace (each key and value with its length, in key order): members
/// with the same applied index have the same hash unless their states diverged.
pub fn state_hash(txn: &ReadTransaction) -> Result<String, redb::Error> {
    let t = txn.open_table(GUEST_KV)?;
    let mut h = sha2::Sha256::new();
    for item in t.iter()? {
        let (k, v) = item?;
        h.update((k.value().len() as u64).to_be_bytes());
        h.update(k.value());
        h.update((v.value().len() as u64).to_be_bytes());
        h.update(v.value());
    }
    Ok(hex::encode(h.finalize()))
}

/// Resolves a rollback target: a module hash (or a unique prefix of at least 8 hex digits) or
/// a version of the active guest's name, among modules that were active before.
pub fn rollback_target(txn: &ReadTransaction, target: &str) -> Result<pb::GuestDeployment, String> {
    let storage = |e: DeploymentError| format!("wasmraft: reading the deployment history: {}", Chain(&e));
    let history = history(txn).map_err(storage)?;
    let active = record(txn).map_err(storage)?;
    let target = target.trim();
    let lower = target.to_ascii_lowercase();
    let by_hash: Vec<&pb::GuestDeployment> = if lower.len() >= 8 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        history.iter().rev().filter(|d| hex::encode(&d.sha256).starts_with(&lower)).collect()
    } else {
        Vec::new()
    };
    let mut distinct: Vec<&[u8]> = by_hash.iter().map(|d| d.sha256.as_slice()).collect();
    distinct.dedup();
    let found = if distinct.len() > 1 {
        return Err(format!("wasmraft: {target} matches several stored modules; give more of the hash"));
    } else if let Some(d) = by_hash.first() {
        Some(*d)
    } else {
        let name = active.as_ref().map(|a| a.name.as_str()).unwrap_or("");
        history.iter().rev().find(|d| d.version == target && d.name == name)
    };
    found.cloned().ok_or_else(|| {
        format!("wasmraft: no module that was active before matches {target:?} (give a sha256, or a version of the active guest)")
    })
}

/// Applies a deploy entry at `index` inside `txn`: loads the stored module, checks the swap
/// against the replicated state, runs the new guest's `migrate` and records the deployment.
/// A refused swap is [`ApplyError::Guest`] (nothing written; the old guest stays); storage and
/// host failures are fatal, as for any entry.
pub fn apply_deploy(
    txn: WriteTransaction,
    d: &pb::GuestDeploy,
    index: u64,
    active: Option<&Active>,
    registry: &GuestRegistry,
) -> (WriteTransaction, Result<Deployed, ApplyError>) {
    let mode = match deploy_mode(d.mode) {
        Ok(mode) => mode,
        Err(text) => return (txn, Err(ApplyError::Guest(text))),
    };
    if mode == pb::guest_deploy::Mode::Initial
        && let Some(a) = active
    {
        return (txn, Ok(Deployed::Unchanged(a.record.clone())));
    }
    match prepare(&txn, d, mode, registry) {
        Ok(Ok((guest, limits, size))) => migrate_and_record(txn, guest, limits, size, index, active),
        Ok(Err(text)) => (txn, Err(ApplyError::Guest(text))),
        Err(e) => (txn, Err(e)),
    }
}

/// The mode a deploy entry names. One this member does not know (a newer proposer's, or
/// forged bytes) is refused rather than taken for an upgrade.
fn deploy_mode(raw: i32) -> Result<pb::guest_deploy::Mode, String> {
    pb::guest_deploy::Mode::try_from(raw).map_err(|_| format!("wasmraft: unknown deploy mode {raw}"))
}

/// A swap that passed its checks: the guest, its limits, and the index it was deployed at.
type Prepared = (Arc<Guest>, GuestLimits, u64);

/// Everything a swap checks before it runs any guest code: the module is stored, loads, and
/// may replace the active guest.
fn prepare(
    txn: &WriteTransaction,
    d: &pb::GuestDeploy,
    mode: pb::guest_deploy::Mode,
    registry: &GuestRegistry,
) -> Result<Result<Prepared, String>, ApplyError> {
    let hash = match hash_of(&d.sha256) {
        Ok(h) => h,
        Err(refused) => return Ok(Err(refused.to_string())),
    };
    let storage = |e: redb::Error| ApplyError::Storage(StoreError::new(e));
    let module = {
        let t = txn.open_table(GUEST_MODULES).map_err(|e| storage(e.into()))?;
        let v = t.get(hash.as_slice()).map_err(|e| storage(e.into()))?;
        v.map(|v| v.value().to_vec())
    };
    let Some(module) = module else {
        return Ok(Err(format!("wasmraft: module {} is not stored; its pieces must come first", hex::encode(hash))));
    };
    // The stored record, not the in-memory guest, is the truth every member shares.
    let host = |e: DeploymentError| ApplyError::Host(Chain(&e).to_string());
    let record = txn.open_table(META).map_err(|e| storage(e.into())).and_then(|t| record_from(&t).map_err(host))?;
    let limits = requested_limits(record.as_ref(), d.fuel_per_entry, d.memory_bytes, d.stack_bytes);
    if let Err(refused) = check_limits(limits) {
        return Ok(Err(refused.to_string()));
    }
    let guest = match registry.load(&module, limits) {
        Ok(g) => g,
        Err(e) => return Ok(Err(format!("wasmraft: the module is not a usable guest: {e:#}"))),
    };
    let was_active_before = txn
        .open_table(DEPLOYMENTS)
        .map_err(|e| storage(e.into()))
        .and_then(|t| was_active_in(&t, &hash).map_err(host))?;
    if let Err(refused) =
        check_transition(record.as_ref(), guest.info(), &hash, limits, mode, d.force, was_active_before)
    {
        return Ok(Err(refused.to_string()));
    }
    Ok(Ok((guest, limits, module.len() as u64)))
}

fn migrate_and_record(
    txn: WriteTransaction,
    guest: Arc<Guest>,
    limits: GuestLimits,
    size: u64,
    index: u64,
    active: Option<&Active>,
) -> (WriteTransaction, Result<Deployed, ApplyError>) {
    let from = active.map(|a| a.guest.info().clone()).unwrap_or_default();
    let result = guest.migrate(&mut GuestKv::new(&txn), &from);
    let (events, metrics) = match result {
        Ok(applied) => (applied.events, applied.metrics),
        Err(ApplyError::Guest(text)) => {
            return (
                txn,
                Err(ApplyError::Guest(format!("wasmraft: the new guest's migrate refused the swap: {text}"))),
            );
        }
        Err(e) => return (txn, Err(e)),
    };
    let info = guest.info();
    let record = pb::GuestDeployment {
        sha256: guest.hash().to_vec(),
        name: info.name.clone(),
        version: info.version.clone(),
        apis: info.apis.clone(),
        fuel_per_entry: limits.fuel_per_entry,
        memory_bytes: limits.memory_bytes,
        stack_bytes: limits.stack_bytes,
        since_index: index,
        size,
    };
    let bytes = record.encode_to_vec();
    let written = (|| -> Result<(), redb::Error> {
        txn.open_table(META)?.insert(META_DEPLOYMENT, bytes.as_slice())?;
        txn.open_table(DEPLOYMENTS)?.insert(index, bytes.as_slice())?;
        Ok(())
    })();
    match written {
        Ok(()) => (txn, Ok(Deployed::Switched(Active { record, guest, encoded: bytes }, events, metrics))),
        Err(e) => (txn, Err(ApplyError::Storage(StoreError::new(e)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::guest_deploy::Mode;

    #[test]
    fn an_unknown_deploy_mode_is_refused_not_taken_for_an_upgrade() {
        assert_eq!(deploy_mode(Mode::Rollback as i32), Ok(Mode::Rollback));
        assert_eq!(deploy_mode(7), Err("wasmraft: unknown deploy mode 7".to_string()));
        assert!(deploy_mode(-1).is_err());
    }
}
