//! Prometheus `/metrics` (issue 8): what wasmraft serves under etcd's names exists in etcd 3.4.23
//! with the same type and Content-Type, and moves as etcd's does — puts advance the committed and
//! applied proposals, the WAL fsync and guest apply histograms, the gRPC counters; a single member
//! leads; in three members exactly one does, and a killed leader is a leader change the others
//! see. `--listen-metrics-urls` serves `/metrics` and `/health`. `etcdctl check perf` and
//! `etcdctl check datascale` (which reads `process_resident_memory_bytes` from `/metrics`) pass
//! against both with the same PASS lines (perf with `--auto-compact --auto-defrag`, datascale with
//! `--auto-defrag`: see `checks`).
//!
//! Everything is fetched from real processes with curl and etcdctl. The tests take a process-wide
//! lock: `check perf` measures latency, and CI has two cores.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use wasmraft_tests::etcdctl::run_captured;
use wasmraft_tests::{Cluster, Etcdctl, Flavor, Member, MemberConfig, etcdctl_bin, free_port};

const PUTS: usize = 20;

/// A stuck check must not hang the run: perf takes a minute, datascale under half of one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(240);

/// One `/metrics` answer, parsed.
#[derive(Debug)]
struct Scrape {
    content_type: String,
    /// Family name → its `# TYPE`.
    types: BTreeMap<String, String>,
    /// `name{labels}` (as printed) → value.
    samples: Vec<(String, f64)>,
}

impl Scrape {
    fn fetch(url: &str) -> Scrape {
        let out = Command::new("curl")
            .args(["-s", "-k", "-i", "--max-time", "10", url])
            .output()
            .expect("run curl (scripts/test installs it)");
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or_else(|| panic!("no HTTP answer from {url}: {text:?}"));
        // HTTP/1.1, or HTTP/2 where TLS negotiated it (etcd offers h2 to curl).
        assert!(head.starts_with("HTTP/") && head.lines().next().is_some_and(|l| l.contains(" 200")), "{url}: {head}");
        let content_type = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in body.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                if let Some((name, ty)) = t.split_once(' ') {
                    types.insert(name.to_string(), ty.to_string());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) =
                    line.rsplit_once(' ').unwrap_or_else(|| panic!("{url}: bad sample line {line:?}"));
                samples.push((
                    series.to_string(),
                    value.parse().unwrap_or_else(|_| panic!("{url}: bad value in {line:?}")),
                ));
            }
        }
        Scrape { content_type, types, samples }
    }

    /// The sum of `name`'s samples whose labels include every `k="v"` of `labels` (0 if none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series, ""));
                n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

fn metrics_url(endpoint: &str) -> String {
    format!("{endpoint}/metrics")
}

fn curl_body(url: &str) -> String {
    let out = Command::new("curl").args(["-s", "--max-time", "10", url]).output().expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What wasmraft serves under etcd's and go-grpc-prometheus's names: each must be served, and by
/// etcd with the same type.
const ETCD_NAMES: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_is_learner",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_cluster_version",
    "etcd_server_quota_backend_bytes",
    "etcd_server_slow_apply_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_slow_read_indexes_total",
    "etcd_server_read_indexes_failed_total",
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_disk_backend_snapshot_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_debugging_mvcc_db_total_size_in_bytes",
    // Exported by the KV guest (tests/tests/guest_metrics.rs has the others, which need
    // deletes, txns and a compaction to appear).
    "etcd_mvcc_put_total",
    "etcd_debugging_mvcc_current_revision",
    "etcd_debugging_mvcc_keys_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_client_grpc_received_bytes_total",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// etcd's peer traffic counters: they have a series per peer only, so a single member serves
/// none (etcd's neither); checked on three members.
const PEER_NAMES: &[&str] = &["etcd_network_peer_sent_bytes_total", "etcd_network_peer_received_bytes_total"];

/// Served by the Rust process collector but not by Go's: not etcd's, so not compared.
const NOT_ETCDS: &[&str] = &["process_threads"];

/// A one-member cluster of `flavor` with a metrics URL: before and after `PUTS` puts through
/// etcdctl, checks what must hold on etcd and wasmraft alike, and returns the last scrape.
fn single_member(flavor: Flavor) -> Scrape {
    let metrics_port = free_port();
    let member = Member::start_with(
        MemberConfig::new(flavor).arg(format!("--listen-metrics-urls=http://127.0.0.1:{metrics_port}")),
    );
    let ctl = Etcdctl::new(member.endpoint());
    let url = metrics_url(&member.endpoint());
    let before = Scrape::fetch(&url);
    for i in 0..PUTS {
        let out = ctl.run(&["put", &format!("k{i}"), "v"]);
        assert!(out.success(), "{flavor:?} put: {}", out.render());
    }
    let after = Scrape::fetch(&url);
    let what = format!("{flavor:?}");
    assert_eq!(after.content_type, "text/plain; version=0.0.4; charset=utf-8", "{what}");
    let grew = |name: &str| after.value(name, &[]) - before.value(name, &[]);
    assert!(
        grew("etcd_server_proposals_committed_total") >= PUTS as f64,
        "{what}: committed grew {}",
        grew("etcd_server_proposals_committed_total")
    );
    assert!(
        grew("etcd_server_proposals_applied_total") >= PUTS as f64,
        "{what}: applied grew {}",
        grew("etcd_server_proposals_applied_total")
    );
    assert!(grew("etcd_disk_wal_fsync_duration_seconds_count") >= 1.0, "{what}: no fsync observed");
    // Both commit their backend's batch transaction on a timer (etcd every 100 ms, wasmraft
    // every `--backend-batch-interval`, a second by default), not per put: wait for one.
    let commits = |s: &Scrape| s.value("etcd_disk_backend_commit_duration_seconds_count", &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while commits(&Scrape::fetch(&url)) <= commits(&before) {
        assert!(std::time::Instant::now() < deadline, "{what}: no backend commit observed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(grew("etcd_network_client_grpc_received_bytes_total") >= PUTS as f64, "{what}: received bytes");
    assert!(grew("etcd_network_client_grpc_sent_bytes_total") >= PUTS as f64, "{what}: sent bytes");
    let put = [("grpc_service", "etcdserverpb.KV"), ("grpc_method", "Put"), ("grpc_type", "unary")];
    assert_eq!(after.value("grpc_server_started_total", &put), PUTS as f64, "{what}");
    let put_ok = [put[0], put[1], put[2], ("grpc_code", "OK")];
    assert_eq!(after.value("grpc_server_handled_total", &put_ok), PUTS as f64, "{what}");
    assert_eq!(after.value("grpc_server_msg_received_total", &put), PUTS as f64, "{what}");
    assert_eq!(after.value("grpc_server_msg_sent_total", &put), PUTS as f64, "{what}");
    assert_eq!(after.value("etcd_server_has_leader", &[]), 1.0, "{what}");
    assert_eq!(after.value("etcd_server_is_leader", &[]), 1.0, "{what}");
    assert_eq!(after.value("etcd_server_proposals_pending", &[]), 0.0, "{what}");
    assert_eq!(after.value("etcd_server_version", &[("server_version", flavor.reported_version())]), 1.0, "{what}");
    assert!(after.value("process_resident_memory_bytes", &[]) > 1e6, "{what}");
    assert!(after.value("etcd_mvcc_db_total_size_in_bytes", &[]) > 0.0, "{what}");
    assert_eq!(grew("etcd_mvcc_put_total"), PUTS as f64, "{what}");
    assert_eq!(after.value("etcd_debugging_mvcc_current_revision", &[]), PUTS as f64 + 1.0, "{what}");
    assert_eq!(grew("etcd_debugging_mvcc_keys_total"), PUTS as f64, "{what}: each put makes a key");
    if flavor == Flavor::Wasmraft {
        assert!(grew("wasmraft_guest_apply_duration_seconds_count") >= PUTS as f64, "guest applies observed");
        assert!(grew("wasmraft_guest_fuel_consumed_total") > 0.0, "fuel");
        assert_eq!(after.value("wasmraft_guest_info", &[("name", "etcd-kv")]), 1.0);
        assert_eq!(after.value("wasmraft_guest_apply_failures_total", &[]), 0.0);
    }

    // The metrics URL: /metrics and /health, plain http.
    let extra = format!("http://127.0.0.1:{metrics_port}");
    let on_extra = Scrape::fetch(&metrics_url(&extra));
    assert_eq!(on_extra.value("etcd_server_is_leader", &[]), 1.0, "{what}: metrics URL");
    assert_eq!(curl_body(&format!("{extra}/health")), r#"{"health":"true"}"#, "{what}: /health on the metrics URL");
    after
}

#[test]
fn etcd_names_and_types_and_they_move_as_etcds_do() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let etcd = single_member(Flavor::Etcd);
    let ours = single_member(Flavor::subject());
    for name in ETCD_NAMES {
        let theirs = etcd.types.get(*name).unwrap_or_else(|| panic!("etcd does not serve {name}"));
        assert_eq!(ours.types.get(*name), Some(theirs), "{name}: type");
    }
    // Nothing else under etcd's, go-grpc-prometheus's or the process collector's names (a
    // claim about wasmraft; etcd as the subject serves many more).
    if Flavor::subject() != Flavor::Wasmraft {
        return;
    }
    for (name, ty) in &ours.types {
        if name.starts_with("wasmraft_") || NOT_ETCDS.contains(&name.as_str()) {
            continue;
        }
        assert!(ETCD_NAMES.contains(&name.as_str()), "{name} is served but not in ETCD_NAMES (nor documented?)");
        assert_eq!(etcd.types.get(name), Some(ty), "{name}");
    }
}

#[test]
fn metrics_over_https_on_the_grpc_port() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        let member = Member::start_with(MemberConfig::new(flavor).https_client().arg("--auto-tls"));
        assert!(member.endpoint().starts_with("https://"));
        let s = Scrape::fetch(&metrics_url(&member.endpoint()));
        assert_eq!(s.content_type, "text/plain; version=0.0.4; charset=utf-8", "{flavor:?}");
        assert_eq!(s.value("etcd_server_has_leader", &[]), 1.0, "{flavor:?}");
    }
}

#[test]
fn three_members_one_leader_and_a_killed_leader_is_a_change_seen() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let mut cluster = Cluster::start(Flavor::subject(), 3);
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let scrapes: Vec<Scrape> = cluster.endpoints().iter().map(|e| Scrape::fetch(&metrics_url(e))).collect();
    let leaders: Vec<usize> = (0..3).filter(|&i| scrapes[i].value("etcd_server_is_leader", &[]) == 1.0).collect();
    assert_eq!(leaders, vec![leader], "is_leader");
    for (i, s) in scrapes.iter().enumerate() {
        assert_eq!(s.value("etcd_server_has_leader", &[]), 1.0, "member {i}");
        assert!(s.value("etcd_server_leader_changes_seen_total", &[]) >= 1.0, "member {i}");
        // Peer traffic, per peer (labels `To` and `From`, member ids in hex), as etcd counts it.
        for name in PEER_NAMES {
            assert_eq!(s.types.get(*name).map(String::as_str), Some("counter"), "member {i}: {name}");
            assert!(s.value(name, &[]) > 0.0, "member {i}: {name}");
        }
        // A series per peer sent to (etcd: once something was sent; a follower may not have
        // sent to the other follower yet).
        let peers =
            s.samples.iter().filter(|(series, _)| series.starts_with("etcd_network_peer_sent_bytes_total{To=")).count();
        assert!((1..=2).contains(&peers), "member {i}: {peers} peer series");
    }

    cluster.kill9(leader);
    let new_leader = cluster.wait_leader(Duration::from_secs(30));
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut leading = Vec::new();
    for &i in &survivors {
        let s = Scrape::fetch(&metrics_url(&cluster.endpoint(i)));
        let changes = s.value("etcd_server_leader_changes_seen_total", &[]);
        let before = scrapes[i].value("etcd_server_leader_changes_seen_total", &[]);
        assert!(changes > before, "member {i}: leader changes {before} -> {changes}");
        assert_eq!(s.value("etcd_server_has_leader", &[]), 1.0, "member {i}");
        if s.value("etcd_server_is_leader", &[]) == 1.0 {
            leading.push(i);
        }
    }
    assert_eq!(leading, vec![new_leader], "is_leader after the kill");
}

/// `etcdctl check perf` and `check datascale` against a fresh member of `flavor`: their PASS and
/// FAIL lines with the figures blanked, and the full outputs for the failure message.
fn checks(flavor: Flavor) -> (Vec<String>, String) {
    let member = Member::start(flavor);
    let mut lines = Vec::new();
    let mut full = String::new();
    // datascale without --auto-compact: its compaction of the 10 000 keys it wrote (plus check
    // perf's history) is one log entry, applied by the KV guest in one go (etcd compacts in the
    // background), which in a debug build on two loaded cores can outlast the request timeout
    // (7 s); measured 2.5 s debug vs 0.17 s release for 10 000 keys written twice.
    let checks: [(&str, &[&str]); 2] =
        [("perf", &["--load=s", "--auto-compact", "--auto-defrag"]), ("datascale", &["--load=s", "--auto-defrag"])];
    for (check, flags) in checks {
        // `Etcdctl::run` kills etcdctl after a minute; check perf alone takes one.
        let mut cmd = Command::new(etcdctl_bin());
        cmd.env_clear()
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", member.endpoint()))
            .args(["check", check])
            .args(flags);
        let out = run_captured(cmd, None, CHECK_TIMEOUT).unwrap_or_else(|e| panic!("{flavor:?}: check {check}: {e}"));
        // etcdctl's progress bar redraws with carriage returns: keep what it printed last.
        let stdout: String =
            out.stdout.lines().map(|l| l.rsplit('\r').next().unwrap_or(l)).collect::<Vec<_>>().join("\n");
        full.push_str(&format!("--- check {check} (exit {:?})\n{stdout}\n{}\n", out.code, out.stderr));
        // PASS/FAIL lines, and etcdctl's failing ones ("Slowest request took too long: 0.6s").
        for l in stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.contains(" too "))
        {
            lines.push(blank_figures(l));
        }
    }
    (lines, full)
}

/// `PASS: Throughput is 150 writes/s` → `PASS: Throughput is # writes/s`. A sign is part of the
/// figure: datascale subtracts the RSS before from the RSS after, which is negative when the
/// server returned memory to the system meanwhile (seen with wasmraft's allocator after check
/// perf's defragmentation); etcdctl still passes it.
fn blank_figures(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let sign = c == '-' && !in_number && chars.peek().is_some_and(|n| n.is_ascii_digit());
        if sign || c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('#');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// What etcd 3.4.23 prints for both checks passing.
const CHECKS_PASS: &[&str] = &[
    "PASS: Throughput is # writes/s",
    "PASS: Slowest request took #s",
    "PASS: Stddev is #s",
    "PASS",
    "PASS: Approximate system memory used : # MB.",
];

fn assert_checks_pass(flavor: Flavor) {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let (mut lines, mut full) = checks(flavor);
    // etcd is the reference here, run to show the checks pass on this machine at all. Its own
    // timing limits (slowest request under 0.5 s, stddev, throughput) are a verdict on the
    // machine's moment as much as on etcd: seen failing once at 0.503 s on a loaded 2-core CI.
    // So etcd, and only etcd, gets a second try on a fresh member when the only failures are
    // those timing lines; wasmraft gets none.
    if matches!(flavor, Flavor::Etcd) && lines != CHECKS_PASS && only_timing_failures(&lines) {
        eprintln!("etcd failed only on timing; trying once more:\n{full}");
        (lines, full) = checks(flavor);
    }
    assert_eq!(lines, CHECKS_PASS, "{flavor:?}:\n{full}");
}

/// Whether check perf failed on its timing limits and nothing else: every line that is not a
/// PASS is one of its timing verdicts or its closing "FAIL" (datascale's and perf's "FAIL: too
/// many errors" are not timing).
fn only_timing_failures(lines: &[String]) -> bool {
    let timing = |l: &str| {
        ["Slowest request took too long", "Stddev too high", "Throughput too low"].iter().any(|t| l.contains(t))
    };
    lines.iter().any(|l| timing(l)) && lines.iter().filter(|l| !l.starts_with("PASS")).all(|l| l == "FAIL" || timing(l))
}

#[test]
fn etcdctl_check_perf_and_datascale_pass_against_etcd() {
    assert_checks_pass(Flavor::Etcd);
}

#[test]
fn etcdctl_check_perf_and_datascale_pass_against_the_subject() {
    assert_checks_pass(Flavor::subject());
}

#[test]
fn only_timing_failures_earn_etcd_a_second_try() {
    let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // What etcdctl 3.4 printed on the run that failed (figures blanked), and its other limits.
    assert!(only_timing_failures(&lines(&[
        "PASS: Throughput is # writes/s",
        "Slowest request took too long: #s",
        "PASS: Stddev is #s",
        "FAIL",
        "PASS: Approximate system memory used : # MB.",
    ])));
    assert!(only_timing_failures(&lines(&["FAIL: Throughput too low: # writes/s", "Stddev too high: #s", "FAIL"])));
    assert!(!only_timing_failures(&lines(&["PASS: Throughput is # writes/s", "FAIL"])), "a bare FAIL alone");
    assert!(!only_timing_failures(&lines(&[
        "FAIL: too many errors",
        "FAIL: ERROR(x) -> #",
        "Stddev too high: #s",
        "FAIL"
    ])));
    assert!(!only_timing_failures(&lines(CHECKS_PASS)), "nothing failed");
}

#[test]
fn figures_are_blanked() {
    assert_eq!(blank_figures("PASS: Slowest request took 0.162469s"), "PASS: Slowest request took #s");
    assert_eq!(
        blank_figures("PASS: Approximate system memory used : 52.45 MB."),
        "PASS: Approximate system memory used : # MB."
    );
    assert_eq!(
        blank_figures("PASS: Approximate system memory used : -25.43 MB."),
        "PASS: Approximate system memory used : # MB."
    );
    assert_eq!(blank_figures("Compacting with revision 9002 - done"), "Compacting with revision # - done");
}
