//! In: etcd 3.4/3.5's backend buckets into the guest's tables, for `wasmraft snapshot restore`
//! of a file real etcd saved.
//!
//! The buckets are fed pair by pair (any bucket order, each bucket's pairs in bbolt order) and
//! written straight into the store, so only a page's worth is held; [`Importer::finish`] then
//! does what etcd's `store.restore` does after reading the buckets. The tables it leaves are
//! exactly those the guest's own commands would have left for the same history:
//!
//! - each `key` pair becomes the change it records (`h/`, `k/` and the `K/` attachment,
//!   through the same table helpers the write path uses), checked against the key's live value;
//! - the current revision is the last pair's main revision, or the compaction's when that is
//!   newer (etcd: "keys in the range [compacted revision -N, compaction] might all be deleted");
//! - a compaction etcd had scheduled but not finished (`scheduledCompactRev` above
//!   `finishedCompactRev`) is run by the guest's own compaction, as etcd's restore resumes it;
//! - keys attached to a lease the `lease` bucket does not hold stay unattached (etcd's restore
//!   logs "failed to attach a lease" and goes on); [`ImportSummary::unattached_keys`] counts them.
//!
//! A finished compaction left, of each key, only its newest revision at or below the compaction
//! (none if that was a deletion) and everything after it — exactly what the guest's compaction
//! leaves — so the imported history needs no compacting of its own; `finish` checks that it
//! holds nothing more (but for the deletions made exactly at the compaction revision, which
//! etcd 3.4.3x/3.5.1x keep and the guest's compaction drops: `finish` drops them). A history that starts in the middle (a key's first pair continuing
//! versions the file does not hold, a deletion of a key that is not live) is accepted only at or
//! below a compaction that explains it.
//!
//! Stricter than etcd, which restores whatever decodes: bad keys, values that do not decode,
//! revisions out of order, a put whose `mod_revision` is not its revision, versions that break
//! a key's history — each is an error naming the bucket and the key, never a panic.

use prost::Message;
use wasmraft_guest_sdk::Store;
use wasmraft_proto::etcdserverpb::CompactionRequest;
use wasmraft_proto::leasepb::Lease;
use wasmraft_proto::mvccpb::KeyValue;
use wasmraft_proto::wasmraft::v1::LeaseRecord;

use super::error::{CorruptStore, ImportError};
use super::{FINISHED_COMPACT_KEY, SCHEDULED_COMPACT_KEY, revkey};
use crate::chain;
use crate::compact::compact;
use crate::errors::corrupt;
use crate::layout::{HISTORY, LEASE_KEYS, history_from, history_key, key_row, lease_key, parse_history_key, successor};
use crate::lease::{self, MAX_LEASE_TTL, NO_LEASE};
use crate::meta::{INITIAL_REVISION, NEVER_COMPACTED, keep_revision, set_compacted_revision};
use crate::read::decode_kv;
use crate::record::{KeyRow, decode_change};
use crate::revision::Revision;
use crate::write::{COMPACT_REVISION, CURRENT_REVISION, KEYS_TOTAL};

/// What an import built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    /// The store's revision.
    pub revision: i64,
    /// The compaction's revision (-1: never compacted).
    pub compact_revision: i64,
    /// Live keys.
    pub keys: u64,
    pub leases: u64,
    /// Pairs of the `key` bucket imported.
    pub pairs: u64,
    /// The unfinished compaction `finish` ran, if any.
    pub resumed_compaction: Option<i64>,
    /// Live keys whose lease the `lease` bucket does not hold: kept, but attached to nothing.
    pub unattached_keys: u64,
}

/// Builds the guest's tables from etcd's buckets; see the module docs.
pub struct Importer<'s> {
    store: &'s mut dyn Store,
    last: Option<Revision>,
    last_lease: Option<[u8; 8]>,
    finished: Option<i64>,
    scheduled: Option<i64>,
    /// The newest pair whose earlier history the file does not hold, and what is missing: only
    /// a compaction at or above it explains one.
    gap: Option<(Revision, String)>,
    keys: u64,
    leases: u64,
    pairs: u64,
}

impl<'s> Importer<'s> {
    /// Starts an import into `store`, which must be empty (a fresh state).
    pub fn new(store: &'s mut dyn Store) -> Result<Self, ImportError> {
        if let Some((key, _)) = store.scan_page(b"", b"", 1, false).into_iter().next() {
            return Err(ImportError::NotEmpty(format!("key {}", String::from_utf8_lossy(&key))));
        }
        Ok(Importer {
            store,
            last: None,
            last_lease: None,
            finished: None,
            scheduled: None,
            gap: None,
            keys: 0,
            leases: 0,
            pairs: 0,
        })
    }

    /// One pair of the `key` bucket; pairs must come in bbolt order (ascending revision).
    pub fn key(&mut self, k: &[u8], v: &[u8]) -> Result<(), ImportError> {
        let bad = |reason: String| ImportError::KeyBucket { key: revkey::display(k), reason };
        let (rev, tombstone) = revkey::decode(k).map_err(|r| bad(format!("not a revision key: {r}")))?;
        if rev.main < 1 || rev.sub < 0 {
            return Err(bad("main revisions start at 1 and sub revisions at 0".into()));
        }
        if let Some(last) = self.last
            && rev <= last
        {
            return Err(bad(format!(
                "not after the previous pair's revision {}_{} (pairs come in revision order, one per revision)",
                last.main, last.sub
            )));
        }
        let kv = KeyValue::decode(v).map_err(|e| bad(format!("the value is not an mvccpb.KeyValue: {e}")))?;
        if kv.key.is_empty() {
            return Err(bad("the KeyValue's key is empty".into()));
        }
        let row = chain::key_row(&*self.store, &kv.key).map_err(CorruptStore)?;
        let live = match row.as_ref().and_then(|r| r.live.as_deref()) {
            Some(bytes) => Some(decode_kv(bytes).map_err(CorruptStore)?),
            None => None,
        };
        if tombstone {
            self.delete(rev, kv, row, live).map_err(bad)?;
        } else {
            self.put(rev, kv, row, live, v).map_err(bad)?;
        }
        self.last = Some(rev);
        self.pairs += 1;
        Ok(())
    }

    fn delete(
        &mut self,
        rev: Revision,
        kv: KeyValue,
        row: Option<KeyRow>,
        live: Option<KeyValue>,
    ) -> Result<(), String> {
        let key = kv.key;
        if kv.create_revision != 0 || kv.mod_revision != 0 || kv.version != 0 || !kv.value.is_empty() || kv.lease != 0 {
            return Err("a deletion's KeyValue carries more than its key".into());
        }
        match live {
            Some(prev) => {
                lease::move_key(self.store, &key, prev.lease, NO_LEASE);
                self.keys -= 1;
            }
            None => self.gap = Some((rev, format!("the deletion of {}, which is not live", show(&key)))),
        }
        chain::append(self.store, &key, row.map(|r| r.fingers).unwrap_or_default(), rev, None);
        Ok(())
    }

    /// `encoded`: the pair's value, `kv` as etcd encoded it (stored verbatim, so the export
    /// gives etcd's bytes back).
    fn put(
        &mut self,
        rev: Revision,
        kv: KeyValue,
        row: Option<KeyRow>,
        live: Option<KeyValue>,
        encoded: &[u8],
    ) -> Result<(), String> {
        if kv.mod_revision != rev.main {
            return Err(format!("the KeyValue's mod_revision {} is not the pair's revision", kv.mod_revision));
        }
        if kv.version < 1 {
            return Err(format!("the KeyValue's version {} is below 1", kv.version));
        }
        if kv.create_revision < 1 || kv.create_revision > kv.mod_revision {
            return Err(format!(
                "the KeyValue's create_revision {} is not between 1 and its mod_revision",
                kv.create_revision
            ));
        }
        let continues = match &live {
            Some(prev) => prev.create_revision == kv.create_revision && prev.version.checked_add(1) == Some(kv.version),
            None => kv.create_revision == rev.main && kv.version == 1,
        };
        if !continues {
            let what = match &live {
                Some(prev) => format!(
                    "{} at version {} (created at {}), which does not follow its live version {} (created at {})",
                    show(&kv.key),
                    kv.version,
                    kv.create_revision,
                    prev.version,
                    prev.create_revision
                ),
                None => format!(
                    "{} at version {} (created at {}) without its earlier revisions",
                    show(&kv.key),
                    kv.version,
                    kv.create_revision
                ),
            };
            self.gap = Some((rev, what));
        }
        if live.is_none() {
            self.keys += 1;
        }
        lease::move_key(self.store, &kv.key, live.map_or(NO_LEASE, |p| p.lease), kv.lease);
        chain::append(self.store, &kv.key, row.map(|r| r.fingers).unwrap_or_default(), rev, Some(encoded));
        Ok(())
    }

    /// One pair of the `lease` bucket; pairs must come in bbolt order (ascending id bytes).
    pub fn lease(&mut self, k: &[u8], v: &[u8]) -> Result<(), ImportError> {
        let bad = |reason: String| ImportError::LeaseBucket { key: revkey::hex(k), reason };
        let id_bytes: [u8; 8] =
            k.try_into().map_err(|_| bad(format!("{} bytes, not 8 (a lease id, big-endian)", k.len())))?;
        if let Some(last) = self.last_lease
            && id_bytes <= last
        {
            return Err(bad(format!(
                "not after the previous lease {} (ids come in order, once each)",
                revkey::hex(&last)
            )));
        }
        let lease = Lease::decode(v).map_err(|e| bad(format!("the value is not a leasepb.Lease: {e}")))?;
        if lease.id != i64::from_be_bytes(id_bytes) {
            return Err(bad(format!("the value's ID {:x} is not the key's", lease.id)));
        }
        if lease.id == NO_LEASE {
            return Err(bad("lease id 0 is etcd's NoLease, never a granted lease".into()));
        }
        if lease.ttl < 1 || lease.ttl > MAX_LEASE_TTL {
            return Err(bad(format!("TTL {} is not between 1 and etcd's MaxLeaseTTL {MAX_LEASE_TTL}", lease.ttl)));
        }
        if lease.remaining_ttl < 0 {
            return Err(bad(format!("remaining TTL {} is negative", lease.remaining_ttl)));
        }
        let rec = LeaseRecord { id: lease.id, ttl: lease.ttl, remaining_ttl: lease.remaining_ttl };
        self.store.put(&lease_key(lease.id), &rec.encode_to_vec());
        self.last_lease = Some(id_bytes);
        self.leases += 1;
        Ok(())
    }

    /// One pair of the `meta` bucket. Only the compaction keys mean something to the KV guest;
    /// the rest (`consistent_index`, and 3.5's `term`, `confState`, …) are the host's and are
    /// ignored here.
    pub fn meta(&mut self, k: &[u8], v: &[u8]) -> Result<(), ImportError> {
        let slot = match k {
            SCHEDULED_COMPACT_KEY => &mut self.scheduled,
            FINISHED_COMPACT_KEY => &mut self.finished,
            _ => return Ok(()),
        };
        let bad = |reason: String| ImportError::MetaBucket { key: String::from_utf8_lossy(k).into_owned(), reason };
        if slot.is_some() {
            return Err(bad("given twice".into()));
        }
        let (rev, tombstone) = revkey::decode(v).map_err(|r| bad(format!("not a revision key: {r}")))?;
        if tombstone || rev.sub != 0 || rev.main < 0 {
            return Err(bad(format!("{} is not a compaction revision (main_0)", revkey::display(v))));
        }
        *slot = Some(rev.main);
        Ok(())
    }

    /// Checks the buckets against each other and completes the tables; see the module docs.
    pub fn finish(self) -> Result<ImportSummary, ImportError> {
        let compacted = self.finished.unwrap_or(NEVER_COMPACTED);
        let resume = self.scheduled.filter(|&s| s > compacted);
        // etcd's restore: the last pair's revision, or the compaction's if everything up to it
        // was compacted away. A resumed compaction's revision counts too (etcd would refuse to
        // resume it as a "future revision" and leave it pending forever).
        let last = self.last.map_or(INITIAL_REVISION, |r| r.main);
        let revision = last.max(compacted).max(resume.unwrap_or(NEVER_COMPACTED));
        if let Some((rev, what)) = &self.gap {
            let covered = compacted.max(resume.unwrap_or(NEVER_COMPACTED));
            if rev.main > covered {
                return Err(ImportError::Inconsistent(format!(
                    "the \"key\" bucket holds, at revision {}_{}, {what}; no compaction in the \"meta\" bucket covers that revision (finished: {}, scheduled: {})",
                    rev.main,
                    rev.sub,
                    opt(self.finished),
                    opt(self.scheduled)
                )));
            }
        }
        if compacted >= 0 {
            check_compacted(self.store, compacted)?;
        }
        if revision > INITIAL_REVISION {
            keep_revision(self.store, revision).map_err(CorruptStore)?;
            self.store.metric_set(CURRENT_REVISION, revision);
        }
        if self.finished.is_some() {
            set_compacted_revision(self.store, compacted);
            self.store.metric_set(COMPACT_REVISION, compacted);
        }
        // The values etcd's mvcc gauges take when etcd opens this file: the store's first
        // applied command carries on from them.
        if self.keys > 0 {
            self.store.metric_add(KEYS_TOTAL, i64::try_from(self.keys).unwrap_or(i64::MAX));
        }
        if let Some(rev) = resume {
            compact(self.store, &CompactionRequest { revision: rev, physical: true }).map_err(CorruptStore)?;
        }
        let unattached = detach_unknown_leases(self.store)?;
        Ok(ImportSummary {
            revision,
            compact_revision: resume.unwrap_or(compacted),
            keys: self.keys,
            leases: self.leases,
            pairs: self.pairs,
            resumed_compaction: resume,
            unattached_keys: unattached,
        })
    }
}

/// A finished compaction to `compacted` leaves each key at most its newest revision at or below
/// it, and never a deletion there: what more the history holds, the file should not. Except
/// that etcd 3.4.3x and 3.5.1x (`keyIndex.doCompact` with `tomb >= atRev`) keep a deletion made
/// exactly at the compaction revision, alone; the guest's compaction drops it, so it goes here.
fn check_compacted(store: &mut dyn Store, compacted: i64) -> Result<(), ImportError> {
    let end = history_from(compacted.saturating_add(1));
    let mut start = HISTORY.to_vec();
    loop {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { return Ok(()) };
        start = successor(last);
        for (stored, bytes) in page {
            let rev = parse_history_key(&stored).ok_or_else(|| CorruptStore(corrupt("history key")))?;
            let change = decode_change(&bytes).map_err(CorruptStore)?;
            let key = if change.tombstone {
                change.payload.to_vec()
            } else {
                decode_kv(change.payload).map_err(CorruptStore)?.key
            };
            // An import links each change to the key's previous pair, all of which it wrote.
            if let Some(&older) = change.links.first() {
                return Err(ImportError::Inconsistent(format!(
                    "the \"key\" bucket holds {} at revisions {}_{} and {}_{}, both at or below the finished compaction {compacted}, which keeps only the newest",
                    show(&key),
                    older.main,
                    older.sub,
                    rev.main,
                    rev.sub
                )));
            }
            if !change.tombstone {
                continue;
            }
            if rev.main != compacted {
                return Err(ImportError::Inconsistent(format!(
                    "the \"key\" bucket holds the deletion of {} at revision {}_{}, below the finished compaction {compacted}, which removes it",
                    show(&key),
                    rev.main,
                    rev.sub
                )));
            }
            store.delete(&history_key(rev));
            if chain::key_row(&*store, &key).map_err(CorruptStore)?.is_some_and(|row| row.newest() == rev) {
                store.delete(&key_row(&key));
            }
        }
    }
}

/// Removes the `K/` attachments to leases the `L/` table does not hold; returns how many.
fn detach_unknown_leases(store: &mut dyn Store) -> Result<u64, CorruptStore> {
    let end = wasmraft_guest_sdk::prefix_end(LEASE_KEYS);
    let mut start = LEASE_KEYS.to_vec();
    let mut checked: Option<([u8; 8], bool)> = None;
    let mut removed = 0;
    loop {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { return Ok(removed) };
        start = successor(last);
        for (stored, _) in page {
            let id: [u8; 8] = stored
                .get(LEASE_KEYS.len()..LEASE_KEYS.len() + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| CorruptStore(corrupt("lease attachment key")))?;
            let granted = match checked {
                Some((known, granted)) if known == id => granted,
                _ => {
                    let granted = lease::exists(&*store, i64::from_be_bytes(id));
                    checked = Some((id, granted));
                    granted
                }
            };
            if !granted {
                store.delete(&stored);
                removed += 1;
            }
        }
    }
}

fn show(key: &[u8]) -> String {
    format!("key {:?}", String::from_utf8_lossy(key))
}

fn opt(rev: Option<i64>) -> String {
    rev.map_or_else(|| "none".to_string(), |r| r.to_string())
}
