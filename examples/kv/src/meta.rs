//! The store-wide counters: the current revision and the compacted revision.

use wasmraft_guest_sdk::{ReadStore, Store};

use crate::errors::corrupt;
use crate::layout::{META_COMPACTED, META_REVISION};

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

pub fn current_revision(store: &dyn ReadStore) -> Result<i64, String> {
    read_i64(store, META_REVISION, INITIAL_REVISION)
}

pub fn compacted_revision(store: &dyn ReadStore) -> Result<i64, String> {
    read_i64(store, META_COMPACTED, NEVER_COMPACTED)
}

pub fn set_current_revision(store: &mut dyn Store, rev: i64) {
    store.put(META_REVISION, &rev.to_be_bytes());
}

pub fn set_compacted_revision(store: &mut dyn Store, rev: i64) {
    store.put(META_COMPACTED, &rev.to_be_bytes());
}
