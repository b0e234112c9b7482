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
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use wasmraft_tests::power_loss::{Acked, Writers};
use wasmraft_tests::prng::Prng;

/// Clients writing at once in each trial.
const WRITERS: usize = 6;
use wasmraft_tests::{ClusterConfig, Flavor};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")),
        Err(_) => default,
    }
}

async fn connect(endpoints: &[String]) -> Option<Client> {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(3)).with_connect_timeout(Duration::from_secs(2));
    Client::connect(endpoints, Some(opts)).await.ok()
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
    let mut cluster = ClusterConfig::new(Flavor::subject(), 3).arg("--snapshot-count=100").start();
    let rt = wasmraft_tests::runtime();
    let endpoints = cluster.endpoints();
    let (mut total_acked, mut total_written_after_kill) = (0usize, 0usize);
    let mut every_acked: Vec<Acked> = Vec::new();

    for trial in 0..trials {
        let seed = first_seed + trial;
        let mut rng = Prng::new(seed);
        let writers = Writers::start(&rt, endpoints.clone(), &format!("t{trial:03}/"), WRITERS);
        // The writers must be under way; then the kill comes at a random point of the stream.
        writers.wait_for(20, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        let mut order: Vec<usize> = (0..cluster.size()).collect();
        rng.shuffle(&mut order);
        let gaps: Vec<u64> = order.iter().map(|_| rng.below(15)).collect();
        let at_first_kill = writers.acknowledged();
        for (&m, &gap) in order.iter().zip(&gaps) {
            cluster.kill9(m);
            std::thread::sleep(Duration::from_millis(gap));
        }
        let acked = writers.stop(&rt);
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
    // Nothing applied twice and nothing skipped: every put wrote a key of its own, so the keys'
    // revisions are exactly 2..=the current revision (revision 1 is the empty store's), each
    // once, whatever the crashes cut off.
    let statuses = cluster.wait_converged(Duration::from_secs(30));
    let revision = statuses.first().map_or(0, |(_, s)| s.revision as i64);
    let mut revisions: Vec<i64> = present.values().map(|(_, rev)| *rev).collect();
    revisions.sort_unstable();
    let expected: Vec<i64> = (2..=revision).collect();
    assert!(
        revisions == expected,
        "the {} keys' revisions are not 2..={revision} each once (first differences: {:?})",
        revisions.len(),
        revisions.iter().zip(&expected).filter(|(a, b)| a != b).take(5).collect::<Vec<_>>()
    );
    // And the members hold the same keyspace, history included.
    let hashes: Vec<u32> = (0..cluster.size())
        .map(|m| {
            rt.block_on(async {
                let mut c = connect(&[cluster.endpoint(m)]).await.unwrap_or_else(|| panic!("connect to member {m}"));
                c.hash_kv(revision).await.unwrap_or_else(|e| panic!("hash_kv on member {m}: {e}")).hash()
            })
        })
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "HashKV at {revision} differs between members: {hashes:?}");
    eprintln!(
        "durability trials: {trials} trials, {total_acked} acknowledged puts ({total_written_after_kill} acknowledged \
         after the first kill), 0 lost; revisions 2..={revision} continuous; HashKV equal on {} members",
        cluster.size()
    );
}
