//! Interop with REAL etcd: the same hand-built requests go to a real etcd 3.4 member's peer URL
//! and to our Transport (configured with that member's cluster and member IDs), and the answers
//! must match: status code, body text, and the headers etcd sets.
//!
//! Needs `etcd` and `etcdctl` on PATH (CI installs etcd 3.4.23); fails with a clear message
//! otherwise. Starts a real 2-member etcd cluster (so that the target member has a real peer, to
//! reach the stream handler's `X-Raft-To` check) on free loopback ports with a temporary data
//! dir; the processes are killed and the dir removed on drop, also when a check panics.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use raft::eraftpb::{Message, MessageType};
use tokio::net::TcpListener;
use wasmraft_transport::*;

// ---------------------------------------------------------------- real etcd

struct EtcdCluster {
    procs: Vec<Child>,
    dir: PathBuf,
    client_urls: Vec<String>,
    peer_urls: Vec<String>,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn require(bin: &str) {
    if let Err(e) = Command::new(bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        panic!(
            "`{bin}` could not be run ({e}): this interop test needs etcd 3.4.x's `etcd` and \
             `etcdctl` on PATH (CI installs them; locally e.g. `apt-get install etcd-server \
             etcd-client`)"
        );
    }
}

fn free_port() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port")
}

impl EtcdCluster {
    fn start() -> EtcdCluster {
        require("etcd");
        require("etcdctl");
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("wasmraft-etcd-interop-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Hold the ports until just before etcd binds them.
        let holds: Vec<_> = (0..4).map(|_| free_port()).collect();
        let port = |i: usize| holds[i].local_addr().map(|a| a.port()).unwrap_or(0);
        let client_urls: Vec<String> = (0..2).map(|i| format!("http://127.0.0.1:{}", port(i))).collect();
        let peer_urls: Vec<String> = (0..2).map(|i| format!("http://127.0.0.1:{}", port(2 + i))).collect();
        drop(holds);
        let names = ["a", "b"];
        let initial = format!("a={},b={}", peer_urls[0], peer_urls[1]);
        let mut c = EtcdCluster { procs: Vec::new(), dir, client_urls, peer_urls };
        for (i, name) in names.iter().enumerate() {
            let log = std::fs::File::create(c.dir.join(format!("{name}.log"))).expect("log file");
            let log2 = log.try_clone().expect("log file");
            // Member a runs in a +05:30 zone: Go encodes the probing `Now` in local time, so
            // our prober must read offsets (without zoneinfo, Go falls back to UTC: still fine).
            let tz = if i == 0 { "Asia/Kolkata" } else { "UTC" };
            let child = Command::new("etcd")
                .env("TZ", tz)
                .args(["--name", name])
                .arg("--data-dir")
                .arg(c.dir.join(name))
                .args(["--listen-client-urls", &c.client_urls[i]])
                .args(["--advertise-client-urls", &c.client_urls[i]])
                .args(["--listen-peer-urls", &c.peer_urls[i]])
                .args(["--initial-advertise-peer-urls", &c.peer_urls[i]])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-token", &format!("wasmraft-interop-{stamp}")])
                .args(["--initial-cluster-state", "new"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .expect("spawn etcd");
            c.procs.push(child);
        }
        c
    }

    fn logs(&self) -> String {
        ["a", "b"]
            .iter()
            .map(|n| {
                let s = std::fs::read_to_string(self.dir.join(format!("{n}.log"))).unwrap_or_default();
                let tail: Vec<&str> = s.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- etcd {n} (last lines) ---\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `etcdctl member list -w json` on member a, once the cluster is up: (cluster id, a's
    /// member id, b's member id).
    fn ids(&mut self) -> (u64, u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            for p in &mut self.procs {
                if let Ok(Some(st)) = p.try_wait() {
                    panic!("etcd exited early ({st})\n{}", self.logs());
                }
            }
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &self.client_urls[0]])
                .args(["--dial-timeout", "2s", "--command-timeout", "3s"])
                .args(["member", "list", "-w", "json"])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let s = String::from_utf8_lossy(&o.stdout).into_owned();
                    let cid = json_u64s(&s, "cluster_id");
                    let me = json_u64s(&s, "member_id");
                    let ids = json_u64s(&s, "ID");
                    if let (Some(&cid), Some(&me)) = (cid.first(), me.first())
                        && ids.len() == 2
                        && ids.contains(&me)
                    {
                        let other = ids.iter().copied().find(|&i| i != me).unwrap_or(0);
                        return (cid, me, other);
                    }
                    last = s;
                }
                Ok(o) => last = String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("etcd cluster did not come up in 60 s (etcdctl: {last})\n{}", self.logs());
    }
}

/// Every unsigned number following `"key":` in a JSON text (etcdctl prints IDs as decimals).
fn json_u64s(s: &str, key: &str) -> Vec<u64> {
    let pat = format!("\"{key}\":");
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(&pat) {
        rest = rest[i + pat.len()..].trim_start();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(v) = digits.parse() {
            out.push(v);
        }
    }
    out
}

// ---------------------------------------------------------------- ours

struct NullRaft;

impl Raft for NullRaft {
    fn process(&self, _m: Message) -> Result<(), ProcessError> {
        Ok(())
    }
    fn is_id_removed(&self, _id: u64) -> bool {
        false
    }
    fn report_unreachable(&self, _id: u64) {}
    fn report_snapshot(&self, _id: u64, _status: SnapshotStatus) {}
    fn save_snapshot<'a>(
        &'a self,
        _m: &'a Message,
        _data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async { Err("not in this test".to_string()) })
    }
}

// ---------------------------------------------------------------- requests

type RawClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: String,
    headers: Vec<(&'static str, Option<String>)>,
}

/// The headers compared (etcd's own and the ones Go's `http.Error`/mux set).
const COMPARED: [&str; 7] = [
    "Content-Type",
    "X-Content-Type-Options",
    "X-Etcd-Cluster-ID",
    "X-Server-Version",
    "Allow",
    "Location",
    "Content-Length",
];

async fn ask(c: &RawClient, method: &str, url: String, headers: &[(&'static str, String)], body: &[u8]) -> Answer {
    let mut req = ::http::Request::builder().method(method).uri(&url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no answer in 10 s"))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let b = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let raw = String::from_utf8_lossy(&b).into_owned();
    let body = normalize_probing(&raw);
    let varying = body != raw; // a probing answer: its length varies with `Now`
    Answer {
        status,
        body,
        headers: COMPARED
            .iter()
            .map(|&k| {
                let v = h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
                if k == "Content-Length" && varying {
                    let ok = v.as_deref() == Some(raw.len().to_string().as_str());
                    return (k, Some(if ok { "<length of body>" } else { "<wrong>" }.into()));
                }
                (k, v)
            })
            .collect(),
    }
}

/// The probing answer's `Now` differs by nature: check its shape, then blank it.
fn normalize_probing(body: &str) -> String {
    let prefix = "{\"OK\":true,\"Now\":\"";
    if let Some(rest) = body.strip_prefix(prefix)
        && let Some((now, tail)) = rest.split_once('"')
    {
        let b = now.as_bytes();
        let shaped =
            b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && (now.ends_with('Z') || now[19..].contains(['+', '-']));
        return format!("{prefix}{}\"{tail}", if shaped { "<now>" } else { now });
    }
    body.to_string()
}

fn msg(t: MessageType, from: u64, to: u64) -> Message {
    let mut m = Message::default();
    m.msg_type = t;
    m.from = from;
    m.to = to;
    m
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_peer_handler_answers_as_real_etcd_does() {
    let mut etcd = EtcdCluster::start();
    let (cid, me, peer) = etcd.ids();
    let etcd_url = etcd.peer_urls[0].clone();
    eprintln!("real etcd: cluster {cid:x}, member {me:x} at {etcd_url}, its peer {peer:x}");

    // Ours: the same member of the same cluster, knowing the same peer (at a dead URL, so that
    // our transport never talks to the real cluster).
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ours_url = format!("http://{}", l.local_addr().expect("addr"));
    let tr =
        Transport::new(TransportConfig::new(me, cid, vec![ours_url.clone()]), Arc::new(NullRaft)).expect("transport");
    let dead = format!("http://127.0.0.1:{}", free_port().local_addr().expect("a").port());
    tr.add_peer(peer, &[dead]).expect("add peer");
    let t2 = tr.clone();
    tokio::spawn(async move { t2.serve(l, std::future::pending()).await });

    let good = vec![
        ("X-Server-From", format!("{peer:x}")),
        ("X-Server-Version", "3.4.23".to_string()),
        ("X-Min-Cluster-Version", "3.0.0".to_string()),
        ("X-Etcd-Cluster-ID", format!("{cid:x}")),
        ("X-Raft-To", format!("{me:x}")),
    ];
    let with = |k: &'static str, v: &str| {
        let mut h = good.clone();
        h.retain(|(n, _)| *n != k);
        if !v.is_empty() {
            h.push((k, v.to_string()));
        }
        h
    };
    // Harmless to the real cluster: a term-0 heartbeat response from a member nobody knows
    // (raft ignores a response without progress for its sender).
    let harmless = pb::encode_message(&msg(MessageType::MsgHeartbeatResponse, 0x1234, me));
    let mut snap_frame = Vec::new();
    msg_codec::encode_frame(&msg(MessageType::MsgHeartbeat, peer, me), &mut snap_frame);
    let unknown = 0x99u64;
    let case = |name, method, path: String, headers: Vec<(&'static str, String)>, body: &[u8]| Case {
        name,
        method,
        path,
        headers,
        body: body.to_vec(),
    };
    let cases = vec![
        case("probing", "GET", "/raft/probing".into(), vec![], b""),
        case("probing, POST", "POST", "/raft/probing".into(), vec![], b""),
        case("pipeline, GET", "GET", "/raft".into(), good.clone(), b""),
        case("pipeline, accepted", "POST", "/raft".into(), good.clone(), &harmless),
        case("pipeline, wrong cluster ID", "POST", "/raft".into(), with("X-Etcd-Cluster-ID", "beef"), &harmless),
        case("pipeline, no cluster ID", "POST", "/raft".into(), with("X-Etcd-Cluster-ID", ""), &harmless),
        case("pipeline, server version too low", "POST", "/raft".into(), with("X-Server-Version", "2.3.0"), &harmless),
        case(
            "pipeline, server version higher (accepted)",
            "POST",
            "/raft".into(),
            with("X-Server-Version", "3.9.0"),
            &harmless,
        ),
        case(
            "pipeline, min cluster version too high",
            "POST",
            "/raft".into(),
            with("X-Min-Cluster-Version", "3.5.0"),
            &harmless,
        ),
        case(
            "pipeline, min cluster version low (accepted)",
            "POST",
            "/raft".into(),
            with("X-Min-Cluster-Version", "2.0.0"),
            &harmless,
        ),
        case(
            "pipeline, no version headers (etcd 2.0)",
            "POST",
            "/raft".into(),
            vec![("X-Etcd-Cluster-ID", format!("{cid:x}"))],
            &harmless,
        ),
        case("pipeline, garbage body", "POST", "/raft".into(), good.clone(), b"\xff\xfe\xfd garbage \x00\x01\x02"),
        case("pipeline, truncated varint", "POST", "/raft".into(), good.clone(), b"\x10"),
        case("pipeline, bad wire type", "POST", "/raft".into(), good.clone(), b"\x0f\x01"),
        case(
            "stream message, unknown sender",
            "GET",
            format!("/raft/stream/message/{unknown:x}"),
            with("X-Server-From", &format!("{unknown:x}")),
            b"",
        ),
        case(
            "stream msgapp, unknown sender",
            "GET",
            format!("/raft/stream/msgapp/{unknown:x}"),
            with("X-Server-From", &format!("{unknown:x}")),
            b"",
        ),
        case(
            "stream message, wrong X-Raft-To",
            "GET",
            format!("/raft/stream/message/{peer:x}"),
            with("X-Raft-To", "1"),
            b"",
        ),
        case("stream msgapp, no X-Raft-To", "GET", format!("/raft/stream/msgapp/{peer:x}"), with("X-Raft-To", ""), b""),
        case(
            "stream, wrong cluster ID",
            "GET",
            format!("/raft/stream/message/{peer:x}"),
            with("X-Etcd-Cluster-ID", "1"),
            b"",
        ),
        case(
            "stream, server version too low",
            "GET",
            format!("/raft/stream/message/{peer:x}"),
            with("X-Server-Version", "2.1.0"),
            b"",
        ),
        case("stream, POST", "POST", format!("/raft/stream/message/{peer:x}"), good.clone(), b""),
        case("stream, bad type", "GET", "/raft/stream/bogus/1".into(), good.clone(), b""),
        case("stream, bad sender id", "GET", "/raft/stream/message/xyz".into(), good.clone(), b""),
        case("snapshot, not a MsgSnap", "POST", "/raft/snapshot".into(), good.clone(), &snap_frame),
        case("snapshot, GET", "GET", "/raft/snapshot".into(), good.clone(), b""),
        case(
            "snapshot, wrong cluster ID",
            "POST",
            "/raft/snapshot".into(),
            with("X-Etcd-Cluster-ID", "2"),
            &snap_frame,
        ),
        case("snapshot, empty body", "POST", "/raft/snapshot".into(), good.clone(), b""),
        case("snapshot, short length", "POST", "/raft/snapshot".into(), good.clone(), b"\x00\x00\x01"),
        case("unknown path", "GET", "/nope".into(), vec![], b""),
        case("unknown path, POST", "POST", "/nope".into(), vec![], b""),
        case("unknown /raft path", "GET", "/raft/nope".into(), good.clone(), b""),
        case("under probing", "GET", "/raft/probing/x".into(), vec![], b""),
        case("under snapshot", "POST", "/raft/snapshot/x".into(), good.clone(), &snap_frame),
        case("stream root", "GET", "/raft/stream".into(), good.clone(), b""),
        case("stream root, slash", "GET", "/raft/stream/".into(), good.clone(), b""),
        case("stream root, POST with query", "POST", "/raft/stream?a=1&b=%3C2%3E'".into(), good.clone(), b""),
        case("unclean path, dot", "GET", "/raft/./probing".into(), vec![], b""),
        case("unclean path, dot-dot", "POST", "/raft/snapshot/../../raft".into(), good.clone(), &harmless),
        case("unclean path, double slash", "GET", format!("/raft/stream//message/{peer:x}?x=1&y='"), good.clone(), b""),
    ];

    let c: RawClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut diffs = Vec::new();
    for k in &cases {
        let theirs = ask(&c, k.method, format!("{etcd_url}{}", k.path), &k.headers, &k.body).await;
        let ours = ask(&c, k.method, format!("{ours_url}{}", k.path), &k.headers, &k.body).await;
        if theirs == ours {
            eprintln!("same   {:<45} {} {:?}", k.name, ours.status, ours.body);
        } else {
            eprintln!("DIFFER {:<45}\n  etcd: {theirs:?}\n  ours: {ours:?}", k.name);
            diffs.push(k.name);
        }
    }
    // Our prober against real etcd's /raft/probing (Go's time encoding, its RTT). This
    // transport claims another cluster, so etcd refuses its streams (412) and never adds it as
    // a remote; the probe itself carries no headers, as etcd's does not.
    let prober = Transport::new(
        {
            let mut cfg = TransportConfig::new(0x4242, cid ^ 1, vec![]);
            cfg.probe_interval = Duration::from_millis(100);
            cfg
        },
        Arc::new(NullRaft),
    )
    .expect("transport");
    prober.add_peer(me, std::slice::from_ref(&etcd_url)).expect("add");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = prober.probe_status(me).expect("status");
        if s.healthy && s.last_rtt.is_some() {
            eprintln!("our prober on real etcd: {s:?}");
            let raw = ask(&c, "GET", format!("{etcd_url}/raft/probing"), &[], b"").await;
            eprintln!("(etcd's answer: {raw:?})");
            assert!(s.clock_diff_secs.is_some_and(|d| d.abs() < 1.0), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "our prober never saw real etcd healthy: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    prober.stop();

    // Real etcd survived all of that and still serves its cluster.
    for p in &mut etcd.procs {
        assert!(matches!(p.try_wait(), Ok(None)), "real etcd exited\n{}", etcd.logs());
    }
    assert!(diffs.is_empty(), "our answers differ from etcd's for: {diffs:?} (details above)");
}
