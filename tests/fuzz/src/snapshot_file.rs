//! `snapshot_file`: the files a member installs or opens as its state, from bytes nobody vouches
//! for. The first byte chooses:
//!
//! - bit 1 clear: the rest is a **snapshot file** (`host/storage/src/snapshot.rs`, what a member
//!   receives from the leader and installs, what `wasmraft snapshot restore` reads). With bit 0
//!   set, the last 32 bytes are first replaced by the sha256 of the rest, so the fuzzer gets past
//!   the digest into the records. Installed into a state database holding a known state:
//!   either the install fails with a typed error and the state is exactly as before (the
//!   transaction is dropped, as `apply/snapshot.rs` drops it), or it succeeds and the state is
//!   exactly the file's records (last one wins per key), with the applied index the file says,
//!   and `verify`/`applied_index_of` agree with the install.
//! - bit 1 set: the rest is a **state database file** (`member/state.redb`, opened at start by
//!   `StateDb::open`): opening it and reading every table a snapshot would take, and the applied
//!   index, ends in a value or a typed error, never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase};
use sha2::{Digest, Sha256};
use wasmraft_storage::snapshot;
use wasmraft_storage::tables::{GUEST_KV, MEMBERS, META, META_APPLIED_INDEX};

type State = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

pub fn snapshot_file(data: &[u8]) {
    let Some((mode, rest)) = crate::split_shape(data) else { return };
    let dir = crate::wal_replay::scratch();
    if mode & 2 != 0 {
        state_db(dir.path(), rest);
        return;
    }
    let mut file = rest.to_vec();
    if mode & 1 != 0 && file.len() >= 32 {
        let n = file.len() - 32;
        let digest: [u8; 32] = Sha256::digest(&file[..n]).into();
        file[n..].copy_from_slice(&digest);
    }
    let path = dir.path().join("0000000000000010.snap");
    std::fs::write(&path, &file).expect("write snapshot");

    let db =
        Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).expect("an in-memory database");
    let txn = db.begin_write().expect("write txn");
    {
        txn.open_table(GUEST_KV).expect("table").insert(b"old".as_slice(), b"state".as_slice()).expect("insert");
        txn.open_table(MEMBERS).expect("table").insert(7, b"member".as_slice()).expect("insert");
        txn.open_table(META).expect("table").insert(META_APPLIED_INDEX, 3u64.to_be_bytes().as_slice()).expect("insert");
    }
    txn.commit().expect("commit");
    let before = dump(&db);

    // What the file holds, read on its own.
    let mut records: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
    let read = snapshot::read_records(&path, |t, k, v| {
        records.push((t, k.to_vec(), v.to_vec()));
        Ok(())
    });
    let verified = snapshot::verify(&path);
    assert_eq!(read.is_ok(), verified.is_ok(), "verify agrees with reading the records");
    let applied_of = snapshot::applied_index_of(&path);

    let txn = db.begin_write().expect("write txn");
    match snapshot::install(&txn, &path) {
        Err(e) => {
            let _ = e.to_string();
            drop(txn);
            assert!(dump(&db) == before, "a refused snapshot changes nothing: {e}");
        }
        Ok(applied) => {
            txn.commit().expect("commit");
            assert!(read.is_ok(), "an installed file reads clean");
            assert_eq!(applied_of.ok(), Some(applied), "applied_index_of says what install says");
            let mut expect = State::new();
            for (t, k, v) in records {
                expect.insert((t, k), v);
            }
            let got = dump(&db);
            assert!(got == expect, "the installed state is the file's records");
            let meta = got.get(&(snapshot::T_META, META_APPLIED_INDEX.as_bytes().to_vec()));
            assert_eq!(meta.map(|v| v.as_slice()), Some(applied.to_be_bytes().as_slice()));
        }
    }
}

/// Every record a snapshot of `db` would hold.
fn dump(db: &Database) -> State {
    let txn = db.begin_read().expect("read txn");
    let mut out = State::new();
    snapshot::for_each_record(&txn, |t, k, v| {
        out.insert((t, k.to_vec()), v.to_vec());
        Ok::<_, wasmraft_storage::SnapshotError>(())
    })
    .expect("dump");
    out
}

fn state_db(dir: &Path, bytes: &[u8]) {
    let path = dir.join("state.redb");
    std::fs::write(&path, bytes).expect("write state db");
    let Ok(db) = wasmraft_storage::StateDb::open(&path) else { return };
    let Ok(txn) = db.begin_read() else { return };
    let _ = snapshot::applied_index(&txn);
    let mut n = 0usize;
    let _ = snapshot::for_each_record(&txn, |_, k, v| {
        n += k.len() + v.len();
        Ok::<_, wasmraft_storage::SnapshotError>(())
    });
    drop(txn);
    // A write, as the apply thread's first batch makes.
    let Ok(txn) = db.begin_write() else { return };
    let opened = txn.open_table(META).map(|mut t| t.insert("fuzz", b"x".as_slice()).map(|_| ()));
    if let Ok(Ok(())) = opened {
        let _ = txn.commit();
    }
}
