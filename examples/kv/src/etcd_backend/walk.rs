//! The guest's history seen as etcd's `key` bucket: one pair per stored change, in revision
//! order, with etcd's key and value bytes. The `h/` table is already that: keyed by revision
//! (bbolt's byte order of revision keys is revision order), a put's row holding etcd's value
//! verbatim; a deletion's value is `KeyValue{key}` alone, as etcd's `storeTxnWrite.delete`
//! writes it. Paged: nothing but the current page is held.

use prost::Message;
use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::mvccpb::KeyValue;

use super::error::CorruptStore;
use super::revkey;
use crate::errors::corrupt;
use crate::layout::{HISTORY, history_end, history_from, parse_history_key};
use crate::pager::Pager;
use crate::record::decode_change;
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
    pager: Pager<'a>,
}

impl<'a> KeyBucketWalk<'a> {
    /// Every change with a main revision at or below `upto` (all of them when `None`).
    pub fn new(store: &'a dyn ReadStore, upto: Option<i64>) -> Self {
        let end = match upto {
            Some(rev) => history_from(rev.saturating_add(1)),
            None => history_end(),
        };
        KeyBucketWalk { pager: Pager::new(store, HISTORY.to_vec(), end) }
    }

    pub fn next_entry(&mut self) -> Result<Option<Entry>, CorruptStore> {
        let Some((stored, bytes)) = self.pager.next_pair() else { return Ok(None) };
        let rev = parse_history_key(&stored).ok_or_else(|| CorruptStore(corrupt("history key")))?;
        let change = decode_change(&bytes).map_err(CorruptStore)?;
        let (key, value) = if change.tombstone {
            let key = change.payload.to_vec();
            let value = KeyValue { key: key.clone(), ..Default::default() }.encode_to_vec();
            (key, value)
        } else {
            let kv = KeyValue::decode(change.payload).map_err(|e| {
                CorruptStore(corrupt(format!("revision {}_{}: stored KeyValue: {e}", rev.main, rev.sub)))
            })?;
            (kv.key, change.payload.to_vec())
        };
        Ok(Some(Entry { rev, tombstone: change.tombstone, key, value }))
    }
}
