//! What etcd's Maintenance service asks of a member beyond its status: alarms and the quota,
//! a hash of the state database, a consistent copy of it as a stream, and defragmentation.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use wasmraft_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType, alarm_request::AlarmAction};
use wasmraft_proto::wasmraft::v1 as pb;

use super::{NodeError, Proposals, Status};
use crate::error_chain::Chain;
use wasmraft_storage::tables::{META_APPLIED_INDEX, META_APPLIED_TERM};
use wasmraft_storage::{SnapshotError, snapshot};

/// etcd's snapshotSendBufferSize: the bytes of state per Maintenance.Snapshot message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// Chunks produced ahead of the client: the stream's memory bound (with the chunk size).
const SNAPSHOT_CHUNKS_AHEAD: usize = 16;
/// How long a defragmentation waits for open transactions (a snapshot being sent) to end.
const DEFRAG_WAIT: Duration = Duration::from_secs(60);

/// One message of a snapshot stream.
#[derive(Debug)]
pub enum SnapshotPiece {
    /// Bytes of the state, and how many remain after them (the digest not counted, as etcd).
    Data { bytes: Vec<u8>, remaining: u64 },
    /// The sha256 of all the data, last.
    Digest([u8; 32]),
}

fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

/// Writes a consistent view of the state database as a file another tool reads — etcd's
/// backend for the KV guest's state (`wasmraft-backup`). The API picks the encoder; the node
/// hands it one read transaction and streams the file it wrote, so the file's form is not the
/// node's business.
pub trait StateEncoder: Send + Sync + 'static {
    /// What the file is, for the log.
    fn name(&self) -> &'static str;
    /// Writes the state `txn` sees into `out`, an empty file.
    fn encode(&self, txn: &redb::ReadTransaction, out: &mut std::fs::File) -> Result<(), EncodeError>;
}

/// Why a [`StateEncoder`] could not write its file.
pub type EncodeError = Box<dyn std::error::Error + Send + Sync>;

/// Why a snapshot stream ended before its digest: told to the client and logged.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Handing the last chunk to the stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Nothing may change the state a read transaction sees: a bug if it happens.
    #[error("snapshot size changed under a read transaction ({written} != {total})")]
    SizeChanged { written: u64, total: u64 },
    #[error("the client went away")]
    ClientGone,
    #[error("writing the {what} file: {source}")]
    Encode { what: &'static str, source: EncodeError },
}

impl<'a> Proposals<'a> {
    /// Proposes an alarm request (etcd's `EtcdServer.Alarm`: even GET goes through the log, so
    /// the answer is the cluster's view at that index) and returns the alarms it concerned.
    pub async fn alarm(self, req: AlarmRequest) -> Result<AlarmResponse, NodeError> {
        let out = self.h.propose_entry(pb::entry::Kind::Alarm(req), 0).await?;
        prost::Message::decode(out.as_slice()).map_err(internal)
    }

    /// etcd's quota check before proposing `command` (v3rpc's `quotaAlarmer.check`): when it
    /// would take the backend (as [`crate::kv_size`] counts it) to the quota, raises NOSPACE for
    /// this member through the log and refuses the request with "database space exceeded".
    pub async fn check_quota(self, command: &[u8]) -> Result<(), NodeError> {
        let cost = crate::alarms::cost(command).unwrap_or(0);
        if cost == 0 || self.h.status().backend_size().saturating_add(cost) < self.h.inner.limits.quota_bytes {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.h.inner.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.h.proposals().alarm(raise).await {
            tracing::warn!("raising the NOSPACE alarm failed: {e}");
        }
        Err(NodeError::Guest(crate::alarms::NO_SPACE.to_string()))
    }
}

impl<'a> Status<'a> {
    /// The active alarms as this member has applied them.
    pub fn alarms(self) -> Vec<AlarmMember> {
        self.h.inner.replicated.alarms.list()
    }

    /// Bytes on disk of the state database (what etcd's Status calls the db size, and what the
    /// quota bounds).
    pub fn state_db_size(self) -> u64 {
        self.h.inner.state_db.file_size()
    }

    /// The backend size the quota bounds: the guest's keyspace as [`crate::kv_size`] counts it
    /// (etcd's `backend.Size()`; etcd's Status reports it as the size in use too).
    pub fn backend_size(self) -> u64 {
        self.h.inner.replicated.kv_size.backend_bytes()
    }

    /// `--quota-backend-bytes`, resolved (0 on the flag is etcd's 2 GiB default).
    pub fn quota_bytes(self) -> u64 {
        self.h.inner.limits.quota_bytes
    }

    /// A CRC-32C of this member's state database (etcd's `Maintenance.Hash`, which hashes its
    /// whole backend but the consistent index): every table a raft snapshot carries — the guest
    /// keyspace, membership, stored modules and pieces, deployments, alarms, the host's meta
    /// records — except the applied index and term. Members that applied the same entries agree.
    pub async fn state_hash(self) -> Result<u32, NodeError> {
        let s = self.h.inner.clone();
        s.commit_state().await?;
        tokio::task::spawn_blocking(move || {
            let txn = s.state_db.begin_read().map_err(internal)?;
            let mut crc = wasmraft_guest_sdk::crc32c::Crc32c::new();
            snapshot::for_each_record(&txn, |table, key, value| -> Result<(), SnapshotError> {
                if table == snapshot::T_META
                    && (key == META_APPLIED_INDEX.as_bytes() || key == META_APPLIED_TERM.as_bytes())
                {
                    return Ok(());
                }
                crc.update(&[table]);
                crc.update(&(key.len() as u32).to_be_bytes());
                crc.update(key);
                crc.update(&(value.len() as u32).to_be_bytes());
                crc.update(value);
                Ok(())
            })
            .map_err(|e| internal(Chain(&e)))?;
            Ok(crc.sum())
        })
        .await
        .map_err(internal)?
    }

    /// A consistent copy of the state database, as the raft snapshot file format (so that
    /// `wasmraft snapshot restore` reads what `etcdctl snapshot save` stored), produced as the
    /// receiver takes it: at most a few chunks are in memory whatever the state's size.
    /// What was applied before the call is in it (committed first, as etcd's snapshot commits
    /// its batch transaction first).
    pub async fn snapshot_stream(self) -> Result<mpsc::Receiver<Result<SnapshotPiece, NodeError>>, NodeError> {
        self.h.inner.commit_state().await?;
        let txn = self.h.inner.state_db.begin_read().map_err(internal)?;
        let (tx, rx) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
        let member = self.h.inner.member_id;
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = (|| -> Result<u64, StreamError> {
                let total = snapshot::encoded_size(&txn)?;
                let mut out = ChunkSender { tx: &tx, buf: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES), remaining: total };
                let (written, digest) = snapshot::write_to(&txn, &mut out)?;
                std::io::Write::flush(&mut out)?;
                if written != total {
                    return Err(StreamError::SizeChanged { written, total });
                }
                tx.blocking_send(Ok(SnapshotPiece::Digest(digest))).map_err(|_| StreamError::ClientGone)?;
                Ok(written)
            })();
            finish_stream(result, started, member, "wasmraft snapshot", &tx);
        });
        Ok(rx)
    }

    /// A consistent copy of the state written by `encoder` (etcd's backend file, say) into an
    /// unnamed temporary file next to the raft snapshots, then streamed as
    /// [`Status::snapshot_stream`] streams, with the sha256 of the file last. The file is on
    /// disk, not in memory, because the stream announces the bytes remaining from its first
    /// message, and it is gone when the stream ends.
    pub async fn encoded_snapshot_stream(
        self,
        encoder: std::sync::Arc<dyn StateEncoder>,
    ) -> Result<mpsc::Receiver<Result<SnapshotPiece, NodeError>>, NodeError> {
        self.h.inner.commit_state().await?;
        let txn = self.h.inner.state_db.begin_read().map_err(internal)?;
        let dir = self.h.inner.snap_dir.clone();
        let (tx, rx) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
        let member = self.h.inner.member_id;
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = (|| -> Result<u64, StreamError> {
                let mut file = tempfile::tempfile_in(&dir)?;
                encoder
                    .encode(&txn, &mut file)
                    .map_err(|source| StreamError::Encode { what: encoder.name(), source })?;
                drop(txn);
                let total = std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
                std::io::Seek::rewind(&mut file)?;
                let mut out = ChunkSender { tx: &tx, buf: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES), remaining: total };
                let mut hashing = HashingWriter { inner: &mut out, sha: Sha256::new() };
                let written = std::io::copy(&mut std::io::Read::take(&mut file, total), &mut hashing)?;
                let digest: [u8; 32] = hashing.sha.finalize().into();
                std::io::Write::flush(&mut out)?;
                if written != total {
                    return Err(StreamError::SizeChanged { written, total });
                }
                tx.blocking_send(Ok(SnapshotPiece::Digest(digest))).map_err(|_| StreamError::ClientGone)?;
                Ok(written)
            })();
            finish_stream(result, started, member, encoder.name(), &tx);
        });
        Ok(rx)
    }

    /// Compacts the state database file (etcd's `Defragment`). New transactions pause at their
    /// start while it runs (see `StateDb`); the raft log is not compacted (its space is reused
    /// as the log is truncated).
    pub async fn defragment(self) -> Result<(), NodeError> {
        let s = self.h.inner.clone();
        // The apply thread's open transaction would hold the compaction off until its next
        // commit; while the compaction waits, the apply thread commits after every batch.
        s.commit_state().await?;
        tokio::task::spawn_blocking(move || {
            let before = s.state_db.file_size();
            let started = Instant::now();
            tracing::info!("starting to defragment the storage backend...");
            match s.state_db.compact(DEFRAG_WAIT) {
                Ok(()) => {
                    tracing::info!(
                        "finished defragmenting the storage backend: {before} → {} bytes in {:.1}s",
                        s.state_db.file_size(),
                        started.elapsed().as_secs_f64()
                    );
                    Ok(())
                }
                Err(e) => {
                    let e = Chain(&e);
                    tracing::warn!("failed to defragment the storage backend: {e}");
                    Err(internal(e))
                }
            }
        })
        .await
        .map_err(internal)?
    }
}

/// How a snapshot stream ended: timed and logged, and a failure told to the client.
fn finish_stream(
    result: Result<u64, StreamError>,
    started: Instant,
    member: u64,
    what: &str,
    tx: &mpsc::Sender<Result<SnapshotPiece, NodeError>>,
) {
    match result {
        Ok(size) => {
            wasmraft_metrics::metrics().backend_snapshot.observe(started.elapsed().as_secs_f64());
            tracing::info!(
                "sent database snapshot to client: {size} bytes ({what}) in {:.1}s (member {member:x})",
                started.elapsed().as_secs_f64()
            )
        }
        Err(e) => {
            let e = Chain(&e);
            tracing::warn!("sending a database snapshot to a client failed: {e}");
            let _ = tx.blocking_send(Err(internal(e)));
        }
    }
}

/// Hashes what passes through it: the digest that ends an encoded snapshot stream.
struct HashingWriter<'a, W> {
    inner: &'a mut W,
    sha: Sha256,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.sha.update(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Cuts what the snapshot writer writes into chunks for the stream, blocking while the client
/// is behind.
struct ChunkSender<'a> {
    tx: &'a mpsc::Sender<Result<SnapshotPiece, NodeError>>,
    buf: Vec<u8>,
    remaining: u64,
}

impl ChunkSender<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
        self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
        self.tx
            .blocking_send(Ok(SnapshotPiece::Data { bytes, remaining: self.remaining }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl std::io::Write for ChunkSender<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(SNAPSHOT_CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == SNAPSHOT_CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
