//! Who may call what with auth on: one row per gRPC method of every service a member serves
//! (etcd's KV, Watch, Lease, Cluster, Maintenance, Auth, Lock and Election; wasmraft.v1's
//! Generic and GuestAdmin), naming the permission the method needs. The methods are read from
//! the service descriptors compiled into `wasmraft-proto`, so a method added without a row (or a
//! row left for a method that is gone) fails the test before anything runs.
//!
//! Every method is called over real gRPC on a real member by three callers: an anonymous one, a
//! user without roles, and one whose token is no token. The first two must be refused exactly when
//! the row says so. For etcd's services the same calls go to a real etcd 3.4.23 prepared the same
//! way, and for all three callers the two servers must answer with the same gRPC code and message
//! (for a first streamed response, the same fields).
//!
//! Also here: a deploy from a caller who may not deploy is answered from its headers, while its
//! 64 MiB module is still on the way, and the member never buffers it.
//!
//! `WASMRAFT_COMPAT_DUMP=1` prints every call with both answers.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut};
use futures::StreamExt;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use wasmraft_proto::authpb::{Permission, UserAddOptions};
use wasmraft_proto::etcdserverpb::{
    self as pb, auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
};
use wasmraft_proto::{v3electionpb as epb, v3lockpb as lpb, wasmraft::v1 as wpb};
use wasmraft_tests::{Flavor, Member};

/// What a method needs of its caller while auth is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Anyone, even without credentials.
    Nothing,
    /// A user, any user (the row's request is about the caller itself).
    Authenticated,
    /// Read permission on the key.
    Read(&'static str),
    /// Write permission on the key.
    Write(&'static str),
    /// The root role.
    Admin,
}

/// One method of the table.
struct Row {
    need: Need,
    /// The request (the first one, for a client stream).
    request: Vec<u8>,
    /// What of a (first) response must be the same on both servers; most answers carry only ids
    /// and revisions, which legitimately differ.
    shows: fn(&[u8]) -> String,
    /// Whether an outcome is this method's refusal.
    refusal: fn(&Outcome) -> bool,
}

/// The key every row's request touches, which root writes (attached to [`LEASE`]) before the
/// calls.
const KEY: &str = "k";
/// A lease root grants with this id on both servers, so that requests can name it.
const LEASE: i64 = 0x1234;
/// A peer URL no member has (the refused member adds and updates name it).
const NEW_PEER: &str = "http://127.0.0.1:65001";

fn answered(_: &[u8]) -> String {
    "answered".into()
}

/// A watch's first response: whether it was created and cancelled, and why.
fn watch_created(bytes: &[u8]) -> String {
    match pb::WatchResponse::decode(bytes) {
        Ok(w) => format!(
            "watch_id={} created={} canceled={} cancel_reason={:?}",
            w.watch_id, w.created, w.canceled, w.cancel_reason
        ),
        Err(e) => format!("not a WatchResponse: {e}"),
    }
}

/// The table: every method, the permission it needs, the request it is called with. Requests
/// that would change something if they were wrongly let through change as little as possible
/// (learners, ids no member has, names no user or role has).
fn table() -> BTreeMap<&'static str, Row> {
    fn row(need: Need, request: impl Message) -> Row {
        Row { need, request: request.encode_to_vec(), shows: answered, refusal: Outcome::refused }
    }
    let k = || KEY.as_bytes().to_vec();
    let leader =
        || epb::LeaderKey { name: b"e".to_vec(), key: format!("e/{LEASE:x}").into_bytes(), rev: 1, lease: LEASE };
    let watch = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: k(),
            ..Default::default()
        })),
    };
    let put = pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest { key: k(), ..Default::default() })),
    };
    let rows = [
        // etcd's KV: the keys a request reads or writes (etcd's authApplierV3, doSerialize);
        // compaction is not checked in etcd 3.4.
        ("etcdserverpb.KV/Range", row(Need::Read(KEY), pb::RangeRequest { key: k(), ..Default::default() })),
        (
            "etcdserverpb.KV/Put",
            row(Need::Write(KEY), pb::PutRequest { key: k(), value: b"v".to_vec(), ..Default::default() }),
        ),
        (
            "etcdserverpb.KV/DeleteRange",
            row(Need::Write(KEY), pb::DeleteRangeRequest { key: k(), ..Default::default() }),
        ),
        ("etcdserverpb.KV/Txn", row(Need::Write(KEY), pb::TxnRequest { success: vec![put], ..Default::default() })),
        ("etcdserverpb.KV/Compact", row(Need::Nothing, pb::CompactionRequest { revision: 1, physical: false })),
        // A watch is refused with a cancelled response, not a status.
        ("etcdserverpb.Watch/Watch", Row { shows: watch_created, ..row(Need::Read(KEY), watch) }),
        // Leases: only a revoke is checked (write on the keys attached, here `KEY`).
        ("etcdserverpb.Lease/LeaseGrant", row(Need::Nothing, pb::LeaseGrantRequest { ttl: 60, id: 0 })),
        ("etcdserverpb.Lease/LeaseRevoke", row(Need::Write(KEY), pb::LeaseRevokeRequest { id: LEASE })),
        ("etcdserverpb.Lease/LeaseKeepAlive", row(Need::Nothing, pb::LeaseKeepAliveRequest { id: LEASE })),
        // Without the keys: with them, etcd 3.4.26+ (and wasmraft) need read on every attached
        // key, 3.4.23 nothing (tests/etcd_3_4_fixes.rs).
        (
            "etcdserverpb.Lease/LeaseTimeToLive",
            row(Need::Nothing, pb::LeaseTimeToLiveRequest { id: LEASE, keys: false }),
        ),
        ("etcdserverpb.Lease/LeaseLeases", row(Need::Nothing, pb::LeaseLeasesRequest {})),
        // Membership: changes take root (checkMembershipOperationPermission), the list nothing.
        (
            "etcdserverpb.Cluster/MemberAdd",
            row(Need::Admin, pb::MemberAddRequest { peer_ur_ls: vec![NEW_PEER.into()], is_learner: true }),
        ),
        ("etcdserverpb.Cluster/MemberRemove", row(Need::Admin, pb::MemberRemoveRequest { id: 1 })),
        (
            "etcdserverpb.Cluster/MemberUpdate",
            row(Need::Admin, pb::MemberUpdateRequest { id: 1, peer_ur_ls: vec![NEW_PEER.into()] }),
        ),
        ("etcdserverpb.Cluster/MemberList", row(Need::Nothing, pb::MemberListRequest {})),
        ("etcdserverpb.Cluster/MemberPromote", row(Need::Admin, pb::MemberPromoteRequest { id: 1 })),
        // Maintenance: etcd's authMaintenanceServer guards defragment, snapshot and the hashes;
        // alarms and leader moves are open in etcd 3.4.
        ("etcdserverpb.Maintenance/Alarm", row(Need::Nothing, pb::AlarmRequest::default())),
        ("etcdserverpb.Maintenance/Status", row(Need::Nothing, pb::StatusRequest {})),
        ("etcdserverpb.Maintenance/Defragment", row(Need::Admin, pb::DefragmentRequest {})),
        ("etcdserverpb.Maintenance/Hash", row(Need::Admin, pb::HashRequest {})),
        ("etcdserverpb.Maintenance/HashKV", row(Need::Admin, pb::HashKvRequest { revision: 0 })),
        ("etcdserverpb.Maintenance/Snapshot", row(Need::Admin, pb::SnapshotRequest {})),
        ("etcdserverpb.Maintenance/MoveLeader", row(Need::Nothing, pb::MoveLeaderRequest { target_id: 1 })),
        // Auth: everything but logging in and reading oneself takes root (needAdminPermission).
        ("etcdserverpb.Auth/AuthEnable", row(Need::Admin, pb::AuthEnableRequest {})),
        ("etcdserverpb.Auth/AuthDisable", row(Need::Admin, pb::AuthDisableRequest {})),
        (
            "etcdserverpb.Auth/Authenticate",
            row(Need::Nothing, pb::AuthenticateRequest { name: "nobody".into(), password: "npw".into() }),
        ),
        (
            "etcdserverpb.Auth/UserAdd",
            row(
                Need::Admin,
                pb::AuthUserAddRequest {
                    name: "ghost".into(),
                    password: "x".into(),
                    options: Some(UserAddOptions { no_password: false }),
                    ..Default::default()
                },
            ),
        ),
        ("etcdserverpb.Auth/UserGet", row(Need::Authenticated, pb::AuthUserGetRequest { name: "nobody".into() })),
        ("etcdserverpb.Auth/UserList", row(Need::Admin, pb::AuthUserListRequest {})),
        ("etcdserverpb.Auth/UserDelete", row(Need::Admin, pb::AuthUserDeleteRequest { name: "ghost".into() })),
        (
            "etcdserverpb.Auth/UserChangePassword",
            row(
                Need::Admin,
                pb::AuthUserChangePasswordRequest { name: "ghost".into(), password: "x".into(), ..Default::default() },
            ),
        ),
        (
            "etcdserverpb.Auth/UserGrantRole",
            row(Need::Admin, pb::AuthUserGrantRoleRequest { user: "ghost".into(), role: "root".into() }),
        ),
        (
            "etcdserverpb.Auth/UserRevokeRole",
            row(Need::Admin, pb::AuthUserRevokeRoleRequest { name: "ghost".into(), role: "root".into() }),
        ),
        ("etcdserverpb.Auth/RoleAdd", row(Need::Admin, pb::AuthRoleAddRequest { name: "ghosts".into() })),
        ("etcdserverpb.Auth/RoleGet", row(Need::Admin, pb::AuthRoleGetRequest { role: "root".into() })),
        ("etcdserverpb.Auth/RoleList", row(Need::Admin, pb::AuthRoleListRequest {})),
        ("etcdserverpb.Auth/RoleDelete", row(Need::Admin, pb::AuthRoleDeleteRequest { role: "ghosts".into() })),
        (
            "etcdserverpb.Auth/RoleGrantPermission",
            row(
                Need::Admin,
                pb::AuthRoleGrantPermissionRequest {
                    name: "ghosts".into(),
                    perm: Some(Permission { perm_type: 0, key: k(), range_end: Vec::new() }),
                },
            ),
        ),
        (
            "etcdserverpb.Auth/RoleRevokePermission",
            row(
                Need::Admin,
                pb::AuthRoleRevokePermissionRequest { role: "ghosts".into(), key: k(), range_end: Vec::new() },
            ),
        ),
        // Lock and Election: the recipes' reads and writes, checked as the caller's.
        ("v3lockpb.Lock/Lock", row(Need::Write("l/"), lpb::LockRequest { name: b"l".to_vec(), lease: LEASE })),
        (
            "v3lockpb.Lock/Unlock",
            row(Need::Write("l/"), lpb::UnlockRequest { key: format!("l/{LEASE:x}").into_bytes() }),
        ),
        (
            "v3electionpb.Election/Campaign",
            row(Need::Write("e/"), epb::CampaignRequest { name: b"e".to_vec(), lease: LEASE, value: b"v".to_vec() }),
        ),
        (
            "v3electionpb.Election/Proclaim",
            row(Need::Write("e/"), epb::ProclaimRequest { leader: Some(leader()), value: b"v".to_vec() }),
        ),
        ("v3electionpb.Election/Leader", row(Need::Read("e/"), epb::LeaderRequest { name: b"e".to_vec() })),
        // etcd's observer ends its stream, with status OK and no message, when its read fails
        // (clientv3's Election.Observe closes its channel on any error). One allowed to read
        // would wait for a leader instead.
        (
            "v3electionpb.Election/Observe",
            Row {
                refusal: |o| *o == Outcome::Ended,
                ..row(Need::Read("e/"), epb::LeaderRequest { name: b"e".to_vec() })
            },
        ),
        ("v3electionpb.Election/Resign", row(Need::Write("e/"), epb::ResignRequest { leader: Some(leader()) })),
        // wasmraft's generic API: opaque commands to the KV guest would bypass key permissions,
        // so with the KV guest they take root; Info names the guest to anyone.
        ("wasmraft.v1.Generic/Propose", row(Need::Admin, wpb::ProposeRequest { command: b"x".to_vec() })),
        ("wasmraft.v1.Generic/Query", row(Need::Admin, wpb::QueryRequest { request: b"x".to_vec(), consistency: 0 })),
        ("wasmraft.v1.Generic/Info", row(Need::Nothing, wpb::InfoRequest {})),
        // Guest administration: all of it takes root.
        (
            "wasmraft.v1.GuestAdmin/Deploy",
            row(Need::Admin, wpb::DeployRequest { module: b"\0asm".to_vec(), ..Default::default() }),
        ),
        (
            "wasmraft.v1.GuestAdmin/Rollback",
            row(Need::Admin, wpb::RollbackRequest { target: "0.1.0".into(), force: false }),
        ),
        ("wasmraft.v1.GuestAdmin/Status", row(Need::Admin, wpb::GuestStatusRequest { state_hash: true })),
        ("wasmraft.v1.GuestAdmin/List", row(Need::Admin, wpb::ListRequest {})),
    ];
    let mut table = BTreeMap::new();
    for (method, row) in rows {
        assert!(table.insert(method, row).is_none(), "{method} has two rows");
    }
    table
}

/// A method as the descriptors declare it.
#[derive(Debug, Clone)]
struct Method {
    /// `package.Service/Method`.
    path: String,
    client_streaming: bool,
    server_streaming: bool,
}

impl Method {
    /// etcd 3.4 serves it too (wasmraft.v1 is wasmraft's own).
    fn etcd_has(&self) -> bool {
        !self.path.starts_with("wasmraft.")
    }
}

/// Every method of every service in wasmraft-proto's descriptors.
fn methods() -> Vec<Method> {
    let set = prost_types::FileDescriptorSet::decode(wasmraft_proto::FILE_DESCRIPTOR_SET)
        .expect("wasmraft-proto's descriptor set");
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for m in &service.method {
                out.push(Method {
                    path: format!("{}.{}/{}", file.package(), service.name(), m.name()),
                    client_streaming: m.client_streaming(),
                    server_streaming: m.server_streaming(),
                });
            }
        }
    }
    out
}

/// Requests and responses as bytes: the table holds encoded requests for any method.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// How a call ended, as far as two servers must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A (first) response, as the row shows it.
    Answer(String),
    /// A stream that ended without a message and with status OK.
    Ended,
    Status(Code, String),
    /// Nothing within [`CALL_WAIT`] (a stream that stays open, a lock that waits).
    Waiting,
}

impl Outcome {
    /// Refused by a permission check: etcd's texts for a caller without credentials, without
    /// the permission, or with a token that is not live (with either prefix: the maintenance
    /// service sends the auth store's own).
    fn refused(&self) -> bool {
        let text = match self {
            Outcome::Status(_, m) => m,
            Outcome::Answer(a) => a,
            Outcome::Ended | Outcome::Waiting => return false,
        };
        ["user name is empty", "permission denied", "invalid auth token"].iter().any(|r| text.contains(r))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Answer(a) => write!(f, "OK, {a}"),
            Outcome::Ended => write!(f, "OK, the stream ended without a message"),
            Outcome::Status(code, m) => write!(f, "{code:?}: {m}"),
            Outcome::Waiting => write!(f, "no answer within {CALL_WAIT:?}"),
        }
    }
}

const CALL_WAIT: Duration = Duration::from_secs(5);

/// The three callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// A user with no roles.
    Nobody,
    /// A token no member issued.
    BadToken,
}

/// What the table demands of `caller` for `need` (None: nothing, the servers' agreement only).
fn must_refuse(need: Need, caller: Caller) -> Option<bool> {
    match (caller, need) {
        (Caller::BadToken, Need::Nothing) => None,
        (_, Need::Nothing) => Some(false),
        (Caller::Nobody, Need::Authenticated) => Some(false),
        _ => Some(true),
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(t) = token {
        r.metadata_mut().insert("token", t.parse().expect("an ASCII token"));
    }
    r
}

/// Calls `method` with `request` and waits up to [`CALL_WAIT`] for the (first) answer.
async fn call(channel: &Channel, method: &Method, row: &Row, token: Option<&str>) -> Outcome {
    let mut grpc = tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(usize::MAX);
    let path: PathAndQuery = format!("/{}", method.path).parse().expect("a gRPC path");
    let request = row.request.clone();
    let first = async {
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        match (method.client_streaming, method.server_streaming) {
            (false, false) => grpc.unary(with_token(request, token), path, Raw).await.map(|r| Some(r.into_inner())),
            (false, true) => {
                grpc.server_streaming(with_token(request, token), path, Raw).await?.into_inner().message().await
            }
            (true, server_streaming) => {
                // The request stream stays open: some servers end a stream whose client is done.
                let requests = futures::stream::iter([request]).chain(futures::stream::pending());
                if server_streaming {
                    grpc.streaming(with_token(requests, token), path, Raw).await?.into_inner().message().await
                } else {
                    grpc.client_streaming(with_token(requests, token), path, Raw).await.map(|r| Some(r.into_inner()))
                }
            }
        }
    };
    match tokio::time::timeout(CALL_WAIT, first).await {
        Err(_) => Outcome::Waiting,
        Ok(Ok(Some(bytes))) => Outcome::Answer((row.shows)(&bytes)),
        Ok(Ok(None)) => Outcome::Ended,
        Ok(Err(s)) => Outcome::Status(s.code(), s.message().to_string()),
    }
}

/// One member with auth on: root (password `pw`, the root role), `nobody` (password `npw`, no
/// roles), and `KEY` written by root with [`LEASE`] attached.
struct Prepared {
    channel: Channel,
    root: String,
    nobody: String,
}

async fn prepare(endpoint: &str) -> Prepared {
    let channel = Channel::from_shared(endpoint.to_string()).expect("endpoint").connect().await.expect("connect");
    let mut auth = AuthClient::new(channel.clone());
    let user = |name: &str, password: &str| pb::AuthUserAddRequest {
        name: name.into(),
        password: password.into(),
        options: Some(UserAddOptions { no_password: false }),
        ..Default::default()
    };
    auth.user_add(user("root", "pw")).await.expect("add root");
    auth.role_add(pb::AuthRoleAddRequest { name: "root".into() }).await.expect("add the root role");
    auth.user_grant_role(pb::AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() })
        .await
        .expect("grant root");
    auth.user_add(user("nobody", "npw")).await.expect("add nobody");
    auth.auth_enable(pb::AuthEnableRequest {}).await.expect("enable auth");
    let login = |name: &str, password: &str| {
        let mut auth = auth.clone();
        let req = pb::AuthenticateRequest { name: name.into(), password: password.into() };
        async move { auth.authenticate(req).await.expect("log in").into_inner().token }
    };
    let root = login("root", "pw").await;
    let nobody = login("nobody", "npw").await;
    let mut lease = LeaseClient::new(channel.clone());
    lease
        .lease_grant(with_token(pb::LeaseGrantRequest { ttl: 600, id: LEASE }, Some(&root)))
        .await
        .expect("grant the lease");
    let put = pb::PutRequest { key: KEY.into(), value: b"v".to_vec(), lease: LEASE, ..Default::default() };
    KvClient::new(channel.clone()).put(with_token(put, Some(&root))).await.expect("put the key");
    Prepared { channel, root, nobody }
}

impl Prepared {
    fn token(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Anonymous => None,
            Caller::Nobody => Some(&self.nobody),
            Caller::BadToken => Some("notatoken.1"),
        }
    }
}

#[test]
fn every_method_has_a_row() {
    let table = table();
    let methods = methods();
    let missing: Vec<&str> = methods.iter().map(|m| m.path.as_str()).filter(|p| !table.contains_key(p)).collect();
    assert!(missing.is_empty(), "methods without a row in the permission table: {missing:?}");
    let stale: Vec<&&str> = table.keys().filter(|r| !methods.iter().any(|m| m.path == **r)).collect();
    assert!(stale.is_empty(), "rows for methods no service has: {stale:?}");
    // The ten services of the module comment, no fewer.
    let services: std::collections::BTreeSet<&str> = methods.iter().filter_map(|m| m.path.split('/').next()).collect();
    assert_eq!(services.len(), 10, "{services:?}");
}

#[test]
fn every_method_checks_its_caller_as_the_table_and_etcd_say() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let mut table = table();
    let methods = methods();
    let rt = wasmraft_tests::runtime();
    let subject = Flavor::subject();
    let etcd_member = Member::start(Flavor::Etcd);
    let our_member = Member::start(subject);
    let etcd = rt.block_on(prepare(&etcd_member.endpoint()));
    let ours = rt.block_on(prepare(&our_member.endpoint()));
    let dump = std::env::var_os("WASMRAFT_COMPAT_DUMP").is_some();

    let mut problems = Vec::new();
    for method in &methods {
        let Some(row) = table.get(method.path.as_str()) else {
            problems.push(format!("{}: no row", method.path));
            continue;
        };
        if subject == Flavor::Etcd && !method.etcd_has() {
            continue;
        }
        for caller in [Caller::Anonymous, Caller::Nobody, Caller::BadToken] {
            let got = rt.block_on(call(&ours.channel, method, row, ours.token(caller)));
            let reference =
                method.etcd_has().then(|| rt.block_on(call(&etcd.channel, method, row, etcd.token(caller))));
            if dump {
                let theirs = reference.as_ref().map_or_else(|| "-".to_string(), ToString::to_string);
                eprintln!(
                    "{} as {caller:?} (needs {:?}):\n  {subject}: {got}\n  etcd: {theirs}",
                    method.path, row.need
                );
            }
            if let Some(refuse) = must_refuse(row.need, caller)
                && (row.refusal)(&got) != refuse
            {
                let wanted = if refuse { "refused" } else { "let through" };
                problems.push(format!(
                    "{} as {caller:?}: needs {:?}, so must be {wanted}; {subject} answered {got}",
                    method.path, row.need
                ));
            }
            if let Some(theirs) = reference
                && theirs != got
            {
                problems
                    .push(format!("{} as {caller:?}: etcd answered {theirs}; {subject} answered {got}", method.path));
            }
        }
    }
    // etcd checks a member add's URLs before its caller: a bad one is reported to anyone.
    // (etcdctl checks URLs itself, so only a raw call shows this.)
    let add = pb::MemberAddRequest { peer_ur_ls: vec![format!("{NEW_PEER}/path")], is_learner: true };
    let bad_urls = Row {
        request: add.encode_to_vec(),
        ..table.remove("etcdserverpb.Cluster/MemberAdd").expect("a MemberAdd row")
    };
    let member_add = methods.iter().find(|m| m.path.ends_with("/MemberAdd")).expect("MemberAdd");
    let theirs = rt.block_on(call(&etcd.channel, member_add, &bad_urls, etcd.token(Caller::Nobody)));
    let got = rt.block_on(call(&ours.channel, member_add, &bad_urls, ours.token(Caller::Nobody)));
    if got != theirs || !matches!(&got, Outcome::Status(_, m) if m.ends_with("given member URLs are invalid")) {
        problems.push(format!("MemberAdd with a bad URL as Nobody: etcd answered {theirs}; {subject} answered {got}"));
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// The module of the deploys below: 64 MiB minus 1 KiB, within the limit, so that nothing
/// refuses it for its size.
const MODULE_BYTES: usize = (64 << 20) - 1024;
/// How much of it is sent before waiting for an answer.
const SENT_FIRST: usize = 1 << 20;

/// A gRPC message announcing a `DeployRequest` with a [`MODULE_BYTES`] module, with only the
/// first `sent` bytes of the module.
fn deploy_prefix(sent: usize) -> Vec<u8> {
    let module = MODULE_BYTES;
    let mut message = vec![0x0a]; // field 1, length-delimited: the module
    let mut n = module as u64;
    while n >= 0x80 {
        message.push((n as u8) | 0x80);
        n >>= 7;
    }
    message.push(n as u8);
    let total = u32::try_from(message.len() + module).expect("fits");
    let mut frame = vec![0];
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&message);
    frame.resize(frame.len() + sent, 0);
    frame
}

/// grpc-message's percent-encoding undone.
fn percent_decoded(s: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        let hex = |b: Option<u8>| b.and_then(|b| (b as char).to_digit(16));
        if b == b'%' {
            let (hi, lo) = (hex(bytes.next()), hex(bytes.next()));
            out.push(hi.zip(lo).map_or(b'?', |(h, l)| (h * 16 + l) as u8));
        } else {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A deploy under way over HTTP/2: its headers and the first [`SENT_FIRST`] bytes of its module
/// sent.
struct PartialDeploy {
    body: h2::SendStream<bytes::Bytes>,
    response: std::pin::Pin<Box<h2::client::ResponseFuture>>,
}

impl PartialDeploy {
    async fn start(addr: &str, token: Option<&str>) -> PartialDeploy {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let mut client = client.ready().await.expect("HTTP/2 ready");
        let mut request = http::Request::post(format!("http://{addr}/wasmraft.v1.GuestAdmin/Deploy"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(t) = token {
            request = request.header("token", t);
        }
        let (response, mut body) =
            client.send_request(request.body(()).expect("request"), false).expect("send the headers");
        // This fails when the member has already answered and closed the stream: fine, the
        // answer is read next.
        let _ = body.send_data(deploy_prefix(SENT_FIRST).into(), false);
        PartialDeploy { body, response: Box::pin(response) }
    }

    /// The rest of the module, and the end of the request.
    fn finish(&mut self) {
        let rest = vec![0; MODULE_BYTES - SENT_FIRST];
        self.body.send_data(rest.into(), true).expect("send the rest of the module");
    }

    /// The grpc-status and grpc-message of the answer, or None if none came within `wait`.
    async fn answer(&mut self, wait: Duration) -> Option<(Code, String)> {
        let response = tokio::time::timeout(wait, &mut self.response).await.ok()?.expect("a response");
        let header = |h: &http::HeaderMap, name: &str| h.get(name).map(|v| v.to_str().unwrap_or("?").to_string());
        let headers = response.headers().clone();
        let trailers = match header(&headers, "grpc-status") {
            Some(_) => headers,
            None => response.into_body().trailers().await.ok().flatten().unwrap_or_default(),
        };
        let code = header(&trailers, "grpc-status").and_then(|c| c.parse().ok()).map_or(Code::Unknown, Code::from_i32);
        Some((code, percent_decoded(&header(&trailers, "grpc-message").unwrap_or_default())))
    }
}

/// A deploy's module is up to 64 MiB. One from a caller who may not deploy is answered from its
/// headers while the rest of the module is still unsent: the member neither waits for nor
/// buffers it. Root's same partial request gets no answer until the rest is sent (the member
/// waits for the whole message before deploying), which shows the early answers were not for
/// some other reason.
#[test]
fn a_refused_deploy_is_answered_before_its_module_is_read() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let member = Member::start(Flavor::Wasmraft);
    let rt = wasmraft_tests::runtime();
    let prepared = rt.block_on(prepare(&member.endpoint()));
    let endpoint = member.endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let refusals = [
        (None, Code::InvalidArgument, "etcdserver: user name is empty"),
        (Some(prepared.nobody.as_str()), Code::PermissionDenied, "etcdserver: permission denied"),
        (Some("notatoken.1"), Code::Unauthenticated, "etcdserver: invalid auth token"),
    ];
    for (token, code, text) in refusals {
        let answer =
            rt.block_on(async { PartialDeploy::start(addr, token).await.answer(Duration::from_secs(10)).await });
        assert_eq!(answer, Some((code, text.to_string())), "with token {token:?}");
    }
    rt.block_on(async {
        let mut deploy = PartialDeploy::start(addr, Some(&prepared.root)).await;
        assert_eq!(
            deploy.answer(Duration::from_secs(3)).await,
            None,
            "root's deploy was answered before its module arrived"
        );
        // Once all of it has arrived, the member looks at it (64 MiB of zeros is no module).
        deploy.finish();
        let answer = deploy.answer(Duration::from_secs(60)).await;
        assert!(matches!(&answer, Some((Code::FailedPrecondition, _))), "root's whole deploy: {answer:?}");
    });
}
