//! etcd's flags about the raft log and elections, each shown by what it does, on real members
//! (wasmraft and, where the effect is visible from outside, etcd 3.4.23 running the same
//! script): `--force-new-cluster`, `--strict-reconfig-check`, `--wal-dir`, `--pre-vote`,
//! `--initial-election-tick-advance`, `--heartbeat-interval`. (`--max-wals` is shown in the storage crate's
//! `max_wals_keeps_released_segments_up_to_the_limit`: a real process would need hundreds of
//! MiB of writes to fill several 64 MiB segments.)

use std::time::{Duration, Instant};

use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::etcdctl::Etcdctl;
use wasmraft_tests::member::{Flavor, Member, MemberConfig};
use wasmraft_tests::partition::Partitioner;

const FLAVORS: [Flavor; 2] = [Flavor::Wasmraft, Flavor::Etcd];

fn member_ids(ctl: &Etcdctl) -> Vec<String> {
    let o = ctl.run(&["member", "list"]);
    assert!(o.success(), "member list: {}", o.render());
    o.stdout.lines().filter_map(|l| l.split(',').next()).map(|id| id.trim().to_string()).collect()
}

/// Disaster recovery: a 3-member cluster loses two members for good; the third restarts with
/// `--force-new-cluster` from its own data as a cluster of one, keeping its data and its id.
#[test]
fn force_new_cluster_restarts_one_member_alone_with_its_data() {
    for flavor in FLAVORS {
        let mut c = ClusterConfig::new(flavor, 3).start();
        c.wait_leader(Duration::from_secs(30));
        let ctl = c.etcdctl(0);
        for i in 0..20 {
            let o = ctl.run(&["put", &format!("k{i}"), &format!("v{i}")]);
            assert!(o.success(), "{flavor:?} put: {}", o.render());
        }
        let me = format!("{:x}", c.status(0).expect("status").member_id);
        assert_eq!(member_ids(&ctl).len(), 3);
        // What this member had not yet recorded as committed is discarded by the flag (on etcd
        // too): wait until it has applied every put, and the commit index has reached its disk
        // (it is written with the next Ready, without a sync of its own).
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.status(0).expect("status").revision < 21 {
            assert!(Instant::now() < deadline, "{flavor:?}: member 0 never applied the puts");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(2));
        for i in 0..3 {
            c.kill9(i);
        }
        let m = c.member_mut(0);
        m.config_mut().extra_args.push("--force-new-cluster".into());
        m.restart();
        let ctl = Etcdctl::new(m.endpoint());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = ctl.run(&["put", "after", "recovery", "--command-timeout=3s"]);
            if o.success() {
                break;
            }
            assert!(Instant::now() < deadline, "{flavor:?}: no write after --force-new-cluster: {}", o.render());
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(member_ids(&ctl), vec![me.clone()], "{flavor:?}: only the restarted member remains");
        let o = ctl.run(&["get", "k", "--prefix", "--write-out=fields"]);
        let keys = o.stdout.lines().filter(|l| l.starts_with("\"Key\" : ")).count();
        assert_eq!(keys, 20, "{flavor:?}: {}", o.render());
        let o = ctl.run(&["get", "k7", "--print-value-only"]);
        assert_eq!(o.stdout.trim(), "v7", "{flavor:?}");
        if flavor == Flavor::Wasmraft {
            assert!(
                m.log().contains(&format!("forcing restart of member {me} in cluster")),
                "the restart is logged as etcd logs it:\n{}",
                m.log_excerpt(40)
            );
        }
        // Restarted without the flag, it stays a cluster of one.
        m.config_mut().extra_args.retain(|a| a != "--force-new-cluster");
        m.restart();
        assert_eq!(member_ids(&Etcdctl::new(m.endpoint())), vec![me], "{flavor:?} after a plain restart");
    }
}

/// With two of three members left, removing one of them would leave a cluster without a
/// quorum: refused by default (etcd's texts), allowed with `--strict-reconfig-check=false`.
#[test]
fn strict_reconfig_check_guards_the_quorum_and_can_be_turned_off() {
    for flavor in FLAVORS {
        for strict in [true, false] {
            let mut cc = ClusterConfig::new(flavor, 3);
            if !strict {
                cc = cc.arg("--strict-reconfig-check=false");
            }
            let mut c = cc.start();
            let leader = c.wait_leader(Duration::from_secs(30));
            // etcd counts a member as healthy after 5 s of connection.
            std::thread::sleep(Duration::from_millis(5500));
            let (victim, down) = ((leader + 1) % 3, (leader + 2) % 3);
            let victim = format!("{:x}", c.status(victim).expect("status").member_id);
            c.kill9(down);
            let o = c.etcdctl(leader).run(&["member", "remove", &victim]);
            if strict {
                assert!(!o.success(), "{flavor:?}: removal allowed with a member down");
                assert!(o.stderr.contains("etcdserver: unhealthy cluster"), "{flavor:?}: {}", o.render());
            } else {
                assert!(o.success(), "{flavor:?} --strict-reconfig-check=false: {}", o.render());
                // etcdctl pads the id to 16 places with spaces.
                assert!(o.stdout.contains(&format!("{victim:>16} removed")), "{flavor:?}: {}", o.render());
            }
        }
    }
}

/// `--wal-dir`: the log goes to the dedicated directory, not under the data dir, and the member
/// restarts from it.
#[test]
fn wal_dir_holds_the_log_outside_the_data_dir() {
    for flavor in FLAVORS {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = dir.path().join("dedicated-wal");
        let mut m = Member::start_with(MemberConfig::new(flavor).arg(format!("--wal-dir={}", wal.display())));
        let ctl = Etcdctl::new(m.endpoint());
        assert!(ctl.run(&["put", "k", "v"]).success());
        let files: Vec<String> = std::fs::read_dir(&wal)
            .unwrap_or_else(|e| panic!("{flavor:?}: {}: {e}", wal.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.iter().any(|f| f.ends_with(".wal")), "{flavor:?}: no WAL file in --wal-dir: {files:?}");
        assert!(!m.data_dir().join("member").join("wal").exists(), "{flavor:?}: a WAL under the data dir too");
        m.restart();
        let o = Etcdctl::new(m.endpoint()).run(&["get", "k", "--print-value-only"]);
        assert_eq!(o.stdout.trim(), "v", "{flavor:?} after restart: {}", o.render());
    }
}

/// `--pre-vote`: a member cut off from the others campaigns in vain. Without pre-vote (etcd
/// 3.4's default) every attempt raises its term; with it, the term stays until it can win.
#[test]
fn pre_vote_keeps_an_isolated_member_from_raising_its_term() {
    for pre_vote in [false, true] {
        let mut c = ClusterConfig::new(Flavor::Wasmraft, 3)
            .arg("--wasmraft-fault-injection")
            .arg(format!("--pre-vote={pre_vote}"))
            .start();
        let leader = c.wait_leader(Duration::from_secs(30));
        let isolated = (leader + 1) % 3;
        let before = c.status(isolated).expect("status").raft_term;
        let p = Partitioner::new(&c).expect("partitioner");
        let others: Vec<usize> = (0..3).filter(|i| *i != isolated).collect();
        p.split(&[isolated], &others).expect("split");
        // Several election timeouts (1 s by default, randomized up to 2 s).
        std::thread::sleep(Duration::from_secs(6));
        let during = c.status(isolated).expect("status").raft_term;
        p.heal().expect("heal");
        if pre_vote {
            assert_eq!(during, before, "--pre-vote=true: the isolated member raised its term");
        } else {
            assert!(during > before, "--pre-vote=false: term {during} stayed at {before}");
        }
    }
}

/// Seconds since midnight of a log line's RFC 3339 timestamp (`2026-12-07T10:11:34.076364Z ...`).
fn log_seconds(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s) =
        (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

/// How long member `log` waited from raft's start to learning of the first leader.
fn first_election_secs(log: &str) -> f64 {
    let at = |needle: &str| log.lines().find(|l| l.contains(needle)).and_then(log_seconds);
    let (Some(start), Some(elected)) = (at("became follower at term"), at("elected leader")) else {
        panic!("no raft start or election in the log:\n{log}")
    };
    elected - start
}

/// `--initial-election-tick-advance`: once its peers answer, a starting member skips most of
/// its first election timeout. With a 10 s timeout, a cluster that advances elects well within
/// it; one that does not waits at least that long (measured in the members' own logs, from
/// raft's start to the first leader).
#[test]
fn initial_election_tick_advance_speeds_up_the_first_election() {
    for advance in [true, false] {
        let mut c = ClusterConfig::new(Flavor::Wasmraft, 3)
            .arg("--election-timeout=10000")
            .arg(format!("--initial-election-tick-advance={advance}"))
            .start();
        c.wait_leader(Duration::from_secs(60));
        let logs: Vec<String> = c.members().iter().map(|m| m.log()).collect();
        let first = logs.iter().map(|l| first_election_secs(l)).fold(f64::MAX, f64::min);
        if advance {
            assert!(first < 9.0, "advanced ticks, yet the first leader took {first:.2} s:\n{}", logs.join("\n"));
            assert!(logs.iter().all(|l| l.contains("fast-forwarding election ticks")), "the advance is logged");
        } else {
            assert!(first >= 10.0, "no advance, yet a leader after {first:.2} s");
            assert!(logs.iter().all(|l| !l.contains("fast-forwarding election ticks")));
        }
    }
}

/// The leader's peer bytes sent per second while the cluster is idle (its heartbeats and their
/// framing), from `etcd_network_peer_sent_bytes_total` on its `/metrics`.
fn idle_peer_bytes_per_sec(endpoint: &str, window: Duration) -> f64 {
    let sent = || -> f64 {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", &format!("{endpoint}/metrics")])
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("etcd_network_peer_sent_bytes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = sent();
    std::thread::sleep(window);
    (sent() - before) / window.as_secs_f64()
}

/// `--heartbeat-interval` is how often the leader heartbeats its followers: an idle cluster's
/// leader sends several times as many peer bytes at 25 ms as at 250 ms (ten times the
/// heartbeats), on etcd and on wasmraft alike.
#[test]
fn heartbeat_interval_sets_how_often_the_leader_heartbeats() {
    for flavor in FLAVORS {
        let mut rates = Vec::new();
        for interval in [25, 250] {
            let mut c = ClusterConfig::new(flavor, 2)
                .arg(format!("--heartbeat-interval={interval}"))
                .arg("--election-timeout=2500")
                .start();
            let leader = c.wait_leader(Duration::from_secs(30));
            // Let the start's own traffic (membership, version) settle.
            std::thread::sleep(Duration::from_secs(1));
            rates.push(idle_peer_bytes_per_sec(&c.endpoint(leader), Duration::from_secs(3)));
        }
        let (fast, slow) = (rates[0], rates[1]);
        assert!(slow > 0.0 && fast > 4.0 * slow, "{flavor:?}: {fast:.0} B/s at 25 ms, {slow:.0} B/s at 250 ms");
        eprintln!("{flavor:?}: {fast:.0} B/s at 25 ms, {slow:.0} B/s at 250 ms");
    }
}
