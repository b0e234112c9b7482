//! The store-wide counters: the current revision and the compacted revision.
//!
//! A write does not store the current revision: it is the main revision of the newest `h/` row,
//! which every change writes anyway, found by one reverse step of a scan. Only what can leave
//! that row older than the store (a compaction dropping a deletion, an import ending at a
//! compaction) writes the [`REVISION_FLOOR`] above it, which the same step finds first and the
//! next write removes.

use wasmraft_guest_sdk::{ReadStore, Store};

use crate::errors::corrupt;
use crate::layout::{HISTORY, META_COMPACTED, REVISION_FLOOR, parse_history_key, successor};

/// etcd's store starts at revision 1, so the first write is revision 2.
pub const INITIAL_REVISION: i64 = 1;
/// etcd's `compactMainRev` before any compaction: every revision is readable, and a compaction
/// to 0 is accepted once (as in etcd).
pub const NEVER_COMPACTED: i64 = -1;

/// The revisions a read is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// The newest revision visible (inside a write transaction that already changed
    /// something, the one it is writing).
    pub current: i64,
    /// Reads below this fail; reads at it succeed.
    pub compacted: i64,
}

impl View {
    pub fn load(store: &dyn ReadStore) -> Result<View, String> {
        Ok(View { current: current_revision(store)?, compacted: compacted_revision(store)? })
    }
}

fn read_i64(store: &dyn ReadStore, key: &[u8], default: i64) -> Result<i64, String> {
    match store.get(key) {
        None => Ok(default),
        Some(v) => {
            let bytes: [u8; 8] =
                v.as_slice().try_into().map_err(|_| corrupt(format!("meta {}", String::from_utf8_lossy(key))))?;
            Ok(i64::from_be_bytes(bytes))
        }
    }
}

/// The current revision, and whether it is the floor's.
pub fn current(store: &dyn ReadStore) -> Result<(i64, bool), String> {
    match store.scan_page(HISTORY, &successor(REVISION_FLOOR), 1, true).into_iter().next() {
        None => Ok((INITIAL_REVISION, false)),
        Some((stored, value)) if stored == REVISION_FLOOR => {
            let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| corrupt("revision floor"))?;
            Ok((i64::from_be_bytes(bytes), true))
        }
        Some((stored, _)) => Ok((parse_history_key(&stored).ok_or_else(|| corrupt("history key"))?.main, false)),
    }
}

pub fn current_revision(store: &dyn ReadStore) -> Result<i64, String> {
    Ok(current(store)?.0)
}

pub fn compacted_revision(store: &dyn ReadStore) -> Result<i64, String> {
    read_i64(store, META_COMPACTED, NEVER_COMPACTED)
}

/// Keeps the store's revision at `rev` when the newest `h/` row is older (see the module docs).
pub fn keep_revision(store: &mut dyn Store, rev: i64) -> Result<(), String> {
    let newest = match store.scan_page(HISTORY, REVISION_FLOOR, 1, true).into_iter().next() {
        Some((stored, _)) => parse_history_key(&stored).ok_or_else(|| corrupt("history key"))?.main,
        None => INITIAL_REVISION,
    };
    if rev > newest {
        store.put(REVISION_FLOOR, &rev.to_be_bytes());
    } else {
        store.delete(REVISION_FLOOR);
    }
    Ok(())
}

pub fn set_compacted_revision(store: &mut dyn Store, rev: i64) {
    store.put(META_COMPACTED, &rev.to_be_bytes());
}
