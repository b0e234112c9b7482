//! HashKV: etcd 3.4's `store.HashByRev` (`mvcc/kvstore.go`), bit for bit, so `etcdctl
//! endpoint hashkv` prints the same value for a wasmraft member as for etcd holding the same
//! history, and a keyspace restored from an etcd snapshot can be checked against its source.
//!
//! etcd hashes its `key` bucket: CRC-32C, seeded with the bucket's name, over every pair up to
//! the revision (in bbolt's order, which is revision order): the revision key (17 bytes, 18 with
//! a deletion's `t`) and the encoded `mvccpb.KeyValue` (a deletion's holds the key alone). This
//! guest's history after a compaction is exactly that bucket's content (see
//! `etcd_backend/walk.rs`), so the hash walks the same pairs; prost encodes a KeyValue as
//! gogoproto does (fields in number order, zero values left out), so the bytes are etcd's.
//!
//! Below the compaction, etcd only hashes the revisions its key index `Keep`s *at the requested
//! revision* (`treeIndex.Keep(rev)`, `keyIndex.keep`): a key's revision kept by the compaction
//! counts only while it is still the key's newest change at that revision (so not once the key
//! was written or deleted after the compaction); and when no key at all exists at that revision,
//! `Keep` is empty and etcd filters nothing. 3.5 kept these rules ("consistent with existing
//! versions"), so the values agree with 3.5's too.

use wasmraft_guest_sdk::ReadStore;
use wasmraft_guest_sdk::crc32c::Crc32c;
use wasmraft_proto::etcdserverpb::{HashKvRequest, HashKvResponse};

use crate::chain;
use crate::errors::{COMPACTED, FUTURE_REV};
use crate::etcd_backend::KEY_BUCKET;
use crate::etcd_backend::walk::KeyBucketWalk;
use crate::layout::Span;
use crate::meta::View;
use crate::range::header;
use crate::read::{Flow, visit};

pub fn hash_kv(store: &dyn ReadStore, req: &HashKvRequest) -> Result<HashKvResponse, String> {
    let view = View::load(store)?;
    // etcd's checks, in its order: a revision at or below the compaction, then one beyond the
    // store (0 means the current revision).
    if req.revision > 0 && req.revision <= view.compacted {
        return Err(COMPACTED.into());
    }
    if req.revision > 0 && req.revision > view.current {
        return Err(FUTURE_REV.into());
    }
    let rev = if req.revision == 0 { view.current } else { req.revision };
    let mut crc = Crc32c::new();
    crc.update(KEY_BUCKET);
    // Whether `Keep(rev)` is empty, asked only if something lies below the compaction.
    let mut keep_empty = None;
    let mut walk = KeyBucketWalk::new(store, Some(rev));
    while let Some(entry) = walk.next_entry().map_err(|e| e.0)? {
        if entry.rev.main <= view.compacted {
            let empty = match keep_empty {
                Some(empty) => empty,
                None => *keep_empty.insert(!any_key_at(store, rev, view.current)?),
            };
            if !empty && changed_since(store, &entry.key, view.compacted, rev)? {
                continue;
            }
        }
        crc.update(&entry.bucket_key());
        crc.update(&entry.value);
    }
    Ok(HashKvResponse { header: header(view.current), hash: crc.sum(), compact_revision: view.compacted })
}

/// Whether any key exists at revision `at`.
fn any_key_at(store: &dyn ReadStore, at: i64, current: i64) -> Result<bool, String> {
    let mut found = false;
    visit(store, &Span::From(Vec::new()), at, current, &mut |_| {
        found = true;
        Ok(Flow::Stop)
    })?;
    Ok(found)
}

/// Whether `key` changed after revision `after` and at or before `upto`.
fn changed_since(store: &dyn ReadStore, key: &[u8], after: i64, upto: i64) -> Result<bool, String> {
    let Some(row) = chain::key_row(store, key)? else { return Ok(false) };
    Ok(chain::newest_at(store, &row, upto)?.is_some_and(|rev| rev.main > after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KvGuest;
    use prost::Message;
    use wasmraft_guest_sdk::testing::Harness;
    use wasmraft_proto::etcdserverpb::{CompactionRequest, InternalRaftRequest, PutRequest};
    use wasmraft_proto::wasmraft::v1::{KvQuery, kv_query};

    fn put(h: &mut Harness<KvGuest>, k: &str, v: &str) {
        let req = InternalRaftRequest {
            put: Some(PutRequest { key: k.into(), value: v.into(), ..Default::default() }),
            ..Default::default()
        };
        h.apply(&req.encode_to_vec()).unwrap();
    }

    fn hash(h: &mut Harness<KvGuest>, revision: i64) -> Result<HashKvResponse, String> {
        let q = KvQuery { request: Some(kv_query::Request::HashKv(HashKvRequest { revision })) };
        h.query(&q.encode_to_vec()).map(|b| HashKvResponse::decode(b.as_slice()).unwrap())
    }

    #[test]
    fn equal_for_equal_history_and_bounded_by_revision() {
        let (mut a, mut b) = (Harness::<KvGuest>::new(), Harness::<KvGuest>::new());
        for h in [&mut a, &mut b] {
            put(h, "a", "1");
            put(h, "b", "2");
        }
        let at3 = hash(&mut a, 0).unwrap();
        assert_eq!(at3.header.unwrap().revision, 3);
        assert_eq!(at3.compact_revision, -1);
        assert_eq!(at3.hash, hash(&mut b, 0).unwrap().hash);
        put(&mut a, "a", "3");
        // A hash at an older revision ignores what came after it.
        assert_eq!(hash(&mut a, 3).unwrap().hash, at3.hash);
        assert_ne!(hash(&mut a, 0).unwrap().hash, at3.hash);
        put(&mut b, "a", "other");
        assert_ne!(hash(&mut a, 0).unwrap().hash, hash(&mut b, 0).unwrap().hash);
    }

    #[test]
    fn etcd_errors_for_compacted_and_future_revisions() {
        let mut h = Harness::<KvGuest>::new();
        put(&mut h, "a", "1");
        put(&mut h, "a", "2");
        assert_eq!(hash(&mut h, 4).unwrap_err(), FUTURE_REV);
        let c = InternalRaftRequest {
            compaction: Some(CompactionRequest { revision: 2, physical: false }),
            ..Default::default()
        };
        h.apply(&c.encode_to_vec()).unwrap();
        assert_eq!(hash(&mut h, 2).unwrap_err(), COMPACTED);
        let r = hash(&mut h, 3).unwrap();
        assert_eq!(r.compact_revision, 2);
    }
}
