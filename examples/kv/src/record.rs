//! The values of the history tables.
//!
//! - `i/<escaped key><revision>` → `[PUT] ‖ mvccpb.KeyValue` or `[TOMBSTONE]`: what the key
//!   became at that revision. A put carries the whole KeyValue (create revision, version, lease
//!   included), so a read at a past revision needs only the newest record at or below it.
//! - `r/<revision>` → `[PUT | TOMBSTONE] ‖ key`: which key changed at each revision, in
//!   revision order. Compaction walks it to find what a compaction window touched without
//!   scanning every key, and a watch replay can walk it from any revision.

use crate::errors::corrupt;

pub const PUT: u8 = b'p';
pub const TOMBSTONE: u8 = b't';

/// One stored change to a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// The encoded `mvccpb.KeyValue` the key was set to.
    Put(&'a [u8]),
    Tombstone,
}

pub fn encode_put(kv: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + kv.len());
    out.push(PUT);
    out.extend_from_slice(kv);
    out
}

pub fn encode_tombstone() -> Vec<u8> {
    vec![TOMBSTONE]
}

pub fn decode_change(value: &[u8]) -> Result<Change<'_>, String> {
    match value.split_first() {
        Some((&PUT, kv)) => Ok(Change::Put(kv)),
        Some((&TOMBSTONE, [])) => Ok(Change::Tombstone),
        _ => Err(corrupt("unrecognised history record")),
    }
}

/// The `r/` value: the kind of change and the user key.
pub fn encode_revision_entry(kind: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(kind);
    out.extend_from_slice(key);
    out
}

/// `(is_tombstone, key)` of an `r/` value.
pub fn decode_revision_entry(value: &[u8]) -> Result<(bool, &[u8]), String> {
    match value.split_first() {
        Some((&PUT, key)) => Ok((false, key)),
        Some((&TOMBSTONE, key)) => Ok((true, key)),
        _ => Err(corrupt("unrecognised revision entry")),
    }
}
