//! etcd's Lease API against a 3-member etcd 3.4 cluster and a 3-member wasmraft cluster, side by
//! side: `etcdctl lease grant / keep-alive (--once and streaming) / timetolive --keys / revoke /
//! list`, `put --lease`, unknown-lease errors, a lease running out (its keys gone), and a leader
//! killed during a lease's life (the lease outlives the election, then still expires). The same
//! calls through the etcd-client crate. Both flavors run with a 50 ms heartbeat and a 500 ms
//! election timeout, so the minimum TTL (1.5 election timeouts, in whole seconds) is 1 s.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmraft_tests::binaries::etcdctl_bin;
use wasmraft_tests::cluster::{Cluster, ClusterConfig};
use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl, run_captured};
use wasmraft_tests::member::Flavor;

fn start(flavor: Flavor) -> Cluster {
    let mut c = ClusterConfig::new(flavor, 3).arg("--heartbeat-interval=50").arg("--election-timeout=500").start();
    c.wait_leader(Duration::from_secs(30));
    c
}

/// Lease ids (16 hex digits, or etcdctl's `%x` of them) replaced by `<L1>`, `<L2>`… in order
/// of first appearance, and `remaining(Ns)` by `remaining(<n>s)` after checking N is within
/// `slack` seconds below the granted TTL printed on the same line.
struct Normalizer {
    ids: Vec<String>,
}

impl Normalizer {
    fn id(&mut self, hex: &str) -> String {
        let pos = self.ids.iter().position(|i| i == hex).unwrap_or_else(|| {
            self.ids.push(hex.to_string());
            self.ids.len() - 1
        });
        format!("<L{}>", pos + 1)
    }

    fn text(&mut self, s: &str) -> String {
        let mut out = s.to_string();
        for known in self.ids.clone() {
            let name = self.id(&known);
            out = out.replace(&known, &name);
        }
        // A new id: "lease <hex> granted".
        if let Some(rest) = out.strip_prefix("lease ")
            && let Some(hex) = rest.split_whitespace().next()
            && hex.len() >= 8
            && hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            let name = self.id(hex);
            out = out.replacen(hex, &name, 1);
        }
        let mut lines = Vec::new();
        for line in out.lines() {
            lines.push(match (line.find("TTL("), line.find("remaining(")) {
                (Some(t), Some(r)) => {
                    let granted: i64 = line[t + 4..].split('s').next().and_then(|v| v.parse().ok()).unwrap_or(-99);
                    let left: i64 = line[r + 10..].split('s').next().and_then(|v| v.parse().ok()).unwrap_or(-99);
                    assert!(left <= granted && left >= granted - 3, "remaining {left} of {granted}: {line}");
                    format!("{}remaining(<n>s){}", &line[..r], &line[r + 10..].splitn(2, ')').nth(1).unwrap_or(""))
                }
                _ => line.to_string(),
            });
        }
        let mut joined = lines.join("\n");
        if out.ends_with('\n') {
            joined.push('\n');
        }
        joined
    }

    fn output(&mut self, o: CmdOutput) -> CmdOutput {
        let o = o.normalized();
        CmdOutput { code: o.code, stdout: self.text(&o.stdout), stderr: self.text(&o.stderr) }
    }
}

/// `etcdctl lease keep-alive <id>` (streaming) for `run_for`, revoking the lease from another
/// etcdctl after `revoke_after` if given; the output with repeated lines folded into one, since
/// how many keep-alives fit in the window is timing.
fn keep_alive_stream(endpoints: &str, id: &str, run_for: Duration, revoke_after: Option<Duration>) -> CmdOutput {
    let mut cmd = Command::new("timeout");
    cmd.env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("{}", run_for.as_secs_f64()))
        .arg(etcdctl_bin())
        .arg(format!("--endpoints={endpoints}"))
        .args(["lease", "keep-alive", id])
        .stdin(Stdio::null());
    let revoker = revoke_after.map(|after| {
        let (endpoints, id) = (endpoints.to_string(), id.to_string());
        std::thread::spawn(move || {
            std::thread::sleep(after);
            Etcdctl::new(endpoints).run(&["lease", "revoke", &id])
        })
    });
    let out = run_captured(cmd, None, run_for + Duration::from_secs(10)).expect("etcdctl keep-alive");
    if let Some(r) = revoker {
        assert!(r.join().expect("revoker").success());
    }
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.dedup();
    CmdOutput { code: out.code, stdout: lines.join("\n"), stderr: out.stderr }
}

/// Every step's normalized output for one flavor.
fn script(flavor: Flavor) -> Vec<(String, CmdOutput)> {
    let mut c = start(flavor);
    let all = c.endpoints().join(",");
    let ctl = Etcdctl::new(all.clone());
    let mut n = Normalizer { ids: Vec::new() };
    let mut out: Vec<(String, CmdOutput)> = Vec::new();
    client_steps(&c, &mut out);
    let mut step = |name: &str, o: CmdOutput, n: &mut Normalizer| {
        out.push((name.to_string(), n.output(o)));
    };
    let grant = |ttl: &str| -> (CmdOutput, String) {
        let o = ctl.run(&["lease", "grant", ttl]);
        let id = o.stdout.split_whitespace().nth(1).unwrap_or_default().to_string();
        (o, id)
    };

    let (o, long) = grant("60");
    step("grant 60", o, &mut n);
    step("grant 30", ctl.run(&["lease", "grant", "30"]), &mut n);
    step("put --lease", ctl.run(&["put", "--lease", &long, "owned", "v"]), &mut n);
    step("put --lease=unknown", ctl.run(&["put", "--lease=1234abcd", "k", "v"]), &mut n);
    step("timetolive --keys", ctl.run(&["lease", "timetolive", &long, "--keys"]), &mut n);
    step("timetolive", ctl.run(&["lease", "timetolive", &long]), &mut n);
    step("keep-alive --once", ctl.run(&["lease", "keep-alive", "--once", &long]), &mut n);
    step("keep-alive --once unknown", ctl.run(&["lease", "keep-alive", "--once", "1234abcd"]), &mut n);
    step("timetolive unknown", ctl.run(&["lease", "timetolive", "1234abcd"]), &mut n);
    step("revoke unknown", ctl.run(&["lease", "revoke", "1234abcd"]), &mut n);
    // Each member's list (followers and leader alike know every lease).
    for i in 0..3 {
        // Sorted after the ids are named: the order is by deadline on the leader, by hash-map
        // order on etcd's followers.
        let mut o = n.output(c.etcdctl(i).run(&["lease", "list"]));
        let mut lines: Vec<&str> = o.stdout.lines().collect();
        lines.sort();
        o.stdout = lines.join("\n");
        step(&format!("list on member {i}"), o, &mut n);
    }
    // Streaming keep-alive, through a follower's endpoint too, ended by a revoke.
    let (o, streamed) = grant("3");
    step("grant 3", o, &mut n);
    let leader = c.wait_leader(Duration::from_secs(10));
    let follower = c.endpoint((leader + 1) % 3);
    step(
        "keep-alive stream via a follower, revoked",
        keep_alive_stream(&follower, &streamed, Duration::from_secs(5), Some(Duration::from_millis(2500))),
        &mut n,
    );
    // Expiry: a 2 s lease with a key, not kept alive.
    let (o, short) = grant("2");
    step("grant 2", o, &mut n);
    step("put on the short lease", ctl.run(&["put", "--lease", &short, "short-lived", "v"]), &mut n);
    std::thread::sleep(Duration::from_millis(4000));
    step("expired: get", ctl.run(&["get", "short-lived"]), &mut n);
    step("expired: timetolive", ctl.run(&["lease", "timetolive", &short]), &mut n);
    step("expired: keep-alive --once", ctl.run(&["lease", "keep-alive", "--once", &short]), &mut n);
    // Revoke: the key goes with it.
    step("revoke", ctl.run(&["lease", "revoke", &long]), &mut n);
    step("revoked: get", ctl.run(&["get", "owned"]), &mut n);
    step("revoked: timetolive", ctl.run(&["lease", "timetolive", &long]), &mut n);

    // A leader killed during a 4 s lease: the lease must still be there 3 s after the kill
    // (the new leader gives it its full TTL again plus an election timeout), and expire later.
    let (o, survivor) = grant("4");
    step("grant 4", o, &mut n);
    step("put on the surviving lease", ctl.run(&["put", "--lease", &survivor, "survivor", "v"]), &mut n);
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    c.kill9(leader);
    c.wait_leader(Duration::from_secs(10));
    let live = Etcdctl::new(c.running_endpoints().join(","));
    std::thread::sleep(Duration::from_millis(3000).saturating_sub(killed_at.elapsed()));
    let alive = live.run(&["get", "survivor", "--print-value-only"]);
    out.push(("after the leader kill: still there".to_string(), n.output(alive)));
    std::thread::sleep(Duration::from_millis(5500));
    let gone = live.run(&["get", "survivor"]);
    out.push(("after the leader kill: expired in the end".to_string(), n.output(gone)));
    out
}

/// The etcd-client crate's lease calls, through a follower (so keep-alives and TimeToLive are
/// forwarded to the leader): ids given by the client, etcd's errors, the minimum TTL.
fn client_steps(c: &Cluster, out: &mut Vec<(String, CmdOutput)>) {
    use etcd_client::{Client, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions};
    let follower = {
        let statuses: Vec<bool> = (0..3).map(|i| c.status(i).map(|s| s.is_leader()).unwrap_or(true)).collect();
        statuses.iter().position(|l| !l).expect("a follower")
    };
    let endpoint = c.endpoint(follower);
    let text = |r: Result<String, etcd_client::Error>| -> CmdOutput {
        match r {
            Ok(s) => CmdOutput { code: Some(0), stdout: s, stderr: String::new() },
            Err(etcd_client::Error::GRpcStatus(st)) => {
                CmdOutput { code: Some(1), stdout: String::new(), stderr: format!("{:?}: {}", st.code(), st.message()) }
            }
            Err(e) => CmdOutput { code: Some(1), stdout: String::new(), stderr: e.to_string() },
        }
    };
    let steps = wasmraft_tests::runtime().block_on(async {
        let mut cl = Client::connect([endpoint], None).await.expect("connect");
        let mut steps: Vec<(&str, Result<String, etcd_client::Error>)> = Vec::new();
        let with_id = |id| Some(LeaseGrantOptions::new().with_id(id));
        let g = cl.lease_grant(30, with_id(0x77)).await.map(|r| format!("id={:x} ttl={}", r.id(), r.ttl()));
        steps.push(("client: grant with an id", g));
        let g = cl.lease_grant(30, with_id(0x77)).await.map(|r| format!("{r:?}"));
        steps.push(("client: grant an existing id", g));
        let g = cl.lease_grant(9_000_000_001, with_id(0x79)).await.map(|r| format!("{r:?}"));
        steps.push(("client: grant a too large TTL", g));
        let g = cl.lease_grant(0, with_id(0x78)).await.map(|r| format!("id={:x} ttl={}", r.id(), r.ttl()));
        steps.push(("client: grant TTL 0 gets the minimum", g));
        let r = cl.lease_revoke(0x78).await.map(|_| "revoked".to_string());
        steps.push(("client: revoke", r));
        let p = cl.put("held", "v", Some(PutOptions::new().with_lease(0x77))).await.map(|_| "put".to_string());
        steps.push(("client: put with the lease", p));
        let t = cl.lease_time_to_live(0x77, Some(LeaseTimeToLiveOptions::new().with_keys())).await.map(|r| {
            let keys: Vec<String> = r.keys().iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
            format!("id={:x} granted={} ttl_ok={} keys={keys:?}", r.id(), r.granted_ttl(), (27..=30).contains(&r.ttl()))
        });
        steps.push(("client: time to live with keys", t));
        let t = cl.lease_time_to_live(0x1234, None).await.map(|r| format!("id={:x} ttl={}", r.id(), r.ttl()));
        steps.push(("client: time to live of an unknown lease", t));
        let k = async {
            let (mut keeper, mut stream) = cl.lease_keep_alive(0x77).await?;
            keeper.keep_alive().await?;
            let first = stream.message().await?.map(|r| format!("id={:x} ttl={}", r.id(), r.ttl()));
            keeper.keep_alive().await?;
            let second = stream.message().await?.map(|r| format!("id={:x} ttl={}", r.id(), r.ttl()));
            Ok(format!("{first:?} {second:?}"))
        }
        .await;
        steps.push(("client: keep-alive stream", k));
        let k = async {
            let (mut keeper, mut stream) = cl.lease_keep_alive(0x1234).await?;
            keeper.keep_alive().await?;
            Ok(format!("{:?}", stream.message().await?.map(|r| r.ttl())))
        }
        .await;
        steps.push(("client: keep-alive of an unknown lease", k));
        let l = cl.leases().await.map(|r| format!("{:?}", r.leases().iter().map(|l| l.id()).collect::<Vec<_>>()));
        steps.push(("client: leases", l));
        let r = cl.lease_revoke(0x77).await.map(|_| "revoked".to_string());
        steps.push(("client: revoke with a key", r));
        let r = cl.lease_revoke(0x77).await.map(|_| "revoked".to_string());
        steps.push(("client: revoke again", r));
        let g = cl.get("held", None).await.map(|r| format!("{} keys", r.kvs().len()));
        steps.push(("client: the key went with it", g));
        steps
    });
    for (name, r) in steps {
        out.push((name.to_string(), text(r)));
    }
}

#[test]
fn lease_api_matches_etcd() {
    let etcd = script(Flavor::Etcd);
    let ours = script(Flavor::Wasmraft);
    let mut diffs = Vec::new();
    for ((step, e), (_, w)) in etcd.iter().zip(&ours) {
        if e != w {
            diffs.push(format!("== {step}\n-- etcd\n{}\n-- wasmraft\n{}", e.render(), w.render()));
        }
    }
    assert!(diffs.is_empty(), "outputs differ:\n{}", diffs.join("\n"));
    let find = |name: &str| &etcd.iter().find(|(s, _)| s == name).expect(name).1;
    assert_eq!(find("client: grant with an id").stdout, "id=77 ttl=30");
    assert_eq!(find("client: grant TTL 0 gets the minimum").stdout, "id=78 ttl=1");
    assert!(find("client: grant an existing id").stderr.contains("etcdserver: lease already exists"));
    assert_eq!(find("client: keep-alive stream").stdout, r#"Some("id=77 ttl=30") Some("id=77 ttl=30")"#);
    assert_eq!(find("client: the key went with it").stdout, "0 keys");
    assert_eq!(find("grant 60").stdout, "lease <L1> granted with TTL(60s)\n");
    assert!(find("put --lease=unknown").stderr.contains("etcdserver: requested lease not found"));
    assert!(find("expired: get").stdout.is_empty());
    assert_eq!(find("after the leader kill: still there").stdout, "v\n");
    assert!(find("after the leader kill: expired in the end").stdout.is_empty());
}
