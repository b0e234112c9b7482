//! etcd's mvcc metrics exported by the KV guest (issue 25, section 2): the same script of puts,
//! deletes, txns, a failing put and a compaction through etcdctl against a fresh etcd 3.4.23 and
//! a three-member wasmraft cluster; every wasmraft member's `/metrics` shows etcd's values under
//! etcd's names and types, and a restarted member still shows them (etcd's reset to zero on a
//! restart: they are per-process counters there, replicated state here), and so does a member
//! that was down and caught up by installing a snapshot.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

/// The names the KV guest exports, compared with etcd's.
const NAMES: &[&str] = &[
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_current_revision",
    "etcd_debugging_mvcc_compact_revision",
    "etcd_debugging_mvcc_keys_total",
];

/// Family name → (its `# TYPE`, its unlabelled value).
fn scrape(endpoint: &str) -> BTreeMap<String, (String, f64)> {
    let url = format!("{endpoint}/metrics");
    let out = Command::new("curl").args(["-s", "-k", "--max-time", "10", &url]).output().expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut types = BTreeMap::new();
    let mut values = BTreeMap::new();
    for line in body.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            if let Some((name, ty)) = t.split_once(' ') {
                types.insert(name.to_string(), ty.to_string());
            }
        } else if !line.starts_with('#')
            && let Some((name, value)) = line.split_once(' ')
            && !name.contains('{')
        {
            values.insert(name.to_string(), value.trim().parse::<f64>().unwrap_or(f64::NAN));
        }
    }
    NAMES.iter().filter_map(|n| Some((n.to_string(), (types.get(*n)?.clone(), *values.get(*n)?)))).collect()
}

/// The script: 4 puts, 2 DeleteRange calls (one deletes nothing), a txn of two puts, a txn of
/// one put (not a txn to etcd's counter), a put with a lease that does not exist (refused: no
/// counts), a compaction.
fn run_script(ctl: &Etcdctl) {
    let ok = |args: &[&str]| {
        let out = ctl.run(args);
        assert!(out.success(), "etcdctl {args:?}: {}", out.render());
    };
    ok(&["put", "a", "1"]);
    ok(&["put", "b", "2"]);
    ok(&["put", "a", "3"]);
    ok(&["put", "c", "4"]);
    ok(&["del", "a"]);
    ok(&["del", "nothing"]);
    let out = ctl.run_with_stdin(&["txn"], Some("\nput t1 x\nput t2 y\n\n\n"));
    assert!(out.success(), "txn: {}", out.render());
    let out = ctl.run_with_stdin(&["txn"], Some("\nput t3 z\n\n\n"));
    assert!(out.success(), "txn: {}", out.render());
    let out = ctl.run(&["put", "bad", "x", "--lease=1234abcd"]);
    assert!(!out.success(), "a put with a missing lease must fail");
    ok(&["compaction", "5"]);
    // Enough entries for a wasmraft member's log to be compacted past a stopped member
    // (`--snapshot-count=100`), which then catches up by snapshot.
    for i in 0..110 {
        ok(&["put", &format!("f{}", i % 7), "v"]);
    }
}

#[test]
fn kv_guest_exports_etcds_mvcc_metrics_on_every_member_and_keeps_them_over_a_restart() {
    let _one = wasmraft_tests::one_cluster_at_a_time();

    let etcd = Member::start_with(MemberConfig::new(Flavor::Etcd));
    run_script(&Etcdctl::new(etcd.endpoint()));
    let theirs = scrape(&etcd.endpoint());
    drop(etcd);
    assert_eq!(theirs.len(), NAMES.len(), "etcd serves every name: {theirs:?}");

    let mut cluster = wasmraft_tests::cluster::ClusterConfig::new(Flavor::Wasmraft, 3)
        .arg("--snapshot-count=100")
        .arg("--snapshot-catchup-entries=10")
        .start();
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let behind = (leader + 1) % 3;
    cluster.kill9(behind);
    run_script(&cluster.etcdctl(leader));
    cluster.wait_converged(Duration::from_secs(30));
    for i in (0..3).filter(|&i| i != behind) {
        assert_eq!(scrape(&cluster.endpoint(i)), theirs, "member {i} against etcd 3.4.23");
    }

    // The stopped member gets the values with the snapshot it installs: once the leader has
    // made its state durable (every second) and compacted its log behind it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cluster.member(leader).log().contains("raft: compacted the log up to index") {
        assert!(std::time::Instant::now() < deadline, "the leader never compacted its log");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.restart(behind);
    cluster.wait_converged(Duration::from_secs(30));
    assert!(
        cluster.member(behind).log().contains("installing snapshot at index"),
        "member {behind} caught up by snapshot"
    );
    assert_eq!(scrape(&cluster.endpoint(behind)), theirs, "member {behind} after a snapshot install");

    cluster.restart(leader);
    cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(scrape(&cluster.endpoint(leader)), theirs, "member {leader} after a restart");
}
