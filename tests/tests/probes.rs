//! The health probes, `/health` (`?exclude=`, `?serializable=true`), `/livez` and `/readyz`
//! (`?verbose`, `?exclude=`, one path per check), on the client URL and on `--listen-metrics-urls`,
//! on a healthy member, a member without a leader (two of three killed) and a member with the
//! NOSPACE alarm.
//!
//! etcd 3.4.23 has `/health` but not `serializable` (it checks the leader and reads through raft
//! whatever is asked), nor `/livez` and `/readyz` (3.4.29): `/health` is compared with it where its
//! answer is 3.4.31's too, and the rest is checked against etcd 3.4.29+'s health.go: the checks'
//! names, `[+]name ok` / `[-]name failed: reason` lines, `ok`, 200 and 503, and 405 for another
//! method.

use std::process::Command;
use std::time::Duration;

use wasmraft_tests::{ClusterConfig, Etcdctl, Flavor, Member, MemberConfig, free_port};

/// `curl` a URL: "<status> <body>" (the body's trailing newlines shown as `⏎`).
fn curl(method: &str, url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-X", method, "-w", "\n%{http_code}", "--max-time", "20", url])
        .output()
        .expect("run curl (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    match text.rsplit_once('\n') {
        Some((body, code)) => format!("{code} {}", body.replace('\n', "⏎")),
        None => text,
    }
}

fn metrics_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

const HEALTH: [&str; 4] =
    ["/health", "/health?serializable=true", "/health?exclude=NOSPACE", "/health?exclude=NOSPACE&serializable=true"];

#[test]
fn a_healthy_member() {
    let port = free_port();
    let member = Member::start_with(
        MemberConfig::new(Flavor::Wasmraft).arg(format!("--listen-metrics-urls={}", metrics_url(port))),
    );
    for base in [member.endpoint(), metrics_url(port)] {
        let get = |path: &str| curl("GET", &format!("{base}{path}"));
        for path in HEALTH {
            assert_eq!(get(path), r#"200 {"health":"true"}"#, "{base}{path}");
        }
        assert_eq!(get("/livez"), "200 ok⏎", "{base}");
        assert_eq!(get("/livez?verbose"), "200 [+]serializable_read ok⏎ok⏎", "{base}");
        assert_eq!(get("/livez/serializable_read"), "200 ok⏎", "{base}");
        assert_eq!(get("/readyz"), "200 ok⏎", "{base}");
        assert_eq!(
            get("/readyz?verbose"),
            "200 [+]data_corruption ok⏎[+]serializable_read ok⏎[+]linearizable_read ok⏎ok⏎",
            "{base}"
        );
        assert_eq!(
            get("/readyz?verbose&exclude=linearizable_read&exclude=no_such_check"),
            "200 [+]data_corruption ok⏎[+]serializable_read ok⏎ok⏎",
            "{base}"
        );
        assert_eq!(get("/readyz/linearizable_read?verbose"), "200 [+]linearizable_read ok⏎ok⏎", "{base}");
        assert_eq!(get("/readyz/data_corruption"), "200 ok⏎", "{base}");
        assert_eq!(curl("POST", &format!("{base}/readyz")), "405 Method Not Allowed⏎", "{base}");
        assert_eq!(curl("PUT", &format!("{base}/livez/serializable_read")), "405 Method Not Allowed⏎", "{base}");
        assert_eq!(get("/readyz/no_such_check"), "404 404 page not found⏎", "{base}");
    }
    // etcd 3.4.23 answers /health alike, with or without `serializable`.
    let etcd = Member::start(Flavor::Etcd);
    for path in HEALTH {
        assert_eq!(curl("GET", &format!("{}{path}", etcd.endpoint())), r#"200 {"health":"true"}"#, "etcd {path}");
    }
}

#[test]
fn a_member_without_a_leader() {
    let probe = |flavor: Flavor| {
        let mut c = ClusterConfig::new(flavor, 3).start();
        c.wait_leader(Duration::from_secs(30));
        c.kill9(1);
        c.kill9(2);
        // Until the survivor's leader (if it was one) steps down or its election timeout passes.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let base = c.endpoint(0);
        while curl("GET", &format!("{base}/health")) != r#"503 {"health":"false"}⏎"# {
            assert!(std::time::Instant::now() < deadline, "{flavor:?}: /health still true without a quorum");
            std::thread::sleep(Duration::from_millis(200));
        }
        let answers: Vec<String> =
            ["/health", "/health?serializable=true", "/livez", "/readyz", "/readyz?exclude=linearizable_read"]
                .iter()
                .map(|p| format!("{p}: {}", curl("GET", &format!("{base}{p}"))))
                .collect();
        answers
    };
    let ours = probe(Flavor::Wasmraft);
    assert_eq!(
        ours,
        [
            r#"/health: 503 {"health":"false"}⏎"#,
            // 3.4.29+: the member's own state, no leader asked for.
            r#"/health?serializable=true: 200 {"health":"true"}"#,
            "/livez: 200 ok⏎",
            "/readyz: 503 [+]data_corruption ok⏎[+]serializable_read ok⏎[-]linearizable_read failed: etcdserver: request timed out⏎⏎",
            "/readyz?exclude=linearizable_read: 200 ok⏎",
        ]
    );
    // etcd 3.4.23: the same /health; `serializable` is not known to it, so it says false too.
    let etcd = probe(Flavor::Etcd);
    assert_eq!(etcd[0], ours[0]);
    assert_eq!(etcd[1], r#"/health?serializable=true: 503 {"health":"false"}⏎"#);
}

#[test]
fn a_member_with_the_nospace_alarm() {
    let probe = |flavor: Flavor| {
        let member = Member::start_with(MemberConfig::new(flavor).arg("--quota-backend-bytes=53248"));
        let ctl = Etcdctl::new(member.endpoint());
        let value = "x".repeat(1000);
        for i in 0.. {
            assert!(i < 1000, "{flavor:?}: 1 MB of puts fitted a 53248-byte quota");
            if !ctl.run(&["put", &format!("key{i}"), &value]).success() {
                break;
            }
        }
        let alarms = ctl.run(&["alarm", "list"]);
        assert!(alarms.stdout.contains("NOSPACE"), "{flavor:?}: {}", alarms.render());
        let base = member.endpoint();
        let mut paths = HEALTH.to_vec();
        if flavor == Flavor::Wasmraft {
            paths.extend(["/livez", "/readyz?verbose"]);
        }
        paths.iter().map(|p| format!("{p}: {}", curl("GET", &format!("{base}{p}")))).collect::<Vec<_>>()
    };
    let ours = probe(Flavor::Wasmraft);
    assert_eq!(
        ours,
        [
            r#"/health: 503 {"health":"false"}⏎"#,
            r#"/health?serializable=true: 503 {"health":"false"}⏎"#,
            r#"/health?exclude=NOSPACE: 200 {"health":"true"}"#,
            r#"/health?exclude=NOSPACE&serializable=true: 200 {"health":"true"}"#,
            "/livez: 200 ok⏎",
            // As in etcd, NOSPACE leaves a member ready: it serves reads and deletes.
            "/readyz?verbose: 200 [+]data_corruption ok⏎[+]serializable_read ok⏎[+]linearizable_read ok⏎ok⏎",
        ]
    );
    assert_eq!(probe(Flavor::Etcd), ours[..4], "etcd 3.4.23's /health");
}
