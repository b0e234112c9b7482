//! Multi-member clusters as separate processes on loopback (issue 3): replication of etcdctl
//! writes through every member, membership and status views, leader failover under concurrent
//! write load with kill -9, catch-up of a restarted member from its data dir, and quorum loss in
//! a 5-member cluster.
//!
//! Every test runs against `Flavor::subject()` — wasmraft, or real etcd with
//! `WASMRAFT_TEST_SUBJECT=etcd`, which must pass too (that validates the tests). Not covered in
//! this file: catch-up of a member that needs a raft snapshot over `/raft/snapshot`.
//!
//! Deadlines in here only stop a broken cluster from hanging the run; nothing asserts on timing.
//! The tests take a process-wide lock so that at most one cluster runs at a time: CI has two
//! cores, and three to five debug-build members per test are enough load for them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use wasmraft_tests::cluster::{Cluster, connect, one_cluster_at_a_time};
use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl};
use wasmraft_tests::member::Flavor;

/// Guards against a broken cluster hanging the test; generous for two loaded cores.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn ok(out: CmdOutput, what: &str) -> CmdOutput {
    assert!(out.success(), "{what} failed:\n{}", out.render());
    out
}

/// Runs etcdctl until it succeeds (an election may be in progress); panics after `timeout`.
fn until_success(ctl: &Etcdctl, args: &[&str], timeout: Duration) -> CmdOutput {
    let deadline = Instant::now() + timeout;
    loop {
        let out = ctl.run(args);
        if out.success() {
            return out;
        }
        if Instant::now() >= deadline {
            panic!("etcdctl {args:?} against {} kept failing for {timeout:?}; last:\n{}", ctl.endpoint(), out.render());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One key as read: (key, value, create_revision, mod_revision, version).
type Kv = (String, String, i64, i64, i64);

/// A full read of `prefix` through etcd-client: (header revision, all kvs in key order).
async fn read_prefix(endpoint: &str, prefix: &str, serializable: bool) -> (i64, Vec<Kv>) {
    let mut client = connect(&[endpoint.to_string()], Duration::from_secs(10)).await;
    let mut opts = GetOptions::new().with_prefix();
    if serializable {
        opts = opts.with_serializable();
    }
    let resp =
        client.get(prefix, Some(opts)).await.unwrap_or_else(|e| panic!("get --prefix {prefix} from {endpoint}: {e}"));
    let rev = resp.header().expect("response header").revision();
    let kvs = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf-8 key").to_string(),
                kv.value_str().expect("utf-8 value").to_string(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect();
    (rev, kvs)
}

#[test]
fn three_members_replicate_writes_and_agree_on_membership_and_status() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start(Flavor::subject(), 3);
    let n = cluster.size();

    // A put through each member...
    for i in 0..n {
        let out = ok(cluster.etcdctl(i).run(&["put", &format!("rep/k{i}"), &format!("via-m{i}")]), "put");
        assert_eq!(out.stdout, "OK\n");
    }
    // ...is visible, linearizably, through every other member.
    for j in 0..n {
        for i in (0..n).filter(|&i| i != j) {
            let out = ok(cluster.etcdctl(j).run(&["get", &format!("rep/k{i}")]), "get");
            assert_eq!(out.stdout, format!("rep/k{i}\nvia-m{i}\n"), "m{j} reading m{i}'s write");
        }
    }
    // Serializable reads after a barrier: the linearizable read above made each member apply
    // everything up to the leader's commit index at that time, so its local state has all three.
    let all = "rep/k0\nvia-m0\nrep/k1\nvia-m1\nrep/k2\nvia-m2\n";
    for j in 0..n {
        let ctl = cluster.etcdctl(j);
        ok(ctl.run(&["get", "rep/", "--prefix"]), "linearizable barrier");
        let out = ok(ctl.run(&["get", "rep/", "--prefix", "--consistency=s"]), "serializable get");
        assert_eq!(out.stdout, all, "serializable read through m{j}");
    }

    // member list: the same three started members, with names and URLs, from every member.
    let expected: BTreeSet<(String, String, String)> =
        cluster.members().iter().map(|m| (m.name().to_string(), m.peer_url(), m.endpoint())).collect();
    let mut lists = Vec::new();
    for j in 0..n {
        let out = ok(cluster.etcdctl(j).run(&["member", "list"]), "member list");
        let mut ids = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for line in out.stdout.lines() {
            let f: Vec<&str> = line.split(", ").collect();
            assert_eq!(f.len(), 6, "member list line {line:?}");
            assert_eq!(f[1], "started", "{line:?}");
            assert_eq!(f[5], "false", "not a learner: {line:?}");
            assert!(u64::from_str_radix(f[0], 16).is_ok(), "hex id: {line:?}");
            ids.insert(f[0].to_string());
            seen.insert((f[2].to_string(), f[3].to_string(), f[4].to_string()));
        }
        assert_eq!(ids.len(), 3, "three distinct ids: {}", out.stdout);
        assert_eq!(seen, expected, "member list through m{j}");
        let mut sorted: Vec<&str> = out.stdout.lines().collect();
        sorted.sort();
        lists.push(sorted.join("\n"));
    }
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "members disagree on the member list: {lists:#?}");

    // endpoint status: one leader everyone names, same term and raft index everywhere.
    let statuses = cluster.wait_converged(CONVERGE_TIMEOUT);
    assert_eq!(statuses.len(), 3);
    let leaders: Vec<usize> = statuses.iter().filter(|(_, s)| s.is_leader()).map(|(i, _)| *i).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {statuses:#?}");
    let first = &statuses[0].1;
    for (i, s) in &statuses {
        assert_eq!(s.leader, first.leader, "m{i} names another leader");
        assert_eq!(s.raft_term, first.raft_term, "m{i} term");
        assert_eq!(s.raft_index, first.raft_index, "m{i} raft index");
        assert_eq!(s.cluster_id, first.cluster_id, "m{i} cluster id");
        assert!(s.raft_term >= 2, "a term after an election: {s:?}");
        assert!(s.revision >= 4, "three puts applied: {s:?}");
    }
    // The member ids in status are the ones in the member list.
    let status_ids: BTreeSet<String> = statuses.iter().map(|(_, s)| format!("{:x}", s.member_id)).collect();
    let list_ids: BTreeSet<String> = lists[0].lines().map(|l| l.split(", ").next().unwrap().to_string()).collect();
    assert_eq!(status_ids, list_ids);
}

/// What the writers share.
struct Load {
    stop: AtomicBool,
    acked: AtomicU64,
    errors: AtomicU64,
    /// Per writer: writes acknowledged that were started after the kill.
    after_kill: Vec<AtomicU64>,
}

/// One writer: puts `fail/w<w>/<seq>` = `w<w>-<seq>` through `endpoints[home]`, and on an error
/// retries the same key and value against the next endpoint until acknowledged (or stopped).
/// Returns the acknowledged writes; counts those started after `killed` was set in
/// `load.after_kill[w]`.
async fn writer(
    w: usize,
    endpoints: Vec<String>,
    home: usize,
    load: Arc<Load>,
    killed: Arc<AtomicBool>,
) -> Vec<(String, String)> {
    let mut clients = Vec::new();
    for e in &endpoints {
        clients.push(connect(std::slice::from_ref(e), Duration::from_secs(3)).await);
    }
    let mut cur = home;
    let mut acked = Vec::new();
    let mut seq = 0u64;
    'writes: while !load.stop.load(Ordering::Relaxed) {
        let key = format!("fail/w{w}/{seq:06}");
        let value = format!("w{w}-{seq}");
        loop {
            if load.stop.load(Ordering::Relaxed) {
                break 'writes;
            }
            let was_killed = killed.load(Ordering::Relaxed);
            match clients[cur].put(key.as_str(), value.as_str(), None).await {
                Ok(_) => {
                    acked.push((key, value));
                    load.acked.fetch_add(1, Ordering::Relaxed);
                    if was_killed {
                        load.after_kill[w].fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                Err(_) => {
                    load.errors.fetch_add(1, Ordering::Relaxed);
                    cur = (cur + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        seq += 1;
    }
    acked
}

#[test]
fn leader_failover_under_write_load_loses_no_acknowledged_write_and_the_killed_member_catches_up() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start(Flavor::subject(), 3);
    let endpoints = cluster.endpoints();
    let old_leader = cluster.wait_leader(LEADER_TIMEOUT);
    let rt = runtime();

    // Six writers, two homed on each member: through the leader and through both followers.
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        after_kill: (0..6).map(|_| AtomicU64::new(0)).collect(),
    });
    let killed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> =
        (0..6).map(|w| rt.spawn(writer(w, endpoints.clone(), w % 3, load.clone(), killed.clone()))).collect();
    // Waits until `done()`; the deadline only guards against a hang.
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            let per_writer: Vec<u64> = load.after_kill.iter().map(|a| a.load(Ordering::Relaxed)).collect();
            assert!(
                Instant::now() < deadline,
                "{what}: not reached after 60s: {} writes acknowledged, {} errors, per writer after the kill {per_writer:?}",
                load.acked.load(Ordering::Relaxed),
                load.errors.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    wait_for("150 writes before the kill", &|| load.acked.load(Ordering::Relaxed) >= 150);
    killed.store(true, Ordering::Relaxed);
    let acked_at_kill = load.acked.load(Ordering::Relaxed);
    cluster.kill9(old_leader);
    let new_leader = cluster.wait_leader(LEADER_TIMEOUT);
    assert_ne!(new_leader, old_leader);
    // Keep writing through the survivors after the failover: 300 more writes, and every writer
    // (also those homed on the killed member) at least 10 started after the kill.
    wait_for("writes after the kill", &|| {
        load.acked.load(Ordering::Relaxed) >= acked_at_kill + 300
            && load.after_kill.iter().all(|a| a.load(Ordering::Relaxed) >= 10)
    });
    load.stop.store(true, Ordering::Relaxed);
    let results: Vec<Vec<(String, String)>> = rt.block_on(async {
        let mut out = Vec::new();
        for h in writers {
            out.push(h.await.expect("writer panicked"));
        }
        out
    });
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    for writes in &results {
        acked.extend(writes.iter().cloned());
    }
    eprintln!(
        "failover: {} acknowledged writes ({} before the kill), {} errors retried; leader m{old_leader} -> m{new_leader}",
        acked.len(),
        acked_at_kill,
        load.errors.load(Ordering::Relaxed)
    );

    // Every acknowledged write is readable (linearizably), with its value, from every survivor.
    let survivors = cluster.running();
    let reads: Vec<(i64, Vec<Kv>)> =
        survivors.iter().map(|&i| rt.block_on(read_prefix(&endpoints[i], "fail/", false))).collect();
    for (&i, (_, kvs)) in survivors.iter().zip(&reads) {
        let have: BTreeMap<&str, &str> = kvs.iter().map(|(k, v, ..)| (k.as_str(), v.as_str())).collect();
        for (k, v) in &acked {
            assert_eq!(have.get(k.as_str()), Some(&v.as_str()), "acknowledged write {k}={v} through survivor m{i}");
        }
    }
    // Once they report the same raft/applied index, the survivors' local states are identical
    // (same keys, values, revisions, versions, same header revision).
    cluster.wait_converged(CONVERGE_TIMEOUT);
    let local: Vec<(i64, Vec<Kv>)> =
        survivors.iter().map(|&i| rt.block_on(read_prefix(&endpoints[i], "fail/", true))).collect();
    assert!(
        local[0] == local[1],
        "survivors m{} and m{} differ (revisions {} vs {}, {} vs {} keys)",
        survivors[0],
        survivors[1],
        local[0].0,
        local[1].0,
        local[0].1.len(),
        local[1].1.len()
    );

    // The killed member restarts from its data dir and catches up; then all three agree.
    cluster.restart(old_leader);
    // Barrier on the restarted member (a linearizable read), then compare local states.
    rt.block_on(read_prefix(&endpoints[old_leader], "fail/", false));
    cluster.wait_converged(CONVERGE_TIMEOUT);
    let all: Vec<(i64, Vec<Kv>)> = (0..3).map(|i| rt.block_on(read_prefix(&endpoints[i], "fail/", true))).collect();
    for i in 1..3 {
        assert_eq!(all[i].0, all[0].0, "revision of m{i} vs m0");
        assert!(all[i].1 == all[0].1, "m{i} and m0 hold different data");
    }
    let restarted: BTreeMap<&str, &str> = all[old_leader].1.iter().map(|(k, v, ..)| (k.as_str(), v.as_str())).collect();
    for (k, v) in &acked {
        assert_eq!(restarted.get(k.as_str()), Some(&v.as_str()), "restarted m{old_leader}");
    }
    // The `get -w json` view agrees too.
    let revs: Vec<String> = (0..3)
        .map(|i| {
            let out = ok(
                cluster.etcdctl(i).run(&["get", "fail/", "--prefix", "--keys-only", "--consistency=s", "-w", "json"]),
                "get -w json",
            );
            let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
            assert_eq!(v["count"].as_u64(), Some(all[0].1.len() as u64), "m{i}: count");
            format!("rev={} kvs={}", v["header"]["revision"], v["kvs"])
        })
        .collect();
    assert!(revs.iter().all(|r| *r == revs[0]), "{revs:?}");

    // And the restarted member takes writes again, which the others see.
    ok(cluster.etcdctl(old_leader).run(&["put", "fail/after-restart", "yes"]), "put through the restarted member");
    for i in 0..3 {
        let out = ok(cluster.etcdctl(i).run(&["get", "fail/after-restart"]), "get");
        assert_eq!(out.stdout, "fail/after-restart\nyes\n", "m{i}");
    }
}

/// Errors etcd (and so wasmraft) may give a client whose write cannot reach a quorum.
const QUORUM_LOSS_ERRORS: &[&str] = &[
    "context deadline exceeded",
    "etcdserver: request timed out",
    "etcdserver: no leader",
    "etcdserver: leader changed",
    "etcdserver: request timed out, possibly due to connection lost",
];

fn assert_quorum_loss_error(out: &CmdOutput, what: &str) {
    assert!(!out.success(), "{what} succeeded without a quorum:\n{}", out.render());
    let error = out
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Error: "))
        .unwrap_or_else(|| panic!("{what}: no `Error:` line:\n{}", out.render()));
    // etcd's own read path wraps the deadline: `rpc error: code = Unknown desc = context
    // deadline exceeded`.
    let message = error.trim().split_once(" desc = ").map_or(error.trim(), |(_, desc)| desc);
    eprintln!("{what}: Error: {error}");
    assert!(
        QUORUM_LOSS_ERRORS.contains(&message),
        "{what}: not one of etcd's quorum-loss errors: {error:?}\n{}",
        out.render()
    );
}

#[test]
fn five_members_serve_with_two_down_and_refuse_writes_with_three_down() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start(Flavor::subject(), 5);
    let leader = cluster.wait_leader(LEADER_TIMEOUT);

    // Two down, one of them the leader.
    let other = (leader + 1) % 5;
    cluster.kill9(leader);
    cluster.kill9(other);
    cluster.wait_leader(LEADER_TIMEOUT);
    let survivors = cluster.running();
    assert_eq!(survivors.len(), 3);
    for &i in &survivors {
        let out = until_success(&cluster.etcdctl(i), &["put", &format!("five/k{i}"), &format!("v{i}")], LEADER_TIMEOUT);
        assert_eq!(out.stdout, "OK\n");
    }
    let mut expected = String::new();
    for &i in &survivors {
        expected.push_str(&format!("five/k{i}\nv{i}\n"));
    }
    for &j in &survivors {
        let out = ok(cluster.etcdctl(j).run(&["get", "five/", "--prefix"]), "linearizable get with two members down");
        assert_eq!(out.stdout, expected, "through m{j}");
    }

    // A third down: no quorum. Writes and linearizable reads fail with etcd's errors (and do not
    // hang: etcdctl gives up after --command-timeout); serializable reads are still served.
    let third = survivors[0];
    cluster.kill9(third);
    let left = cluster.running();
    assert_eq!(left.len(), 2);
    for &i in &left {
        let ctl = cluster.etcdctl(i);
        let out = ctl.run(&["--command-timeout=3s", "put", "five/no-quorum", "x"]);
        assert_quorum_loss_error(&out, &format!("put through m{i} with 3 of 5 down"));
        let out = ctl.run(&["--command-timeout=3s", "get", "five/", "--prefix"]);
        assert_quorum_loss_error(&out, &format!("linearizable get through m{i} with 3 of 5 down"));
        let out = ok(ctl.run(&["get", "five/", "--prefix", "--consistency=s"]), "serializable get without quorum");
        assert!(out.stdout.contains("five/k"), "{}", out.stdout);
        assert!(!out.stdout.contains("no-quorum"), "{}", out.stdout);
    }

    // One member back: a quorum again; writes resume. (The timed-out put's outcome is unknown,
    // as with etcd: its entry may sit in the old leader's log and still commit.)
    cluster.restart(third);
    until_success(&cluster.etcdctl(left[0]), &["put", "five/quorum-again", "y"], LEADER_TIMEOUT);
    for &i in &cluster.running() {
        let out =
            ok(cluster.etcdctl(i).run(&["get", "five/", "--prefix", "--keys-only"]), "get after the quorum is back");
        assert!(out.stdout.contains("five/quorum-again"), "m{i}: {}", out.stdout);
    }
}
