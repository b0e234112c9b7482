//! The network-facing flags, each shown by its effect on real processes on loopback, side by
//! side with etcd 3.4.23 where etcd can be pointed at the same thing:
//!
//! | flag | test |
//! |---|---|
//! | `--discovery-srv`, `--discovery-srv-name` | `discovery_srv_bootstraps_three_members_from_srv_records`, `discovery_srv_without_records_is_a_clear_error` |
//! | `unix://` peer URLs (etcd's TestEtcdUnixPeers) | `unix_socket_peers_form_a_cluster` |
//! | `unix://` client URLs | `unix_socket_client_url_serves_etcdctl_and_http_as_etcd` |
//! | `--grpc-keepalive-min-time` | `pinging_too_often_gets_goaway_too_many_pings_as_etcd` |
//! | `--grpc-keepalive-interval`, `--grpc-keepalive-timeout` | `idle_clients_are_pinged_and_silent_ones_dropped_as_etcd` |
//! | `--max-concurrent-streams` | `max_concurrent_streams_limits_streams_per_connection_as_etcd` |
//! | `--cors`, `--host-whitelist` | `cors_and_host_whitelist_answer_as_etcd` |
//! | `--log-outputs` | `log_outputs_write_to_files_and_are_checked_as_etcd` |

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wasmraft_tests::dns::{DnsServer, Zone};
use wasmraft_tests::h2raw::{self, Next, RawH2};
use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig, etcdctl_bin, free_port};

/// The flavors a side-by-side test runs: etcd first (the reference), then the subject.
fn flavors() -> [Flavor; 2] {
    [Flavor::Etcd, Flavor::subject()]
}

fn host_port(m: &Member) -> String {
    m.endpoint().trim_start_matches("http://").to_string()
}

// ---------------------------------------------------------------------------------------------
// --grpc-keepalive-*, --max-concurrent-streams

/// What happens to a client pinging without a stream, and one pinging slowly enough with a
/// stream open: grpc-go's policy (PermitWithoutStream=false, MinTime from the flag).
fn ping_script(flavor: Flavor) -> Vec<String> {
    let m = Member::start_with(MemberConfig::new(flavor).arg("--grpc-keepalive-min-time=200ms"));
    let mut out = Vec::new();

    // No stream open: pings closer than two hours are strikes; the third strike ends it.
    let mut h2 = RawH2::connect(&host_port(&m)).expect("connect");
    h2.server_settings().expect("server SETTINGS");
    let mut answered = 0;
    let mut ended = String::from("never");
    for i in 0..6u8 {
        match h2.ping_pong([i; 8]) {
            Ok(()) => answered += 1,
            Err(Ok(goaway)) => {
                let (code, debug) = goaway.goaway();
                ended = format!("GOAWAY code {code:#x} {debug:?}");
                break;
            }
            Err(Err(next)) => {
                ended = format!("{next:?}");
                break;
            }
        }
    }
    out.push(format!("without a stream: {answered} pings answered, then {ended}"));
    let after = h2.wait_for(Duration::from_secs(5), |_| false).err().map(|n| format!("{n:?}"));
    out.push(format!("after the GOAWAY: {after:?}"));

    // A stream open, pings every 400 ms (> min time): all answered.
    let mut h2 = RawH2::connect(&host_port(&m)).expect("connect");
    h2.server_settings().expect("server SETTINGS");
    h2.open_grpc_stream(1, "/etcdserverpb.Watch/Watch", &host_port(&m)).expect("open a watch stream");
    let mut answered = 0;
    for i in 0..6u8 {
        std::thread::sleep(Duration::from_millis(400));
        match h2.ping_pong([i; 8]) {
            Ok(()) => answered += 1,
            Err(e) => panic!("{flavor}: ping {i} with a stream open: {e:?}"),
        }
    }
    out.push(format!("with a stream, slow pings: {answered} answered"));

    // A stream open, pings back to back (< min time): the third strike ends it.
    let mut ended = String::from("never");
    for i in 0..6u8 {
        if let Err(e) = h2.ping_pong([i; 8]) {
            ended = match e {
                Ok(goaway) => format!("GOAWAY {:?} after {i} fast pings", goaway.goaway()),
                Err(next) => format!("{next:?} after {i} fast pings"),
            };
            break;
        }
    }
    out.push(format!("with a stream, fast pings: {ended}"));
    out
}

#[test]
fn pinging_too_often_gets_goaway_too_many_pings_as_etcd() {
    let [etcd, ours] = flavors().map(ping_script);
    assert_eq!(etcd, ours);
    assert_eq!(etcd[0], "without a stream: 4 pings answered, then GOAWAY code 0xb \"too_many_pings\"", "{etcd:?}");
    assert_eq!(etcd[1], "after the GOAWAY: Some(\"Closed\")");
}

/// A client that never answers the server's pings: pinged after the interval, dropped after the
/// timeout.
fn keepalive_script(flavor: Flavor) -> (Duration, Duration) {
    let m = Member::start_with(
        MemberConfig::new(flavor).arg("--grpc-keepalive-interval=1s").arg("--grpc-keepalive-timeout=1s"),
    );
    let mut h2 = RawH2::connect(&host_port(&m)).expect("connect");
    let start = Instant::now();
    h2.server_settings().expect("server SETTINGS");
    h2.wait_for(Duration::from_secs(10), |f| f.kind == h2raw::PING && f.flags & h2raw::ACK == 0)
        .unwrap_or_else(|e| panic!("{flavor}: no keepalive PING from the server: {e:?}"));
    let pinged = start.elapsed();
    // Not acknowledged: the server gives up on the connection.
    match h2.wait_for(Duration::from_secs(10), |_| false) {
        Err(Next::Closed) => {}
        other => panic!("{flavor}: the connection stayed up without ping acks: {other:?}"),
    }
    (pinged, start.elapsed())
}

#[test]
fn idle_clients_are_pinged_and_silent_ones_dropped_as_etcd() {
    for flavor in flavors() {
        let (pinged, closed) = keepalive_script(flavor);
        assert!(
            pinged >= Duration::from_millis(800) && pinged < Duration::from_secs(4),
            "{flavor}: pinged at {pinged:?}"
        );
        assert!(closed > pinged && closed < pinged + Duration::from_secs(4), "{flavor}: closed at {closed:?}");
    }
}

/// The advertised SETTINGS_MAX_CONCURRENT_STREAMS, and whether a second stream on the
/// connection of a client holding a watch stream has to wait for it.
fn streams_script(flavor: Flavor, flag: Option<&str>) -> (Option<u32>, bool, bool) {
    let mut cfg = MemberConfig::new(flavor);
    if let Some(f) = flag {
        cfg = cfg.arg(f);
    }
    let m = Member::start_with(cfg);
    let mut h2 = RawH2::connect(&host_port(&m)).expect("connect");
    let settings = h2.server_settings().expect("server SETTINGS").settings();
    let advertised = settings.iter().find(|(id, _)| *id == h2raw::MAX_CONCURRENT_STREAMS).map(|(_, v)| *v);

    use wasmraft_proto::etcdserverpb::kv_client::KvClient;
    use wasmraft_proto::etcdserverpb::watch_client::WatchClient;
    use wasmraft_proto::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest, watch_request};
    let endpoint = m.endpoint();
    wasmraft_tests::runtime().block_on(async move {
        let channel =
            tonic::transport::Endpoint::from_shared(endpoint).expect("endpoint").connect().await.expect("connect");
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        };
        // The request side stays open until `tx` is dropped.
        let (tx, requests) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(create).expect("queue the watch");
        let mut watch = WatchClient::new(channel.clone()).watch(requests).await.expect("watch").into_inner();
        watch.message().await.expect("watch created").expect("a created response");
        let range = || {
            let mut kv = KvClient::new(channel.clone());
            async move { kv.range(RangeRequest { key: b"k".to_vec(), ..Default::default() }).await }
        };
        let while_watching = tokio::time::timeout(Duration::from_secs(2), range()).await.is_ok();
        // Both halves gone: the client resets the stream (a half-close alone leaves etcd's
        // watch stream open).
        drop(tx);
        drop(watch);
        let after = tokio::time::timeout(Duration::from_secs(10), range()).await.is_ok_and(|r| r.is_ok());
        (advertised, while_watching, after)
    })
}

#[test]
fn max_concurrent_streams_limits_streams_per_connection_as_etcd() {
    for flavor in flavors() {
        assert_eq!(streams_script(flavor, None), (Some(u32::MAX), true, true), "{flavor}: unlimited by default");
        assert_eq!(
            streams_script(flavor, Some("--max-concurrent-streams=1")),
            (Some(1), false, true),
            "{flavor}: the range waits for the watch stream to end"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// --cors, --host-whitelist

/// curl -si with extra arguments: the status line, the headers (names lowercased and sorted,
/// as neither their case nor their order means anything; no Date), the body.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-si", "--max-time", "10"]).args(args).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let mut headers: Vec<String> = lines
        .filter_map(|l| l.split_once(": ").map(|(n, v)| format!("{}: {v}", n.to_lowercase())))
        .filter(|l| !l.starts_with("date: "))
        .collect();
    headers.sort();
    format!("{status}\n{}\n\n{body}", headers.join("\n"))
}

fn access_script(flavor: Flavor) -> Vec<String> {
    let mut out = Vec::new();
    let m = Member::start(flavor);
    let v = format!("{}/version", m.endpoint());
    out.push(curl(&["-H", "Origin: http://x.example:1", &v]));
    drop(m);
    let m = Member::start_with(
        MemberConfig::new(flavor).arg("--cors=http://a.example:8080").arg("--host-whitelist=localhost,example.test"),
    );
    let v = format!("{}/version", m.endpoint());
    let h = format!("http://localhost:{}/health", m.config().client_port);
    out.push(curl(&[&v]));
    out.push(curl(&["-H", "Host: example.test:1", "-H", "Origin: http://a.example:8080", &v]));
    out.push(curl(&["-H", "Host: example.test", "-H", "Origin: http://b.example:8080", &v]));
    out.push(curl(&["-X", "OPTIONS", "-H", "Origin: http://a.example:8080", &h]));
    out.push(curl(&["-X", "OPTIONS", "-H", "Host: evil.example", &v]));
    // gRPC is not an HTTP endpoint: the whitelist does not apply.
    let put = Etcdctl::new(m.endpoint()).run(&["put", "k", "v"]);
    out.push(format!("put: {}", put.stdout.trim()));
    out
}

/// `/version` bodies name the etcd version each reports (wasmraft's is tested in
/// reported_version.rs): wasmraft's is put as etcd 3.4.23's for comparing the rest.
fn same_version(out: &str) -> String {
    out.replace(Flavor::Wasmraft.reported_version(), Flavor::Etcd.reported_version())
}

#[test]
fn cors_and_host_whitelist_answer_as_etcd() {
    let [etcd, ours] = flavors().map(access_script);
    for (e, o) in etcd.iter().zip(&ours) {
        assert_eq!(*e, same_version(o));
    }
    assert!(etcd[0].contains("access-control-allow-origin: *"), "{}", etcd[0]);
    assert!(etcd[1].starts_with("HTTP/1.1 421"), "{}", etcd[1]);
    assert!(etcd[1].contains("etcd --host-whitelist \"127.0.0.1\""), "{}", etcd[1]);
    assert!(etcd[2].contains("access-control-allow-origin: http://a.example:8080"), "{}", etcd[2]);
    assert!(etcd[3].starts_with("HTTP/1.1 200") && !etcd[3].contains("access-control"), "{}", etcd[3]);
    assert_eq!(etcd.last().map(String::as_str), Some("put: OK"));
}

// ---------------------------------------------------------------------------------------------
// unix:// URLs

/// etcd's TestEtcdUnixPeers, as a cluster of three: peers on Unix sockets in one directory.
#[test]
fn unix_socket_peers_form_a_cluster() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["e1", "e2", "e3"];
    let cluster = names.map(|n| format!("{n}=unix://{n}.unix:1")).join(",");
    let mut members: Vec<Member> = names
        .iter()
        .map(|n| {
            let port = free_port();
            Member::spawn(MemberConfig::new(Flavor::subject()).name(*n).cwd(dir.path()).url_args(vec![
                format!("--listen-peer-urls=unix://{n}.unix:1"),
                format!("--initial-advertise-peer-urls=unix://{n}.unix:1"),
                format!("--initial-cluster={cluster}"),
                format!("--listen-client-urls=http://127.0.0.1:{port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{port}"),
            ]))
        })
        .collect();
    for m in &mut members {
        m.wait_ready();
    }
    let client_url = |m: &Member| {
        m.config().url_args.as_ref().and_then(|a| a[4].strip_prefix("--advertise-client-urls=").map(str::to_string))
    };
    let urls: Vec<String> = members.iter().filter_map(client_url).collect();
    let list = Etcdctl::new(&urls[0]).run(&["member", "list"]);
    assert!(list.success(), "{}", list.render());
    for n in names {
        assert!(list.stdout.contains(&format!(", started, {n}, unix://{n}.unix:1, ")), "{}", list.stdout);
    }
    assert!(Etcdctl::new(&urls[0]).run(&["put", "k", "over unix peers"]).success());
    let got = Etcdctl::new(&urls[2]).run(&["get", "k", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "over unix peers", "{}", got.render());
}

/// etcdctl in `dir` (a unix endpoint's relative socket file is found there).
fn etcdctl_in(dir: &Path, endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(etcdctl_bin())
        .current_dir(dir)
        .env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("run etcdctl");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn unix_client_script(flavor: Flavor) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Member::start_with(MemberConfig::new(flavor).name("e1").cwd(dir.path()).url_args(vec![
        "--listen-peer-urls=unix://e1.peer:1".into(),
        "--initial-advertise-peer-urls=unix://e1.peer:1".into(),
        "--initial-cluster=e1=unix://e1.peer:1".into(),
        "--listen-client-urls=unix://e1.client:2".into(),
        "--advertise-client-urls=unix://e1.client:2".into(),
    ]));
    let ep = "unix://e1.client:2";
    let out = vec![
        etcdctl_in(dir.path(), ep, &["put", "k", "v"]),
        etcdctl_in(dir.path(), ep, &["get", "k", "--print-value-only"]),
        // The member ID is etcd's: derived from the unix peer URL and the token.
        etcdctl_in(dir.path(), ep, &["member", "list"]),
        {
            let o = Command::new("curl")
                .current_dir(dir.path())
                .args(["-s", "--max-time", "10", "--unix-socket", "e1.client:2", "http://localhost/version"])
                .output()
                .expect("curl");
            String::from_utf8_lossy(&o.stdout).into_owned()
        },
    ];
    drop(m);
    out
}

#[test]
fn unix_socket_client_url_serves_etcdctl_and_http_as_etcd() {
    let [etcd, ours] = flavors().map(unix_client_script);
    let ours: Vec<String> = ours.iter().map(|o| same_version(o)).collect();
    assert_eq!(etcd, ours);
    assert_eq!(etcd[0], "OK\n");
    assert!(etcd[2].contains(", started, e1, unix://e1.peer:1, unix://e1.client:2, false"), "{}", etcd[2]);
}

// ---------------------------------------------------------------------------------------------
// --discovery-srv

#[test]
fn discovery_srv_bootstraps_three_members_from_srv_records() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let names = ["m1", "m2", "m3"];
    let peer_ports = names.map(|_| free_port());
    let client_ports = names.map(|_| free_port());
    // Only the http service, with a service name suffix; targets a name every resolver knows.
    let mut zone = Zone::default();
    zone.srv.insert(
        "_etcd-server-blue._tcp.wasmraft.test.".into(),
        peer_ports.iter().map(|p| (0, 10, *p, "localhost.".to_string())).collect(),
    );
    zone.a.insert("localhost.".into(), [127, 0, 0, 1]);
    let dns = DnsServer::start(zone);
    let mut members: Vec<Member> = (0..3)
        .map(|i| {
            Member::spawn(MemberConfig::new(Flavor::Wasmraft).name(names[i]).url_args(vec![
                format!("--listen-peer-urls=http://127.0.0.1:{}", peer_ports[i]),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", peer_ports[i]),
                format!("--listen-client-urls=http://127.0.0.1:{}", client_ports[i]),
                format!("--advertise-client-urls=http://127.0.0.1:{}", client_ports[i]),
                "--discovery-srv=wasmraft.test".into(),
                "--discovery-srv-name=blue".into(),
                format!("--wasmraft-discovery-srv-nameserver={}", dns.addr()),
            ]))
        })
        .collect();
    for m in &mut members {
        m.wait_ready();
    }
    let lists: Vec<String> = client_ports
        .iter()
        .map(|p| {
            let out = Etcdctl::new(format!("http://127.0.0.1:{p}")).run(&["member", "list"]);
            assert!(out.success(), "{}", out.render());
            let mut lines: Vec<&str> = out.stdout.lines().collect();
            lines.sort();
            lines.join("\n")
        })
        .collect();
    assert_eq!(lists[0], lists[1], "one cluster");
    assert_eq!(lists[0], lists[2], "one cluster");
    for (i, n) in names.iter().enumerate() {
        let line =
            format!(", started, {n}, http://localhost:{}, http://127.0.0.1:{}, false", peer_ports[i], client_ports[i]);
        assert!(lists[0].contains(&line), "{line} in\n{}", lists[0]);
    }
    let log = members[0].log();
    assert!(log.contains("got bootstrap from DNS for etcd-server at m1=http://localhost:"), "{log}");
}

#[test]
fn discovery_srv_without_records_is_a_clear_error() {
    let dns = DnsServer::start(Zone::default());
    let mut m = Member::spawn(
        MemberConfig::new(Flavor::Wasmraft)
            .url_args(vec![
                "--discovery-srv=nothing.test".into(),
                format!("--wasmraft-discovery-srv-nameserver={}", dns.addr()),
            ])
            .ready_timeout(Duration::from_secs(30)),
    );
    let e = m.try_wait_ready(Duration::from_secs(30)).expect_err("no records: no cluster");
    assert!(
        e.contains("error querying DNS SRV records for _etcd-server-ssl lookup _etcd-server-ssl._tcp.nothing.test."),
        "{e}"
    );
    assert!(e.contains("no such host"), "{e}");
    // Both bootstrap sources at once is etcd's error.
    let mut m = Member::spawn(MemberConfig::new(Flavor::Wasmraft).arg("--discovery-srv=nothing.test"));
    let e = m.try_wait_ready(Duration::from_secs(30)).expect_err("conflicting flags");
    assert!(e.contains("multiple discovery or bootstrap flags are set"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// --log-outputs

fn log_outputs_script(flavor: Flavor) -> (bool, bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("member.log");
    let m = Member::spawn(
        MemberConfig::new(flavor).arg("--logger=zap").arg(format!("--log-outputs=stderr,{}", file.display())),
    );
    // etcd's zap logger says "serving client traffic insecurely" where capnslog says "ready to
    // serve client requests" (wasmraft says the latter in both).
    let serving = |l: &str| l.contains("ready to serve client requests") || l.contains("serving client traffic");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = String::new();
    while Instant::now() < deadline && !written.lines().any(serving) {
        std::thread::sleep(Duration::from_millis(100));
        written = std::fs::read_to_string(&file).unwrap_or_default();
    }
    let on_stderr = m.log().lines().filter(|l| l.starts_with('{')).count();
    drop(m);
    let ready = written.lines().any(serving) && on_stderr > 0;
    let json = written.lines().all(|l| l.starts_with('{'));
    // capnslog takes one output, and no file.
    let mut bad = Member::spawn(MemberConfig::new(flavor).arg(format!("--log-outputs={}", file.display())));
    let e = bad.try_wait_ready(Duration::from_secs(20)).expect_err("capnslog with a file");
    let line = e.lines().find(|l| l.contains("error verifying flags")).unwrap_or_default();
    let why =
        line.split("error verifying flags, ").nth(1).unwrap_or_default().replace("'etcd --help'", "'wasmraft --help'");
    (ready, json, why.replace(&file.display().to_string(), "FILE"))
}

#[test]
fn log_outputs_write_to_files_and_are_checked_as_etcd() {
    let [etcd, ours] = flavors().map(log_outputs_script);
    assert_eq!(etcd, ours);
    assert_eq!(
        etcd,
        (
            true,
            true,
            "unknown log-output \"FILE\" (only supports \"default\", \"stderr\", \"stdout\"). See 'wasmraft --help'."
                .to_string()
        )
    );
}
