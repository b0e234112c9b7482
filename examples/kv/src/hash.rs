//! HashKV: a hash of the MVCC keyspace up to a revision, equal on every member at the same
//! revision (etcd's `kvstore.HashByRev`).
//!
//! etcd hashes its `key` bucket (revision → KeyValue) for every revision up to the requested
//! one, skipping history a compaction has scheduled for removal. This guest removes compacted
//! history in the compaction entry itself, so what is left of the `i/` table at or below the
//! revision is exactly what etcd hashes: the kept newest change of each key at the compaction,
//! and every change after it. The hash covers each such stored change (key, revision and the
//! record, tombstones included) in the table's order, with CRC-32C as etcd uses. The value is
//! not etcd's (the encodings differ) but it is a function of the keyspace's history alone, so
//! members that applied the same log agree, and differ when their history differs.

use wasmraft_guest_sdk::ReadStore;
use wasmraft_guest_sdk::crc32c::Crc32c;
use wasmraft_guest_sdk::prefix_end;
use wasmraft_proto::etcdserverpb::{HashKvRequest, HashKvResponse};

use crate::errors::{COMPACTED, FUTURE_REV, corrupt};
use crate::layout::{INDEX, parse_index_key};
use crate::meta::View;
use crate::pager::Pager;
use crate::range::header;

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
    crc.update(INDEX);
    let mut pager = Pager::new(store, INDEX.to_vec(), prefix_end(INDEX));
    while let Some((stored, record)) = pager.next_pair() {
        let (_, _, change) = parse_index_key(&stored).ok_or_else(|| corrupt("index key"))?;
        if change.main > rev {
            continue;
        }
        crc.update(&stored);
        crc.update(&record);
    }
    Ok(HashKvResponse { header: header(view.current), hash: crc.sum(), compact_revision: view.compacted })
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
