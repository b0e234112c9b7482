//! The etcd version a member reports — Maintenance.Status (through etcd-client and etcdctl),
//! `/version` and `etcd_server_version`/`etcd_cluster_version` on `/metrics` — is 3.4.31 by
//! default (wasmraft implements 3.4.31's watch progress rules, which Kubernetes checks the
//! version for), is set by `--wasmraft-emulated-etcd-version` or its variable
//! `WASMRAFT_EMULATED_ETCD_VERSION`, and anything but a semantic version is refused at start.

use std::process::Command;

use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

fn curl(member: &Member, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("{}{path}", member.endpoint())])
        .output()
        .expect("run curl (scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything the member says about its version, one line per place.
fn reported(member: &Member) -> Vec<String> {
    let rt = wasmraft_tests::runtime();
    let status = rt.block_on(async {
        let mut c = etcd_client::Client::connect([member.endpoint()], None).await.expect("connect");
        c.status().await.expect("status").version().to_string()
    });
    let ctl = Etcdctl::new(member.endpoint()).run(&["endpoint", "status", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&ctl.stdout).unwrap_or_else(|e| panic!("{e}: {}", ctl.render()));
    let metrics = curl(member, "/metrics");
    let gauges = metrics
        .lines()
        .filter(|l| l.starts_with("etcd_server_version{") || l.starts_with("etcd_cluster_version{"))
        .map(str::to_string);
    [
        format!("status {status}"),
        format!("etcdctl {}", json[0]["Status"]["version"]),
        format!("/version {}", curl(member, "/version")),
    ]
    .into_iter()
    .chain(gauges)
    .collect()
}

#[test]
fn reports_etcd_3_4_31_by_default() {
    let member = Member::start(Flavor::Wasmraft);
    assert_eq!(
        reported(&member),
        [
            "status 3.4.31",
            "etcdctl \"3.4.31\"",
            r#"/version {"etcdserver":"3.4.31","etcdcluster":"3.4.0"}"#,
            r#"etcd_cluster_version{cluster_version="3.4"} 1"#,
            r#"etcd_server_version{server_version="3.4.31"} 1"#,
        ]
    );
}

/// etcd 3.4.23 answers the same places alike (the shape the expected lines above assume).
#[test]
fn etcd_reports_its_version_in_the_same_places() {
    let member = Member::start(Flavor::Etcd);
    assert_eq!(
        reported(&member),
        [
            "status 3.4.23",
            "etcdctl \"3.4.23\"",
            r#"/version {"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#,
            r#"etcd_cluster_version{cluster_version="3.4"} 1"#,
            r#"etcd_server_version{server_version="3.4.23"} 1"#,
        ]
    );
}

#[test]
fn the_flag_and_its_variable_set_the_reported_version() {
    let flag = Member::start_with(MemberConfig::new(Flavor::Wasmraft).arg("--wasmraft-emulated-etcd-version=3.5.13"));
    let expected = [
        "status 3.5.13",
        "etcdctl \"3.5.13\"",
        r#"/version {"etcdserver":"3.5.13","etcdcluster":"3.5.0"}"#,
        r#"etcd_cluster_version{cluster_version="3.5"} 1"#,
        r#"etcd_server_version{server_version="3.5.13"} 1"#,
    ];
    assert_eq!(reported(&flag), expected);
    drop(flag);
    let env = Member::start_with(MemberConfig::new(Flavor::Wasmraft).env("WASMRAFT_EMULATED_ETCD_VERSION", "3.5.13"));
    assert_eq!(reported(&env), expected);
}

#[test]
fn a_version_that_is_not_semantic_is_refused() {
    for (how, bad) in [("flag", "3.4"), ("flag", "v3.4.31"), ("env", "latest")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(Flavor::Wasmraft.binary());
        cmd.arg(format!("--data-dir={}", dir.path().display()));
        match how {
            "flag" => cmd.arg(format!("--wasmraft-emulated-etcd-version={bad}")),
            _ => cmd.env("WASMRAFT_EMULATED_ETCD_VERSION", bad),
        };
        let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
        let out = child.expect("start wasmraft").wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{how} {bad}: started: {stderr}");
        assert!(
            stderr.contains(&format!("\"{bad}\" is not a semantic version (MAJOR.MINOR.PATCH, as 3.4.31)")),
            "{how} {bad}: {stderr}"
        );
        // Refused before anything was created.
        assert!(std::fs::read_dir(dir.path()).expect("read dir").next().is_none(), "{how} {bad}");
    }
}
