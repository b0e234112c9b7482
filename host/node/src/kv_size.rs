//! The backend size etcd's quota bounds (`--quota-backend-bytes`), counted rather than measured.
//!
//! etcd compares its bbolt file's pages in use with the quota: 20 KiB for a new member, growing
//! with the keys written. The state database's file is no measure of that: it starts at about
//! 1 MiB (it stores the guest module, which etcd has no counterpart of, and redb allocates in
//! regions), and grows in steps of hundreds of KiB — etcd's own tests set a quota of 13 pages
//! (53248 bytes), which that file exceeds before the first put.
//!
//! So the size the quota sees is counted: [`EMPTY_BACKEND_BYTES`] (a new etcd's backend) plus,
//! for every record of the guest's keyspace, its key, its value and [`ENTRY_OVERHEAD`] (bbolt's
//! leaf element header). The count changes with each write the apply thread commits, knows the
//! size of the value a write replaces from redb's `insert`/`remove` (no extra read), and is kept
//! in the `META` table with the state it describes, so it travels in snapshots and costs
//! nothing at start; a database without it (older, or restored from etcd's bbolt file) is
//! counted once when opened. Every member counts the same bytes at the same index.
//! docs/decisions.md, "The quota counts the keyspace, not the file", says why.

use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use wasmraft_storage::tables::{GUEST_KV, META, META_GUEST_KV_BYTES};

use crate::StateError;

/// What a new etcd 3.4 member's backend measures (five 4 KiB pages): the counted size of an
/// empty keyspace.
pub const EMPTY_BACKEND_BYTES: u64 = 20 * 1024;

/// Counted per record on top of its key and value: bbolt's leaf page element header.
pub const ENTRY_OVERHEAD: u64 = 16;

/// What one record of the keyspace counts for.
pub fn entry_bytes(key_len: usize, value_len: usize) -> u64 {
    key_len as u64 + value_len as u64 + ENTRY_OVERHEAD
}

/// The keyspace's counted bytes, as the last applied batch left them.
#[derive(Debug, Default)]
pub struct KvSize {
    bytes: AtomicU64,
}

impl KvSize {
    /// Reads the count recorded in the state database (see [`ensure`] for one that has none).
    pub fn load(db: &redb::Database) -> Result<KvSize, StateError> {
        Ok(KvSize { bytes: AtomicU64::new(read(db)?) })
    }

    /// The backend size the quota compares: an empty backend plus the keyspace's records.
    pub fn backend_bytes(&self) -> u64 {
        EMPTY_BACKEND_BYTES.saturating_add(self.bytes.load(Ordering::Relaxed))
    }

    pub(crate) fn keyspace_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn replace(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }
}

/// The count as an apply batch changes it.
pub(crate) struct StagedKvSize {
    pub bytes: u64,
    pub changed: bool,
}

impl StagedKvSize {
    /// A command's writes added (or, negative, freed) `delta` bytes.
    pub fn add(&mut self, delta: i64) {
        if delta != 0 {
            self.bytes = self.bytes.saturating_add_signed(delta);
            self.changed = true;
        }
    }

    /// Counts the keyspace anew (after a guest swap, whose migration wrote it wholesale).
    pub fn recount(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        self.bytes = count(txn)?;
        self.changed = true;
        Ok(())
    }

    /// Records the count in the batch's transaction, if the batch changed it.
    pub fn record(&self, meta: &mut redb::Table<&str, &[u8]>) -> Result<(), redb::Error> {
        if self.changed {
            meta.insert(META_GUEST_KV_BYTES, self.bytes.to_be_bytes().as_slice())?;
        }
        Ok(())
    }
}

/// Makes sure `txn`'s state records the count, counting the keyspace if it does not.
pub fn ensure(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let recorded = txn.open_table(META)?.get(META_GUEST_KV_BYTES)?.is_some();
    if !recorded {
        let bytes = count(txn)?;
        txn.open_table(META)?.insert(META_GUEST_KV_BYTES, bytes.to_be_bytes().as_slice())?;
    }
    Ok(())
}

/// The recorded count (0 when there is none).
fn read(db: &redb::Database) -> Result<u64, StateError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(match meta.get(META_GUEST_KV_BYTES)? {
        Some(v) => u64::from_be_bytes(
            v.value()
                .try_into()
                .map_err(|_| StateError::corrupt("keyspace size record", format!("{} bytes", v.value().len())))?,
        ),
        None => 0,
    })
}

/// Counts every record of the keyspace.
fn count(txn: &WriteTransaction) -> Result<u64, redb::Error> {
    let table = txn.open_table(GUEST_KV)?;
    let mut bytes = 0u64;
    for row in table.iter()? {
        let (k, v) = row?;
        bytes = bytes.saturating_add(entry_bytes(k.value().len(), v.value().len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrecorded_keyspace_is_counted_once_then_kept_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("s.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut kv = txn.open_table(GUEST_KV).unwrap();
            kv.insert(b"ab".as_slice(), b"xyz".as_slice()).unwrap();
            kv.insert(b"c".as_slice(), b"".as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        ensure(&txn).unwrap();
        txn.commit().unwrap();
        let size = KvSize::load(&db).unwrap();
        assert_eq!(size.keyspace_bytes(), 2 + 3 + 1 + 2 * ENTRY_OVERHEAD);
        assert_eq!(size.backend_bytes(), EMPTY_BACKEND_BYTES + 6 + 32);

        let mut staged = StagedKvSize { bytes: size.keyspace_bytes(), changed: false };
        staged.add(-(entry_bytes(1, 0) as i64));
        let txn = db.begin_write().unwrap();
        staged.record(&mut txn.open_table(META).unwrap()).unwrap();
        // A recorded count is left alone.
        ensure(&txn).unwrap();
        txn.commit().unwrap();
        assert_eq!(KvSize::load(&db).unwrap().keyspace_bytes(), 5 + ENTRY_OVERHEAD);
    }
}
