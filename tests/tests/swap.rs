//! Hot-swapping the guest of a running 3-member cluster through the log (issue 5), with the
//! bundled KV guest (`etcd-kv` 0.1.0) as v1 and, from `tests/guests`:
//!
//! - `kv-v2` (`etcd-kv` 0.2.0): v1's state machine plus a migration that puts
//!   `wasmraft/kv-version` = `0.2.0` through v1's put path, inside the swap entry, so a client
//!   sees where the swap happened: every write acknowledged before it has a lower revision, every
//!   write after it a higher one;
//! - `kv-bad-migrate` (`etcd-kv` 0.3.0): a `migrate` that writes, then fails.
//!
//! What is shown: a swap under concurrent load loses nothing and every member switches at the
//! same index with the same state; a failing migrate leaves v1 everywhere and a rollback works;
//! a member that was down (log replay), paused, or far behind (snapshot) runs the right guest
//! for each entry; a swap to another guest needs --force, after which the etcd KV API answers
//! with a clear error and the new guest's API works.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use wasmraft_tests::{Cluster, ClusterConfig, Deployment, Flavor, GuestStatus, GuestSwitch, runtime};

const V2: &str = env!("WASMRAFT_TEST_KV_V2_GUEST");
const BAD_MIGRATE: &str = env!("WASMRAFT_TEST_KV_BAD_MIGRATE_GUEST");
const COUNTER: &str = env!("WASMRAFT_TEST_COUNTER_GUEST");

/// What kv-v2's migration writes, and its value.
const VERSION_KEY: &str = "wasmraft/kv-version";
const V2_VERSION: &str = "0.2.0";
const KV: &str = "etcd-kv";
const V1_VERSION: &str = "0.1.0";

/// Generous for debug builds on two shared cores: a follower compiles the new module while it
/// applies the swap entry.
const CONVERGE: Duration = Duration::from_secs(60);

fn kv_cluster(config: ClusterConfig) -> Cluster {
    let mut cluster = config.start();
    cluster.wait_leader(Duration::from_secs(30));
    cluster
}

/// Key → (value, mod revision).
type Keys = BTreeMap<String, (String, i64)>;

/// Every running member's key → (value, mod revision) under `prefix`, read locally
/// (serializable), in member order.
fn local_keys(rt: &tokio::runtime::Runtime, cluster: &mut Cluster, prefix: &str) -> Vec<(usize, Keys)> {
    let members = cluster.running();
    members
        .into_iter()
        .map(|i| {
            let endpoint = cluster.endpoint(i);
            let kvs = rt.block_on(async {
                let mut c = Client::connect([endpoint.as_str()], None).await.expect("connect");
                let resp = c
                    .get(prefix, Some(GetOptions::new().with_prefix().with_serializable()))
                    .await
                    .unwrap_or_else(|e| panic!("serializable get {prefix:?} on member {i}: {e}"));
                resp.kvs()
                    .iter()
                    .map(|kv| {
                        let k = String::from_utf8_lossy(kv.key()).into_owned();
                        (k, (String::from_utf8_lossy(kv.value()).into_owned(), kv.mod_revision()))
                    })
                    .collect::<Keys>()
            });
            (i, kvs)
        })
        .collect()
}

/// The mod revision of kv-v2's marker, the same on every running member (and its value is
/// v2's version).
fn marker_revision(rt: &tokio::runtime::Runtime, cluster: &mut Cluster) -> i64 {
    let per_member = local_keys(rt, cluster, VERSION_KEY);
    let revisions: Vec<i64> = per_member
        .iter()
        .map(|(i, kvs)| {
            let (value, revision) = kvs
                .get(VERSION_KEY)
                .unwrap_or_else(|| panic!("member {i} has no {VERSION_KEY}: v2's migrate did not run there"));
            assert_eq!(value, V2_VERSION, "member {i}");
            *revision
        })
        .collect();
    assert!(revisions.iter().all(|r| *r == revisions[0]), "members disagree on the marker's revision: {revisions:?}");
    revisions[0]
}

/// The value [`put_keys`] writes under `key`.
fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// Puts `<prefix><n>` = [`value_of`] it, for `n` in `range`, through `endpoints`; returns each
/// key with the revision its put answered.
fn put_keys(
    rt: &tokio::runtime::Runtime,
    endpoints: Vec<String>,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Vec<(String, i64)> {
    rt.block_on(async {
        let mut c = Client::connect(endpoints, None).await.expect("connect");
        let mut out = Vec::new();
        for n in range {
            let key = format!("{prefix}{n:04}");
            let resp = c.put(key.as_str(), value_of(&key), None).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
            out.push((key, resp.header().expect("header").revision()));
        }
        out
    })
}

/// Every running member has exactly these keys under `prefix` with these values and revisions.
fn assert_keys_everywhere(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    prefix: &str,
    expected: &[(String, i64)],
) {
    for (i, kvs) in local_keys(rt, cluster, prefix) {
        assert_eq!(kvs.len(), expected.len(), "member {i}: keys under {prefix:?}");
        for (key, revision) in expected {
            assert_eq!(kvs.get(key), Some(&(value_of(key), *revision)), "member {i}: {key}");
        }
    }
}

/// The swap lines member `i` logged since its last (re)start.
fn switches_since_start(cluster: &Cluster, i: usize) -> Vec<GuestSwitch> {
    cluster.member(i).current_log().lines().filter_map(GuestSwitch::parse).collect()
}

/// Every status reports `name version` since `since`.
fn assert_all_run(statuses: &[GuestStatus], name: &str, version: &str, since: u64) {
    for s in statuses {
        assert_eq!(
            (s.name.as_str(), s.version.as_str(), s.since_index),
            (name, version, since),
            "member {} ({})",
            s.member,
            s.member_name
        );
    }
}

/// Waits until every running member has applied the same index, then checks that they have the
/// same state (hash) and all run `name version` since `since`.
fn all_agree_on(cluster: &mut Cluster, name: &str, version: &str, since: u64) -> Vec<GuestStatus> {
    let statuses = cluster.wait_same_state(CONVERGE).expect("members agree");
    assert_all_run(&statuses, name, version, since);
    statuses
}

/// Deploys `module`, which must be refused with FAILED_PRECONDITION and every one of `reasons`
/// in the error, leaving every member on v1 since `v1_since`. Returns the members' statuses.
fn refused_deploy(cluster: &mut Cluster, module: &str, reasons: &[&str], v1_since: u64) -> Vec<GuestStatus> {
    let err = cluster.deploy(module, false).expect_err("the deploy must be refused");
    assert!(err.contains("FailedPrecondition: wasmraft: "), "{err}");
    for reason in reasons {
        assert!(err.contains(reason), "no {reason:?} in: {err}");
    }
    all_agree_on(cluster, KV, V1_VERSION, v1_since)
}

/// Writers of the load test, two through each member.
const WRITERS: usize = 6;

/// Waits until every writer `w` has `more` acknowledged writes beyond `from[w]`.
fn wait_for_acks(acked: &[AtomicUsize], from: &[usize], more: usize) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let now: Vec<usize> = acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        if now.iter().zip(from).all(|(n, f)| *n >= f + more) {
            return;
        }
        assert!(Instant::now() < deadline, "writers stalled: acknowledged {now:?}, waiting for {more} beyond {from:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One acknowledged write of the load test.
struct Ack {
    key: String,
    value: String,
    revision: i64,
    sent: Instant,
    acked: Instant,
}

#[test]
fn swap_to_v2_under_concurrent_load_loses_nothing_and_every_member_switches_at_the_same_index() {
    let mut cluster = kv_cluster(ClusterConfig::new(Flavor::Wasmraft, 3));
    let before = cluster.guest_status().expect("guest status");
    assert_all_run(&before, KV, V1_VERSION, before[0].since_index);
    let rt = runtime();

    // Writers through every member (so through both followers too), until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicUsize>> = Arc::new((0..WRITERS).map(|_| AtomicUsize::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let endpoint = cluster.endpoint(w % 3);
            let (stop, acked) = (stop.clone(), acked.clone());
            rt.spawn(async move {
                let mut client = wasmraft_tests::cluster::connect(&[endpoint], Duration::from_secs(20)).await;
                let (mut acks, mut errors) = (Vec::new(), Vec::new());
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (key, value) = (format!("load/w{w}/{seq:06}"), format!("w{w}-{seq}"));
                    let sent = Instant::now();
                    match client.put(key.as_str(), value.as_str(), None).await {
                        Ok(resp) => {
                            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                            acks.push(Ack { key, value, revision, sent, acked: Instant::now() });
                            acked[w].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push(format!("{key}: {e}")),
                    }
                    seq += 1;
                }
                (acks, errors)
            })
        })
        .collect();

    // Load on every writer before the deploy...
    std::thread::sleep(Duration::from_secs(1));
    wait_for_acks(&acked, &[0; WRITERS], 3);
    let deploy_started = Instant::now();
    let deployed = cluster.deploy(V2, false).expect("deploy kv-v2 under load");
    let deploy_returned = Instant::now();
    assert_eq!((deployed.name.as_str(), deployed.version.as_str()), (KV, V2_VERSION));
    assert!(deployed.since_index > before[0].since_index);
    // ... and after it, on every writer: writes through followers resume once they have applied
    // the swap. From a count taken after the deploy returned, the second next ack of a writer
    // was sent after that (the first may be a put that was waiting for its member to switch).
    std::thread::sleep(Duration::from_secs(1));
    let counts: Vec<usize> = acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    wait_for_acks(&acked, &counts, 2);
    stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    let mut errors = Vec::new();
    for (w, writer) in writers.into_iter().enumerate() {
        let (a, e) = rt.block_on(writer).expect("writer task");
        let before = a.iter().filter(|x| x.acked < deploy_started).count();
        let after = a.iter().filter(|x| x.sent > deploy_returned).count();
        assert!(
            before > 0 && after > 0,
            "writer {w} (through member {}) had {before} writes acknowledged before the swap and {after} sent after it",
            w % 3
        );
        acks.extend(a);
        errors.extend(e);
    }
    eprintln!(
        "swap under load: {} writes acknowledged, {} failed {:?}",
        acks.len(),
        errors.len(),
        errors.iter().take(5).collect::<Vec<_>>()
    );

    // Every member switched at the deploy's index, logged it once, and has the same state.
    let statuses = all_agree_on(&mut cluster, KV, V2_VERSION, deployed.since_index);
    assert!(statuses.iter().all(|s| s.sha256 == deployed.sha256));
    for i in 0..3 {
        let to_v2: Vec<u64> =
            cluster.member(i).guest_switches().iter().filter(|s| s.version == V2_VERSION).map(|s| s.index).collect();
        assert_eq!(to_v2, vec![deployed.since_index], "member {i}'s switch lines to v2");
    }

    // Every acknowledged write is on every member, with the revision its put answered.
    let marker = marker_revision(&rt, &mut cluster);
    for (i, kvs) in local_keys(&rt, &mut cluster, "load/") {
        for a in &acks {
            assert_eq!(
                kvs.get(&a.key),
                Some(&(a.value.clone(), a.revision)),
                "member {i}: acknowledged write {}",
                a.key
            );
        }
    }
    // v2's behaviour: the marker sits exactly at the swap, between the writes before and after.
    for a in &acks {
        assert_ne!(a.revision, marker, "{}", a.key);
        if a.acked < deploy_started {
            assert!(
                a.revision < marker,
                "{} was acknowledged before the deploy, at revision {} (marker {marker})",
                a.key,
                a.revision
            );
        }
        if a.sent > deploy_returned {
            assert!(
                a.revision > marker,
                "{} was sent after the deploy returned, at revision {} (marker {marker})",
                a.key,
                a.revision
            );
        }
    }
}

#[test]
fn a_failing_migrate_leaves_v1_everywhere_and_a_rollback_to_v1_works() {
    let mut cluster = kv_cluster(ClusterConfig::new(Flavor::Wasmraft, 3));
    let rt = runtime();
    let data = put_keys(&rt, cluster.running_endpoints(), "data/", 0..20);
    let v1 = cluster.wait_same_state(CONVERGE).expect("members agree");
    assert_all_run(&v1, KV, V1_VERSION, v1[0].since_index);

    // kv-bad-migrate passes every check before its swap entry (it loads, same name, higher
    // version); its migrate writes and then fails, on every member.
    let reasons =
        ["the new guest's migrate refused the swap", "kv-bad-migrate refuses every migration (from etcd-kv 0.1.0)"];
    let after = refused_deploy(&mut cluster, BAD_MIGRATE, &reasons, v1[0].since_index);
    assert!(after.iter().all(|s| s.sha256 == v1[0].sha256));
    // The migrate's write was rolled back: the keyspace is exactly as before.
    assert_eq!(after[0].state_hash, v1[0].state_hash, "the failed migrate changed the state");
    for i in 0..3 {
        let log = cluster.member(i).log();
        assert!(
            log.contains("refused: wasmraft: the new guest's migrate refused the swap"),
            "member {i} did not refuse the swap itself:\n{log}"
        );
    }
    // Stored, but never active: not a rollback target.
    let modules = cluster.guest_list().expect("guest list");
    let bad = modules
        .iter()
        .find(|m| m.deployed_at.is_empty())
        .unwrap_or_else(|| panic!("the refused module is not stored: {modules:?}"));
    let err = cluster.rollback(&bad.sha256[..12]).expect_err("never active");
    assert!(err.contains("FailedPrecondition: wasmraft: no module that was active before matches"), "{err}");

    // v2, then back to v1 by version: v1 everywhere, every key intact (the marker too: v1
    // knows nothing of it).
    let v2 = cluster.deploy(V2, false).expect("deploy v2");
    let more = put_keys(&rt, cluster.running_endpoints(), "data/", 20..30);
    let back = cluster.rollback(V1_VERSION).expect("rollback to 0.1.0");
    assert_eq!((back.version.as_str(), back.sha256.as_str()), (V1_VERSION, v1[0].sha256.as_str()));
    assert!(back.since_index > v2.since_index);
    let more2 = put_keys(&rt, cluster.running_endpoints(), "data/", 30..35);
    all_agree_on(&mut cluster, KV, V1_VERSION, back.since_index);
    let all: Vec<(String, i64)> = data.into_iter().chain(more).chain(more2).collect();
    assert_keys_everywhere(&rt, &mut cluster, "data/", &all);
    let marker = marker_revision(&rt, &mut cluster);
    assert!(
        all[19].1 < marker && marker < all[20].1,
        "the marker ({marker}) is between the writes before and after v2"
    );

    // A rollback targets any module that was active before, whatever its version; here v2 by
    // a hash prefix.
    let again = cluster.rollback(&v2.sha256[..8]).expect("rollback to v2 by hash prefix");
    all_agree_on(&mut cluster, KV, V2_VERSION, again.since_index);
    let list = cluster.guest_list().expect("guest list");
    let v2_stored = list.iter().find(|m| m.sha256 == v2.sha256).expect("v2 stored");
    assert_eq!((v2_stored.active, v2_stored.deployed_at.clone()), (true, vec![v2.since_index, again.since_index]));
}

/// Checks that member `i` (re)applied the swap to `d` itself since its last start, and agrees
/// with the others: same guest, same switch index, same state hash.
fn assert_caught_up_on(cluster: &mut Cluster, i: usize, d: &Deployment) -> Vec<GuestStatus> {
    let statuses = all_agree_on(cluster, &d.name, &d.version, d.since_index);
    let switches = switches_since_start(cluster, i);
    assert!(
        switches.iter().any(|s| s.version == d.version && s.index == d.since_index),
        "member {i} did not switch to {} at {} itself: {switches:?}",
        d.version,
        d.since_index
    );
    statuses
}

/// A swap to v2 that one member (a follower, killed) misses: `<prefix>0..10` are put before,
/// `<prefix>10..10+puts_after` after, through the others.
struct MissedSwap {
    down: usize,
    v2: Deployment,
    early: Vec<(String, i64)>,
    late: Vec<(String, i64)>,
}

fn swap_with_a_member_down(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    prefix: &str,
    puts_after: usize,
) -> MissedSwap {
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let down = (leader + 1) % 3;
    let early = put_keys(rt, cluster.running_endpoints(), prefix, 0..10);
    cluster.kill9(down);
    let v2 = cluster.deploy(V2, false).expect("deploy v2 with a member down");
    let late = put_keys(rt, cluster.running_endpoints(), prefix, 10..10 + puts_after);
    MissedSwap { down, v2, early, late }
}

impl MissedSwap {
    /// On every running member, v2's marker sits between the puts before and after the swap:
    /// v2's migrate ran at the swap's index there.
    fn assert_marker_between(&self, rt: &tokio::runtime::Runtime, cluster: &mut Cluster) {
        let marker = marker_revision(rt, cluster);
        assert!(self.early.iter().all(|(_, r)| *r < marker), "puts before the swap, marker {marker}");
        assert!(self.late.iter().all(|(_, r)| *r > marker), "puts after the swap, marker {marker}");
    }
}

#[test]
fn members_down_or_paused_during_a_swap_replay_the_log_with_the_right_guest_for_each_entry() {
    let mut cluster = kv_cluster(ClusterConfig::new(Flavor::Wasmraft, 3));
    let rt = runtime();
    // Killed before the swap: on restart it replays v1 entries, the swap (v2's migrate), then
    // v2 entries.
    let swap = swap_with_a_member_down(&rt, &mut cluster, "r/", 10);
    cluster.restart(swap.down);
    assert_caught_up_on(&mut cluster, swap.down, &swap.v2);
    swap.assert_marker_between(&rt, &mut cluster);
    let keys: Vec<_> = swap.early.iter().chain(&swap.late).cloned().collect();
    assert_keys_everywhere(&rt, &mut cluster, "r/", &keys);

    // Paused (SIGSTOP) during a rollback: it resumes, catches up and switches back too.
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let paused = (leader + 2) % 3;
    cluster.pause(paused);
    assert!(!cluster.running().contains(&paused));
    let v1 = cluster.rollback(V1_VERSION).expect("rollback with a member paused");
    let last = put_keys(&rt, cluster.running_endpoints(), "r/", 20..25);
    cluster.resume(paused);
    all_agree_on(&mut cluster, KV, V1_VERSION, v1.since_index);
    let switches = cluster.member(paused).guest_switches();
    assert!(
        switches.iter().any(|s| s.version == V1_VERSION && s.index == v1.since_index),
        "member {paused}: {switches:?}"
    );
    let keys: Vec<_> = keys.into_iter().chain(last).collect();
    assert_keys_everywhere(&rt, &mut cluster, "r/", &keys);
}

#[test]
fn a_member_restored_from_a_snapshot_gets_the_module_and_the_deployment_record() {
    // Snapshot every 50 entries, keep 5: the writes below leave the log far past the stopped
    // member, which can only catch up by snapshot.
    let mut cluster = kv_cluster(
        ClusterConfig::new(Flavor::Wasmraft, 3).arg("--snapshot-count=50").arg("--snapshot-catchup-entries=5"),
    );
    let rt = runtime();
    let swap = swap_with_a_member_down(&rt, &mut cluster, "s/", 120);
    let (down, v2) = (swap.down, &swap.v2);
    // The survivors snapshot and compact (asynchronously) past the stopped member.
    std::thread::sleep(Duration::from_millis(1500));

    cluster.restart(down);
    all_agree_on(&mut cluster, KV, V2_VERSION, v2.since_index);
    let log = cluster.member(down).current_log();
    assert!(log.contains("installing snapshot at index"), "member {down} did not catch up by snapshot:\n{log}");
    // It never applied the swap entry, yet runs v2 (the module came in the snapshot) with the
    // marker v2's migrate wrote on the others.
    assert!(
        !switches_since_start(&cluster, down).iter().any(|s| s.index == v2.since_index),
        "member {down} replayed the swap entry: it did not need the snapshot"
    );
    swap.assert_marker_between(&rt, &mut cluster);

    // It applies new entries with v2, and holds the deployment history: a rollback to v1 (which
    // it must know was active before, from the snapshot's record) switches it like the others.
    let through_it = put_keys(&rt, vec![cluster.endpoint(down)], "s/", 130..140);
    let v1 = cluster.rollback(V1_VERSION).expect("rollback to v1");
    assert_caught_up_on(&mut cluster, down, &v1);
    let keys: Vec<_> = swap.early.iter().chain(&swap.late).cloned().chain(through_it).collect();
    assert_keys_everywhere(&rt, &mut cluster, "s/", &keys);
}

#[test]
fn a_swap_to_another_guest_needs_force_and_then_the_etcd_kv_api_answers_with_a_clear_error() {
    let mut cluster = kv_cluster(ClusterConfig::new(Flavor::Wasmraft, 3));
    let put = cluster.etcdctl(1).run(&["put", "before", "counter"]);
    assert!(put.success(), "{}", put.render());
    let v1 = cluster.guest_status().expect("guest status");

    let reasons = ["replacing one guest by another needs --force"];
    refused_deploy(&mut cluster, COUNTER, &reasons, v1[0].since_index);

    let counter = cluster.deploy(COUNTER, true).expect("forced swap to the counter");
    assert_eq!((counter.name.as_str(), counter.version.as_str()), ("counter", "1.0.0"));
    cluster.wait_guest("counter", "1.0.0", CONVERGE).expect("every member runs the counter");

    for i in 0..3 {
        for args in [&["put", "k", "v"][..], &["get", "before"][..]] {
            let out = cluster.etcdctl(i).run(args);
            assert!(!out.success(), "etcdctl {args:?} on member {i} succeeded against the counter: {}", out.render());
            assert!(
                out.stderr.contains("the active guest counter 1.0.0 does not serve the etcd KV API"),
                "member {i}: {}",
                out.render()
            );
        }
    }
    assert_eq!(cluster.cli(0).propose("add 1").expect("propose to the counter"), "1");
    assert_eq!(cluster.cli(2).propose("add 41").expect("propose to the counter"), "42");
    all_agree_on(&mut cluster, "counter", "1.0.0", counter.since_index);
    for i in 0..3 {
        assert_eq!(cluster.cli(i).query_serializable("get").expect("query the counter"), "42", "member {i}");
    }
}

/// Regression (found by the fault harness, tests/faults.rs seed 1): the put kv-v2's migration
/// makes inside the swap entry took a revision but reached no watcher — the swap's apply
/// dropped the events `migrate` emitted — so a watcher of the whole key space missed a revision
/// (and one on `wasmraft/` never heard of the upgrade). Now a synced watcher gets it, in order
/// between the writes before and after the swap.
#[test]
fn a_watcher_sees_the_migrations_put_in_order() {
    let mut cluster = kv_cluster(ClusterConfig::new(Flavor::Wasmraft, 1));
    let rt = runtime();
    let endpoint = cluster.endpoint(0);
    let (mut client, mut stream) = rt.block_on(async {
        let mut c = Client::connect([endpoint.as_str()], None).await.expect("connect");
        let mut s = c.watch("", Some(etcd_client::WatchOptions::new().with_all_keys())).await.expect("watch");
        // etcd-client returns once the stream is open, not once the watcher exists: wait for
        // "created", or the put below can be applied first and (rightly) not be seen.
        let created = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("created in time")
            .expect("watch stream")
            .expect("not ended");
        assert!(created.created(), "{created:?}");
        (c, s)
    });
    rt.block_on(async { client.put("before", "1", None).await.expect("put before") });
    cluster.deploy(V2, false).expect("v2 deployed");
    rt.block_on(async { client.put("after", "1", None).await.expect("put after") });
    let seen = rt.block_on(async {
        let mut seen: Vec<(i64, String)> = Vec::new();
        while seen.len() < 3 {
            let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .unwrap_or_else(|_| panic!("no more events after {seen:?}"))
                .expect("watch stream")
                .expect("not ended");
            for ev in resp.events() {
                let kv = ev.kv().expect("kv");
                seen.push((kv.mod_revision(), kv.key_str().expect("utf-8").to_string()));
            }
        }
        seen
    });
    let keys: Vec<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["before", VERSION_KEY, "after"], "{seen:?}");
    assert!(seen[0].0 + 1 == seen[1].0 && seen[1].0 + 1 == seen[2].0, "{seen:?}");
}

/// `wasmraft guest bundled FILE` writes the KV guest the binary bundles: the module a fresh
/// member runs (the same sha256), ready for `guest deploy` to a cluster an older binary wrote.
#[test]
fn guest_bundled_writes_the_module_a_new_member_runs() {
    let mut cluster = ClusterConfig::new(Flavor::Wasmraft, 1).start();
    cluster.wait_leader(Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kv.component.wasm");
    let out = std::process::Command::new(wasmraft_tests::binaries::wasmraft_bin())
        .env_clear()
        .args(["guest", "bundled", &file.display().to_string()])
        .output()
        .expect("run wasmraft guest bundled");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&file).expect("the written module");
    let written: String = <sha2::Sha256 as sha2::Digest>::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&written), "it prints the sha256");
    let statuses = cluster.guest_status().expect("guest status");
    assert_eq!(statuses[0].sha256, written, "the active guest of a fresh member is the bundled one");
    // An unwritable place is a clear error, not a panic.
    let out = std::process::Command::new(wasmraft_tests::binaries::wasmraft_bin())
        .env_clear()
        .args(["guest", "bundled", "/nonexistent-dir/kv.wasm"])
        .output()
        .expect("run wasmraft guest bundled");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("writing /nonexistent-dir/kv.wasm"));
}
