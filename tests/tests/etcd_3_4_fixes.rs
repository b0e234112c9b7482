//! What clients see change in etcd between 3.4.23 (the etcd installed for side-by-side tests)
//! and 3.4.31 (the version wasmraft reports), besides watch progress (watch_progress.rs) and the
//! health probes (probes.rs): wasmraft must answer as 3.4.31 does; etcd 3.4.23 is run too, to
//! show the test sees the difference.
//!
//! - etcd#15621 (3.4.25): RoleGrantPermission without a permission is refused with "etcdserver:
//!   permission not given", and with an empty range (no key, or `range_end` not after `key` and
//!   not `"\0"`) with "etcdserver: invalid auth management", before the role is looked up
//!   (etcd 3.4.23 stores such ranges, and dies of a grant without a permission).
//! - etcd#15814 (3.4.26): LeaseTimeToLive with `keys` tells the attached keys only to a caller who
//!   may read every one of them ("etcdserver: permission denied"); without a user at all,
//!   "etcdserver: user name is empty".

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use wasmraft_proto::authpb::{Permission, UserAddOptions};
use wasmraft_proto::etcdserverpb::{
    self as pb, auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
};
use wasmraft_tests::{Flavor, Member};

async fn channel(m: &Member) -> Channel {
    Channel::from_shared(m.endpoint()).expect("endpoint").connect().await.expect("connect")
}

fn outcome<T>(r: Result<tonic::Response<T>, tonic::Status>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(s) => format!("{:?} {}", s.code(), s.message()),
    }
}

/// A permission's key and range end.
type Range = (&'static [u8], &'static [u8]);

fn grant(role: &str, perm: Option<Range>) -> pb::AuthRoleGrantPermissionRequest {
    pb::AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: perm.map(|(key, end)| Permission { perm_type: 0, key: key.to_vec(), range_end: end.to_vec() }),
    }
}

async fn grants(flavor: Flavor) -> Vec<String> {
    let m = Member::start(flavor);
    let mut auth = AuthClient::new(channel(&m).await);
    auth.role_add(pb::AuthRoleAddRequest { name: "r".into() }).await.expect("role add");
    let cases: [(&str, &str, Option<Range>); 9] = [
        ("no permission", "r", None),
        ("no key", "r", Some((b"", b""))),
        ("no key, to the end", "r", Some((b"", b"\0"))),
        ("end before key", "r", Some((b"b", b"a"))),
        ("end at key", "r", Some((b"a", b"a"))),
        ("bad range, unknown role", "nosuch", Some((b"b", b"a"))),
        ("one key", "r", Some((b"a", b""))),
        ("a range", "r", Some((b"a", b"b"))),
        ("from a key on", "r", Some((b"z", b"\0"))),
    ];
    let mut out = Vec::new();
    // etcd before 3.4.25 dereferences the missing permission and dies ("etcdserver: don't attempt
    // to grant nil permission to a role", 3.4.25).
    let skip = usize::from(flavor == Flavor::Etcd);
    for (what, role, perm) in cases.into_iter().skip(skip) {
        out.push(format!("{what}: {}", outcome(auth.role_grant_permission(grant(role, perm)).await)));
    }
    out
}

#[test]
fn role_grant_permission_refuses_empty_ranges_as_etcd_3_4_25() {
    let rt = wasmraft_tests::runtime();
    let ours = rt.block_on(grants(Flavor::Wasmraft));
    assert_eq!(
        ours,
        [
            "no permission: InvalidArgument etcdserver: permission not given",
            "no key: InvalidArgument etcdserver: invalid auth management",
            "no key, to the end: InvalidArgument etcdserver: invalid auth management",
            "end before key: InvalidArgument etcdserver: invalid auth management",
            "end at key: InvalidArgument etcdserver: invalid auth management",
            "bad range, unknown role: InvalidArgument etcdserver: invalid auth management",
            "one key: OK",
            "a range: OK",
            "from a key on: OK",
        ]
    );
    // etcd 3.4.23 stores the empty ranges (and crashes without a permission: not asked).
    let etcd = rt.block_on(grants(Flavor::Etcd));
    assert_eq!(etcd[0], "no key: OK", "{etcd:?}");
    assert_eq!(etcd[2], "end before key: OK", "{etcd:?}");
    assert_eq!(etcd[4], "bad range, unknown role: FailedPrecondition etcdserver: role name not found", "{etcd:?}");
    assert_eq!(etcd[5..], ours[6..], "{etcd:?}");
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert("token", MetadataValue::try_from(t).expect("token"));
    }
    r
}

/// With auth on: root, and `u` who may read `a` only; a lease with `a` and `b` attached. What
/// LeaseTimeToLive answers `u`, root and an anonymous caller, with and without the keys.
async fn time_to_live(flavor: Flavor) -> Vec<String> {
    let m = Member::start(flavor);
    let ch = channel(&m).await;
    let mut auth = AuthClient::new(ch.clone());
    let user = |name: &str, password: &str| pb::AuthUserAddRequest {
        name: name.into(),
        password: password.into(),
        options: Some(UserAddOptions { no_password: false }),
        ..Default::default()
    };
    auth.user_add(user("root", "rpw")).await.expect("add root");
    auth.role_add(pb::AuthRoleAddRequest { name: "root".into() }).await.expect("root role");
    auth.user_grant_role(pb::AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() })
        .await
        .expect("grant root");
    auth.user_add(user("u", "upw")).await.expect("add u");
    auth.role_add(pb::AuthRoleAddRequest { name: "r".into() }).await.expect("role r");
    auth.role_grant_permission(grant("r", Some((b"a", b"")))).await.expect("read a");
    auth.user_grant_role(pb::AuthUserGrantRoleRequest { user: "u".into(), role: "r".into() }).await.expect("grant r");
    auth.auth_enable(pb::AuthEnableRequest {}).await.expect("auth enable");
    let login = |name: &'static str, password: &'static str| {
        let mut auth = auth.clone();
        async move {
            let req = pb::AuthenticateRequest { name: name.into(), password: password.into() };
            auth.authenticate(req).await.expect("authenticate").into_inner().token
        }
    };
    let root = login("root", "rpw").await;
    let u = login("u", "upw").await;
    let mut lease = LeaseClient::new(ch.clone());
    let id = lease
        .lease_grant(with_token(pb::LeaseGrantRequest { ttl: 100, id: 0 }, Some(&root)))
        .await
        .expect("grant")
        .into_inner()
        .id;
    let mut kv = KvClient::new(ch);
    for key in ["a", "b"] {
        let put = pb::PutRequest { key: key.into(), value: b"v".to_vec(), lease: id, ..Default::default() };
        kv.put(with_token(put, Some(&root))).await.expect("put");
    }
    let mut out = Vec::new();
    for (who, token) in [("u", Some(u.as_str())), ("root", Some(root.as_str())), ("anonymous", None)] {
        for keys in [true, false] {
            let answer = lease.lease_time_to_live(with_token(pb::LeaseTimeToLiveRequest { id, keys }, token)).await;
            let shown = match &answer {
                Ok(r) => format!(" {} keys", r.get_ref().keys.len()),
                Err(_) => String::new(),
            };
            out.push(format!("{who} keys={keys}: {}{shown}", outcome(answer)));
        }
    }
    out
}

#[test]
fn lease_time_to_live_keys_need_read_permission_as_etcd_3_4_26() {
    let rt = wasmraft_tests::runtime();
    let ours = rt.block_on(time_to_live(Flavor::Wasmraft));
    assert_eq!(
        ours,
        [
            "u keys=true: PermissionDenied etcdserver: permission denied",
            "u keys=false: OK 0 keys",
            "root keys=true: OK 2 keys",
            "root keys=false: OK 0 keys",
            "anonymous keys=true: InvalidArgument etcdserver: user name is empty",
            "anonymous keys=false: OK 0 keys",
        ]
    );
    // etcd 3.4.23 tells anyone.
    let etcd = rt.block_on(time_to_live(Flavor::Etcd));
    assert_eq!(etcd[0], "u keys=true: OK 2 keys", "{etcd:?}");
    assert_eq!(etcd[4], "anonymous keys=true: OK 2 keys", "{etcd:?}");
    assert_eq!(&etcd[1..4], &ours[1..4], "{etcd:?}");
}
