//! Out: the guest's tables as etcd 3.4's backend buckets, for `etcdctl snapshot save`.
//!
//! Each bucket is handed to a sink pair by pair in bbolt's order (ascending key bytes), so the
//! host can write the file as it goes: nothing but a page of the store is held at a time.

use prost::Message;
use wasmraft_guest_sdk::{ReadStore, prefix_end};
use wasmraft_proto::leasepb::Lease;
use wasmraft_proto::wasmraft::v1::LeaseRecord;

use super::error::{CorruptStore, ExportError};
use super::walk::KeyBucketWalk;
use super::{FINISHED_COMPACT_KEY, Pairs, SCHEDULED_COMPACT_KEY, Sink, revkey};
use crate::errors::corrupt;
use crate::layout::{KEYS, LEASES};
use crate::meta::{NEVER_COMPACTED, compacted_revision, current_revision};
use crate::pager::Pager;
use crate::record::live_of;
use crate::revision::Revision;

/// What [`export_key_bucket`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyBucketStats {
    /// Pairs written (puts and tombstones).
    pub pairs: u64,
    pub tombstones: u64,
    /// The revision of the last pair (what `etcdctl snapshot status` reports as the revision).
    pub last_revision: Option<Revision>,
}

/// The store's counters, as etcd would report them for the same keyspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The current revision (1 for a store nothing was ever written to).
    pub revision: i64,
    /// The last compaction's revision; -1 before the first.
    pub compact_revision: i64,
    /// Live keys at the current revision.
    pub keys: u64,
    /// Granted leases.
    pub leases: u64,
}

/// Sends etcd's `key` bucket to `sink`, in bbolt order: every change compaction left, keyed by
/// its revision key (`main_sub`, `t`-marked for a deletion), valued by its `mvccpb.KeyValue`.
pub fn export_key_bucket<E>(store: &dyn ReadStore, sink: &mut Sink<'_, E>) -> Result<KeyBucketStats, ExportError<E>> {
    let mut stats = KeyBucketStats::default();
    let mut walk = KeyBucketWalk::new(store, None);
    while let Some(entry) = walk.next_entry()? {
        sink(&entry.bucket_key(), &entry.value).map_err(ExportError::Sink)?;
        stats.pairs += 1;
        stats.tombstones += u64::from(entry.tombstone);
        stats.last_revision = Some(entry.rev);
    }
    Ok(stats)
}

/// Sends etcd's `lease` bucket to `sink`, in bbolt order: each granted lease keyed by its id
/// (8 bytes big-endian, etcd's `int64ToBytes`), valued by `leasepb.Lease` with the granted TTL
/// and the remaining TTL last checkpointed. Returns how many.
pub fn export_leases<E>(store: &dyn ReadStore, sink: &mut Sink<'_, E>) -> Result<u64, ExportError<E>> {
    let mut pager = Pager::new(store, LEASES.to_vec(), prefix_end(LEASES));
    let mut count = 0;
    while let Some((stored, bytes)) = pager.next_pair() {
        let id_bytes = &stored[LEASES.len()..];
        let rec = LeaseRecord::decode(bytes.as_slice())
            .map_err(|e| CorruptStore(corrupt(format!("lease record {}: {e}", revkey::hex(id_bytes)))))?;
        if id_bytes != rec.id.to_be_bytes() {
            return Err(
                CorruptStore(corrupt(format!("lease record {} holds id {:x}", revkey::hex(id_bytes), rec.id))).into()
            );
        }
        let lease = Lease { id: rec.id, ttl: rec.ttl, remaining_ttl: rec.remaining_ttl };
        sink(id_bytes, &lease.encode_to_vec()).map_err(ExportError::Sink)?;
        count += 1;
    }
    Ok(count)
}

/// The `meta` bucket's compaction keys, in bbolt order: after a compaction etcd has finished,
/// both `finishedCompactRev` and `scheduledCompactRev` hold its revision (as a 17-byte revision
/// key); before the first compaction, neither exists. The host adds `consistent_index`.
pub fn export_meta(store: &dyn ReadStore) -> Result<Pairs, CorruptStore> {
    let compacted = compacted_revision(store).map_err(CorruptStore)?;
    if compacted == NEVER_COMPACTED {
        return Ok(Vec::new());
    }
    let rev = revkey::encode(Revision::new(compacted, 0), false);
    Ok(vec![(FINISHED_COMPACT_KEY.to_vec(), rev.clone()), (SCHEDULED_COMPACT_KEY.to_vec(), rev)])
}

/// The store's revision, compaction, live key count and lease count (the key and lease counts
/// read the `k/` and `L/` tables through).
pub fn summary(store: &dyn ReadStore) -> Result<Summary, CorruptStore> {
    let count = |prefix: &[u8], live_only: bool| -> Result<u64, CorruptStore> {
        let mut pager = Pager::new(store, prefix.to_vec(), prefix_end(prefix));
        let mut n = 0u64;
        while let Some((_, v)) = pager.next_pair() {
            if !live_only || live_of(&v).map_err(CorruptStore)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    };
    Ok(Summary {
        revision: current_revision(store).map_err(CorruptStore)?,
        compact_revision: compacted_revision(store).map_err(CorruptStore)?,
        keys: count(KEYS, true)?,
        leases: count(LEASES, false)?,
    })
}
