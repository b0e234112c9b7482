//! Raft snapshots of the state database: a consistent copy of the state tables (guest keyspace,
//! membership, stored guest modules and deployments, applied index) written from one redb read transaction into a file, sent to a
//! member that fell behind the compacted log, and installed there in place of its state.
//!
//! Files, not memory: a snapshot is written and read as a stream, so its size is bounded by the
//! disk, not by RAM. The file ends with a sha256 of everything before it, so a truncated or
//! damaged transfer is refused instead of installed.
//!
//! The same bytes are what Maintenance.Snapshot streams (`etcdctl snapshot save`) and what
//! `wasmraft snapshot restore` reads.
//!
//! Layout: `WRSNAP01`, then records `table u8 | key length u32 | key | value length u32 | value`,
//! then `0xff`, zeros up to a multiple of 512 bytes, and the 32-byte digest of all that. The
//! padding is for etcdctl: `snapshot save` accepts a stream only when its size modulo 512 is
//! the digest's size (etcd's page-aligned database plus its sha256). Files without the padding
//! (written before it existed) are read too.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::error::{IoError, SnapshotError};
use crate::tables::{
    ALARMS, AUTH, DEPLOYMENTS, GUEST_KV, GUEST_METRICS, GUEST_MODULES, GUEST_UPLOADS, MEMBERS, META,
    META_APPLIED_INDEX, REMOVED_MEMBERS,
};

const MAGIC: &[u8; 8] = b"WRSNAP01";
const END: u8 = 0xff;
const T_GUEST_KV: u8 = 0;
const T_MEMBERS: u8 = 1;
/// The record tag of the `meta` table.
pub const T_META: u8 = 2;
const T_GUEST_MODULES: u8 = 3;
const T_GUEST_UPLOADS: u8 = 4;
const T_DEPLOYMENTS: u8 = 5;
const T_REMOVED_MEMBERS: u8 = 6;
/// The record tag of the `alarms` table: a member that installs a snapshot is capped as the
/// others.
pub const T_ALARMS: u8 = 7;
/// The record tag of the `auth` table: a restored or caught-up member enforces the same
/// permissions.
pub const T_AUTH: u8 = 8;
/// The record tag of the `guest_metrics` table: a member that installs a snapshot serves the
/// same guest metrics as the others. Files written before the table existed have no such
/// records and install an empty table.
pub const T_GUEST_METRICS: u8 = 9;
type BytesTable = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
/// The tables keyed by bytes, with their record tags.
const BYTE_TABLES: [(u8, BytesTable); 6] = [
    (T_GUEST_KV, GUEST_KV),
    (T_GUEST_MODULES, GUEST_MODULES),
    (T_GUEST_UPLOADS, GUEST_UPLOADS),
    (T_ALARMS, ALARMS),
    (T_AUTH, AUTH),
    (T_GUEST_METRICS, GUEST_METRICS),
];
/// The tables keyed by u64 (written big-endian), with their record tags.
const ID_TABLES: [(u8, redb::TableDefinition<u64, &[u8]>); 3] =
    [(T_MEMBERS, MEMBERS), (T_DEPLOYMENTS, DEPLOYMENTS), (T_REMOVED_MEMBERS, REMOVED_MEMBERS)];
/// Longest key or value a snapshot may hold (the guest limits are far below).
const MAX_FIELD: usize = 256 << 20;

/// Whether the file at `path` starts as wasmraft's snapshot format does (its magic), rather
/// than as something else (etcd's bbolt file, say).
pub fn is_snapshot_file(path: &Path) -> Result<bool, SnapshotError> {
    let mut file = File::open(path).map_err(IoError::at("opening snapshot", path))?;
    let mut magic = [0u8; 8];
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(IoError::at("reading snapshot", path)(e).into()),
    }
}

/// The file name of the snapshot at `index` in `dir`.
pub fn path_for(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.snap"))
}

/// The applied index a read transaction of the state database reflects.
pub fn applied_index(txn: &ReadTransaction) -> Result<u64, SnapshotError> {
    let meta = txn.open_table(META)?;
    Ok(match meta.get(META_APPLIED_INDEX)? {
        Some(v) => be_index(v.value())?,
        None => 0,
    })
}

fn be_index(value: &[u8]) -> Result<u64, SnapshotError> {
    Ok(u64::from_be_bytes(value.try_into().map_err(|_| SnapshotError::BadAppliedIndex)?))
}

/// Writes the state `txn` sees into `path` (through a temporary file renamed into place) and
/// returns the file's size.
pub fn write(txn: &ReadTransaction, path: &Path) -> Result<u64, SnapshotError> {
    let tmp = path.with_extension("snap.tmp");
    let file = File::create(&tmp).map_err(IoError::at("creating", &tmp))?;
    let mut out = BufWriter::new(file);
    let (written, digest) = write_to(txn, &mut out)?;
    out.write_all(&digest)?;
    let size = written + digest.len() as u64;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    crate::durable::rename(&tmp, path)?;
    Ok(size)
}

/// Writes the snapshot of `txn`'s state to `out`, all but the trailing digest, and returns the
/// bytes written and the digest (the caller appends it: a file does at once, a Maintenance
/// snapshot stream sends it as its last message, as etcd does).
pub fn write_to(txn: &ReadTransaction, out: &mut impl Write) -> Result<(u64, [u8; 32]), SnapshotError> {
    let mut out = HashingWriter { inner: out, hash: Sha256::new(), written: 0 };
    out.write_all(MAGIC)?;
    for_each_record(txn, |tag, key, value| Ok::<_, SnapshotError>(record(&mut out, tag, key, value)?))?;
    out.write_all(&[END])?;
    out.write_all(&vec![0u8; padding(out.written)])?;
    Ok((out.written, out.hash.finalize().into()))
}

/// The size [`write_to`] will write for `txn`'s state (a pass over the same records).
pub fn encoded_size(txn: &ReadTransaction) -> Result<u64, SnapshotError> {
    let mut size = MAGIC.len() as u64 + 1;
    for_each_record(txn, |_, key, value| {
        size += 9 + key.len() as u64 + value.len() as u64;
        Ok::<_, SnapshotError>(())
    })?;
    Ok(size + padding(size) as u64)
}

/// Zeros after the end mark that make `len` bytes a multiple of 512.
fn padding(len: u64) -> usize {
    ((512 - len % 512) % 512) as usize
}

/// Visits every record a snapshot of `txn`'s state holds, in snapshot order: the tag of its
/// table, its key (u64 keys big-endian, meta keys as UTF-8) and its value. Stops at the first
/// error `each` returns, and returns it.
pub fn for_each_record<E: From<SnapshotError>>(
    txn: &ReadTransaction,
    mut each: impl FnMut(u8, &[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let db = |e: redb::StorageError| E::from(SnapshotError::from(e));
    for (tag, def) in BYTE_TABLES {
        let Some(t) = open_existing(txn, def)? else { continue };
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            each(tag, k.value(), v.value())?;
        }
    }
    for (tag, def) in ID_TABLES {
        let Some(t) = open_existing(txn, def)? else { continue };
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            each(tag, &k.value().to_be_bytes(), v.value())?;
        }
    }
    let t = txn.open_table(META).map_err(SnapshotError::from)?;
    for item in t.iter().map_err(db)? {
        let (k, v) = item.map_err(db)?;
        each(T_META, k.value().as_bytes(), v.value())?;
    }
    Ok(())
}

/// `def` in `txn`, or None when nothing has written the table yet (a state database from before
/// the table existed): such a table is empty.
fn open_existing<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, SnapshotError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn record(out: &mut impl Write, table: u8, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    out.write_all(&[table])?;
    out.write_all(&(key.len() as u32).to_be_bytes())?;
    out.write_all(key)?;
    out.write_all(&(value.len() as u32).to_be_bytes())?;
    out.write_all(value)
}

/// The applied index a snapshot file's state reflects (reads and checks the whole file).
pub fn applied_index_of(path: &Path) -> Result<u64, SnapshotError> {
    let mut applied = None;
    read_records(path, |table, key, value| {
        if table == T_META && key == META_APPLIED_INDEX.as_bytes() {
            applied = Some(be_index(value)?);
        }
        Ok(())
    })?;
    applied.ok_or(SnapshotError::NoAppliedIndex)
}

/// Checks a snapshot file end to end (structure and digest) without installing it.
pub fn verify(path: &Path) -> Result<(), SnapshotError> {
    read_records(path, |_, _, _| Ok(()))
}

/// Replaces the state tables in `txn` with the snapshot's and returns the applied index it
/// carries. The digest is checked at the end of the same pass: on any error the caller drops
/// `txn` uncommitted, so a bad file leaves the state untouched.
pub fn install(txn: &WriteTransaction, path: &Path) -> Result<u64, SnapshotError> {
    let mut by_bytes = Vec::new();
    for (tag, def) in BYTE_TABLES {
        let mut t = txn.open_table(def)?;
        t.retain(|_, _| false)?;
        by_bytes.push((tag, t));
    }
    let mut by_id = Vec::new();
    for (tag, def) in ID_TABLES {
        let mut t = txn.open_table(def)?;
        t.retain(|_, _| false)?;
        by_id.push((tag, t));
    }
    txn.open_table(META)?.retain(|_, _| false)?;
    let mut meta = txn.open_table(META)?;
    let mut applied = None;
    read_records(path, |table, key, value| {
        if let Some((_, t)) = by_bytes.iter_mut().find(|(tag, _)| *tag == table) {
            t.insert(key, value)?;
            return Ok(());
        }
        if let Some((_, t)) = by_id.iter_mut().find(|(tag, _)| *tag == table) {
            let id = u64::from_be_bytes(key.try_into().map_err(|_| SnapshotError::BadIdKey)?);
            t.insert(id, value)?;
            return Ok(());
        }
        match table {
            T_META => {
                let k = std::str::from_utf8(key).map_err(|_| SnapshotError::BadMetaKey)?;
                if k == META_APPLIED_INDEX {
                    applied = Some(be_index(value)?);
                }
                meta.insert(k, value)?;
            }
            t => return Err(SnapshotError::UnknownTable(t)),
        }
        Ok(())
    })?;
    applied.ok_or(SnapshotError::NoAppliedIndex)
}

/// Calls `each` with every record of the snapshot file at `path` (table tag, key, value), after
/// checking its digest.
pub fn read_records(
    path: &Path,
    mut each: impl FnMut(u8, &[u8], &[u8]) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let file = File::open(path).map_err(IoError::at("opening snapshot", path))?;
    let file_len = file.metadata().map_err(IoError::at("reading snapshot", path))?.len();
    let mut r = HashingReader { inner: BufReader::new(file), hash: Sha256::new(), read: 0 };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(SnapshotError::Truncated)?;
    if &magic != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let (mut key, mut value) = (Vec::new(), Vec::new());
    loop {
        let mut table = [0u8; 1];
        r.read_exact(&mut table).map_err(SnapshotError::Truncated)?;
        if table[0] == END {
            break;
        }
        read_field(&mut r, &mut key)?;
        read_field(&mut r, &mut value)?;
        each(table[0], &key, &value)?;
    }
    let pad = padding(r.read);
    if file_len.checked_sub(r.read) == Some(32 + pad as u64) && pad > 0 {
        let mut zeros = vec![0u8; pad];
        r.read_exact(&mut zeros).map_err(SnapshotError::Truncated)?;
        if zeros.iter().any(|b| *b != 0) {
            return Err(SnapshotError::BadPadding);
        }
    }
    let expected = r.hash.finalize();
    let mut digest = [0u8; 32];
    r.inner.read_exact(&mut digest).map_err(SnapshotError::Truncated)?;
    if digest[..] != expected[..] {
        return Err(SnapshotError::ChecksumMismatch);
    }
    let mut rest = [0u8; 1];
    if r.inner.read(&mut rest)? != 0 {
        return Err(SnapshotError::TrailingBytes);
    }
    Ok(())
}

fn read_field(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<(), SnapshotError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(SnapshotError::Truncated)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FIELD {
        return Err(SnapshotError::FieldTooLarge { len });
    }
    buf.resize(len, 0);
    r.read_exact(buf).map_err(SnapshotError::Truncated)?;
    Ok(())
}

struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase};

    fn db_with(dir: &Path, name: &str, kv: &[(&[u8], &[u8])], applied: u64) -> Database {
        let db = Database::create(dir.join(name)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(GUEST_KV).unwrap();
            for (k, v) in kv {
                t.insert(*k, *v).unwrap();
            }
            txn.open_table(MEMBERS).unwrap().insert(7, b"m".as_slice()).unwrap();
            txn.open_table(GUEST_MODULES).unwrap().insert(name.as_bytes(), b"module".as_slice()).unwrap();
            txn.open_table(DEPLOYMENTS).unwrap().insert(applied, name.as_bytes()).unwrap();
            txn.open_table(META).unwrap().insert(META_APPLIED_INDEX, applied.to_be_bytes().as_slice()).unwrap();
        }
        txn.commit().unwrap();
        db
    }

    #[test]
    fn round_trip_replaces_state() {
        let dir = tempfile::tempdir().unwrap();
        let src = db_with(dir.path(), "a.redb", &[(b"k1", b"v1"), (b"k2", &[0u8; 100_000])], 42);
        let path = path_for(dir.path(), 42);
        let size = write(&src.begin_read().unwrap(), &path).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        // What etcdctl's `snapshot save` checks: a digest after a multiple of 512 bytes.
        assert_eq!(size % 512, 32);
        assert_eq!(encoded_size(&src.begin_read().unwrap()).unwrap() + 32, size);

        let dst = db_with(dir.path(), "b.redb", &[(b"old", b"x")], 3);
        let txn = dst.begin_write().unwrap();
        assert_eq!(install(&txn, &path).unwrap(), 42);
        txn.commit().unwrap();
        let r = dst.begin_read().unwrap();
        assert_eq!(applied_index(&r).unwrap(), 42);
        let t = r.open_table(GUEST_KV).unwrap();
        assert!(t.get(b"old".as_slice()).unwrap().is_none());
        assert_eq!(t.get(b"k1".as_slice()).unwrap().unwrap().value(), b"v1");
        assert_eq!(t.get(b"k2".as_slice()).unwrap().unwrap().value().len(), 100_000);
        // The stored modules and the deployment history travel too, replacing the old ones.
        let modules = r.open_table(GUEST_MODULES).unwrap();
        assert_eq!(modules.iter().unwrap().count(), 1);
        assert_eq!(modules.get(b"a.redb".as_slice()).unwrap().unwrap().value(), b"module");
        let deployments = r.open_table(DEPLOYMENTS).unwrap();
        assert_eq!(deployments.iter().unwrap().count(), 1);
        assert_eq!(deployments.get(42).unwrap().unwrap().value(), b"a.redb");
    }

    #[test]
    fn guest_metrics_travel_and_a_file_without_them_installs_none() {
        let dir = tempfile::tempdir().unwrap();
        // A source that never wrote the table: its file is what a member wrote before the
        // table existed (no record with its tag).
        let old = db_with(dir.path(), "old.redb", &[(b"k", b"v")], 9);
        let old_path = path_for(dir.path(), 9);
        write(&old.begin_read().unwrap(), &old_path).unwrap();

        let src = db_with(dir.path(), "a.redb", &[(b"k", b"v")], 10);
        let txn = src.begin_write().unwrap();
        txn.open_table(GUEST_METRICS)
            .unwrap()
            .insert(b"put_total".as_slice(), [0u8, 0, 0, 0, 0, 0, 0, 0, 3].as_slice())
            .unwrap();
        txn.commit().unwrap();
        let path = path_for(dir.path(), 10);
        write(&src.begin_read().unwrap(), &path).unwrap();

        let dst = db_with(dir.path(), "b.redb", &[], 3);
        let txn = dst.begin_write().unwrap();
        txn.open_table(GUEST_METRICS).unwrap().insert(b"stale".as_slice(), [1u8; 9].as_slice()).unwrap();
        assert_eq!(install(&txn, &path).unwrap(), 10);
        txn.commit().unwrap();
        let read = |db: &Database| -> Vec<(Vec<u8>, Vec<u8>)> {
            let r = db.begin_read().unwrap();
            let t = r.open_table(GUEST_METRICS).unwrap();
            t.iter().unwrap().map(|i| i.unwrap()).map(|(k, v)| (k.value().to_vec(), v.value().to_vec())).collect()
        };
        assert_eq!(read(&dst), vec![(b"put_total".to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 0, 3])]);

        let txn = dst.begin_write().unwrap();
        assert_eq!(install(&txn, &old_path).unwrap(), 9);
        txn.commit().unwrap();
        assert!(read(&dst).is_empty());
    }

    #[test]
    fn damaged_files_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = db_with(dir.path(), "a.redb", &[(b"k1", b"v1")], 5);
        let path = path_for(dir.path(), 5);
        write(&src.begin_read().unwrap(), &path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[12] ^= 1;
        for bad in [&good[..good.len() - 1], &flipped[..], &good[..4], &[good.clone(), vec![0]].concat()[..]] {
            std::fs::write(&path, bad).unwrap();
            assert!(verify(&path).is_err());
            let dst = db_with(dir.path(), "b.redb", &[(b"old", b"x")], 3);
            let txn = dst.begin_write().unwrap();
            assert!(install(&txn, &path).is_err());
            drop(txn);
            let r = dst.begin_read().unwrap();
            assert_eq!(applied_index(&r).unwrap(), 3);
            drop(r);
            drop(dst);
            std::fs::remove_file(dir.path().join("b.redb")).unwrap();
        }
    }
}
