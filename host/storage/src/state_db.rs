//! The state database behind a pause gate, so that Defragment can compact it in place.
//!
//! redb compacts a file only through `&mut Database` and only while no transaction is open. The
//! gate is a reader-writer lock around the database: every transaction begins under the shared
//! side (and is then free of it: redb transactions do not borrow the database), and compaction
//! takes the exclusive side. While it holds it, new transactions wait at their `begin_*` — the
//! apply thread before its next batch, queries and snapshot reads before they start — and
//! carry on when it is done: in-flight work is paused, never failed. Transactions already open
//! are waited for; a long one (a snapshot streaming to a follower or a client) makes the
//! compaction give up after a while rather than hold everyone up, and the client is told why.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{CompactionError, Database, ReadTransaction, ReadableDatabase, TransactionError, WriteTransaction};

use crate::error::StateDbError;

/// The member's state database (`member/state.redb`): the tables of [`crate::tables`], behind a
/// gate that lets [`StateDb::compact`] run while the member does.
pub struct StateDb {
    db: RwLock<Database>,
    path: PathBuf,
    /// The file's size and when it was read: the quota check asks on every write request, and
    /// a `statx` of the path each time was a measurable part of a put.
    size: Mutex<Option<(Instant, u64)>>,
    /// Set while a compaction waits for open transactions to end: the apply thread, which
    /// keeps its write transaction open across batches, then commits after each one.
    compacting: AtomicBool,
}

/// How stale [`StateDb::file_size`] may be. etcd's quota check reads a size its backend updates
/// at commit, so it lags too.
const SIZE_TTL: Duration = Duration::from_millis(50);

/// How long compaction holds the gate waiting for open transactions before it lets the
/// paused work run again and retries.
const HOLD: Duration = Duration::from_millis(500);

impl StateDb {
    pub fn new(db: Database, path: &Path) -> StateDb {
        StateDb {
            db: RwLock::new(db),
            path: path.to_path_buf(),
            size: Mutex::new(None),
            compacting: AtomicBool::new(false),
        }
    }

    pub fn open(path: &Path) -> Result<StateDb, StateDbError> {
        let db = Database::create(path).map_err(|source| StateDbError::Open { path: path.to_path_buf(), source })?;
        Ok(Self::new(db, path))
    }

    pub fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        self.db().begin_read()
    }

    /// A read transaction unless a compaction holds the gate: for the raft thread, which must
    /// not stop ticking (and heartbeating) for as long as a compaction takes.
    pub fn try_begin_read(&self) -> Option<Result<ReadTransaction, TransactionError>> {
        match self.db.try_read() {
            Ok(db) => Some(db.begin_read()),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner().begin_read()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub fn begin_write(&self) -> Result<WriteTransaction, TransactionError> {
        self.db().begin_write()
    }

    /// The database, for code that takes `&Database`; compaction waits while the guard lives.
    pub fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of the file on disk, as of at most [`SIZE_TTL`] ago.
    pub fn file_size(&self) -> u64 {
        let mut cached = self.size.lock().unwrap_or_else(|p| p.into_inner());
        match *cached {
            Some((at, size)) if at.elapsed() < SIZE_TTL => size,
            _ => {
                let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
                *cached = Some((Instant::now(), size));
                size
            }
        }
    }

    fn forget_size(&self) {
        *self.size.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Compacts the file (etcd's `backend.Defrag`), pausing new transactions meanwhile. Gives
    /// up after `timeout` if transactions stay open that long.
    pub fn compact(&self, timeout: Duration) -> Result<(), StateDbError> {
        self.compacting.store(true, Ordering::SeqCst);
        let result = self.compact_waiting(timeout);
        self.compacting.store(false, Ordering::SeqCst);
        result
    }

    /// Whether a compaction is waiting for open transactions to end (see [`StateDb::compact`]).
    pub fn compaction_waiting(&self) -> bool {
        self.compacting.load(Ordering::Relaxed)
    }

    fn compact_waiting(&self, timeout: Duration) -> Result<(), StateDbError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
                let held = Instant::now();
                loop {
                    match db.compact() {
                        Ok(_) => {
                            self.forget_size();
                            return Ok(());
                        }
                        Err(CompactionError::TransactionInProgress) => {}
                        Err(e) => return Err(StateDbError::Compact(e)),
                    }
                    if held.elapsed() >= HOLD || Instant::now() >= deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            if Instant::now() >= deadline {
                return Err(StateDbError::CompactGaveUp { timeout });
            }
            // Let the paused work through (an open transaction may be waiting on the gate to
            // finish its own work) before trying again.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::GUEST_KV;

    #[test]
    fn compaction_shrinks_and_waits_for_open_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("s.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(GUEST_KV).unwrap();
            for i in 0u32..2000 {
                t.insert(i.to_be_bytes().as_slice(), [7u8; 1000].as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(GUEST_KV).unwrap().retain(|k, _| k[3] == 0).unwrap();
        txn.commit().unwrap();
        let before = db.file_size();
        // A read open when compaction starts: compaction waits for it, then proceeds.
        let read = db.begin_read().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                drop(read);
            });
            db.compact(Duration::from_secs(10)).unwrap();
        });
        assert!(db.file_size() < before, "{} !< {before}", db.file_size());
        let r = db.begin_read().unwrap();
        assert_eq!(redb::ReadableTableMetadata::len(&r.open_table(GUEST_KV).unwrap()).unwrap(), 8);
        // A read that outlives the timeout: compaction gives up with a clear error.
        let _held = db.begin_read().unwrap();
        assert!(db.compact(Duration::from_millis(100)).is_err());
    }
}
