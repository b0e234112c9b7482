//! What can fail in storage, one type per part (as redb's `error.rs` does): a caller matches the
//! part it called and decides by kind, never by reading a message.
//!
//! Messages read as they did when these were `anyhow` contexts: each type's `Display` is its own
//! step and its `source` the step below, so an `anyhow` chain (`{:#}`) prints the same line as
//! before, and the refusal of a corrupt WAL still names the member, the segment, the offset and
//! the remedy.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::types::Identity;

/// A file-system step that failed, on which file.
#[derive(Debug)]
pub struct IoError {
    op: &'static str,
    path: PathBuf,
    /// A rename's new name.
    to: Option<PathBuf>,
    source: io::Error,
}

impl IoError {
    pub(crate) fn new(op: &'static str, path: &Path, source: io::Error) -> IoError {
        IoError { op, path: path.to_path_buf(), to: None, source }
    }

    /// For `map_err`: `op` on `path` failed.
    pub(crate) fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoError + 'a {
        move |source| IoError::new(op, path, source)
    }

    pub(crate) fn rename(from: &Path, to: &Path, source: io::Error) -> IoError {
        IoError { op: "renaming", path: from.to_path_buf(), to: Some(to.to_path_buf()), source }
    }

    /// The file (or directory) the step was on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op, self.path.display())?;
        if let Some(to) = &self.to {
            write!(f, " to {}", to.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The WAL refuses to open: a record that was (or may have been) durable is damaged. Nothing on
/// disk was changed. The text is the operator's: it says what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "wal: segment {} is corrupt at offset {offset}: {reason}. This member's log cannot be trusted, so it does not start \
     (nothing on disk was changed). To recover: remove the member from the cluster (etcdctl member remove <id>), \
     empty its data dir, add it back (etcdctl member add) and start it with --initial-cluster-state existing; \
     or restore its data dir from a snapshot (wasmraft snapshot restore)",
    segment.display()
)]
pub struct CorruptWal {
    pub segment: PathBuf,
    pub offset: u64,
    /// What the checks found, for the operator (nothing decides on it).
    pub reason: String,
}

/// A record that passed the WAL's checksum but whose content the raft log cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("truncated entry record")]
    TruncatedEntry,
    #[error("entry record is truncated")]
    ShortEntry,
    #[error("entry {index} is truncated")]
    EntryContextTruncated { index: u64 },
    #[error("entry {index} has unknown type {kind}")]
    UnknownEntryKind { index: u64, kind: u8 },
    #[error("entry {index} at or below the compaction point {compacted}")]
    EntryBelowCompaction { index: u64, compacted: u64 },
    #[error("entry {index} leaves a gap after {last}")]
    EntryGap { index: u64, last: u64 },
    #[error("corrupt hard state record: {len} bytes")]
    HardState { len: usize },
    #[error("corrupt conf state record: truncated")]
    ConfStateTruncated,
    #[error("corrupt conf state record: trailing bytes")]
    ConfStateTrailing,
    #[error("corrupt snapshot record")]
    Snapshot,
    #[error("corrupt identity record")]
    Identity,
    #[error("unknown wal record kind {0}")]
    UnknownKind(u8),
}

/// The write-ahead log's failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Damage found while opening: the member must not start.
    #[error(transparent)]
    Corrupt(#[from] CorruptWal),
    /// An intact record the raft log could not read, while opening.
    #[error("replaying {} at offset {offset}", segment.display())]
    Record {
        segment: PathBuf,
        offset: u64,
        #[source]
        source: RecordError,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    /// Reading a record back (after opening) failed.
    #[error("reading wal segment {segment} at {offset}")]
    ReadRecord {
        segment: u64,
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// A record read back (after opening) fails its checksum.
    #[error("wal segment {segment} has a corrupt record at {offset}")]
    BadRecord { segment: u64, offset: u64 },
    #[error("wal segment {segment} was released")]
    Released { segment: u64 },
    #[error("wal: segment {seq:016x} is in the old format and is not appended to")]
    Legacy { seq: u64 },
    #[error("wal: a batch encoded for another place in the log (a bug)")]
    Misplaced,
    #[error("the wal has no segment")]
    NoSegment,
}

impl WalError {
    /// The damage, if this is the WAL refusing to open.
    pub fn corrupt(&self) -> Option<&CorruptWal> {
        match self {
            WalError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

/// The raft log's failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The log in `dir` could not be read at start; `member` says who this is when the log got
    /// as far as saying (the id the remedy for a corrupt WAL needs).
    #[error("{}reading raft log {}", cannot_start(member), dir.display())]
    Open {
        dir: PathBuf,
        member: Option<Identity>,
        #[source]
        source: Box<LogError>,
    },
    #[error(
        "{} holds a raft log from an older wasmraft (before the WAL): start that version, save a snapshot with \
         `etcdctl snapshot save`, and restore it into a new data dir with `wasmraft snapshot restore`",
        path.display()
    )]
    BeforeWal { path: PathBuf },
    #[error("raft log {} is missing entries {from}..{to}", dir.display())]
    MissingEntries { dir: PathBuf, from: u64, to: u64 },
    #[error("raft log is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("append at {index} leaves a gap (snapshot {snapshot}, last {last})")]
    Gap { index: u64, snapshot: u64, last: u64 },
    #[error("compacting to {index} beyond the last entry {last}")]
    CompactBeyond { index: u64, last: u64 },
    /// Below the first index: folded into a snapshot.
    #[error("raft log entry {index} is compacted")]
    Compacted { index: u64 },
    /// Past the last index.
    #[error("raft log entry {index} is not written yet")]
    Unavailable { index: u64 },
    #[error("raft log has no entry {index}")]
    NoEntry { index: u64 },
    #[error("raft log has a hole at {index}")]
    Hole { index: u64 },
    #[error("raft log: record for entry {index} is not an entry")]
    NotAnEntry { index: u64 },
    #[error("raft log: entry {index} is recorded as {found}")]
    Misrecorded { index: u64, found: u64 },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Wal(#[from] WalError),
}

fn cannot_start(member: &Option<Identity>) -> String {
    member.map_or_else(String::new, |id| {
        format!("member {:x} of cluster {:x} cannot start: ", id.member_id, id.cluster_id)
    })
}

impl LogError {
    /// The damage, if this is the log refusing to open over a corrupt WAL.
    pub fn corrupt(&self) -> Option<&CorruptWal> {
        match self {
            LogError::Open { source, .. } => source.corrupt(),
            LogError::Wal(w) => w.corrupt(),
            _ => None,
        }
    }
}

/// The state database's failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateDbError {
    #[error("opening state database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("compacting the state database")]
    Compact(#[source] redb::CompactionError),
    /// Transactions stayed open for all of `timeout`: nothing was compacted.
    #[error(
        "wasmraft: defragment gave up after {timeout:?}: a long transaction (a snapshot being sent?) kept the state database open"
    )]
    CompactGaveUp { timeout: Duration },
}

/// Writing, reading or installing a snapshot file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A snapshot file could not be created, opened, synced or renamed.
    #[error(transparent)]
    File(#[from] IoError),
    /// The stream written to or read from failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The state database failed.
    #[error(transparent)]
    Db(#[from] redb::Error),
    #[error("not a wasmraft snapshot")]
    NotASnapshot,
    #[error("snapshot is truncated")]
    Truncated(#[source] io::Error),
    #[error("snapshot padding is not zeros")]
    BadPadding,
    #[error("snapshot checksum mismatch")]
    ChecksumMismatch,
    #[error("trailing bytes after the snapshot")]
    TrailingBytes,
    #[error("snapshot field of {len} bytes is too large")]
    FieldTooLarge { len: usize },
    #[error("the snapshot has no applied index")]
    NoAppliedIndex,
    #[error("corrupt applied index")]
    BadAppliedIndex,
    #[error("table key is not 8 bytes")]
    BadIdKey,
    #[error("meta key is not UTF-8")]
    BadMetaKey,
    #[error("unknown table {0}")]
    UnknownTable(u8),
}

impl From<redb::TableError> for SnapshotError {
    fn from(e: redb::TableError) -> Self {
        SnapshotError::Db(e.into())
    }
}

impl From<redb::StorageError> for SnapshotError {
    fn from(e: redb::StorageError) -> Self {
        SnapshotError::Db(e.into())
    }
}
