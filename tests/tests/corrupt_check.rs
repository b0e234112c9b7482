//! `--experimental-initial-corrupt-check` and `--experimental-corrupt-check-time` on real
//! 3-member clusters, etcd 3.4.23 and wasmraft side by side.
//!
//! One member is stopped and its state database altered on disk: a value rewritten in place,
//! for etcd in its bbolt file (bbolt keeps no checksums on data pages, so the bytes are patched),
//! for wasmraft through redb in `state.redb` (which checksums its pages). Then:
//! - restarted with the initial check, the member refuses to start: "<id> found data
//!   inconsistency with peers";
//! - restarted without it, the leader's periodic check (every second here) finds the follower's
//!   hash different and raises the CORRUPT alarm: `etcdctl alarm list` prints the same on both,
//!   and writes get the same "etcdserver: corrupt cluster" while reads go on.
//!
//! Before the damage the same checks run for seconds on the healthy cluster without an alarm,
//! and the peer port's `/members/hashkv` answers the same JSON shape on both.

use std::path::Path;
use std::time::{Duration, Instant};

use redb::ReadableTable;
use wasmraft_tests::cluster::{Cluster, ClusterConfig};
use wasmraft_tests::etcdctl::CmdOutput;
use wasmraft_tests::member::Flavor;

const ORIGINAL: &str = "original-value-0123456789";
const TAMPERED: &str = "tampered-value-0123456789";
const INITIAL_CHECK: &str = "--experimental-initial-corrupt-check";

/// Rewrites every occurrence of `from` with `to` (same length) in a stopped member's state.
fn tamper(flavor: Flavor, data_dir: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let replace = |bytes: &mut [u8]| -> usize {
        let mut n = 0;
        let mut i = 0;
        while i + from.len() <= bytes.len() {
            if &bytes[i..i + from.len()] == from {
                bytes[i..i + from.len()].copy_from_slice(to);
                n += 1;
                i += from.len();
            } else {
                i += 1;
            }
        }
        n
    };
    match flavor {
        Flavor::Etcd => {
            let db = data_dir.join("member/snap/db");
            let mut bytes = std::fs::read(&db).unwrap_or_else(|e| panic!("{}: {e}", db.display()));
            assert!(replace(&mut bytes) > 0, "{ORIGINAL} not found in {}", db.display());
            std::fs::write(&db, bytes).expect("write the bbolt file");
        }
        Flavor::Wasmraft => {
            let path = data_dir.join("member/state.redb");
            let db = redb::Database::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let txn = db.begin_write().expect("write txn");
            {
                let mut table = txn.open_table(wasmraft_storage::tables::GUEST_KV).expect("guest_kv");
                let mut changed = Vec::new();
                for row in table.iter().expect("iter") {
                    let (k, v) = row.expect("row");
                    let mut value = v.value().to_vec();
                    if replace(&mut value) > 0 {
                        changed.push((k.value().to_vec(), value));
                    }
                }
                assert!(!changed.is_empty(), "{ORIGINAL} not found in {}", path.display());
                for (k, v) in changed {
                    table.insert(k.as_slice(), v.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
    }
}

/// `alarm list` on member `i` until it lists something; panics after `timeout`.
fn wait_alarm(c: &Cluster, i: usize, timeout: Duration) -> CmdOutput {
    let deadline = Instant::now() + timeout;
    loop {
        let out = c.etcdctl(i).run(&["alarm", "list"]);
        if out.success() && !out.stdout.trim().is_empty() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: no alarm within {timeout:?}: {}\nleader's log:\n{}",
            c.flavor(),
            out.render(),
            c.member(i).log_excerpt(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /members/hashkv` on member `i`'s peer port, as etcd's own client sends it: the status
/// and the body's JSON keys.
fn peer_hashkv(c: &Cluster, i: usize) -> (u16, Vec<String>) {
    let url = format!("{}/members/hashkv", c.member(i).peer_url());
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "GET", "-H", "Content-Type: application/json"])
        .args(["--data", r#"{"revision":0}"#, &url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl printed {text:?}"));
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.extend(
        v["header"]
            .as_object()
            .map(|o| o.keys().map(|k| format!("header.{k}")).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    keys.sort();
    (code.trim().parse().unwrap_or(0), keys)
}

struct Seen {
    hashkv: (u16, Vec<String>),
    alarms: CmdOutput,
    put_while_corrupt: CmdOutput,
    get_while_corrupt: CmdOutput,
}

fn run(flavor: Flavor) -> Seen {
    // etcd 3.4 compares with the members it knows when it starts, which it reads from its last
    // raft snapshot only (its WAL is replayed later): without a snapshot on disk its initial
    // check finds no peers and passes. A small --snapshot-count makes one.
    let mut c = ClusterConfig::new(flavor, 3)
        .arg(INITIAL_CHECK)
        .arg("--experimental-corrupt-check-time=1s")
        .arg("--snapshot-count=5")
        .start();
    let put = c.etcdctl(0).run(&["put", "foo", ORIGINAL]);
    assert!(put.success(), "{flavor:?}: {}", put.render());
    for i in 0..5 {
        assert!(c.etcdctl(i % 3).run(&["put", &format!("k{i}"), "v"]).success());
    }
    c.wait_converged(Duration::from_secs(10));
    let hashkv = peer_hashkv(&c, 0);
    // A healthy cluster under the periodic check raises nothing.
    std::thread::sleep(Duration::from_secs(3));
    let healthy = c.etcdctl(1).run(&["alarm", "list"]);
    assert!(healthy.success() && healthy.stdout.trim().is_empty(), "{flavor:?}: {}", healthy.render());

    let leader = c.wait_leader(Duration::from_secs(10));
    let f = (leader + 1) % 3;
    c.member_mut(f).terminate();
    tamper(flavor, c.member(f).data_dir(), ORIGINAL.as_bytes(), TAMPERED.as_bytes());

    // With the initial check, the damaged member does not start.
    c.member_mut(f).restart_no_wait();
    let exit = c.member_mut(f).wait_exit(Duration::from_secs(60));
    let log = c.member(f).current_log();
    assert!(exit.is_some_and(|s| !s.success()), "{flavor:?}: the damaged member started:\n{log}");
    assert!(log.contains("found data inconsistency with peers"), "{flavor:?}:\n{log}");

    // Without it, it starts, and the leader's periodic check raises CORRUPT.
    c.member_mut(f).config_mut().extra_args.retain(|a| a != INITIAL_CHECK);
    c.member_mut(f).restart();
    let served = c.etcdctl(f).run(&["get", "foo", "--print-value-only", "--consistency=s"]);
    assert_eq!(served.stdout.trim(), TAMPERED, "{flavor:?}: the damaged member serves its own state");
    let alarms = wait_alarm(&c, leader, Duration::from_secs(30));
    let put_while_corrupt = c.etcdctl(leader).run(&["put", "x", "y"]);
    let get_while_corrupt = c.etcdctl(leader).run(&["get", "foo", "--print-value-only"]);
    Seen { hashkv, alarms, put_while_corrupt, get_while_corrupt }
}

#[test]
fn altered_state_is_refused_at_start_and_raises_corrupt_on_etcd_and_wasmraft() {
    let etcd = run(Flavor::Etcd);
    let ours = run(Flavor::subject());
    assert_eq!(etcd.hashkv.0, 200);
    assert_eq!(ours.hashkv, etcd.hashkv, "the peer port's /members/hashkv: status and JSON keys");
    // etcdctl leaves a zero member id out.
    assert_eq!(etcd.alarms.stdout.trim(), "alarm:CORRUPT");
    for (what, e, o) in [
        ("alarm list", &etcd.alarms, &ours.alarms),
        ("put while corrupt", &etcd.put_while_corrupt, &ours.put_while_corrupt),
        ("get while corrupt", &etcd.get_while_corrupt, &ours.get_while_corrupt),
    ] {
        assert_eq!(o.normalized(), e.normalized(), "{what}: wasmraft (left) vs etcd (right)");
    }
    assert!(
        etcd.put_while_corrupt.stderr.contains("etcdserver: corrupt cluster"),
        "{}",
        etcd.put_while_corrupt.render()
    );
    assert_eq!(etcd.get_while_corrupt.stdout.trim(), ORIGINAL);
}
