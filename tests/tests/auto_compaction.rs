//! `--auto-compaction-mode` and `--auto-compaction-retention` on real 3-member clusters, etcd
//! 3.4.23 and wasmraft side by side:
//!
//! - periodic with a 2 s retention: after a few seconds of writes, the first revision is
//!   `etcdserver: mvcc: required revision has been compacted` on every member (etcdctl prints
//!   the same on both), a revision written within the last second is still served, and only the
//!   leader logs etcd's "Starting auto-compaction at revision N (retention: 2s)";
//! - revision with a retention of 10: the leader compacts to the current revision minus 10, so
//!   the revision below that is compacted and that one is served. etcd does it every 5 minutes
//!   (too long for the suite: `revision_mode_on_etcd_after_five_minutes` is run with
//!   `--ignored`); wasmraft is shown the same with its test-only interval of 1 s;
//! - bad values: etcd's startup errors, from both.

use std::process::Command;
use std::time::{Duration, Instant};

use wasmraft_tests::cluster::{Cluster, ClusterConfig};
use wasmraft_tests::etcdctl::{CmdOutput, run_captured};
use wasmraft_tests::member::Flavor;

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// `etcdctl put` on member `i`, returning the revision it was written at.
fn put(c: &Cluster, i: usize, key: &str, value: &str) -> i64 {
    let out = c.etcdctl(i).run(&["put", key, value, "-w", "json"]);
    assert!(out.success(), "put {key} on {:?}: {}", c.flavor(), out.render());
    revision_of(&out.stdout)
}

fn revision_of(json: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["header"]["revision"].as_i64().unwrap_or_else(|| panic!("no header revision in {json}"))
}

/// `etcdctl get <key> --rev=<rev>` on member `i`, linearizable or serializable.
fn get_at(c: &Cluster, i: usize, key: &str, rev: i64, serializable: bool) -> CmdOutput {
    let rev = format!("--rev={rev}");
    let consistency = if serializable { "--consistency=s" } else { "--consistency=l" };
    c.etcdctl(i).run(&["get", key, &rev, consistency])
}

/// The members whose log says they started an auto-compaction.
fn compacting_members(c: &Cluster) -> Vec<usize> {
    (0..c.size()).filter(|&i| c.member(i).log().contains("compactor: Starting auto-compaction at revision")).collect()
}

/// Waits until member `i`'s log has `line`; panics with the log's tail after `timeout`.
fn wait_log(c: &Cluster, i: usize, line: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !c.member(i).log().contains(line) {
        assert!(
            Instant::now() < deadline,
            "{:?} member {i} did not log {line:?} within {timeout:?}:\n{}",
            c.flavor(),
            c.member(i).log_excerpt(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Periodic mode, 2 s: seven seconds of writes; returns etcdctl's answer for the first
/// revision, for comparing the flavors.
fn periodic_two_seconds(flavor: Flavor) -> CmdOutput {
    let mut c = ClusterConfig::new(flavor, 3).arg("--auto-compaction-retention=2s").start();
    let first = put(&c, 0, "a", "1");
    let start = Instant::now();
    let mut written = Vec::new();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(7) {
        written.push((start.elapsed(), put(&c, i % 3, "b", &i.to_string())));
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = start.elapsed();
    let mut answer = None;
    for m in 0..3 {
        for serializable in [false, true] {
            let out = get_at(&c, m, "a", first, serializable);
            assert!(
                !out.success() && out.stderr.contains(COMPACTED),
                "{flavor:?}: revision {first} on member {m} (serializable: {serializable}) after 7 s of a 2 s retention: {}",
                out.render()
            );
            answer.get_or_insert(out);
        }
    }
    // What was written in the last second is kept (a compaction now would go back 2 s).
    let recent = written.iter().rev().find(|(at, _)| end - *at >= Duration::from_millis(800)).map(|w| w.1);
    let recent = recent.unwrap_or_else(|| panic!("no write 0.8 s before the end: {written:?}"));
    for m in 0..3 {
        let out = get_at(&c, m, "b", recent, true);
        assert!(
            out.success(),
            "{flavor:?}: revision {recent}, written under a second ago, on member {m}: {}",
            out.render()
        );
    }
    let leader = c.wait_leader(Duration::from_secs(10));
    assert_eq!(compacting_members(&c), vec![leader], "{flavor:?}: only the leader compacts");
    let log = c.member(leader).log();
    assert!(log.contains("(retention: 2s)"), "{flavor:?}: etcd's line names the retention:\n{log}");
    assert!(log.contains("compactor: Finished auto-compaction at revision"), "{flavor:?}:\n{log}");
    answer.unwrap_or_else(|| unreachable!())
}

#[test]
fn periodic_retention_compacts_behind_a_window_on_etcd_and_wasmraft() {
    let etcd = periodic_two_seconds(Flavor::Etcd);
    let ours = periodic_two_seconds(Flavor::subject());
    assert_eq!(ours.normalized(), etcd.normalized(), "etcdctl's answer for a compacted revision");
}

/// Revision mode, retention 10: 30 puts (revisions 2..=31), then the leader compacts to 21.
fn revision_ten(flavor: Flavor, extra: &[&str], wait: Duration) {
    let mut cfg =
        ClusterConfig::new(flavor, 3).arg("--auto-compaction-mode=revision").arg("--auto-compaction-retention=10");
    for a in extra {
        cfg = cfg.arg(*a);
    }
    let mut c = cfg.start();
    let mut last = 0;
    for i in 0..30 {
        last = put(&c, i % 3, &format!("k{i}"), "v");
    }
    assert_eq!(last, 31);
    let leader = c.wait_leader(Duration::from_secs(10));
    wait_log(&c, leader, "compactor: Finished auto-compaction at revision 21", wait);
    assert!(
        c.member(leader).log().contains("compactor: Starting auto-compaction at revision 21 (retention: 10 revisions)"),
        "{flavor:?}:\n{}",
        c.member(leader).log_excerpt(40)
    );
    for m in 0..3 {
        let out = get_at(&c, m, "k0", 20, true);
        assert!(
            !out.success() && out.stderr.contains(COMPACTED),
            "{flavor:?}: revision 20 on member {m}: {}",
            out.render()
        );
        let out = get_at(&c, m, "k19", 21, true);
        assert!(out.success() && out.stdout.contains("k19"), "{flavor:?}: revision 21 on member {m}: {}", out.render());
    }
    assert_eq!(compacting_members(&c), vec![leader], "{flavor:?}: only the leader compacts");
}

#[test]
fn revision_mode_keeps_the_last_revisions() {
    // etcd's interval is a fixed 5 minutes; wasmraft takes a hidden test-only flag for it.
    revision_ten(Flavor::Wasmraft, &["--wasmraft-test-revision-compaction-interval=1s"], Duration::from_secs(20));
}

/// etcd's side of the revision mode: its interval is a fixed 5 minutes, so this test waits
/// that long (the other tests of this file run beside it).
#[test]
fn revision_mode_on_etcd_after_five_minutes() {
    revision_ten(Flavor::Etcd, &[], Duration::from_secs(6 * 60));
}

/// Starts `flavor` with `args` (which must make it refuse to start) and returns its output.
fn refused_start(flavor: Flavor, args: &[&str]) -> CmdOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(flavor.binary());
    cmd.arg(format!("--data-dir={}", dir.path().join("d").display())).args(args);
    let out = run_captured(cmd, None, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
    assert!(!out.success(), "{flavor:?} started with {args:?}: {}", out.render());
    out
}

#[test]
fn bad_values_get_etcds_startup_errors() {
    for (args, text) in [
        (&["--auto-compaction-mode=bogus"][..], "unknown auto-compaction-mode \"bogus\""),
        (&["--auto-compaction-retention=abc"][..], "error parsing CompactionRetention: time: invalid duration \"abc\""),
        (
            &["--auto-compaction-retention=1.5"][..],
            "error parsing CompactionRetention: time: missing unit in duration \"1.5\"",
        ),
    ] {
        for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
            let out = refused_start(flavor, args);
            assert!(out.stderr.contains(text), "{flavor:?} with {args:?} should say {text:?}: {}", out.render());
        }
    }
}
