//! Raft snapshots of the state database: a consistent copy of the state tables (guest keyspace,
//! membership, stored guest modules and deployments, applied index) written from one redb read transaction into a file, sent to a
//! member that fell behind the compacted log, and installed there in place of its state.
//!
//! Files, not memory: a snapshot is written and read as a stream, so its size is bounded by the
//! disk, not by RAM. The file ends with a sha256 of everything before it, so a truncated or
//! damaged transfer is refused instead of installed.
//!
//! Layout: `WRSNAP01`, then records `table u8 | key length u32 | key | value length u32 | value`,
//! then `0xff` and the 32-byte digest.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use sha2::{Digest, Sha256};

use super::tables::{DEPLOYMENTS, GUEST_KV, GUEST_MODULES, GUEST_UPLOADS, MEMBERS, META, META_APPLIED_INDEX, REMOVED_MEMBERS};

const MAGIC: &[u8; 8] = b"WRSNAP01";
const END: u8 = 0xff;
const T_GUEST_KV: u8 = 0;
const T_MEMBERS: u8 = 1;
const T_META: u8 = 2;
const T_GUEST_MODULES: u8 = 3;
const T_GUEST_UPLOADS: u8 = 4;
const T_DEPLOYMENTS: u8 = 5;
const T_REMOVED_MEMBERS: u8 = 6;
/// The tables keyed by bytes, with their record tags.
const BYTE_TABLES: [(u8, redb::TableDefinition<&[u8], &[u8]>); 3] =
    [(T_GUEST_KV, GUEST_KV), (T_GUEST_MODULES, GUEST_MODULES), (T_GUEST_UPLOADS, GUEST_UPLOADS)];
/// The tables keyed by u64 (written big-endian), with their record tags.
const ID_TABLES: [(u8, redb::TableDefinition<u64, &[u8]>); 3] =
    [(T_MEMBERS, MEMBERS), (T_DEPLOYMENTS, DEPLOYMENTS), (T_REMOVED_MEMBERS, REMOVED_MEMBERS)];
/// Longest key or value a snapshot may hold (the guest limits are far below).
const MAX_FIELD: usize = 256 << 20;

/// The file name of the snapshot at `index` in `dir`.
pub fn path_for(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.snap"))
}

/// The applied index a read transaction of the state database reflects.
pub fn applied_index(txn: &ReadTransaction) -> anyhow::Result<u64> {
    let meta = txn.open_table(META)?;
    Ok(match meta.get(META_APPLIED_INDEX)? {
        Some(v) => u64::from_be_bytes(v.value().try_into().context("corrupt applied index")?),
        None => 0,
    })
}

/// Writes the state `txn` sees into `path` (through a temporary file renamed into place) and
/// returns the file's size.
pub fn write(txn: &ReadTransaction, path: &Path) -> anyhow::Result<u64> {
    let tmp = path.with_extension("snap.tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = HashingWriter { inner: BufWriter::new(file), hash: Sha256::new(), written: 0 };
    out.write_all(MAGIC)?;
    for (tag, def) in BYTE_TABLES {
        let Some(t) = open_existing(txn, def)? else { continue };
        for item in t.iter()? {
            let (k, v) = item?;
            record(&mut out, tag, k.value(), v.value())?;
        }
    }
    for (tag, def) in ID_TABLES {
        let Some(t) = open_existing(txn, def)? else { continue };
        for item in t.iter()? {
            let (k, v) = item?;
            record(&mut out, tag, &k.value().to_be_bytes(), v.value())?;
        }
    }
    {
        let t = txn.open_table(META)?;
        for item in t.iter()? {
            let (k, v) = item?;
            record(&mut out, T_META, k.value().as_bytes(), v.value())?;
        }
    }
    out.write_all(&[END])?;
    let digest = out.hash.clone().finalize();
    out.inner.write_all(&digest)?;
    let size = out.written + digest.len() as u64;
    let file = out.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(size)
}

/// `def` in `txn`, or None when nothing has written the table yet (a state database from before
/// the table existed): such a table is empty.
fn open_existing<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> anyhow::Result<Option<redb::ReadOnlyTable<K, V>>> {
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
pub fn applied_index_of(path: &Path) -> anyhow::Result<u64> {
    let mut applied = None;
    read_records(path, |table, key, value| {
        if table == T_META && key == META_APPLIED_INDEX.as_bytes() {
            applied = Some(u64::from_be_bytes(value.try_into().context("corrupt applied index")?));
        }
        Ok(())
    })?;
    applied.context("the snapshot has no applied index")
}

/// Checks a snapshot file end to end (structure and digest) without installing it.
pub fn verify(path: &Path) -> anyhow::Result<()> {
    read_records(path, |_, _, _| Ok(()))
}

/// Replaces the state tables in `txn` with the snapshot's and returns the applied index it
/// carries. The digest is checked at the end of the same pass: on any error the caller drops
/// `txn` uncommitted, so a bad file leaves the state untouched.
pub fn install(txn: &WriteTransaction, path: &Path) -> anyhow::Result<u64> {
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
            let id = u64::from_be_bytes(key.try_into().context("table key is not 8 bytes")?);
            t.insert(id, value)?;
            return Ok(());
        }
        match table {
            T_META => {
                let k = std::str::from_utf8(key).context("meta key is not UTF-8")?;
                if k == META_APPLIED_INDEX {
                    applied = Some(u64::from_be_bytes(value.try_into().context("corrupt applied index")?));
                }
                meta.insert(k, value)?;
            }
            t => bail!("unknown table {t}"),
        }
        Ok(())
    })?;
    applied.context("the snapshot has no applied index")
}

fn read_records(path: &Path, mut each: impl FnMut(u8, &[u8], &[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening snapshot {}", path.display()))?;
    let mut r = HashingReader { inner: BufReader::new(file), hash: Sha256::new() };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).context("snapshot is truncated")?;
    ensure!(&magic == MAGIC, "not a wasmraft snapshot");
    let (mut key, mut value) = (Vec::new(), Vec::new());
    loop {
        let mut table = [0u8; 1];
        r.read_exact(&mut table).context("snapshot is truncated")?;
        if table[0] == END {
            break;
        }
        read_field(&mut r, &mut key)?;
        read_field(&mut r, &mut value)?;
        each(table[0], &key, &value)?;
    }
    let expected = r.hash.finalize();
    let mut digest = [0u8; 32];
    r.inner.read_exact(&mut digest).context("snapshot is truncated")?;
    ensure!(digest[..] == expected[..], "snapshot checksum mismatch");
    let mut rest = [0u8; 1];
    ensure!(r.inner.read(&mut rest)? == 0, "trailing bytes after the snapshot");
    Ok(())
}

fn read_field(r: &mut impl Read, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).context("snapshot is truncated")?;
    let len = u32::from_be_bytes(len) as usize;
    ensure!(len <= MAX_FIELD, "snapshot field of {len} bytes is too large");
    buf.resize(len, 0);
    r.read_exact(buf).context("snapshot is truncated")?;
    Ok(())
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
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
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
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
