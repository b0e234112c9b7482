//! A guest module's journey through the log in pieces, and the rules every piece must pass.
//!
//! Every member applies every piece, and applies it again on every replay of the log, so a
//! piece that can make apply panic is a piece that crashes the whole cluster at each restart.
//! Before anything is written, a piece is checked against the rules below: it names a 32-byte
//! hash, a module size within the limit, a slot on the fixed grid (piece i at offset
//! i × [`MODULE_CHUNK_BYTES`], every piece full but the last, which ends the module), the same
//! module size its upload's earlier pieces gave, and the same bytes as an earlier copy of
//! itself. A piece that breaks a rule is refused with an error for its proposer and changes
//! nothing. Pieces that pass are stored; once every slot is filled the module is assembled, and
//! kept only if it hashes to its name (otherwise the whole upload is dropped).
//!
//! An upload that is never finished would hold its pieces forever, so at most [`MAX_UPLOADS`]
//! are in progress: the first piece of another drops the oldest (by the index it started at,
//! the same on every member).

use redb::{ReadableTable, Table, WriteTransaction};
use wasmraft_proto::wasmraft::v1 as pb;
use wasmraft_runtime::sha256;

use super::{MAX_MODULE_BYTES, MODULE_CHUNK_BYTES};
use wasmraft_storage::tables::{GUEST_MODULES, GUEST_UPLOADS};

/// Uploads in progress at most (4 × [`MAX_MODULE_BYTES`] of pieces): room for concurrent
/// deploys, and a bound on what abandoned ones leave behind.
pub const MAX_UPLOADS: usize = 4;

/// Why a piece was refused. Its text is what the proposer sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PieceRefused {
    #[error("wasmraft: a module hash is 32 bytes, not {0}")]
    HashLength(usize),
    #[error("wasmraft: a module of {0} bytes is outside 1..={MAX_MODULE_BYTES} bytes")]
    ModuleSize(u64),
    #[error(
        "wasmraft: no module piece starts at offset {offset} of a module of {total} bytes (pieces start every {MODULE_CHUNK_BYTES} bytes)"
    )]
    Offset { offset: u64, total: u64 },
    #[error("wasmraft: the module piece at offset {offset} has {len} bytes; the piece there has {expected}")]
    Length { offset: u64, len: usize, expected: u64 },
    #[error("wasmraft: the piece says module {hash} has {claimed} bytes; its earlier pieces said {recorded}")]
    SizeDisagrees { hash: String, claimed: u64, recorded: u64 },
    #[error("wasmraft: the piece at offset {offset} of module {hash} differs from the one already received there")]
    Conflicts { hash: String, offset: u64 },
    #[error("wasmraft: the pieces of module {0} do not hash to it; they were dropped")]
    HashMismatch(String),
    #[error("wasmraft: the stored pieces of module {0} do not make up a module of its size; they were dropped")]
    Inconsistent(String),
}

/// What an upload's first piece recorded (its key is the module's hash alone, which sorts
/// before every piece key `hash ‖ offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Upload {
    total_size: u64,
    started_at: u64,
}

impl Upload {
    fn encode(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.total_size.to_be_bytes());
        out[8..].copy_from_slice(&self.started_at.to_be_bytes());
        out
    }

    /// None for bytes that are not a record (then the upload is treated as one without).
    fn decode(bytes: &[u8]) -> Option<Upload> {
        let total = bytes.get(..8)?.try_into().ok()?;
        let started = bytes.get(8..16)?.try_into().ok()?;
        Some(Upload { total_size: u64::from_be_bytes(total), started_at: u64::from_be_bytes(started) })
    }
}

/// The piece's module hash.
fn module_hash(c: &pb::GuestModuleChunk) -> Result<[u8; 32], PieceRefused> {
    c.sha256.as_slice().try_into().map_err(|_| PieceRefused::HashLength(c.sha256.len()))
}

/// The module size is within the limit.
fn check_module_size(total: u64) -> Result<(), PieceRefused> {
    if total == 0 || total > MAX_MODULE_BYTES {
        return Err(PieceRefused::ModuleSize(total));
    }
    Ok(())
}

/// The number of pieces a module of `total` bytes travels in.
fn pieces_in(total: u64) -> u64 {
    total.div_ceil(MODULE_CHUNK_BYTES as u64)
}

/// The length the piece at `offset` must have: the offset is a slot of the grid inside the
/// module, so no sum below can overflow.
fn slot_length(offset: u64, total: u64) -> Result<u64, PieceRefused> {
    if offset >= total || !offset.is_multiple_of(MODULE_CHUNK_BYTES as u64) {
        return Err(PieceRefused::Offset { offset, total });
    }
    Ok((total - offset).min(MODULE_CHUNK_BYTES as u64))
}

/// The piece fills its slot exactly (which also bounds its size by [`MODULE_CHUNK_BYTES`]).
fn check_length(c: &pb::GuestModuleChunk) -> Result<(), PieceRefused> {
    let expected = slot_length(c.offset, c.total_size)?;
    if c.data.len() as u64 != expected {
        return Err(PieceRefused::Length { offset: c.offset, len: c.data.len(), expected });
    }
    Ok(())
}

/// Everything a piece must be on its own; returns its module hash.
fn check_piece(c: &pb::GuestModuleChunk) -> Result<[u8; 32], PieceRefused> {
    let hash = module_hash(c)?;
    check_module_size(c.total_size)?;
    check_length(c)?;
    Ok(hash)
}

/// The piece gives the module size its upload's first piece gave.
fn check_same_size(upload: Upload, hash: &[u8; 32], claimed: u64) -> Result<(), PieceRefused> {
    if upload.total_size != claimed {
        return Err(PieceRefused::SizeDisagrees { hash: hex::encode(hash), claimed, recorded: upload.total_size });
    }
    Ok(())
}

/// A piece received twice must be the same bytes both times.
fn check_same_bytes(earlier: &[u8], hash: &[u8; 32], c: &pb::GuestModuleChunk) -> Result<(), PieceRefused> {
    if earlier != c.data.as_slice() {
        return Err(PieceRefused::Conflicts { hash: hex::encode(hash), offset: c.offset });
    }
    Ok(())
}

fn piece_key(hash: &[u8; 32], offset: u64) -> Vec<u8> {
    [hash.as_slice(), &offset.to_be_bytes()].concat()
}

/// Applies one piece of a module at log index `index`: checks it, stores it, and once the
/// upload's pieces fill every slot and hash to the module's sha256, stores the module and
/// returns it. `Ok(Err(_))` refuses the piece; `Err` is a storage failure.
pub fn apply_chunk(
    txn: &WriteTransaction,
    c: &pb::GuestModuleChunk,
    index: u64,
) -> Result<Result<Option<Vec<u8>>, PieceRefused>, redb::Error> {
    let hash = match check_piece(c) {
        Ok(h) => h,
        Err(refused) => return Ok(Err(refused)),
    };
    if txn.open_table(GUEST_MODULES)?.get(hash.as_slice())?.is_some() {
        return Ok(Ok(None));
    }
    let mut uploads = txn.open_table(GUEST_UPLOADS)?;
    let upload = uploads.get(hash.as_slice())?.and_then(|v| Upload::decode(v.value()));
    if let Some(upload) = upload
        && let Err(refused) = check_same_size(upload, &hash, c.total_size)
    {
        return Ok(Err(refused));
    }
    let key = piece_key(&hash, c.offset);
    let earlier = uploads.get(key.as_slice())?.map(|v| v.value().to_vec());
    if let Some(earlier) = earlier {
        // A resent piece (a retried proposal): nothing new, unless it contradicts the first.
        return Ok(check_same_bytes(&earlier, &hash, c).map(|()| None));
    }
    if upload.is_none() {
        make_room(&mut uploads)?;
        uploads.insert(hash.as_slice(), Upload { total_size: c.total_size, started_at: index }.encode().as_slice())?;
    }
    uploads.insert(key.as_slice(), c.data.as_slice())?;

    let (lo, hi) = (piece_key(&hash, 0), piece_key(&hash, u64::MAX));
    let received = uploads.range(lo.as_slice()..=hi.as_slice())?.count() as u64;
    if received < pieces_in(c.total_size) {
        return Ok(Ok(None));
    }
    let mut module = Vec::with_capacity(c.total_size as usize);
    for item in uploads.range(lo.as_slice()..=hi.as_slice())? {
        module.extend_from_slice(item?.1.value());
    }
    drop_upload(&mut uploads, &hash)?;
    // Pieces stored before these rules existed were never checked against the grid.
    if module.len() as u64 != c.total_size {
        return Ok(Err(PieceRefused::Inconsistent(hex::encode(hash))));
    }
    if sha256(&module) != hash {
        return Ok(Err(PieceRefused::HashMismatch(hex::encode(hash))));
    }
    txn.open_table(GUEST_MODULES)?.insert(hash.as_slice(), module.as_slice())?;
    Ok(Ok(Some(module)))
}

/// Removes an upload's record and pieces.
fn drop_upload(uploads: &mut Table<&'static [u8], &'static [u8]>, hash: &[u8; 32]) -> Result<(), redb::Error> {
    let (lo, hi) = (piece_key(hash, 0), piece_key(hash, u64::MAX));
    uploads.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
    uploads.remove(hash.as_slice())?;
    Ok(())
}

/// Before a new upload starts: if [`MAX_UPLOADS`] are in progress, drops the one that started
/// first (the lowest hash among equals, so every member drops the same one).
fn make_room(uploads: &mut Table<&'static [u8], &'static [u8]>) -> Result<(), redb::Error> {
    let mut open = Vec::new();
    for item in uploads.iter()? {
        let (k, v) = item?;
        if let (Ok(hash), Some(upload)) = (<[u8; 32]>::try_from(k.value()), Upload::decode(v.value())) {
            open.push((upload.started_at, hash));
        }
    }
    if open.len() < MAX_UPLOADS {
        return Ok(());
    }
    if let Some((_, oldest)) = open.iter().min() {
        tracing::info!("wasmraft: dropping the unfinished upload of module {} to start another", hex::encode(oldest));
        drop_upload(uploads, oldest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase as _;

    use super::*;

    const CHUNK: usize = MODULE_CHUNK_BYTES;

    fn db() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("s.redb")).expect("db");
        let txn = db.begin_write().expect("txn");
        super::super::create_tables(&txn).expect("tables");
        txn.commit().expect("commit");
        (dir, db)
    }

    /// A module of `len` bytes and its pieces on the grid.
    fn module(len: usize, seed: u8) -> (Vec<u8>, Vec<pb::GuestModuleChunk>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ seed).collect();
        let hash = sha256(&bytes).to_vec();
        let pieces = bytes
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, d)| pb::GuestModuleChunk {
                sha256: hash.clone(),
                total_size: len as u64,
                offset: (i * CHUNK) as u64,
                data: d.to_vec(),
            })
            .collect();
        (bytes, pieces)
    }

    /// Every row of the uploads and modules tables.
    fn tables(db: &redb::Database) -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = db.begin_read().expect("read");
        let mut rows = Vec::new();
        for t in [GUEST_UPLOADS, GUEST_MODULES] {
            for item in r.open_table(t).expect("table").iter().expect("iter") {
                let (k, v) = item.expect("row");
                rows.push((k.value().to_vec(), v.value().to_vec()));
            }
        }
        rows
    }

    /// Applies `c` in its own committed transaction.
    fn apply(db: &redb::Database, c: &pb::GuestModuleChunk, index: u64) -> Result<Option<Vec<u8>>, PieceRefused> {
        let txn = db.begin_write().expect("txn");
        let out = apply_chunk(&txn, c, index).expect("storage");
        txn.commit().expect("commit");
        out
    }

    /// Applies `c`, expecting the refusal `matches` accepts and no change to the tables.
    fn refused(db: &redb::Database, c: &pb::GuestModuleChunk, matches: impl Fn(&PieceRefused) -> bool) -> String {
        let before = tables(db);
        let e = apply(db, c, 99).expect_err("the piece is refused");
        assert!(matches(&e), "{e:?}");
        assert_eq!(tables(db), before, "a refused piece changes nothing: {e}");
        e.to_string()
    }

    #[test]
    fn pieces_arrive_in_any_order_and_resent_ones_are_no_ops() {
        let (_d, db) = db();
        let (bytes, pieces) = module(2 * CHUNK + 1000, 1);
        assert_eq!(apply(&db, &pieces[2], 1), Ok(None));
        assert_eq!(apply(&db, &pieces[0], 2), Ok(None));
        assert_eq!(apply(&db, &pieces[0], 3), Ok(None), "a resent piece");
        assert_eq!(apply(&db, &pieces[1], 4), Ok(Some(bytes.clone())), "the last slot completes it");
        let r = db.begin_read().expect("read");
        assert_eq!(super::super::stored_module(&r, &sha256(&bytes)).expect("read"), Some(bytes));
        assert_eq!(r.open_table(GUEST_UPLOADS).expect("t").iter().expect("iter").count(), 0, "the upload is gone");
        drop(r);
        assert_eq!(apply(&db, &pieces[1], 5), Ok(None), "a stored module's pieces are no-ops");
    }

    #[test]
    fn forged_pieces_are_refused_and_change_nothing() {
        let (_d, db) = db();
        let (_, pieces) = module(2 * CHUNK + 1000, 2);
        assert_eq!(apply(&db, &pieces[0], 1), Ok(None));
        let with = |f: &dyn Fn(&mut pb::GuestModuleChunk)| {
            let mut c = pieces[1].clone();
            f(&mut c);
            c
        };
        refused(&db, &with(&|c| c.sha256.truncate(31)), |e| matches!(e, PieceRefused::HashLength(31)));
        refused(&db, &with(&|c| c.total_size = 0), |e| matches!(e, PieceRefused::ModuleSize(0)));
        refused(&db, &with(&|c| c.total_size = MAX_MODULE_BYTES + 1), |e| matches!(e, PieceRefused::ModuleSize(_)));
        // Not a slot of the grid: off it, past the end, at the largest offsets.
        refused(&db, &with(&|c| c.offset += 1), |e| matches!(e, PieceRefused::Offset { .. }));
        refused(&db, &with(&|c| c.offset = 3 * CHUNK as u64), |e| matches!(e, PieceRefused::Offset { .. }));
        refused(&db, &with(&|c| c.offset = u64::MAX), |e| matches!(e, PieceRefused::Offset { .. }));
        refused(&db, &with(&|c| c.offset = u64::MAX - u64::MAX % CHUNK as u64), |e| {
            matches!(e, PieceRefused::Offset { .. })
        });
        // Not the slot's length: short, empty, oversize, a last piece that overruns the module.
        refused(&db, &with(&|c| c.data.truncate(c.data.len() - 1)), |e| matches!(e, PieceRefused::Length { .. }));
        refused(&db, &with(&|c| c.data.clear()), |e| matches!(e, PieceRefused::Length { .. }));
        refused(&db, &with(&|c| c.data.push(0)), |e| matches!(e, PieceRefused::Length { .. }));
        let mut last = pieces[2].clone();
        last.data.extend_from_slice(&[0; 10]);
        refused(&db, &last, |e| matches!(e, PieceRefused::Length { .. }));
        // Another module size than the first piece gave (the slot fits the claimed size).
        let text = refused(&db, &with(&|c| c.total_size = 2 * CHUNK as u64), |e| {
            matches!(e, PieceRefused::SizeDisagrees { .. })
        });
        assert!(text.contains("earlier pieces said"), "{text}");
        // The same slot again with other bytes.
        let mut other = pieces[0].clone();
        other.data[7] ^= 0xff;
        refused(&db, &other, |e| matches!(e, PieceRefused::Conflicts { offset: 0, .. }));
    }

    /// Before the rules, pieces whose module sizes disagreed made assembly index past the
    /// module (a slice panic on every member, on every replay). They are refused now, and
    /// the honest upload still completes.
    #[test]
    fn the_pieces_that_used_to_panic_are_refused() {
        let (_d, db) = db();
        let (bytes, pieces) = module(3 * CHUNK, 3);
        let hash = pieces[0].sha256.clone();
        let forged = |offset: usize, len: usize, total: usize| pb::GuestModuleChunk {
            sha256: hash.clone(),
            total_size: total as u64,
            offset: offset as u64,
            data: bytes[offset..offset + len].to_vec(),
        };
        assert!(apply(&db, &forged(CHUNK / 2, CHUNK, 3 * CHUNK), 1).is_err());
        assert_eq!(apply(&db, &pieces[1], 2), Ok(None));
        assert_eq!(apply(&db, &pieces[2], 3), Ok(None));
        assert!(matches!(apply(&db, &forged(0, 100, 100), 4), Err(PieceRefused::SizeDisagrees { .. })));
        assert_eq!(apply(&db, &pieces[0], 5), Ok(Some(bytes)));
    }

    #[test]
    fn pieces_that_do_not_hash_to_their_name_are_dropped_whole() {
        let (_d, db) = db();
        let (_, mut pieces) = module(CHUNK + 10, 4);
        for p in &mut pieces {
            p.sha256 = vec![7; 32];
        }
        assert_eq!(apply(&db, &pieces[0], 1), Ok(None));
        let e = apply(&db, &pieces[1], 2).expect_err("refused");
        assert!(matches!(e, PieceRefused::HashMismatch(_)), "{e:?}");
        assert!(e.to_string().contains("do not hash"), "{e}");
        assert!(tables(&db).is_empty(), "the upload was dropped: {:?}", tables(&db).len());
    }

    /// Pieces an older version stored (no upload record, maybe off the grid) cannot make
    /// assembly panic either: a module of the wrong size is dropped with an error.
    #[test]
    fn pieces_stored_without_a_record_are_checked_at_assembly() {
        let (_d, db) = db();
        let (_, pieces) = module(CHUNK + 10, 5);
        let hash: [u8; 32] = pieces[0].sha256.as_slice().try_into().expect("32 bytes");
        let txn = db.begin_write().expect("txn");
        txn.open_table(GUEST_UPLOADS)
            .expect("t")
            .insert(piece_key(&hash, 5).as_slice(), [1u8; 20].as_slice())
            .expect("insert");
        txn.commit().expect("commit");
        assert!(matches!(apply(&db, &pieces[0], 1), Err(PieceRefused::Inconsistent(_))));
        assert!(tables(&db).is_empty());
        // And then the real upload goes through.
        assert_eq!(apply(&db, &pieces[0], 2), Ok(None));
        assert!(matches!(apply(&db, &pieces[1], 3), Ok(Some(_))));
    }

    #[test]
    fn a_new_upload_beyond_the_limit_drops_the_oldest() {
        let (_d, db) = db();
        let uploads: Vec<_> = (0..=MAX_UPLOADS as u8).map(|seed| module(CHUNK + 1, 10 + seed)).collect();
        for (i, (_, pieces)) in uploads.iter().enumerate() {
            assert_eq!(apply(&db, &pieces[0], 10 + i as u64), Ok(None));
        }
        let open = |db: &redb::Database| tables(db).iter().filter(|(k, _)| k.len() == 32).count();
        assert_eq!(open(&db), MAX_UPLOADS);
        // The first upload's piece was dropped: its last piece alone does not complete it.
        assert_eq!(apply(&db, &uploads[0].1[1], 20), Ok(None));
        assert_eq!(open(&db), MAX_UPLOADS);
        // The newest upload completes.
        let (bytes, pieces) = &uploads[MAX_UPLOADS];
        assert_eq!(apply(&db, &pieces[1], 21), Ok(Some(bytes.clone())));
    }
}
