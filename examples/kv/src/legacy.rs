//! The layout of etcd-kv up to issue 26, and the migration from it, run by [`crate::KvGuest`]'s
//! `migrate` when this guest is swapped in over a keyspace the earlier guest wrote.
//!
//! That layout wrote four rows per put: `l/<key>` (the live KeyValue), `i/<escaped key><rev>`
//! (`p` + KeyValue, or `t`: the key's history in key order), `r/<rev>` (`p`/`t` + key: the
//! revision log) and `m/revision` (the current revision). `m/compacted`, `L/` and `K/` are
//! unchanged. The migration replays the revision log in order through [`chain::append`], exactly
//! as an import of the same history would, and removes the old rows; `m/revision` becomes the
//! revision floor if the newest change is older (a compaction dropped it). It runs inside the swap entry, so it is all or nothing: if
//! it fails (a corrupt old table, or a keyspace larger than the deployment's memory cap lets
//! one entry rewrite), the swap is refused on every member and the earlier guest keeps serving
//! its keyspace untouched.

use wasmraft_guest_sdk::{Store, prefix_end};

use crate::chain;
use crate::errors::corrupt;
use crate::layout::{HISTORY, KEYS, META_REVISION, key_row, prefixed, successor};
use crate::meta::keep_revision;
use crate::record::live_of;
use crate::revision::Revision;

const LIVE: &[u8] = b"l/";
const INDEX: &[u8] = b"i/";
const REVISIONS: &[u8] = b"r/";

/// What a migration did, for tests and the swap's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    pub changes: u64,
    pub live_keys: u64,
}

fn any_under(store: &dyn Store, prefix: &[u8]) -> bool {
    !store.scan_page(prefix, &prefix_end(prefix), 1, false).is_empty()
}

/// Rewrites an old-layout keyspace into the current one; nothing to do (`Ok` with zero counts)
/// when the keyspace holds no old rows.
pub fn migrate(store: &mut dyn Store) -> Result<Migrated, String> {
    if ![LIVE, INDEX, REVISIONS].iter().any(|p| any_under(&*store, p)) {
        return Ok(Migrated::default());
    }
    if any_under(&*store, HISTORY) || any_under(&*store, KEYS) {
        // Rows of both layouts: an earlier guest wrote its own over this one's (a rollback
        // across the layout change). Which is newer cannot be told row by row.
        return Err(corrupt(
            "the keyspace holds rows of both the old layout (l/, i/, r/) and the new (h/, k/); an earlier etcd-kv ran over this one's keyspace, and its writes cannot be merged",
        ));
    }
    let mut done = Migrated::default();
    let end = prefix_end(REVISIONS);
    let mut start = REVISIONS.to_vec();
    loop {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { break };
        start = successor(last);
        for (stored, entry) in page {
            let rev = stored
                .strip_prefix(REVISIONS)
                .and_then(Revision::decode)
                .ok_or_else(|| corrupt("old revision log key"))?;
            let (tombstone, key) = match entry.split_first() {
                Some((b'p', key)) => (false, key),
                Some((b't', key)) => (true, key),
                _ => return Err(corrupt("old revision log entry")),
            };
            let index = index_key(key, rev);
            let record =
                store.get(&index).ok_or_else(|| corrupt("old revision log entry without its history record"))?;
            let kv = match (record.split_first(), tombstone) {
                (Some((b'p', kv)), false) => Some(kv),
                (Some((b't', [])), true) => None,
                _ => return Err(corrupt("old history record does not match the revision log")),
            };
            let fingers = chain::key_row(&*store, key)?.map(|r| r.fingers).unwrap_or_default();
            chain::append(store, key, fingers, rev, kv);
            store.delete(&index);
            store.delete(&stored);
            done.changes += 1;
        }
    }
    if any_under(&*store, INDEX) {
        return Err(corrupt("old history records the revision log does not name"));
    }
    // Every live key's value is its newest put, which the replay just wrote to its row.
    loop {
        let page = store.scan_page(LIVE, &prefix_end(LIVE), 0, false);
        if page.is_empty() {
            break;
        }
        for (stored, kv) in page {
            let key = &stored[LIVE.len()..];
            let row = store.get(&key_row(key)).ok_or_else(|| corrupt("old live key without history"))?;
            if live_of(&row)? != Some(kv.as_slice()) {
                return Err(corrupt("old live value is not the key's newest put"));
            }
            store.delete(&stored);
            done.live_keys += 1;
        }
    }
    if let Some(bytes) = store.get(META_REVISION) {
        let rev: [u8; 8] = bytes.as_slice().try_into().map_err(|_| corrupt("old meta revision"))?;
        keep_revision(store, i64::from_be_bytes(rev))?;
        store.delete(META_REVISION);
    }
    Ok(done)
}

/// `i/<escaped key><revision>`: the key escaped (`00` → `00 FF`) and terminated (`00 00`).
fn index_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(key.len() + 2 + 16);
    for &b in key {
        escaped.push(b);
        if b == 0 {
            escaped.push(0xff);
        }
    }
    escaped.extend_from_slice(&[0, 0]);
    escaped.extend_from_slice(&rev.encode());
    prefixed(INDEX, &escaped)
}
