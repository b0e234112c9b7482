//! A write transaction: etcd's `storeTxnWrite`. Every change it makes gets main revision
//! `begin + 1` and the next sub revision; the store's revision moves to `begin + 1` when it
//! finishes, and only if something changed.
//!
//! Each change writes two rows — the change itself (`h/<revision>`) and the key's row (`k/<key>`,
//! its live value and where its history is: [`crate::chain`]) — and emits its watch event. The
//! store's revision is the newest change's, so finishing writes nothing more. The event's `prev_kv` is the
//! key as it was *before the transaction* (what etcd's watch server reads at `revision - 1`),
//! so two writes to one key in a transaction both report the pre-transaction value.
//!
//! Every change also keeps the lease attachments (`K/`) in step with the key's `lease` field, as
//! etcd's `storeTxnWrite.put`/`delete` detach a key from its old lease and attach it to the new.

use std::collections::BTreeSet;

use prost::Message;
use wasmraft_guest_sdk::{ReadStore, Store};
use wasmraft_proto::mvccpb::{Event, KeyValue, event::EventType};

use crate::chain;
use crate::errors::corrupt;
use crate::layout::REVISION_FLOOR;
use crate::layout::{Span, key_row, parse_key_row, successor};
use crate::lease::{self, NO_LEASE};
use crate::meta::{self, View, compacted_revision};
use crate::read::{decode_kv, get};
use crate::record::decode_key_row_parts;
use crate::revision::Revision;

/// A key as a write finds it: its row's fingers (none if it never existed or compaction removed
/// its history) and its live value, decoded.
pub struct KeyState {
    pub fingers: Vec<Revision>,
    pub live: Option<KeyValue>,
}

pub struct WriteTxn<'s> {
    store: &'s mut dyn Store,
    /// The store's revision when the transaction began; it writes `begin + 1`.
    begin: i64,
    /// Whether `begin` is the revision floor's, which the first change makes redundant.
    floor: bool,
    /// Changes so far: the next sub revision.
    changes: i64,
    /// Keys written so far. A key's first write finds its pre-transaction value live; later
    /// writes look it up in the history at `begin` (holding keys, not values, keeps a large
    /// transaction's memory small).
    touched: BTreeSet<Vec<u8>>,
    /// etcd's `metricsTxnWrite` counts: `put` and `delete_range` calls, exported at `finish`.
    puts: i64,
    deletes: i64,
    /// Keys created less keys deleted so far, for etcd's `keys_total` gauge.
    keys: i64,
}

/// etcd 3.4's mvcc metric names (mvcc/metrics.go), exported through the host's `/metrics`.
pub const PUT_TOTAL: &str = "etcd_mvcc_put_total";
pub const DELETE_TOTAL: &str = "etcd_mvcc_delete_total";
pub const TXN_TOTAL: &str = "etcd_mvcc_txn_total";
pub const CURRENT_REVISION: &str = "etcd_debugging_mvcc_current_revision";
pub const COMPACT_REVISION: &str = "etcd_debugging_mvcc_compact_revision";
/// Live keys (etcd's key index counts a key when its generation starts and stops at its
/// tombstone). A gauge despite its name: the host serves it as etcd does.
pub const KEYS_TOTAL: &str = "etcd_debugging_mvcc_keys_total";

impl<'s> WriteTxn<'s> {
    pub fn begin(store: &'s mut dyn Store) -> Result<Self, String> {
        let (begin, floor) = meta::current(&*store)?;
        Ok(WriteTxn { store, begin, floor, changes: 0, touched: BTreeSet::new(), puts: 0, deletes: 0, keys: 0 })
    }

    /// The revision reads see and responses report: `begin + 1` once something changed.
    pub fn current(&self) -> i64 {
        if self.changes > 0 { self.begin + 1 } else { self.begin }
    }

    /// The revisions a read inside the transaction is checked against (the compaction is read
    /// here, not at `begin`: a plain put never needs it).
    pub fn view(&self) -> Result<View, String> {
        Ok(View { current: self.current(), compacted: compacted_revision(self.store())? })
    }

    pub fn store(&self) -> &dyn ReadStore {
        &*self.store
    }

    /// The key as a write to it now finds it (this transaction's earlier writes included).
    pub fn key(&self, key: &[u8]) -> Result<KeyState, String> {
        let Some(bytes) = self.store.get(&key_row(key)) else {
            return Ok(KeyState { fingers: Vec::new(), live: None });
        };
        let (live, fingers) = decode_key_row_parts(&bytes)?;
        Ok(KeyState { fingers, live: live.map(decode_kv).transpose()? })
    }

    /// Sets `key`; returns the new KeyValue. `state` must be [`WriteTxn::key`]'s answer for the
    /// key (the caller usually needs it too, so it is read once): create revision and version
    /// carry on from its live value, including from a write earlier in this transaction.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64, state: KeyState) -> Result<KeyValue, String> {
        let KeyState { fingers, live: prev } = state;
        self.puts += 1;
        if prev.is_none() {
            self.keys += 1;
        }
        let rev = self.next_revision();
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: prev.as_ref().map_or(0, |p| p.version) + 1,
            value,
            lease,
        };
        let encoded = kv.encode_to_vec();
        lease::move_key(self.store, key, prev.as_ref().map_or(NO_LEASE, |p| p.lease), lease);
        chain::append(self.store, key, fingers, rev, Some(&encoded));
        let prev_kv = self.before_txn(key, prev)?;
        self.emit(EventType::Put, kv.clone(), prev_kv);
        Ok(kv)
    }

    /// Deletes every live key in `span`, in key order; returns how many, and the deleted
    /// KeyValues if `keep` (else the list stays empty, so a large delete holds no values).
    pub fn delete_range(&mut self, span: &Span, keep: bool) -> Result<(i64, Vec<KeyValue>), String> {
        // etcd counts the call, whatever it deletes.
        self.deletes += 1;
        let mut deleted = Vec::new();
        let mut count = 0;
        if let Span::Single(key) = span {
            let KeyState { fingers, live } = self.key(key)?;
            if let Some(kv) = live {
                self.delete(fingers, kv, keep, &mut deleted)?;
                count += 1;
            }
            return Ok((count, deleted));
        }
        // Deleting while paging: a page is read, then deleted, then the scan resumes after it.
        // (A deleted key keeps its row, marked deleted, so the scan passes it again never.)
        let (mut start, end) = span.key_range();
        loop {
            if start >= end {
                break;
            }
            let page = self.store.scan_page(&start, &end, 0, false);
            let Some((last, _)) = page.last() else { break };
            start = successor(last);
            for (stored, bytes) in page {
                let (live, fingers) = decode_key_row_parts(&bytes)?;
                let Some(live) = live else { continue };
                let kv = decode_kv(live)?;
                if parse_key_row(&stored) != Some(kv.key.as_slice()) {
                    return Err(corrupt("live entry under the wrong key"));
                }
                self.delete(fingers, kv, keep, &mut deleted)?;
                count += 1;
            }
        }
        Ok((count, deleted))
    }

    /// Tombstones a live key (`fingers`, its row's; `prev`, its live value), adding it to
    /// `deleted` if `keep`.
    fn delete(
        &mut self,
        fingers: Vec<Revision>,
        prev: KeyValue,
        keep: bool,
        deleted: &mut Vec<KeyValue>,
    ) -> Result<(), String> {
        let rev = self.next_revision();
        self.keys -= 1;
        let key = prev.key.clone();
        chain::append(self.store, &key, fingers, rev, None);
        lease::move_key(self.store, &key, prev.lease, NO_LEASE);
        if keep {
            deleted.push(prev.clone());
        }
        let prev_kv = self.before_txn(&key, Some(prev))?;
        let kv = KeyValue { key, mod_revision: rev.main, ..Default::default() };
        self.emit(EventType::Delete, kv, prev_kv);
        Ok(())
    }

    /// `key` as it was when the transaction began, given `live`, its value just before the
    /// current write.
    fn before_txn(&mut self, key: &[u8], live: Option<KeyValue>) -> Result<Option<KeyValue>, String> {
        if self.touched.insert(key.to_vec()) {
            return Ok(live);
        }
        get(self.store(), key, self.begin, self.begin + 1)
    }

    fn next_revision(&mut self) -> Revision {
        let rev = Revision::new(self.begin + 1, self.changes);
        self.changes += 1;
        rev
    }

    fn emit(&mut self, kind: EventType, kv: KeyValue, prev_kv: Option<KeyValue>) {
        let event = Event { r#type: kind as i32, kv: Some(kv), prev_kv };
        self.store.emit(&event.encode_to_vec());
    }

    /// `put` and `delete_range` calls so far (etcd's `metricsTxnWrite` counts, for its
    /// `etcd_mvcc_txn_total`).
    pub fn writes(&self) -> i64 {
        self.puts + self.deletes
    }

    /// Commits the revision and exports the transaction's metrics; returns the store's
    /// revision afterwards.
    pub fn finish(self) -> i64 {
        let current = self.current();
        if self.puts > 0 {
            self.store.metric_add(PUT_TOTAL, self.puts);
        }
        if self.deletes > 0 {
            self.store.metric_add(DELETE_TOTAL, self.deletes);
        }
        if self.keys != 0 {
            self.store.metric_add(KEYS_TOTAL, self.keys);
        }
        if self.changes > 0 {
            if self.floor {
                self.store.delete(REVISION_FLOOR);
            }
            self.store.metric_set(CURRENT_REVISION, current);
        }
        current
    }
}
