//! Version 0.2.0 of the bundled etcd KV guest (`etcd-kv`), for the swap tests and as an example
//! of upgrading a guest in a running cluster.
//!
//! It is v1 ([`KvGuest`], `examples/kv`) for every entry and query — same keyspace layout, same
//! answers — plus a migration a client can observe: when it replaces `etcd-kv` 0.1.x, its
//! `migrate` writes [`VERSION_KEY`] = `0.2.0` through v1's own put path, inside the swap entry.
//! So the marker is an ordinary etcd key with an ordinary revision: every write acknowledged
//! before the swap has a lower revision, every write after it a higher one, and a watcher sees
//! the put. A rollback to v1 leaves the key as it is (v1 knows nothing of it).
//!
//! It depends on `wasmraft-kv-guest` with `default-features = false`, so v1's own export is off
//! and this crate exports its wrapper instead.

use prost::Message as _;
use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};
use wasmraft_kv_guest::KvGuest;
use wasmraft_proto::etcdserverpb::{InternalRaftRequest, PutRequest};

/// The key the migration from 0.1.x writes, with this guest's version as its value.
pub const VERSION_KEY: &str = "wasmraft/kv-version";

/// The etcd KV state machine, version 0.2.0.
pub struct KvGuestV2;

impl StateMachine for KvGuestV2 {
    fn info() -> GuestInfo {
        GuestInfo { version: env!("CARGO_PKG_VERSION").to_string(), ..KvGuest::info() }
    }

    fn apply(ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        KvGuest::apply(ctx, store, command)
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        KvGuest::query(store, request)
    }

    /// v1's migration (its layout), then, from `etcd-kv` 0.1.x: records the upgrade as an etcd put of [`VERSION_KEY`]. From
    /// anything else (the first guest of a new cluster, or a forced swap from another guest)
    /// there is nothing to upgrade.
    fn migrate(from: &GuestInfo, store: &mut dyn Store) -> Result<(), String> {
        // v1's own migration first (its storage layout, from an older etcd-kv), as any wrapper
        // of a guest must.
        KvGuest::migrate(from, store)?;
        if from.name != KvGuest::info().name || !from.version.starts_with("0.1.") {
            return Ok(());
        }
        let put = InternalRaftRequest {
            put: Some(PutRequest {
                key: VERSION_KEY.as_bytes().to_vec(),
                value: env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        // v1's apply ignores the context; the migration has no entry of its own to describe.
        KvGuest::apply(&ApplyContext::default(), store, &put.encode_to_vec()).map(|_| ()).map_err(|e| {
            format!("etcd-kv {}: recording the upgrade from {}: {e}", env!("CARGO_PKG_VERSION"), from.version)
        })
    }
}

// Only when building the component: a native build of the whole workspace unifies features, so
// there `wasmraft-kv-guest` has its `export` feature on, and two exported worlds in one native
// cdylib are duplicate symbols.
#[cfg(target_arch = "wasm32")]
wasmraft_guest_sdk::export_guest!(KvGuestV2);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_guest_sdk::testing::Harness;
    use wasmraft_proto::etcdserverpb::{PutResponse, RangeRequest, RangeResponse};

    fn put(h: &mut Harness<KvGuestV2>, key: &str, value: &str) -> i64 {
        let cmd = InternalRaftRequest {
            put: Some(PutRequest { key: key.into(), value: value.into(), ..Default::default() }),
            ..Default::default()
        };
        let resp = PutResponse::decode(h.apply(&cmd.encode_to_vec()).expect("put").as_slice()).expect("PutResponse");
        resp.header.expect("header").revision
    }

    fn get(h: &Harness<KvGuestV2>, key: &str) -> Option<(String, i64)> {
        let req = RangeRequest { key: key.into(), ..Default::default() };
        let resp =
            RangeResponse::decode(h.query(&req.encode_to_vec()).expect("range").as_slice()).expect("RangeResponse");
        resp.kvs.first().map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.mod_revision))
    }

    #[test]
    fn same_name_higher_version() {
        let (v1, v2) = (KvGuest::info(), KvGuestV2::info());
        assert_eq!((v2.name.as_str(), v2.version.as_str(), &v2.apis), (v1.name.as_str(), "0.2.0", &v1.apis));
    }

    #[test]
    fn migrating_from_v1_puts_the_version_key_between_earlier_and_later_writes() {
        let mut h = Harness::<KvGuestV2>::new();
        let before = put(&mut h, "a", "1");
        h.migrate(&KvGuest::info()).expect("migrate from 0.1.0");
        let (value, marker) = get(&h, VERSION_KEY).expect("the version key");
        assert_eq!(value, "0.2.0");
        let after = put(&mut h, "b", "2");
        assert!(before < marker && marker < after, "{before} < {marker} < {after}");
    }

    #[test]
    fn a_new_cluster_or_another_guest_gets_no_marker() {
        let mut h = Harness::<KvGuestV2>::new();
        h.migrate(&GuestInfo::default()).expect("first guest");
        h.migrate(&GuestInfo::new("counter", "0.1.0")).expect("forced from another guest");
        assert_eq!(get(&h, VERSION_KEY), None);
    }
}
