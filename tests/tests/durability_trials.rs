//! Durability trials: every member of a cluster is SIGKILLed at a random moment while clients
//! write, then all restart; every write that was acknowledged must be there, with the value and
//! revision its acknowledgement reported, and the members must agree again.
//!
//! One trial: a seeded random schedule picks how long the writers run (so the kill falls anywhere:
//! mid-batch, mid-fsync, during a log compaction and segment deletion — the cluster runs with a
//! small `--snapshot-count` so those happen every hundred writes), the order the members die
//! in, and the gaps between the kills (a few milliseconds, so a survivor may briefly lead, elect,
//! or append before its own end). Trials run back to back on the same data dirs, so later trials
//! also recover from logs that earlier crashes left behind.
//!
//! `WASMRAFT_DURABILITY_TRIALS=N` sets the number of trials (default: a short run for CI; the
//! long run in docs/reliability.md used 100), `WASMRAFT_DURABILITY_SEED` the first seed.
//! `WASMRAFT_TEST_SUBJECT=etcd` runs the same trials against etcd 3.4.
//!
//! What kill -9 does not test: the OS survives, so its page cache does too. This catches a member
//! that acknowledges before its write reached the kernel, or that cannot recover what a crash
//! left mid-way; a lost fsync needs a power cut (the WAL's own tests cut records in half).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use wasmraft_tests::prng::Prng;
use wasmraft_tests::{ClusterConfig, Flavor};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")),
        Err(_) => default,
    }
}

/// An acknowledged put: key, value, the revision the response carried.
type Acked = (String, String, i64);

async fn connect(endpoints: &[String]) -> Option<Client> {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(3)).with_connect_timeout(Duration::from_secs(2));
    Client::connect(endpoints, Some(opts)).await.ok()
}

/// One writer: puts unique keys under `prefix` until told to stop, recording what was
/// acknowledged. Errors (the members are being killed) are retried after a pause; anything not
/// acknowledged may be lost.
async fn writer(
    endpoints: Vec<String>,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicUsize>,
) {
    let mut client = None;
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = connect(&endpoints).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let key = format!("{prefix}{i:06}");
        let value = format!("{key}={}", "v".repeat((i % 40) as usize));
        i += 1;
        match c.put(key.clone(), value.clone(), None).await {
            Ok(r) => {
                let rev = r.header().map(|h| h.revision()).unwrap_or(0);
                acked.lock().unwrap_or_else(|p| p.into_inner()).push((key, value, rev));
                count.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reads every key under `prefix` from `endpoint` (a linearizable range).
async fn read_prefix(endpoint: &str, prefix: &str) -> Result<BTreeMap<String, (String, i64)>, String> {
    let mut c = connect(&[endpoint.to_string()]).await.ok_or_else(|| format!("cannot connect to {endpoint}"))?;
    let r = c.get(prefix, Some(GetOptions::new().with_prefix())).await.map_err(|e| format!("get {prefix}: {e}"))?;
    Ok(r.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                (String::from_utf8_lossy(kv.value()).into_owned(), kv.mod_revision()),
            )
        })
        .collect())
}

#[test]
fn every_acknowledged_write_survives_killing_all_members() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let trials = env_u64("WASMRAFT_DURABILITY_TRIALS", 4);
    let first_seed = env_u64("WASMRAFT_DURABILITY_SEED", 0x5eed_0001);
    let writers = 6;
    let mut cluster = ClusterConfig::new(Flavor::subject(), 3).arg("--snapshot-count=100").start();
    let rt = wasmraft_tests::runtime();
    let endpoints = cluster.endpoints();
    let (mut total_acked, mut total_written_after_kill) = (0usize, 0usize);
    let mut every_acked: Vec<Acked> = Vec::new();

    for trial in 0..trials {
        let seed = first_seed + trial;
        let mut rng = Prng::new(seed);
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (stop, acked, count) = (stop.clone(), acked.clone(), count.clone());
                let ends = endpoints.clone();
                rt.spawn(writer(ends, format!("t{trial:03}/w{w}/"), stop, acked, count))
            })
            .collect();

        // The writers must be under way; then the kill comes at a random point of the stream.
        let deadline = Instant::now() + Duration::from_secs(30);
        while count.load(Ordering::SeqCst) < 20 {
            assert!(Instant::now() < deadline, "seed {seed}: fewer than 20 puts acknowledged in 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        let mut order: Vec<usize> = (0..cluster.size()).collect();
        rng.shuffle(&mut order);
        let gaps: Vec<u64> = order.iter().map(|_| rng.below(15)).collect();
        let at_first_kill = count.load(Ordering::SeqCst);
        for (&m, &gap) in order.iter().zip(&gaps) {
            cluster.kill9(m);
            std::thread::sleep(Duration::from_millis(gap));
        }
        stop.store(true, Ordering::SeqCst);
        rt.block_on(async {
            for h in handles {
                if tokio::time::timeout(Duration::from_secs(20), h).await.is_err() {
                    panic!("seed {seed}: a writer did not stop");
                }
            }
        });
        let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
        total_written_after_kill += acked.len() - at_first_kill;

        for m in 0..cluster.size() {
            cluster.restart_no_wait(m);
        }
        for m in 0..cluster.size() {
            cluster.member_mut(m).wait_ready();
        }
        let leader = cluster.wait_leader(Duration::from_secs(30));

        // Every acknowledged put, from each member's point of view (each answers a
        // linearizable read through the leader, after its own log replay).
        let prefix = format!("t{trial:03}/");
        for m in 0..cluster.size() {
            let present = rt
                .block_on(read_prefix(&cluster.endpoint(m), &prefix))
                .unwrap_or_else(|e| panic!("seed {seed}: reading back from member {m}: {e}"));
            let lost: Vec<String> = acked
                .iter()
                .filter(|(k, v, rev)| present.get(k) != Some(&(v.clone(), *rev)))
                .map(|(k, v, rev)| format!("{k}: acked {v:?} at {rev}, now {:?}", present.get(k)))
                .collect();
            assert!(
                lost.is_empty(),
                "seed {seed} (kill order {order:?}, gaps {gaps:?} ms, leader after restart {leader}): member {m} \
                 lost {} of {} acknowledged puts:\n{}",
                lost.len(),
                acked.len(),
                lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
            );
        }
        let statuses = cluster.wait_converged(Duration::from_secs(30));
        eprintln!(
            "trial {trial} (seed {seed}): {} puts acknowledged, kill order {order:?}, gaps {gaps:?} ms; \
             all present on every member; revision {} on all",
            acked.len(),
            statuses.first().map_or(0, |(_, s)| s.revision)
        );
        total_acked += acked.len();
        every_acked.extend(acked);
    }

    // The earlier trials' writes survived the later crashes too.
    let present = rt.block_on(read_prefix(&cluster.endpoint(0), "t")).unwrap_or_else(|e| panic!("final read: {e}"));
    let lost = every_acked.iter().filter(|(k, v, rev)| present.get(k) != Some(&(v.clone(), *rev))).count();
    assert_eq!(lost, 0, "{lost} puts acknowledged in earlier trials were lost by later crashes");
    eprintln!(
        "durability trials: {trials} trials, {total_acked} acknowledged puts ({total_written_after_kill} acknowledged \
         after the first kill), 0 lost"
    );
}
