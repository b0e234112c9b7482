//! wasmraft's protocol contracts, in one place so that every crate (and every Wasm guest) agrees
//! on the bytes.
//!
//! * [`etcdserverpb`], [`mvccpb`], [`authpb`], [`leasepb`], [`v3lockpb`], [`v3electionpb`]: etcd 3.4's v3 API, written from etcd's published
//!   .proto files with etcd's package names, message names and field numbers. Clients (etcdctl,
//!   clientv3, python etcd3, the etcd-client crate) talk to the host through these services, and
//!   the bundled KV guest receives etcd's `InternalRaftRequest` encoding as its raft command.
//! * [`wasmraft::v1`]: wasmraft's own messages, e.g. the envelope of every proposed raft entry.
//! * [`WIT_DIR`]: the guest ABI, a WIT world, for hosts and guests to bind against.
//!
//! Code is generated at build time by protox (no system `protoc`) and tonic-prost-build. The
//! messages are always generated; the tonic server traits and clients (for example
//! `etcdserverpb::kv_server::{Kv, KvServer}` and `etcdserverpb::kv_client::KvClient`) only with
//! the default `grpc` feature. Built with `default-features = false` the crate has no tonic
//! dependency and compiles for `wasm32-unknown-unknown`, which is how guests use it.
//!
//! With the `json` feature, etcd's messages also implement serde's traits in the protobuf JSON
//! mapping as grpc-gateway applies it for etcd (pbjson: .proto field names, 64-bit integers as
//! strings, enums as names, bytes as base64, defaults omitted), for the API's JSON gateway.
//!
//! prost turns etcd's field names into snake case mechanically, so a few Rust names look odd
//! (`ID` → `id`, `TTL` → `ttl`, `peerURLs` → `peer_ur_ls`); the wire format is unaffected.

/// Names and versions every crate must agree on: what the API layer, the node, the lessor and
/// the watch hub check a guest for, and what the member tells clients it is. Kept here, with the
/// wire contracts, so that no crate has to import another's internals to learn them.
pub mod go;

pub mod contract {
    /// What a guest lists in its `apis` when it serves etcd's KV API with etcd's encodings
    /// (`InternalRaftRequest` commands, `RangeRequest` queries). The guest SDK's
    /// `API_ETCD_KV` is the same string (a host test checks it).
    pub const ETCD_KV_API: &str = "etcd.v3.kv";

    /// The etcd version Maintenance.Status, `/version` and `etcd_server_version` report unless
    /// `--wasmraft-emulated-etcd-version` says otherwise. wasmraft speaks etcd 3.4's v3 API, and
    /// clients (etcdctl, clientv3, Kubernetes) read this field to decide what the server supports
    /// (Kubernetes turns on consistent reads from its watch cache at 3.4.31), so it names the
    /// etcd release whose client-visible behaviour wasmraft reproduces — watch progress requests
    /// as 3.4.31 answers them included — rather than wasmraft's own version. The README lists
    /// what each reported version implies.
    pub const ETCD_VERSION: &str = "3.4.31";

    /// The cluster version written into etcd backend files (Maintenance.Snapshot's bbolt file):
    /// the format is etcd 3.4's whatever version is reported, so etcd 3.4's tools restore it.
    pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

    /// The cluster version `/version` reports next to a server `version` (etcd's `etcdcluster`:
    /// major.minor.0 of the lowest member; every member of a wasmraft cluster reports the same
    /// API). `version` is a semantic version (the binary checks the flag); anything else gives
    /// itself back.
    pub fn cluster_version(version: &str) -> String {
        let mut parts = version.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some(major), Some(minor)) => format!("{major}.{minor}.0"),
            _ => version.to_owned(),
        }
    }
}

/// etcd's v3 API: the KV, Watch, Lease, Cluster, Maintenance and Auth services, their messages,
/// and the raft-internal request union (`InternalRaftRequest`) with etcd v2's `Request`.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// etcd's MVCC messages: `KeyValue` and watch `Event`.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// etcd's auth records: `User`, `Role`, `Permission`, `UserAddOptions`.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// etcd's lease records: `Lease`, the value of an etcd backend's `lease` bucket (what an etcd
/// snapshot file carries for each granted lease), and the peer messages of `/leases/internal`.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod leasepb {
    include!(concat!(env!("OUT_DIR"), "/leasepb.rs"));
}

/// etcd's lock service (`etcdserver/api/v3lock`): the client-side mutex recipe served over gRPC.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// etcd's election service (`etcdserver/api/v3election`): the client-side election recipe
/// served over gRPC.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

/// wasmraft's own protos.
#[allow(clippy::all, clippy::pedantic)] // generated code
pub mod wasmraft {
    /// Version 1 of wasmraft's protos.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/wasmraft.v1.rs"));
    }
}

/// The directory holding the guest WIT world (`guest.wit`), for `wasmtime::component::bindgen!`
/// and `wit_bindgen::generate!`.
pub const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wit");

/// The encoded `FileDescriptorSet` of every .proto file in this crate (with imports and source
/// info), e.g. for a gRPC reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wasmraft_proto_descriptor.bin"));

/// These tests pin the wire format to etcd's field numbers and types (read from etcd v3.4.23's
/// .proto files) by comparing prost's output with bytes encoded by hand, and decoding them back.
#[cfg(test)]
mod tests {
    use super::authpb::{Permission, permission};
    use super::etcdserverpb::*;
    use super::mvccpb::{Event, KeyValue, event};
    use prost::Message;

    // A minimal protobuf encoder, independent of prost.
    const VARINT: u64 = 0;
    const LEN: u64 = 2;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A varint field.
    fn v(field: u64, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3 | VARINT, &mut out);
        varint(value, &mut out);
        out
    }

    /// A length-delimited field.
    fn l(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3 | LEN, &mut out);
        varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// prost must encode `msg` as exactly `expected`, and decode `expected` back to `msg`.
    fn check<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
        assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
        assert_eq!(&M::decode(expected).expect("decodes"), msg);
    }

    #[test]
    fn encoder_sanity() {
        // Field 1 varint 150: the example of the protobuf encoding guide.
        assert_eq!(v(1, 150), [0x08, 0x96, 0x01]);
        // Field 100 length-delimited: key 802 = 0xa2 0x06.
        assert_eq!(l(100, &[]), [0xa2, 0x06, 0x00]);
    }

    #[test]
    fn response_header() {
        let h = ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 };
        check(&h, &[0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4]);
    }

    #[test]
    fn mvcc_key_value_and_event() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 4,
            value: b"v".to_vec(),
            lease: 6,
        };
        let kv_bytes = [0x0a, 1, b'k', 0x10, 2, 0x18, 3, 0x20, 4, 0x2a, 1, b'v', 0x30, 6];
        check(&kv, &kv_bytes);

        let ev =
            Event { r#type: event::EventType::Delete as i32, kv: Some(kv.clone()), prev_kv: Some(KeyValue::default()) };
        check(&ev, &cat(&[v(1, 1), l(2, &kv_bytes), l(3, &[])]));
    }

    #[test]
    fn put_request() {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 3,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        };
        check(&put, &[0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 3, 0x20, 1, 0x28, 1, 0x30, 1]);

        let resp = PutResponse {
            header: Some(ResponseHeader { revision: 9, ..Default::default() }),
            prev_kv: Some(KeyValue { version: 1, ..Default::default() }),
        };
        check(&resp, &cat(&[l(1, &v(3, 9)), l(2, &v(4, 1))]));
    }

    #[test]
    fn range_request_and_response() {
        let r = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 3,
            revision: 4,
            sort_order: range_request::SortOrder::Descend as i32,
            sort_target: range_request::SortTarget::Value as i32,
            serializable: true,
            keys_only: true,
            count_only: true,
            min_mod_revision: 10,
            max_mod_revision: 11,
            min_create_revision: 12,
            max_create_revision: 13,
        };
        check(
            &r,
            &cat(&[
                l(1, b"a"),
                l(2, b"b"),
                v(3, 3),
                v(4, 4),
                v(5, 2), // DESCEND = 2
                v(6, 4), // VALUE = 4
                v(7, 1),
                v(8, 1),
                v(9, 1),
                v(10, 10),
                v(11, 11),
                v(12, 12),
                v(13, 13),
            ]),
        );

        let resp = RangeResponse {
            header: Some(ResponseHeader::default()),
            kvs: vec![KeyValue { key: b"a".to_vec(), ..Default::default() }],
            more: true,
            count: 7,
        };
        check(&resp, &cat(&[l(1, &[]), l(2, &l(1, b"a")), v(3, 1), v(4, 7)]));
    }

    #[test]
    fn negative_int64_is_a_ten_byte_varint() {
        // etcd's int64 fields are plain int64 (not sint64): -1 takes ten bytes.
        let r = RangeRequest { revision: -1, ..Default::default() };
        check(&r, &cat(&[v(4, u64::MAX)]));
    }

    #[test]
    fn txn_compare_and_ops() {
        let cmp = Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Value as i32,
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            target_union: Some(compare::TargetUnion::Value(b"x".to_vec())),
        };
        let cmp_bytes = cat(&[v(1, 3), v(2, 3), l(3, b"k"), l(7, b"x"), l(64, b"z")]);
        check(&cmp, &cmp_bytes);
        for (union, field) in [
            (compare::TargetUnion::Version(5), 4),
            (compare::TargetUnion::CreateRevision(5), 5),
            (compare::TargetUnion::ModRevision(5), 6),
            (compare::TargetUnion::Lease(5), 8),
        ] {
            let c = Compare { target_union: Some(union), ..Default::default() };
            check(&c, &v(field, 5));
        }

        let txn = TxnRequest {
            compare: vec![cmp],
            success: vec![
                RequestOp { request: Some(request_op::Request::RequestRange(Default::default())) },
                RequestOp { request: Some(request_op::Request::RequestPut(Default::default())) },
            ],
            failure: vec![
                RequestOp { request: Some(request_op::Request::RequestDeleteRange(Default::default())) },
                RequestOp { request: Some(request_op::Request::RequestTxn(Default::default())) },
            ],
        };
        check(&txn, &cat(&[l(1, &cmp_bytes), l(2, &l(1, &[])), l(2, &l(2, &[])), l(3, &l(3, &[])), l(3, &l(4, &[]))]));

        let resp = TxnResponse {
            header: None,
            succeeded: true,
            responses: vec![ResponseOp { response: Some(response_op::Response::ResponseTxn(Default::default())) }],
        };
        check(&resp, &cat(&[v(2, 1), l(3, &l(4, &[]))]));
    }

    #[test]
    fn internal_raft_request() {
        let req = InternalRaftRequest {
            header: Some(RequestHeader { id: 1, username: "u".into(), auth_revision: 3 }),
            id: 7,
            v2: Some(Request { id: Some(0), method: Some("PUT".into()), ..Default::default() }),
            range: Some(Default::default()),
            put: Some(Default::default()),
            delete_range: Some(Default::default()),
            txn: Some(Default::default()),
            compaction: Some(CompactionRequest { revision: 5, physical: true }),
            lease_grant: Some(LeaseGrantRequest { ttl: 60, id: 2 }),
            lease_revoke: Some(Default::default()),
            alarm: Some(Default::default()),
            lease_checkpoint: Some(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint { id: 1, remaining_ttl: 2 }],
            }),
            auth_enable: Some(Default::default()),
            auth_disable: Some(Default::default()),
            authenticate: Some(InternalAuthenticateRequest {
                name: "n".into(),
                password: "p".into(),
                simple_token: "t".into(),
            }),
            auth_user_add: Some(Default::default()),
            auth_user_delete: Some(Default::default()),
            auth_user_get: Some(Default::default()),
            auth_user_change_password: Some(Default::default()),
            auth_user_grant_role: Some(Default::default()),
            auth_user_revoke_role: Some(Default::default()),
            auth_user_list: Some(Default::default()),
            auth_role_list: Some(Default::default()),
            auth_role_add: Some(Default::default()),
            auth_role_delete: Some(Default::default()),
            auth_role_get: Some(Default::default()),
            auth_role_grant_permission: Some(Default::default()),
            auth_role_revoke_permission: Some(Default::default()),
        };
        let expected = cat(&[
            v(1, 7),
            // v2 Request (proto2): ID = 0 is written because it is set; Method = 2.
            l(2, &cat(&[v(1, 0), l(2, b"PUT")])),
            l(3, &[]),
            l(4, &[]),
            l(5, &[]),
            l(6, &[]),
            l(7, &cat(&[v(1, 5), v(2, 1)])),
            l(8, &cat(&[v(1, 60), v(2, 2)])),
            l(9, &[]),
            l(10, &[]),
            l(11, &l(1, &cat(&[v(1, 1), v(2, 2)]))),
            l(100, &cat(&[v(1, 1), l(2, b"u"), v(3, 3)])),
            l(1000, &[]),
            l(1011, &[]),
            l(1012, &cat(&[l(1, b"n"), l(2, b"p"), l(3, b"t")])),
            l(1100, &[]),
            l(1101, &[]),
            l(1102, &[]),
            l(1103, &[]),
            l(1104, &[]),
            l(1105, &[]),
            l(1106, &[]),
            l(1107, &[]),
            l(1200, &[]),
            l(1201, &[]),
            l(1202, &[]),
            l(1203, &[]),
            l(1204, &[]),
        ]);
        check(&req, &expected);
    }

    #[test]
    fn watch_messages() {
        let create = WatchCreateRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            start_revision: 3,
            progress_notify: true,
            filters: vec![
                watch_create_request::FilterType::Noput as i32,
                watch_create_request::FilterType::Nodelete as i32,
            ],
            prev_kv: true,
            watch_id: 7,
            fragment: true,
        };
        // proto3 repeated enums are packed.
        let create_bytes = cat(&[l(1, b"a"), l(2, b"b"), v(3, 3), v(4, 1), l(5, &[0, 1]), v(6, 1), v(7, 7), v(8, 1)]);
        check(&create, &create_bytes);
        let req = WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) };
        check(&req, &l(1, &create_bytes));
        let cancel = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 4 })),
        };
        check(&cancel, &l(2, &v(1, 4)));
        let progress =
            WatchRequest { request_union: Some(watch_request::RequestUnion::ProgressRequest(Default::default())) };
        check(&progress, &l(3, &[]));

        let resp = WatchResponse {
            header: Some(Default::default()),
            watch_id: 2,
            created: true,
            canceled: true,
            compact_revision: 5,
            cancel_reason: "r".into(),
            fragment: true,
            events: vec![Event::default()],
        };
        check(&resp, &cat(&[l(1, &[]), v(2, 2), v(3, 1), v(4, 1), v(5, 5), l(6, b"r"), v(7, 1), l(11, &[])]));
    }

    #[test]
    fn lease_member_status_alarm() {
        check(&LeaseGrantRequest { ttl: 10, id: 20 }, &cat(&[v(1, 10), v(2, 20)]));
        check(
            &LeaseGrantResponse { header: None, id: 2, ttl: 3, error: "e".into() },
            &cat(&[v(2, 2), v(3, 3), l(4, b"e")]),
        );
        check(
            &LeaseTimeToLiveResponse { header: None, id: 2, ttl: 3, granted_ttl: 4, keys: vec![b"k".to_vec()] },
            &cat(&[v(2, 2), v(3, 3), v(4, 4), l(5, b"k")]),
        );
        check(
            &Member {
                id: 1,
                name: "n".into(),
                peer_ur_ls: vec!["p".into()],
                client_ur_ls: vec!["c".into()],
                is_learner: true,
            },
            &cat(&[v(1, 1), l(2, b"n"), l(3, b"p"), l(4, b"c"), v(5, 1)]),
        );
        check(
            &StatusResponse {
                header: None,
                version: "3.4.23".into(),
                db_size: 3,
                leader: 4,
                raft_index: 5,
                raft_term: 6,
                raft_applied_index: 7,
                errors: vec!["x".into()],
                db_size_in_use: 9,
                is_learner: true,
            },
            &cat(&[l(2, b"3.4.23"), v(3, 3), v(4, 4), v(5, 5), v(6, 6), v(7, 7), l(8, b"x"), v(9, 9), v(10, 1)]),
        );
        check(
            &AlarmRequest {
                action: alarm_request::AlarmAction::Activate as i32,
                member_id: 2,
                alarm: AlarmType::Nospace as i32,
            },
            &cat(&[v(1, 1), v(2, 2), v(3, 1)]),
        );
        check(
            &SnapshotResponse { header: None, remaining_bytes: 2, blob: b"b".to_vec() },
            &cat(&[v(2, 2), l(3, b"b")]),
        );
    }

    #[test]
    fn auth_messages() {
        let perm =
            Permission { perm_type: permission::Type::Readwrite as i32, key: b"a".to_vec(), range_end: b"b".to_vec() };
        let perm_bytes = cat(&[v(1, 2), l(2, b"a"), l(3, b"b")]);
        check(&perm, &perm_bytes);
        check(
            &AuthRoleGrantPermissionRequest { name: "r".into(), perm: Some(perm) },
            &cat(&[l(1, b"r"), l(2, &perm_bytes)]),
        );
        check(
            &AuthUserAddRequest {
                name: "u".into(),
                password: "p".into(),
                options: Some(super::authpb::UserAddOptions { no_password: true }),
                hashed_password: Vec::new(),
            },
            &cat(&[l(1, b"u"), l(2, b"p"), l(3, &v(1, 1))]),
        );
        check(
            &super::authpb::Role { name: b"r".to_vec(), key_permission: vec![Default::default()] },
            &cat(&[l(1, b"r"), l(2, &[])]),
        );
    }

    #[test]
    fn leasepb_lease_and_lease_record_share_an_encoding() {
        // etcd's `lease` bucket value; the KV guest's `L/` record has the same fields and numbers.
        let lease = super::leasepb::Lease { id: 0x1234, ttl: 60, remaining_ttl: 7 };
        let bytes = cat(&[v(1, 0x1234), v(2, 60), v(3, 7)]);
        check(&lease, &bytes);
        check(&super::wasmraft::v1::LeaseRecord { id: 0x1234, ttl: 60, remaining_ttl: 7 }, &bytes);
        check(
            &super::leasepb::LeaseInternalRequest {
                lease_time_to_live_request: Some(LeaseTimeToLiveRequest { id: 1, keys: true }),
            },
            &l(1, &cat(&[v(1, 1), v(2, 1)])),
        );
    }

    #[test]
    fn wasmraft_entry() {
        use super::wasmraft::v1::{Entry, entry};
        let e =
            Entry { id: 1, time_unix_ms: 2, auth_revision: 0, kind: Some(entry::Kind::GuestCommand(b"c".to_vec())) };
        check(&e, &cat(&[v(1, 1), v(2, 2), l(3, b"c")]));
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_service_names_are_etcds() {
        assert_eq!(kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(watch_server::SERVICE_NAME, "etcdserverpb.Watch");
        assert_eq!(lease_server::SERVICE_NAME, "etcdserverpb.Lease");
        assert_eq!(cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
        assert_eq!(maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance");
        assert_eq!(auth_server::SERVICE_NAME, "etcdserverpb.Auth");
    }

    #[test]
    fn paths_and_descriptors_exist() {
        assert!(std::path::Path::new(super::WIT_DIR).join("guest.wit").is_file());
        assert!(super::FILE_DESCRIPTOR_SET.len() > 1000);
    }
}
