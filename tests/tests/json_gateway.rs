//! etcd's JSON gateway (`/v3/…`) side by side with etcd 3.4.23: the same curl script against a
//! fresh etcd and a fresh wasmraft member, every route with success and error cases (lease not
//! found, bad JSON, a compacted revision, auth on: no token, an invalid token, permission
//! denied), 404/405 for what the gateway does not serve, the `/v3beta/` prefix, and the streams
//! (watch create/events/cancel, lease keep-alive, election observe) over chunked HTTP with each
//! object checked to be its own chunk. Bodies are compared byte for byte after the values that
//! differ between any two clusters (ids, terms, tokens, sizes, URLs, hashes) are masked.

use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use wasmraft_tests::{Flavor, Member, MemberConfig};

/// Keys whose values differ between two clusters by nature, masked before comparing.
const MASKED: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "ID",
    "token",
    "leader",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "peerURLs",
    "clientURLs",
    "hash",
];

/// `text` with the value after each `"KEY":` of [`MASKED`] replaced by `*`.
fn mask(text: &str) -> String {
    let mut out = text.to_string();
    for key in MASKED {
        let marker = format!("\"{key}\":");
        let mut from = 0;
        while let Some(pos) = out[from..].find(&marker) {
            let start = from + pos + marker.len();
            let end = value_end(out.as_bytes(), start);
            out.replace_range(start..end, "*");
            from = start + 1;
        }
    }
    out
}

/// Where the JSON value starting at `start` ends.
fn value_end(b: &[u8], start: usize) -> usize {
    match b.get(start) {
        Some(b'"') => {
            let mut i = start + 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            (i + 1).min(b.len())
        }
        Some(open @ (b'[' | b'{')) => {
            let close = if *open == b'[' { b']' } else { b'}' };
            let (mut depth, mut i) = (0, start);
            while i < b.len() {
                if b[i] == *open {
                    depth += 1;
                } else if b[i] == close {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                i += 1;
            }
            b.len()
        }
        _ => b[start..].iter().position(|c| matches!(c, b',' | b'}' | b']')).map_or(b.len(), |p| start + p),
    }
}

/// One gateway client: curl against one member.
struct Gw {
    endpoint: String,
    token: Option<String>,
}

impl Gw {
    fn curl(&self, extra: &[&str], path: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-k", "--max-time", "20"]).args(extra);
        if let Some(t) = &self.token {
            cmd.args(["-H", &format!("Authorization: {t}")]);
        }
        cmd.arg(format!("{}{path}", self.endpoint));
        cmd
    }

    /// "<status> <body>" of a request, unmasked.
    fn raw(&self, method: &str, path: &str, body: &str) -> String {
        let out = self
            .curl(&["-X", method, "-d", body, "-w", "\n%{http_code}"], path)
            .output()
            .expect("run curl (scripts/test installs it)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        match text.rsplit_once('\n') {
            Some((body, code)) => format!("{code} {body}"),
            None => text,
        }
    }

    /// A POST, masked: one line of the script.
    fn post(&self, path: &str, body: &str) -> String {
        mask(&format!("POST {path} {body} -> {}", self.raw("POST", path, body)))
    }

    /// A field of a POST's JSON answer.
    fn field(&self, path: &str, body: &str, field: &str) -> serde_json::Value {
        let answer = self.raw("POST", path, body);
        let json = answer.split_once(' ').map_or("", |(_, b)| b);
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{path}: {e}: {answer}"));
        v[field].clone()
    }

    /// A streaming call's chunks (curl --raw, so chunk boundaries show), until it ends or
    /// `secs` pass.
    fn start_stream(&self, path: &str, body: &str, secs: u32) -> Child {
        self.curl(
            &["--raw", "-N", "-X", "POST", "-d", body, "--max-time", &secs.to_string(), "-w", "\n%{http_code}"],
            path,
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl")
    }

    fn stream(&self, path: &str, body: &str, secs: u32) -> String {
        let child = self.start_stream(path, body, secs);
        mask(&format!("STREAM {path} {body} -> {}", chunks(child)))
    }
}

/// The status and the chunks of a finished `curl --raw`, each checked to hold exactly one JSON
/// object (and its newline delimiter, except the error object that ends a stream).
fn chunks(child: Child) -> String {
    let out = child.wait_with_output().expect("wait for curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (raw, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    let mut rest = raw;
    let mut objects = Vec::new();
    if is_chunked(raw) {
        // Chunked: "<hex size>\r\n<data>\r\n" ..., "0\r\n\r\n" at a clean end.
        while let Some((size, after)) = rest.split_once("\r\n") {
            let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
                panic!("not a chunk size {size:?} in {raw:?}");
            };
            if size == 0 {
                break;
            }
            let data = &after[..size];
            rest = &after[size + 2..];
            // Go's ResponseWriter sends an object larger than its 4 KiB buffer as a chunk of
            // its own and the delimiter after it as another (etcd's snapshot blobs).
            if data == "\n" {
                continue;
            }
            let object = data.strip_suffix('\n').unwrap_or(data);
            assert!(
                serde_json::from_str::<serde_json::Value>(object).is_ok(),
                "a chunk that is not one JSON object: {data:?}"
            );
            objects.push(mask(object));
        }
    } else {
        objects.push(mask(raw));
    }
    format!("{code} {}", objects.join("\n  "))
}

/// Whether a `curl --raw` body is chunked: it starts with a hex size line.
fn is_chunked(raw: &str) -> bool {
    raw.split_once("\r\n").is_some_and(|(size, _)| !size.is_empty() && usize::from_str_radix(size, 16).is_ok())
}

/// The script both members run. Keys: "foo" = Zm9v, "bar" = YmFy, "baz" = YmF6.
fn script(flavor: Flavor) -> Vec<String> {
    // Maintenance.Status and /version report the etcd version: wasmraft is told to report
    // the one it is compared with (tests/tests/reported_version.rs covers its own).
    let mut config = MemberConfig::new(flavor);
    if flavor == Flavor::Wasmraft {
        config = config.arg(format!("--wasmraft-emulated-etcd-version={}", Flavor::Etcd.reported_version()));
    }
    let member = Member::start_with(config);
    let gw = Gw { endpoint: member.endpoint(), token: None };
    let mut out = Vec::new();

    // KV.
    out.push(gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#));
    out.push(gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy","prev_kv":true,"unknown_field":1}"#));
    out.push(gw.post("/v3/kv/range", r#"{"key":"Zm9v"}"#));
    out.push(gw.post("/v3beta/kv/range", r#"{"key":"Zm9v","count_only":true}"#));
    out.push(gw.post("/v3/kv/range", r#"{"key":"YQ==","range_end":"eg==","limit":"1","sort_order":"DESCEND"}"#));
    out.push(gw.post("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#));
    out.push(gw.post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
    ));
    out.push(gw.post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"VERSION","version":"1"}],"success":[],"failure":[{"request_range":{"key":"Zm9v"}},{"request_delete_range":{"key":"bm9uZQ=="}}]}"#,
    ));
    out.push(gw.post("/v3/kv/put", r#"{"key":"YmFy","value":"MQ=="}"#));
    out.push(gw.post("/v3/kv/deleterange", r#"{"key":"YmFy","prev_kv":true}"#));
    out.push(gw.post("/v3/kv/compaction", r#"{"revision":"3"}"#));
    out.push(gw.post("/v3/kv/compaction", r#"{"revision":3}"#));
    out.push(gw.post("/v3/kv/compaction", r#"{"revision":"100"}"#));
    out.push(gw.post("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#));
    // Bad requests.
    out.push(gw.post("/v3/kv/put", "xx"));
    out.push(gw.post("/v3/kv/put", r#"{"key":"#));
    out.push(gw.post("/v3/kv/put", ""));
    out.push(gw.post("/v3/kv/range", r#"{"key":"Zm9v","range_end":"Zm9v","revision":"-1"}"#));
    // What the gateway does not serve.
    out.push(format!("GET range -> {}", gw.raw("GET", "/v3/kv/range", "")));
    out.push(format!("POST nope -> {}", gw.raw("POST", "/v3/kv/nope", "{}")));
    out.push(format!("POST /v3/ -> {}", gw.raw("POST", "/v3/", "{}")));
    out.push(format!("POST v3alpha -> {}", gw.raw("POST", "/v3alpha/kv/range", "{}")));

    // Lease.
    out.push(gw.post("/v3/lease/grant", r#"{"ID":"1000","TTL":"60"}"#));
    out.push(gw.post("/v3/lease/grant", r#"{"ID":1000,"TTL":60}"#));
    out.push(gw.post("/v3/kv/put", r#"{"key":"bGVhc2Vk","value":"eA==","lease":"1000"}"#));
    out.push(
        gw.post("/v3/lease/timetolive", r#"{"ID":"1000","keys":true}"#).replace("\"TTL\":\"59\"", "\"TTL\":\"60\""),
    );
    out.push(gw.post("/v3/kv/lease/timetolive", r#"{"ID":"999"}"#));
    out.push(gw.post("/v3/lease/leases", "{}"));
    out.push(gw.post("/v3/kv/lease/leases", "{}"));
    out.push(gw.stream("/v3/lease/keepalive", r#"{"ID":"1000"} {"ID":1000}"#, 3));
    out.push(gw.stream("/v3/lease/keepalive", r#"{"ID":"123"}"#, 3));
    out.push(gw.stream("/v3/lease/keepalive", "xx", 3));
    out.push(gw.post("/v3/lease/revoke", r#"{"ID":"123"}"#));
    out.push(gw.post("/v3/kv/lease/revoke", r#"{"ID":"123"}"#));

    // Watch: history from a revision, create then cancel, and live events.
    out.push(gw.stream("/v3/watch", r#"{"create_request":{"key":"Zm9v","start_revision":"3"}}"#, 2));
    out.push(gw.stream("/v3/watch", r#"{"create_request":{"key":"Zm9v"}} {"cancel_request":{"watch_id":"0"}}"#, 2));
    out.push(gw.stream("/v3/watch", r#"{"create_request":{"key":"Zm9v","start_revision":"2"}}"#, 2));
    let live = gw.start_stream("/v3/watch", r#"{"create_request":{"key":"Zm9v","prev_kv":true}}"#, 4);
    sleep(Duration::from_millis(1500));
    gw.raw("POST", "/v3/kv/put", r#"{"key":"Zm9v","value":"bGl2ZQ=="}"#);
    gw.raw("POST", "/v3/kv/deleterange", r#"{"key":"Zm9v"}"#);
    out.push(format!("STREAM live watch -> {}", chunks(live)));

    // Lock and election (over the lease).
    out.push(gw.post("/v3/lock/lock", r#"{"name":"bXk=","lease":"1000"}"#));
    let lock_key = gw.field("/v3/lock/lock", r#"{"name":"bXk=","lease":"1000"}"#, "key");
    out.push(gw.post("/v3/lock/unlock", &format!(r#"{{"key":{lock_key}}}"#)));
    out.push(gw.post("/v3/election/campaign", r#"{"name":"ZWxlYw==","lease":"1000","value":"djE="}"#));
    let leader = gw.field("/v3/election/leader", r#"{"name":"ZWxlYw=="}"#, "kv");
    out.push(gw.post("/v3/election/leader", r#"{"name":"ZWxlYw=="}"#));
    let key = serde_json::json!({
        "name": "ZWxlYw==", "key": leader["key"], "rev": leader["create_revision"], "lease": leader["lease"]
    });
    out.push(gw.post("/v3/election/proclaim", &format!(r#"{{"leader":{key},"value":"djI="}}"#)));
    out.push(gw.stream("/v3/election/observe", r#"{"name":"ZWxlYw=="}"#, 2));
    out.push(gw.post("/v3/election/resign", &format!(r#"{{"leader":{key}}}"#)));
    out.push(gw.post("/v3/election/leader", r#"{"name":"ZWxlYw=="}"#));
    out.push(gw.post("/v3/election/proclaim", &format!(r#"{{"leader":{key},"value":"djM="}}"#)));

    // Cluster (a learner, so that the one-member cluster keeps its quorum).
    out.push(gw.post("/v3/cluster/member/list", "{}"));
    let added = gw.field("/v3/cluster/member/add", r#"{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}"#, "member");
    out.push(format!("added learner: {}", mask(&added.to_string())));
    let id = added["ID"].as_str().unwrap_or_default().to_string();
    out.push(gw.post("/v3/cluster/member/promote", &format!(r#"{{"ID":"{id}"}}"#)));
    out.push(gw.post("/v3/cluster/member/update", r#"{"ID":"1","peerURLs":["http://127.0.0.1:2"]}"#));
    out.push(gw.post("/v3/cluster/member/remove", &format!(r#"{{"ID":"{id}"}}"#)));
    out.push(gw.post("/v3/cluster/member/remove", r#"{"ID":"1"}"#));
    out.push(gw.post("/v3/cluster/member/add", r#"{"peerURLs":["not a url"]}"#));

    // Maintenance.
    out.push(gw.post("/v3/maintenance/status", "{}"));
    out.push(gw.post("/v3/maintenance/alarm", r#"{"action":"GET"}"#));
    out.push(gw.post("/v3/maintenance/defragment", "{}"));
    out.push(gw.post("/v3/maintenance/hash", r#"{"revision":"0"}"#));
    out.push(gw.post("/v3/maintenance/transfer-leadership", r#"{"targetID":"1"}"#));
    let snapshot = gw.start_stream("/v3/maintenance/snapshot", "{}", 10);
    // The bytes differ (two databases); every chunk is a blob, the last with remaining_bytes 0.
    let snapshot = chunks(snapshot);
    let blobs = snapshot.strip_prefix("200 ").unwrap_or_default().split("\n  ").collect::<Vec<_>>();
    out.push(format!(
        "snapshot: {} {}",
        &snapshot[..3],
        blobs.iter().all(|c| c.starts_with(r#"{"result":{"#) && c.contains(r#""blob":""#))
    ));

    // Auth: users, roles, then auth on.
    out.push(gw.post("/v3/auth/user/add", r#"{"name":"root","password":"rootpw"}"#));
    out.push(gw.post("/v3/auth/user/add", r#"{"name":"root","password":"rootpw"}"#));
    out.push(gw.post("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#));
    out.push(gw.post("/v3/auth/user/add", r#"{"name":"alice","password":"alicepw"}"#));
    out.push(gw.post("/v3/auth/role/add", r#"{"name":"reader"}"#));
    out.push(gw.post("/v3/auth/role/grant", r#"{"name":"reader","perm":{"permType":"READ","key":"Zm9v"}}"#));
    out.push(gw.post(
        "/v3/auth/role/grant",
        r#"{"name":"reader","perm":{"permType":"WRITE","key":"d3c=","range_end":"d3g="}}"#,
    ));
    out.push(gw.post("/v3/auth/role/revoke", r#"{"role":"reader","key":"d3c=","range_end":"d3g="}"#));
    out.push(gw.post("/v3/auth/user/grant", r#"{"user":"alice","role":"reader"}"#));
    out.push(gw.post("/v3/auth/user/get", r#"{"name":"alice"}"#));
    out.push(gw.post("/v3/auth/user/get", r#"{"name":"nobody"}"#));
    out.push(gw.post("/v3/auth/role/get", r#"{"role":"reader"}"#));
    out.push(gw.post("/v3/auth/user/list", "{}"));
    out.push(gw.post("/v3/auth/role/list", "{}"));
    out.push(gw.post("/v3/auth/user/changepw", r#"{"name":"alice","password":"alicepw2"}"#));
    out.push(gw.post("/v3/auth/enable", "{}"));
    out.push(gw.post("/v3/kv/range", r#"{"key":"Zm9v"}"#));
    out.push(gw.stream("/v3/watch", r#"{"create_request":{"key":"Zm9v"}}"#, 2));
    out.push(gw.stream("/v3/maintenance/snapshot", "{}", 2));
    out.push(gw.post("/v3/auth/authenticate", r#"{"name":"alice","password":"wrong"}"#));
    out.push(gw.post("/v3/auth/authenticate", r#"{"name":"alice","password":"alicepw2"}"#));
    let alice = Gw {
        endpoint: gw.endpoint.clone(),
        token: gw
            .field("/v3/auth/authenticate", r#"{"name":"alice","password":"alicepw2"}"#, "token")
            .as_str()
            .map(str::to_string),
    };
    out.push(alice.post("/v3/kv/range", r#"{"key":"Zm9v"}"#));
    out.push(alice.post("/v3/kv/put", r#"{"key":"Zm9v","value":"eA=="}"#));
    out.push(alice.post("/v3/auth/user/list", "{}"));
    let bogus = Gw { endpoint: gw.endpoint.clone(), token: Some("bogus".into()) };
    out.push(bogus.post("/v3/kv/range", r#"{"key":"Zm9v"}"#));
    out.push(bogus.stream("/v3/watch", r#"{"create_request":{"key":"Zm9v"}}"#, 2));
    let root = Gw {
        endpoint: gw.endpoint.clone(),
        token: gw
            .field("/v3/auth/authenticate", r#"{"name":"root","password":"rootpw"}"#, "token")
            .as_str()
            .map(str::to_string),
    };
    out.push(root.post("/v3/auth/user/revoke", r#"{"name":"alice","role":"reader"}"#));
    out.push(root.post("/v3/auth/role/delete", r#"{"role":"reader"}"#));
    out.push(root.post("/v3/auth/user/delete", r#"{"name":"alice"}"#));
    out.push(root.post("/v3/auth/disable", "{}"));
    out.push(gw.post("/v3/kv/range", r#"{"key":"Zm9v"}"#));
    out
}

#[test]
fn gateway_matches_etcd_route_by_route() {
    let etcd = script(Flavor::Etcd);
    let ours = script(Flavor::subject());
    let mut diffs = Vec::new();
    for (i, (e, o)) in etcd.iter().zip(&ours).enumerate() {
        if e != o {
            let cut = |s: &str| s.chars().take(600).collect::<String>();
            diffs.push(format!("step {i}:\n  etcd:     {}\n  wasmraft: {}", cut(e), cut(o)));
        }
    }
    assert_eq!(etcd.len(), ours.len());
    assert!(diffs.is_empty(), "{} of {} steps differ:\n{}", diffs.len(), etcd.len(), diffs.join("\n"));
    // The script exercised what it meant to: a lease-not-found error, streamed events.
    assert!(etcd.iter().any(|l| l.contains("etcdserver: requested lease not found")), "{etcd:#?}");
    assert!(
        etcd.iter().any(|l| l.starts_with("STREAM live watch -> 200") && l.contains("\"type\":\"DELETE\"")),
        "{etcd:#?}"
    );
}

/// etcd3gw's version: pinned, so that a new release cannot change what the test checks.
const ETCD3GW: &str = "etcd3gw==2.7.0";

/// A Python environment with etcd3gw from PyPI, made once per machine and kept in the temp dir.
fn etcd3gw_python() -> std::path::PathBuf {
    let venv = std::env::temp_dir().join("wasmraft-tests-etcd3gw-2.7.0");
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    if !ready.exists() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("run python3 -m venv");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", ETCD3GW])
            .status()
            .expect("run pip");
        assert!(pip.success(), "pip install {ETCD3GW} failed (PyPI must be reachable)");
        std::fs::write(&ready, ETCD3GW).expect("mark the etcd3gw environment ready");
    }
    python
}

/// The results of tests/scripts/etcd3gw_check.py against a three-member cluster.
fn etcd3gw_run(flavor: Flavor, python: &std::path::Path) -> serde_json::Value {
    let cluster = wasmraft_tests::Cluster::start(flavor, 3);
    let endpoints: Vec<String> =
        cluster.endpoints().iter().map(|e| e.trim_start_matches("http://").to_string()).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/etcd3gw_check.py");
    let out = Command::new(python).arg(script).args(&endpoints).output().expect("run etcd3gw_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "etcd3gw_check.py against {flavor:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("etcd3gw_check.py printed no JSON ({e}): {stdout}"))
}

#[test]
fn etcd3gw_client_works_against_a_three_member_cluster() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let python = etcd3gw_python();
    let etcd = etcd3gw_run(Flavor::Etcd, &python);
    let ours = etcd3gw_run(Flavor::subject(), &python);
    assert_eq!(etcd, ours);
    // What the script saw is what it meant to exercise.
    assert_eq!(ours["api_path"], "/v3/");
    assert_eq!(ours["replace_ok"], true);
    assert_eq!(ours["replace_stale"], false);
    assert_eq!(ours["refresh_revoked"], -1, "an expired lease's keep-alive has no TTL field: {ours}");
    assert_eq!(ours["watch"].as_array().map(Vec::len), Some(2), "{ours}");
    assert_eq!(ours["lock_second_while_held"], false);
    assert_eq!(ours["lock_second_after"], true);
}

/// The next text message of a WebSocket, masked; "closed" when the connection ends instead.
async fn ws_next<S>(ws: &mut S) -> String
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Err(_) => "no message within 10s".to_string(),
        Ok(Some(Ok(Message::Text(t)))) => mask(t.as_str()),
        Ok(Some(Ok(other))) if !other.is_close() => format!("unexpected {other:?}"),
        Ok(_) => "closed".to_string(),
    }
}

/// The gateway's routes over WebSocket (etcd's wsproxy): requests as messages, each answer line
/// a message; watch create/event/cancel, keep-alives, a unary call (after which the connection
/// closes) and bad JSON.
fn ws_script(flavor: Flavor) -> Vec<String> {
    use futures::SinkExt as _;
    use tokio_tungstenite::connect_async;
    use tokio_tungstenite::tungstenite::Message;

    let member = Member::start_with(MemberConfig::new(flavor));
    let gw = Gw { endpoint: member.endpoint(), token: None };
    let ws_base = member.endpoint().replace("http://", "ws://");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(async {
        let mut out = Vec::new();
        let open = |path: &str| {
            let url = format!("{ws_base}{path}");
            async move { connect_async(url.as_str()).await.unwrap_or_else(|e| panic!("WebSocket to {url}: {e}")).0 }
        };

        let mut watch = open("/v3/watch").await;
        watch.send(Message::text(r#"{"create_request":{"key":"Zm9v"}}"#)).await.expect("send");
        out.push(format!("watch created: {}", ws_next(&mut watch).await));
        gw.raw("POST", "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
        out.push(format!("watch event: {}", ws_next(&mut watch).await));
        watch.send(Message::text(r#"{"cancel_request":{"watch_id":"0"}}"#)).await.expect("send");
        out.push(format!("watch canceled: {}", ws_next(&mut watch).await));
        watch.send(Message::text(r#"{"create_request":{"key":"YmFy","start_revision":"1"}}"#)).await.expect("send");
        out.push(format!("second watcher: {}", ws_next(&mut watch).await));

        gw.raw("POST", "/v3/lease/grant", r#"{"ID":"1000","TTL":"60"}"#);
        let mut keepalive = open("/v3/lease/keepalive").await;
        for request in [r#"{"ID":"1000"}"#, r#"{"ID":1000}"#, r#"{"ID":"5"}"#] {
            keepalive.send(Message::text(request)).await.expect("send");
            out.push(format!("keepalive {request}: {}", ws_next(&mut keepalive).await));
        }

        let mut range = open("/v3/kv/range").await;
        range.send(Message::text(r#"{"key":"Zm9v"}"#)).await.expect("send");
        out.push(format!("range: {}", ws_next(&mut range).await));
        out.push(format!("after range: {}", ws_next(&mut range).await));

        let mut bad = open("/v3/kv/put").await;
        bad.send(Message::text("xx")).await.expect("send");
        out.push(format!("bad put: {}", ws_next(&mut bad).await));
        let mut bad = open("/v3/watch").await;
        bad.send(Message::text("xx")).await.expect("send");
        out.push(format!("bad watch: {}", ws_next(&mut bad).await));
        let mut revoke = open("/v3/lease/revoke").await;
        revoke.send(Message::text(r#"{"ID":"5"}"#)).await.expect("send");
        out.push(format!("revoke unknown: {}", ws_next(&mut revoke).await));
        out
    })
}

#[test]
fn gateway_over_websocket_matches_etcd() {
    let etcd = ws_script(Flavor::Etcd);
    let ours = ws_script(Flavor::subject());
    assert_eq!(etcd, ours);
    assert!(etcd[1].contains(r#""events":[{"kv":{"key":"Zm9v""#), "{etcd:#?}");
    assert!(etcd.iter().any(|l| l == "after range: closed"), "{etcd:#?}");
    assert!(etcd.iter().any(|l| l.starts_with("keepalive {\"ID\":1000}") && l.contains(r#""TTL":"60""#)), "{etcd:#?}");
}

/// A request body from a file (too large for an argument).
fn post_file(gw: &Gw, path: &str, body: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).expect("write the body");
    let data = format!("@{}", file.display());
    let mut args = vec!["-X", "POST", "--data-binary", data.as_str(), "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    let out = gw.curl(&args, path).output().expect("run curl");
    mask(&String::from_utf8_lossy(&out.stdout))
}

/// `--max-request-bytes` through the gateway (etcd's "request is too large" past it, grpc-go's
/// receive limit past it plus etcd's gRPC overhead), over https with HTTP/1.1 and HTTP/2.
fn limits_script(flavor: Flavor) -> Vec<String> {
    let member =
        Member::start_with(MemberConfig::new(flavor).https_client().arg("--auto-tls").arg("--max-request-bytes=2048"));
    let gw = Gw { endpoint: member.endpoint(), token: None };
    let value = |n: usize| {
        use base64::Engine as _;
        format!(r#"{{"key":"Zm9v","value":"{}"}}"#, base64::engine::general_purpose::STANDARD.encode(vec![b'x'; n]))
    };
    vec![
        post_file(&gw, "/v3/kv/put", &value(1000), &[]),
        post_file(&gw, "/v3/kv/put", &value(3000), &[]),
        post_file(&gw, "/v3/kv/put", &value(600_000), &[]),
        post_file(&gw, "/v3/kv/range", r#"{"key":"Zm9v","keys_only":true}"#, &["--http2"]),
        post_file(&gw, "/v3/kv/range", r#"{"key":"Zm9v","count_only":true}"#, &["--http1.1"]),
    ]
}

#[test]
fn gateway_limits_and_https_match_etcd() {
    let etcd = limits_script(Flavor::Etcd);
    let ours = limits_script(Flavor::subject());
    assert_eq!(etcd, ours);
    assert!(etcd[1].contains("etcdserver: request is too large"), "{etcd:#?}");
    assert!(etcd[2].contains("grpc: received message larger than max (600009 vs. 526336)"), "{etcd:#?}");
}

/// h2c (HTTP/2 without TLS, which etcd 3.4 sends to its gRPC server alone) reaches the gateway
/// as HTTP/1.1 does.
#[test]
fn gateway_answers_h2c_as_http1() {
    let member = Member::start_with(MemberConfig::new(Flavor::subject()));
    let gw = Gw { endpoint: member.endpoint(), token: None };
    gw.raw("POST", "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    let http1 = post_file(&gw, "/v3/kv/range", r#"{"key":"Zm9v"}"#, &["--http1.1"]);
    let h2c = post_file(&gw, "/v3/kv/range", r#"{"key":"Zm9v"}"#, &["--http2-prior-knowledge"]);
    assert_eq!(http1, h2c);
    assert!(h2c.contains(r#""kvs":[{"key":"Zm9v""#), "{h2c}");
}

/// With `--client-cert-auth` and auth on, the gateway's caller is the client certificate's CN
/// (etcd's `AuthInfoFromTLS`), and a token wins over it, as on the gRPC path. etcd 3.4.23 cannot
/// be the reference here: its gateway dials its own gRPC port without a client certificate and
/// answers every call with `use of closed network connection` (Unavailable, 503) under
/// `--client-cert-auth`, so the expected answers are its gRPC path's (as etcdctl sees them in
/// tls.rs and auth.rs).
fn client_cert_script(flavor: Flavor, pki: &wasmraft_tests::Pki) -> Vec<String> {
    let mut config = MemberConfig::new(flavor).https_client();
    for flag in pki.server_flags() {
        config = config.arg(flag);
    }
    let member = Member::start_with(config);
    let (ca, alice, root) = (
        pki.path("ca.pem"),
        [pki.path("alice.pem"), pki.path("alice-key.pem")],
        [pki.path("client.pem"), pki.path("client-key.pem")],
    );
    let call = |cert: &[String; 2], token: Option<&str>, path: &str, body: &str| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "20", "--cacert", &ca, "--cert", &cert[0], "--key", &cert[1]]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: {t}")]);
        }
        let out = cmd
            .args(["-X", "POST", "-d", body, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", member.endpoint()))
            .output();
        let out = out.expect("run curl");
        mask(&format!("{path} {body} -> {}", String::from_utf8_lossy(&out.stdout)))
    };
    let mut out = vec![
        call(&root, None, "/v3/auth/user/add", r#"{"name":"root","password":"rootpw"}"#),
        call(&root, None, "/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        call(&root, None, "/v3/auth/user/add", r#"{"name":"alice","password":"alicepw"}"#),
        call(&root, None, "/v3/auth/role/add", r#"{"name":"reader"}"#),
        call(&root, None, "/v3/auth/role/grant", r#"{"name":"reader","perm":{"key":"Zm9v"}}"#),
        call(&root, None, "/v3/auth/user/grant", r#"{"user":"alice","role":"reader"}"#),
        call(&root, None, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
        call(&root, None, "/v3/auth/enable", "{}"),
        call(&alice, None, "/v3/kv/range", r#"{"key":"Zm9v"}"#),
        call(&alice, None, "/v3/kv/put", r#"{"key":"Zm9v","value":"eA=="}"#),
        call(&alice, None, "/v3/auth/user/list", "{}"),
        call(&root, None, "/v3/kv/put", r#"{"key":"Zm9v","value":"eQ=="}"#),
    ];
    let token = {
        let answer = call(&alice, None, "/v3/auth/authenticate", r#"{"name":"root","password":"rootpw"}"#);
        let mut tokens = Command::new("curl");
        tokens
            .args(["-s", "--cacert", &ca, "--cert", &alice[0], "--key", &alice[1], "-X", "POST"])
            .args(["-d", r#"{"name":"root","password":"rootpw"}"#])
            .arg(format!("{}/v3/auth/authenticate", member.endpoint()));
        let json = String::from_utf8_lossy(&tokens.output().expect("run curl").stdout).to_string();
        out.push(answer);
        serde_json::from_str::<serde_json::Value>(&json).ok().and_then(|v| v["token"].as_str().map(str::to_string))
    };
    out.push(call(&alice, token.as_deref(), "/v3/kv/put", r#"{"key":"Zm9v","value":"eg=="}"#));
    out
}

#[test]
fn gateway_takes_the_client_certificate_cn_as_the_grpc_path_does() {
    let pki = wasmraft_tests::Pki::new();
    pki.client("alice", "alice");
    let ours = client_cert_script(Flavor::Wasmraft, &pki);
    let status = |i: usize| ours[i].rsplit('\n').next().unwrap_or_default().to_string();
    // Setting up as root (the CN of client.pem) with auth off, then auth on.
    for i in 0..8 {
        assert_eq!(status(i), "200", "{ours:#?}");
    }
    // alice (her certificate's CN) may read foo, not write it nor list users.
    assert!(ours[8].contains(r#""kvs":[{"key":"Zm9v""#), "{ours:#?}");
    assert!(
        ours[9].contains(
            r#"{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}"#
        ) && status(9) == "403",
        "{ours:#?}"
    );
    assert!(ours[10].contains("etcdserver: permission denied"), "{ours:#?}");
    // root's certificate writes; root's token on alice's connection too.
    assert_eq!(status(11), "200", "{ours:#?}");
    assert_eq!(status(12), "200", "{ours:#?}");
    assert_eq!(status(13), "200", "{ours:#?}");
}

/// Request bodies are bounded (etcd's gateway reads whatever it is sent): a body that stops
/// arriving is answered after the idle timeout, and one that grows past twice the gRPC receive
/// limit without ending is refused while it is still being sent, with grpc-go's text.
#[test]
fn gateway_bounds_request_bodies() {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;

    let member = Member::start_with(MemberConfig::new(Flavor::subject()));
    let addr = member.endpoint().trim_start_matches("http://").to_string();
    let response = |stream: &mut TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("set a read timeout");
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    };

    // Ten bytes of the hundred promised, then nothing.
    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":\"Zm").expect("write");
    let started = std::time::Instant::now();
    let answer = response(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no part of the request body arrived for 15s"), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(14), "{:?}", started.elapsed());

    // An endless chunked value: refused once 2 x (1.5 MiB + 512 KiB) is pending.
    let mut endless = TcpStream::connect(&addr).expect("connect");
    endless
        .write_all(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{\"key\":\"A\r\n")
        .expect("write");
    let mut writer = endless.try_clone().expect("clone the stream");
    let sender = std::thread::spawn(move || {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "A".repeat(64 * 1024));
        let mut sent = 0usize;
        // Stops when the member closes the connection (or after 16 MiB, which it must not take).
        while sent < 16 << 20 && writer.write_all(chunk.as_bytes()).is_ok() {
            sent += 64 * 1024;
        }
        sent
    });
    let answer = response(&mut endless);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains(r#""message":"grpc: received message larger than max ("#), "{answer}");
    assert!(answer.contains(" vs. 2097152)"), "{answer}");
    drop(endless);
    let sent = sender.join().expect("the sender thread");
    assert!(sent < 16 << 20, "the member read all {sent} bytes");
}
