//! `wasmraft bench` against a real etcd 3.4 member and a wasmraft member: every workload's
//! `--json` result is checked (every request counted, none failed, latencies ordered), and so
//! is what the load did to the server (keys written, revisions spent, leases revoked), seen
//! through etcdctl. Then `--duration`, `--rate`, the custom-guest workloads against the counter
//! guest, and the errors a user can make. `--gateway` (put, range, txn-put through etcd's JSON
//! gateway over HTTP/1.1) is held to the same checks against both servers — every request it
//! counts landed — and to the same errors: auth refusals counted as the gRPC mode counts them,
//! a 404 from something that is not the gateway counted as a failure, never as a put.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig, WasmraftCli, free_port, wasmraft_bin};

/// Runs `wasmraft bench <args> --endpoints <endpoint> --json <file>`; returns (exit code, the
/// JSON if one was written, stdout, stderr).
fn bench(endpoint: &str, args: &[&str]) -> (i32, Option<Value>, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("result.json");
    let out = Command::new(wasmraft_bin())
        .arg("bench")
        .args(args)
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--json={}", json.display()))
        .output()
        .expect("run wasmraft bench");
    let value = std::fs::read_to_string(&json).ok().map(|t| serde_json::from_str(&t).expect("--json writes JSON"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), value, text(&out.stdout), text(&out.stderr))
}

/// A run that must succeed: exit 0, no errors, every latency figure in order. Returns the JSON.
fn ok(endpoint: &str, args: &[&str]) -> Value {
    let (code, json, stdout, stderr) = bench(endpoint, args);
    assert_eq!(code, 0, "wasmraft bench {args:?} against {endpoint}:\n{stdout}\n{stderr}");
    let json = json.unwrap_or_else(|| panic!("no JSON from {args:?}"));
    assert_eq!(json["errors"], serde_json::json!({}), "{json}");
    assert!(json["qps"].as_f64().is_some_and(|q| q > 0.0), "{json}");
    assert!(json["duration_s"].as_f64().is_some_and(|d| d > 0.0), "{json}");
    let l = &json["latency_us"];
    let f = |k: &str| l[k].as_u64().unwrap_or_else(|| panic!("latency_us.{k} in {json}"));
    assert!(f("min") >= 1 && f("min") <= f("p50") && f("p50") <= f("p90") && f("p90") <= f("p99"), "{json}");
    assert!(f("p99") <= f("p999") && f("p999") <= f("max"), "{json}");
    assert!(stdout.contains("Requests/sec:") && stdout.contains("Latency distribution:"), "{stdout}");
    json
}

fn count(json: &Value) -> u64 {
    json["count"].as_u64().unwrap_or_else(|| panic!("count in {json}"))
}

/// (keys in [from, to), the store's revision), through etcdctl (a range's count is of every
/// key in it, whatever the limit).
fn keys_and_revision(member: &Member, from: &str, to: &str) -> (u64, u64) {
    keys_and_revision_with(member, &[], from, to)
}

/// [`keys_and_revision`] with more etcdctl flags first (TLS).
fn keys_and_revision_with(member: &Member, flags: &[String], from: &str, to: &str) -> (u64, u64) {
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["get", from, to, "--limit=1", "-w", "json"]);
    let out = Etcdctl::new(member.endpoint()).run(&args);
    assert!(out.success(), "{}", out.render());
    let v: Value = serde_json::from_str(&out.stdout).expect("etcdctl -w json");
    (v["count"].as_u64().unwrap_or(0), v["header"]["revision"].as_u64().expect("revision"))
}

fn kv_workloads(flavor: Flavor) {
    let member = Member::start(flavor);
    let ep = member.endpoint();
    let (_, rev0) = keys_and_revision(&member, "0", ":");

    // 200 sequential puts over 2 connections: keys 00000000–00000199, one revision each.
    let put = ok(
        &ep,
        &[
            "put",
            "--total=200",
            "--clients=4",
            "--conns=2",
            "--sequential-keys",
            "--key-space-size=200",
            "--val-size=16",
            "--no-progress",
        ],
    );
    assert_eq!(count(&put), 200, "{put}");
    assert_eq!((put["workload"].as_str(), put["params"]["conns"].as_u64()), (Some("put"), Some(2)));
    let (keys, rev1) = keys_and_revision(&member, "0", ":");
    assert_eq!((keys, rev1 - rev0), (200, 200), "{flavor:?}: puts seen by etcdctl");
    let value = Etcdctl::new(ep.clone()).run(&["get", "00000123", "--print-value-only"]);
    assert_eq!(value.stdout.trim(), "v".repeat(16));

    // Reads of 50 keys written first (50 more revisions), linearizable and serializable; and
    // of an explicit range.
    for c in ["l", "s"] {
        let range =
            ok(&ep, &["range", "--total=200", "--clients=4", "--key-space-size=50", &format!("--consistency={c}")]);
        assert_eq!((count(&range), range["params"]["consistency"].as_str()), (200, Some(c)), "{range}");
    }
    let range = ok(&ep, &["range", "00000000", "00000100", "--total=100", "--clients=2"]);
    assert_eq!(count(&range), 100);
    let (keys, rev2) = keys_and_revision(&member, "0", ":");
    assert_eq!((keys, rev2 - rev1), (200, 100), "{flavor:?}: the key space written before each range run");

    // 100 txns of 3 puts on keys 0–299: one revision per txn, 300 keys in all.
    let txn =
        ok(&ep, &["txn-put", "--total=100", "--txn-ops=3", "--clients=4", "--sequential-keys", "--key-space-size=300"]);
    assert_eq!(count(&txn), 100);
    let (keys, rev3) = keys_and_revision(&member, "0", ":");
    assert_eq!((keys, rev3 - rev2), (300, 100), "{flavor:?}: txn-put");

    // 6 watchers on 3 streams see each of 100 puts.
    let watch = ok(
        &ep,
        &["watch-latency", "--watchers=6", "--streams=3", "--put-total=100", "--put-clients=2", "--put-rate=0"],
    );
    assert_eq!(
        (watch["puts"].as_u64(), watch["events"].as_u64(), count(&watch)),
        (Some(100), Some(600), 600),
        "{watch}"
    );
    assert!(watch["put_latency_us"]["p50"].as_u64().is_some_and(|p| p > 0), "{watch}");
    let (keys, _) = keys_and_revision(&member, "bench-watch-latency/", "bench-watch-latency0");
    assert_eq!(keys, 100);

    // 4 leases renewed 200 times in all, then revoked.
    let lease = ok(&ep, &["lease-keepalive", "--total=200", "--clients=4", "--conns=2"]);
    assert_eq!(count(&lease), 200);
    let leases = Etcdctl::new(ep.clone()).run(&["lease", "list"]);
    assert!(leases.stdout.contains("found 0 leases"), "{}", leases.render());

    // --duration stops on time; --rate holds the pace (about 50/s over 2 s: 100).
    let started = Instant::now();
    let timed = ok(&ep, &["put", "--duration=1s", "--clients=2"]);
    let took = timed["duration_s"].as_f64().unwrap_or(0.0);
    assert!((1.0..1.5).contains(&took) && started.elapsed() < Duration::from_secs(10), "{timed}");
    assert!(count(&timed) > 0 && timed["params"]["duration_s"] == 1.0, "{timed}");
    let paced = ok(&ep, &["put", "--duration=2s", "--rate=50", "--clients=4"]);
    assert!((80..=110).contains(&count(&paced)), "{flavor:?}: rate 50 for 2 s: {paced}");
}

#[test]
fn kv_workloads_against_etcd() {
    kv_workloads(Flavor::Etcd);
}

#[test]
fn kv_workloads_against_wasmraft() {
    kv_workloads(Flavor::Wasmraft);
}

#[test]
fn propose_and_query_load_the_counter_guest() {
    let member = Member::start_with(
        MemberConfig::new(Flavor::Wasmraft).arg(format!("--guest={}", env!("WASMRAFT_TEST_COUNTER_GUEST"))),
    );
    let ep = member.endpoint();
    let propose = ok(&ep, &["propose", "--total=150", "--clients=4", "add 1"]);
    assert_eq!(count(&propose), 150);
    // "add 2" as hex.
    let hex = ok(&ep, &["propose", "--total=10", "--hex", "61646420 32"]);
    assert_eq!(count(&hex), 10);
    let cli = WasmraftCli::new(ep.clone());
    assert_eq!(cli.query("get").expect("counter query"), "170");
    for c in ["l", "s"] {
        let query = ok(&ep, &["query", "--total=100", "--clients=2", &format!("--consistency={c}"), "get"]);
        assert_eq!(count(&query), 100);
    }

    // The guest's refusals are counted by their text, and the exit code says some failed.
    let (code, json, stdout, _) = bench(&ep, &["propose", "--total=20", "--clients=2", "mul 3"]);
    let json = json.expect("the JSON is written when requests fail");
    assert_eq!((code, count(&json)), (1, 0), "{json}");
    let errors = json["errors"].as_object().expect("errors");
    assert_eq!(errors.values().filter_map(Value::as_u64).sum::<u64>(), 20, "{json}");
    assert!(errors.keys().all(|e| e.starts_with("Aborted: ") && e.contains("counter")), "{json}");
    assert!(stdout.contains("Error distribution:"), "{stdout}");
    assert_eq!(cli.query("get").expect("counter query"), "170");
}

#[test]
fn unreachable_endpoints_and_bad_flags_are_clear_errors() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    for workload in [
        &["put", "--total=5"][..],
        &["put", "--gateway", "--total=5"],
        &["range", "--gateway", "--total=5"],
        &["watch-latency", "--put-total=5"],
        &["lease-keepalive", "--total=5"],
        &["propose", "add 1"],
    ] {
        let args: Vec<&str> = workload.iter().copied().chain(["--dial-timeout=1"]).collect();
        let (code, json, _, stderr) = bench(&nobody, &args);
        assert_eq!(code, 4, "{workload:?}: {stderr}");
        assert!(stderr.contains(&format!("cannot connect to {nobody}")), "{stderr}");
        assert!(json.is_none());
    }
    for (args, code, says) in [
        (&["put", "--clients=0"][..], 3, "--clients must be at least 1"),
        (&["put", "--conns=0"], 3, "--conns must be at least 1"),
        (&["put", "--key-size=2", "--key-space-size=1000"], 3, "--key-space-size 1000"),
        (&["txn-put", "--txn-ops=5"], 3, "--txn-ops must be between 1 and --key-space-size (1)"),
        (&["put", "--total=5", "--duration=1s"], 2, "cannot be used with"),
        (&["put", "--duration=soon"], 2, "--duration"),
        (&["propose", "--hex", "zz"], 3, "not valid hex"),
    ] {
        let (got, _, _, stderr) = bench(&nobody, args);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn user_logs_in_and_every_connection_presents_the_token() {
    let member = Member::start(Flavor::Etcd);
    let ep = member.endpoint();
    let ctl = Etcdctl::new(ep.clone());
    for step in [&["user", "add", "root:secret"][..], &["auth", "enable"]] {
        let out = ctl.run(step);
        assert!(out.success(), "{}", out.render());
    }
    let put = ok(&ep, &["put", "--total=20", "--conns=2", "--clients=2", "--user=root:secret"]);
    assert_eq!(count(&put), 20);
    // Without a token every request is refused, and counted as such.
    let (code, json, _, _) = bench(&ep, &["put", "--total=5"]);
    let json = json.expect("JSON");
    assert_eq!((code, count(&json)), (1, 0), "{json}");
    assert_eq!(json["errors"]["InvalidArgument: etcdserver: user name is empty"], 5, "{json}");
    let (code, _, _, stderr) = bench(&ep, &["put", "--total=5", "--user=root:wrong"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
}

/// https endpoints: `--cacert` verifies the member, `--cert`/`--key` present a client certificate
/// to a member with `--client-cert-auth` (etcdctl's flags); without the CA, or without a
/// certificate, nothing connects. Against etcd 3.4 and wasmraft alike, over gRPC and through
/// the gateway. The members' certificate is good for client auth too (`peer.pem`): etcd 3.4's
/// gateway dials its own gRPC port presenting the member's certificate, so under
/// `--client-cert-auth` a server-only one fails every gateway call (Unavailable: "certificate
/// specifies an incompatible key usage" in etcd's log).
#[test]
fn tls_endpoints_with_etcdctls_flags() {
    let pki = wasmraft_tests::Pki::new();
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let mut config = MemberConfig::new(flavor).https_client();
        for f in pki.server_flags() {
            let f = f.replace("server.pem", "peer.pem").replace("server-key.pem", "peer-key.pem");
            config = config.arg(f);
        }
        let member = Member::start_with(config);
        let ep = member.endpoint();
        assert!(ep.starts_with("https://"), "{ep}");
        let [cacert, cert, key] = pki.etcdctl_flags("client");
        let json = ok(&ep, &["put", "--total=200", "--clients=4", "--conns=2", &cacert, &cert, &key]);
        assert_eq!(count(&json), 200, "{flavor}: {json}");
        let (keys, _) = keys_and_revision_with(&member, &pki.etcdctl_flags("client"), "0", ":");
        assert!(keys >= 1, "{flavor}: the puts did not land");

        // The gateway over TLS (offering http/1.1), with the same flags.
        let flags = pki.etcdctl_flags("client");
        let (_, rev0) = keys_and_revision_with(&member, &flags, "0", ":");
        let args = ["put", "--gateway", "--total=100", "--clients=4", "--conns=2", &cacert, &cert, &key];
        let json = ok(&ep, &args);
        assert_eq!((count(&json), json["params"]["transport"].as_str()), (100, Some("gateway")), "{flavor}: {json}");
        let (_, rev1) = keys_and_revision_with(&member, &flags, "0", ":");
        assert_eq!(rev1 - rev0, 100, "{flavor}: gateway puts over https");
        let (code, _, _, stderr) = bench(&ep, &["put", "--gateway", "--total=1", "--dial-timeout=2", &cert, &key]);
        assert_eq!(code, 4, "{flavor}: the gateway connected without trusting the member's CA: {stderr}");

        let (code, _, _, stderr) = bench(&ep, &["put", "--total=1", "--dial-timeout=2", &cert, &key]);
        assert_ne!(code, 0, "{flavor}: connected without trusting the member's CA");
        assert!(stderr.contains("cannot connect"), "{flavor}: {stderr}");
        let (code, _, _, stderr) = bench(&ep, &["put", "--total=1", "--dial-timeout=2", &cacert]);
        assert_ne!(code, 0, "{flavor}: a --client-cert-auth member took a client without a certificate");
        assert!(!stderr.is_empty(), "{flavor}: no error text");
    }
}

/// `--gateway` put, range and txn-put against one member: every request the JSON counts is a
/// revision and a key etcdctl sees afterwards, and the report names the transport.
fn gateway_workloads(flavor: Flavor) {
    let member = Member::start(flavor);
    let ep = member.endpoint();
    let (_, rev0) = keys_and_revision(&member, "0", ":");

    // More clients than connections: on HTTP/1.1 they take turns, each request counted once.
    let args = [
        "put",
        "--gateway",
        "--total=300",
        "--clients=6",
        "--conns=3",
        "--sequential-keys",
        "--key-space-size=300",
        "--val-size=16",
        "--no-progress",
    ];
    let (code, json, stdout, stderr) = bench(&ep, &args);
    assert_eq!(code, 0, "{flavor:?}: {stdout}\n{stderr}");
    assert!(stdout.contains("Summary:\n  Transport:\tJSON gateway (HTTP/1.1)\n"), "{stdout}");
    let put = ok(&ep, &args);
    let first = json.expect("JSON");
    assert_eq!((count(&first), count(&put)), (300, 300), "{put}");
    assert_eq!((put["params"]["transport"].as_str(), put["params"]["conns"].as_u64()), (Some("gateway"), Some(3)));
    let (keys, rev1) = keys_and_revision(&member, "0", ":");
    assert_eq!((keys, rev1 - rev0), (300, 600), "{flavor:?}: gateway puts seen by etcdctl");
    let value = Etcdctl::new(ep.clone()).run(&["get", "00000123", "--print-value-only"]);
    assert_eq!(value.stdout.trim(), "v".repeat(16));

    // Reads, linearizable and serializable, of 50 keys the run writes first (through the
    // gateway too: 50 revisions each), and of an explicit range.
    for c in ["l", "s"] {
        let range = ok(
            &ep,
            &[
                "range",
                "--gateway",
                "--total=200",
                "--clients=4",
                "--conns=4",
                "--key-space-size=50",
                &format!("--consistency={c}"),
            ],
        );
        assert_eq!((count(&range), range["params"]["consistency"].as_str()), (200, Some(c)), "{range}");
        assert_eq!(range["params"]["transport"], "gateway", "{range}");
    }
    let range = ok(&ep, &["range", "--gateway", "00000000", "00000100", "--total=100", "--clients=2", "--conns=2"]);
    assert_eq!(count(&range), 100);
    let (keys, rev2) = keys_and_revision(&member, "0", ":");
    assert_eq!((keys, rev2 - rev1), (300, 100), "{flavor:?}: the key space written before each range run");

    // 100 txns of 3 puts on 9-digit keys: 300 new keys, one revision per txn.
    let txn = ok(
        &ep,
        &[
            "txn-put",
            "--gateway",
            "--total=100",
            "--txn-ops=3",
            "--clients=4",
            "--conns=4",
            "--sequential-keys",
            "--key-size=9",
            "--key-space-size=300",
        ],
    );
    assert_eq!(count(&txn), 100);
    let (keys, rev3) = keys_and_revision(&member, "0", ":");
    assert_eq!((keys, rev3 - rev2), (600, 100), "{flavor:?}: gateway txn-put");

    // The gRPC mode says so too.
    let grpc = ok(&ep, &["put", "--total=10"]);
    assert_eq!(grpc["params"]["transport"], "grpc", "{grpc}");
}

#[test]
fn gateway_workloads_against_etcd() {
    gateway_workloads(Flavor::Etcd);
}

#[test]
fn gateway_workloads_against_wasmraft() {
    gateway_workloads(Flavor::Wasmraft);
}

/// Refusals through the gateway are failures, counted by the same text as the gRPC mode's, with
/// its exit code: auth on and no token; a wrong password; and a URL that answers 404 (the peer
/// port) rather than an etcd response. None of them writes anything.
fn gateway_refusals(flavor: Flavor) {
    let member = Member::start(flavor);
    let ep = member.endpoint();
    let ctl = Etcdctl::new(ep.clone());
    for step in [&["user", "add", "root:secret"][..], &["auth", "enable"]] {
        let out = ctl.run(step);
        assert!(out.success(), "{}", out.render());
    }
    let root = ["--user=root:secret".to_string()];
    let (_, rev0) = keys_and_revision_with(&member, &root, "0", ":");
    let put = ok(&ep, &["put", "--gateway", "--total=20", "--conns=2", "--clients=2", "--user=root:secret"]);
    assert_eq!(count(&put), 20);
    let (_, rev1) = keys_and_revision_with(&member, &root, "0", ":");
    assert_eq!(rev1 - rev0, 20, "{flavor:?}: puts with the gateway's token");

    // No token: every request refused, counted as the gRPC mode counts it.
    let (code, json, stdout, _) = bench(&ep, &["put", "--gateway", "--total=5", "--conns=2", "--clients=2"]);
    let json = json.expect("the JSON is written when requests fail");
    assert_eq!((code, count(&json)), (1, 0), "{json}");
    assert_eq!(json["errors"]["InvalidArgument: etcdserver: user name is empty"], 5, "{json}");
    assert!(stdout.contains("Error distribution:"), "{stdout}");
    let (grpc_code, grpc, _, _) = bench(&ep, &["put", "--total=5"]);
    assert_eq!((grpc_code, &grpc.expect("JSON")["errors"]), (code, &json["errors"]), "{flavor:?}: gRPC and gateway");
    let range = bench(&ep, &["range", "--gateway", "k", "--total=3"]).1.expect("JSON");
    assert_eq!(range["errors"]["InvalidArgument: etcdserver: user name is empty"], 3, "{range}");

    let (code, json, _, stderr) = bench(&ep, &["put", "--gateway", "--total=5", "--user=root:wrong"]);
    assert_eq!((code, json.is_none()), (1, true), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");

    // Something that is not the gateway: a 404 per request, never a success.
    let (code, json, _, _) = bench(&member.peer_url(), &["put", "--gateway", "--total=4"]);
    let json = json.expect("JSON");
    assert_eq!((code, count(&json)), (1, 0), "{json}");
    let errors = json["errors"].as_object().expect("errors");
    assert!(errors.keys().all(|e| e.starts_with("HTTP 404 Not Found")), "{json}");
    assert_eq!(errors.values().filter_map(Value::as_u64).sum::<u64>(), 4, "{json}");

    let (_, rev2) = keys_and_revision_with(&member, &root, "0", ":");
    assert_eq!(rev2, rev1, "{flavor:?}: a refused request wrote something");
}

#[test]
fn gateway_refusals_against_etcd() {
    gateway_refusals(Flavor::Etcd);
}

#[test]
fn gateway_refusals_against_wasmraft() {
    gateway_refusals(Flavor::Wasmraft);
}
