//! etcd's plain HTTP endpoints next to gRPC on the client URL: `/health` and `/version`, over
//! http and, with `--auto-tls`, over https on the same port as gRPC. Compared with etcd 3.4.23
//! through curl: status code and body, and the 405 for a method other than GET. wasmraft reports
//! etcd 3.4.31 by default; here it is told to report 3.4.23, so `/version` must be etcd's byte
//! for byte (tests/reported_version.rs checks the default and the flag).

use std::process::Command;

use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

/// `curl` a path of the member's client URL: "<status> <body>".
fn curl(member: &Member, method: &str, path: &str) -> String {
    let url = format!("{}{path}", member.endpoint());
    let out = Command::new("curl")
        .args(["-s", "-k", "-X", method, "-w", " %{http_code}", "--max-time", "10", &url])
        .output()
        .expect("run curl (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Body first, then the code curl appends: put the code in front.
    match text.rsplit_once(' ') {
        Some((body, code)) => format!("{code} {}", body.trim_end()),
        None => text,
    }
}

fn script(flavor: Flavor, tls: bool) -> Vec<String> {
    let mut cfg = MemberConfig::new(flavor);
    if flavor == Flavor::Wasmraft {
        cfg = cfg.arg("--wasmraft-emulated-etcd-version=3.4.23");
    }
    if tls {
        cfg = cfg.https_client().arg("--auto-tls");
    }
    let member = Member::start_with(cfg);
    let mut out = vec![
        curl(&member, "GET", "/health"),
        curl(&member, "GET", "/health?exclude=NOSPACE"),
        curl(&member, "GET", "/version"),
        curl(&member, "POST", "/health"),
        curl(&member, "PUT", "/version"),
    ];
    // gRPC still works on the same port.
    let mut args = vec!["put", "k", "v"];
    if tls {
        args.extend(["--insecure-transport=false", "--insecure-skip-tls-verify"]);
    }
    let put = Etcdctl::new(member.endpoint()).run(&args);
    out.push(format!("put: {}", put.stdout.trim()));
    out
}

#[test]
fn health_and_version_match_etcd_over_http_and_https() {
    for tls in [false, true] {
        let etcd = script(Flavor::Etcd, tls);
        let ours = script(Flavor::subject(), tls);
        assert_eq!(etcd, ours, "tls={tls}");
        assert_eq!(etcd[0], r#"200 {"health":"true"}"#, "tls={tls}: {etcd:?}");
    }
}
