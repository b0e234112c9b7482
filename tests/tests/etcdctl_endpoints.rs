//! etcdctl 3.4's `endpoint` subcommands against a wasmraft member, with the endpoint given as a
//! URL (`http://host:port`).
//!
//! Those subcommands dial `passthrough:///http://host:port`, so grpc-go sends the whole URL as
//! the HTTP/2 `:authority`. That is no RFC 3986 authority: Go's server takes it, the h2 crate
//! resets the stream (PROTOCOL_ERROR), so the client listener rewrites it to `host:port`
//! (host/api/src/authority.rs). The other commands must keep working over the same listener.

use wasmraft_tests::{Cluster, Flavor};

#[test]
fn endpoint_status_with_url_endpoints() {
    let mut cluster = Cluster::start(Flavor::subject(), 1);
    cluster.wait_leader(std::time::Duration::from_secs(10));
    let endpoint = cluster.endpoint(0);
    assert!(endpoint.starts_with("http://"), "{endpoint}");

    let through_etcdctl = cluster.etcdctl_status(0).expect("etcdctl endpoint status");
    let through_client = cluster.status(0).expect("Status through etcd-client");
    assert_eq!(through_etcdctl.endpoint, endpoint);
    assert_ne!(through_etcdctl.member_id, 0);
    assert_eq!(through_etcdctl.member_id, through_client.member_id);
    assert_eq!(through_etcdctl.cluster_id, through_client.cluster_id);
    assert!(through_etcdctl.is_leader(), "{through_etcdctl:?}");

    let etcdctl = cluster.etcdctl(0);
    let health = etcdctl.run(&["--dial-timeout=2s", "endpoint", "health"]);
    assert!(health.success(), "endpoint health: {}", health.render());

    // HashKV is not implemented yet: whatever it answers, it must reach the service (a gRPC
    // status of its own, not a reset stream).
    let hashkv = etcdctl.run(&["--dial-timeout=2s", "--command-timeout=2s", "endpoint", "hashkv"]);
    let all = format!("{}{}", hashkv.stdout, hashkv.stderr);
    assert!(!all.contains("RST_STREAM"), "endpoint hashkv: {}", hashkv.render());

    let put = etcdctl.run(&["put", "k", "v"]);
    assert!(put.success(), "put: {}", put.render());
    let get = etcdctl.run(&["get", "k"]);
    assert!(get.success(), "get: {}", get.render());
    assert_eq!(get.stdout, "k\nv\n");
}
