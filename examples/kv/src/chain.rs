//! Each key's history as a skip list through the `h/` table, so that a put writes two rows
//! (its change and the key's row) whatever the key's history, and a read at a past revision
//! still finds the key's newest change at or below it in O(log versions) gets.
//!
//! A change's *level* is the number of trailing zero bits of its main revision (so levels are
//! as balanced as the revisions a key is written at, and depend on nothing but the revision).
//! Change `x` links, for each level `j <= level(x)`, to the key's newest earlier change of level
//! `>= j`; the key's row keeps the same for every level (its *fingers*: the newest change of
//! level `>= j`, the first being the newest change). Links are revisions, so a search compares
//! them without reading anything and reads a change only to step onto it.
//!
//! Compaction to `C` deletes changes, never rewrites them, so links can point at rows that are
//! gone: only ever at or below `C`, where a search at a readable revision (`>= C`) never steps
//! (it steps only onto changes newer than the revision it reads at). The one change at or
//! below `C` a read can land on is the key's newest there, which compaction keeps unless it is
//! a deletion: a link to a missing row therefore reads as "no value".

use wasmraft_guest_sdk::{ReadStore, Store};

use crate::errors::corrupt;
use crate::layout::{self, history_key};
use crate::record::{KeyRow, decode_change, decode_key_row, encode_change, encode_key_row_parts};
use crate::revision::Revision;

/// The level of a change at `rev`.
fn level(rev: Revision) -> usize {
    rev.main.trailing_zeros().min(63) as usize
}

/// The key's row, if it has one.
pub fn key_row(store: &dyn ReadStore, key: &[u8]) -> Result<Option<KeyRow>, String> {
    store.get(&layout::key_row(key)).map(|v| decode_key_row(&v)).transpose()
}

/// Records a change of `key` at `rev` on top of the fingers of its row (empty: the key has no
/// row): the `h/` row and the new `k/` row, the only two writes. `payload` is the put's
/// encoded KeyValue, or `None` for a deletion.
pub fn append(store: &mut dyn Store, key: &[u8], mut fingers: Vec<Revision>, rev: Revision, payload: Option<&[u8]>) {
    let level = level(rev);
    let links = &fingers[..fingers.len().min(level + 1)];
    store.put(&history_key(rev), &encode_change(payload.is_none(), links, payload.unwrap_or(key)));
    if fingers.len() <= level {
        fingers.resize(level + 1, rev);
    }
    fingers[..=level].fill(rev);
    store.put(&layout::key_row(key), &encode_key_row_parts(payload, &fingers));
}

/// The key's newest change with a main revision at or below `at`, if any: a skip-list search
/// from the row's fingers down to level 0.
pub fn newest_at(store: &dyn ReadStore, row: &KeyRow, at: i64) -> Result<Option<Revision>, String> {
    let mut links = row.fingers.clone();
    let mut j = links.len();
    while j > 0 {
        j -= 1;
        while let Some(&next) = links.get(j)
            && next.main > at
        {
            let bytes = store.get(&history_key(next)).ok_or_else(|| corrupt("a key's change is missing"))?;
            links = decode_change(&bytes)?.links;
        }
    }
    Ok(links.first().copied())
}

/// The key's encoded KeyValue at revision `at` (`at` at or above the compaction), if it
/// existed then.
pub fn value_at(store: &dyn ReadStore, row: &KeyRow, at: i64) -> Result<Option<Vec<u8>>, String> {
    if row.newest().main <= at {
        return Ok(row.live.clone());
    }
    match newest_at(store, row, at)? {
        Some(rev) => value_of(store, rev),
        None => Ok(None),
    }
}

/// The encoded KeyValue a change wrote; `None` for a deletion, or a change compaction dropped.
pub fn value_of(store: &dyn ReadStore, rev: Revision) -> Result<Option<Vec<u8>>, String> {
    let Some(bytes) = store.get(&history_key(rev)) else { return Ok(None) };
    let change = decode_change(&bytes)?;
    Ok((!change.tombstone).then(|| change.payload.to_vec()))
}
