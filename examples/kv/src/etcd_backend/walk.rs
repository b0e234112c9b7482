//! The guest's history seen as etcd's `key` bucket: one pair per stored change, in revision
//! order, with etcd's key and value bytes. The `r/` revision log is already in revision order
//! (bbolt's byte order of revision keys), so the walk follows it and reads each put's
//! `mvccpb.KeyValue` from the key's `i/` history; a deletion's value is `KeyValue{key}` alone,
//! as etcd's `storeTxnWrite.delete` writes it. Paged: nothing but the current page is held.

use prost::Message;
use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::mvccpb::KeyValue;

use super::error::CorruptStore;
use super::revkey;
use crate::errors::corrupt;
use crate::layout::{REVISIONS, index_key, parse_revision_key, revision_key};
use crate::pager::Pager;
use crate::record::{Change, decode_change, decode_revision_entry};
use crate::revision::Revision;

/// One pair of the `key` bucket.
pub struct Entry {
    pub rev: Revision,
    pub tombstone: bool,
    /// The user key that changed.
    pub key: Vec<u8>,
    /// The encoded `mvccpb.KeyValue`, etcd's value for the pair.
    pub value: Vec<u8>,
}

impl Entry {
    /// etcd's key for the pair.
    pub fn bucket_key(&self) -> Vec<u8> {
        revkey::encode(self.rev, self.tombstone)
    }
}

pub struct KeyBucketWalk<'a> {
    store: &'a dyn ReadStore,
    pager: Pager<'a>,
}

impl<'a> KeyBucketWalk<'a> {
    /// Every change with a main revision at or below `upto` (all of them when `None`).
    pub fn new(store: &'a dyn ReadStore, upto: Option<i64>) -> Self {
        let end = match upto {
            Some(rev) => revision_key(Revision::new(rev.saturating_add(1), 0)),
            None => wasmraft_guest_sdk::prefix_end(REVISIONS),
        };
        KeyBucketWalk { store, pager: Pager::new(store, REVISIONS.to_vec(), end) }
    }

    pub fn next_entry(&mut self) -> Result<Option<Entry>, CorruptStore> {
        let Some((stored, log)) = self.pager.next_pair() else { return Ok(None) };
        let rev = parse_revision_key(&stored).ok_or_else(|| CorruptStore(corrupt("revision key")))?;
        let (tombstone, key) = decode_revision_entry(&log).map_err(CorruptStore)?;
        let value = if tombstone {
            KeyValue { key: key.to_vec(), ..Default::default() }.encode_to_vec()
        } else {
            let record = self.store.get(&index_key(key, rev)).ok_or_else(|| {
                CorruptStore(corrupt(format!("revision {}_{} has no history record", rev.main, rev.sub)))
            })?;
            match decode_change(&record).map_err(CorruptStore)? {
                Change::Put(kv) => kv.to_vec(),
                Change::Tombstone => {
                    return Err(CorruptStore(corrupt("revision log says put, history says tombstone")));
                }
            }
        };
        Ok(Some(Entry { rev, tombstone, key: key.to_vec(), value }))
    }
}
