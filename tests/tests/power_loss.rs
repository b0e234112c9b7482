//! Power-loss trials: members whose data dirs are on lazy file systems (tests/lazyfs) lose
//! power at a random moment while clients write; what the disk keeps is exactly what was
//! fsynced (names: what their directory's fsync made durable), sometimes with a torn last write.
//! After the restart every acknowledged put must be there with its revision, on every member;
//! revisions continuous; members converged (same HashKV); no member fails to restart.
//!
//! Unlike kill -9 (tests/durability_trials.rs), a cut loses the page cache: a missing fsync of
//! the WAL, of a new segment's or snapshot's directory entry, or an acknowledgement sent before
//! the fsync returned, loses data here.
//!
//! `WASMRAFT_LONG_TRIALS=N` runs N trials per test instead of the CI sample (docs/reliability.md);
//! `WASMRAFT_POWER_SEED` sets the first seed.

use std::time::Duration;

use wasmraft_tests::convergence::check_convergence;
use wasmraft_tests::power_loss::{Acked, PowerCluster, Writers, check_members};
use wasmraft_tests::prng::Prng;
use wasmraft_tests::{ClusterConfig, Flavor};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")),
        Err(_) => default,
    }
}

fn start(size: usize) -> PowerCluster {
    // Small snapshot count: snapshots, WAL segment cuts and deletions happen under the cuts too.
    PowerCluster::start(ClusterConfig::new(Flavor::subject(), size).arg("--snapshot-count=100"))
}

#[test]
fn one_member_loses_power_and_keeps_every_acknowledged_write() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let trials = env_u64("WASMRAFT_LONG_TRIALS", 4);
    let first_seed = env_u64("WASMRAFT_POWER_SEED", 0x9a11_0001);
    let mut pc = start(1);
    let rt = wasmraft_tests::runtime();
    let mut every: Vec<Acked> = Vec::new();
    let (mut torn_cuts, mut torn_bytes) = (0, 0);
    for trial in 0..trials {
        let seed = first_seed + trial;
        let mut rng = Prng::new(seed);
        let w = Writers::start(&rt, pc.cluster.endpoints(), &format!("p/t{trial:04}/"), 4);
        w.wait_for(10, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(rng.below(800)));
        let torn = (rng.below(2) == 1).then(|| rng.next_u64());
        let kept = pc.cut(0, torn);
        if torn.is_some() {
            torn_cuts += 1;
            torn_bytes += kept;
        }
        let acked = w.stop(&rt);
        pc.cluster.member_mut(0).restart_no_wait();
        pc.cluster
            .member_mut(0)
            .try_wait_ready(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("seed {seed}: restart after the power cut failed: {e}"));
        every.extend(acked.iter().cloned());
        let rev = check_members(&pc.cluster, &rt, "p/", &every)
            .unwrap_or_else(|e| panic!("seed {seed} (torn {torn:?}, {kept} bytes kept): {e}"));
        eprintln!(
            "trial {trial} (seed {seed}): {} puts acknowledged, torn {torn:?} ({kept} bytes kept); all present, \
             revisions 2..={rev} continuous",
            acked.len()
        );
    }
    let fsyncs = pc.disks[0].stat("fsyncs").unwrap_or(0);
    eprintln!(
        "power loss, 1 member: {trials} cuts ({torn_cuts} torn, {torn_bytes} torn bytes kept), {} acknowledged puts, \
         0 lost, 0 failed restarts; {fsyncs} fsyncs seen by the disk",
        every.len()
    );
}

#[test]
fn three_members_lose_power_one_or_all_and_keep_every_acknowledged_write() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let trials = env_u64("WASMRAFT_LONG_TRIALS", 4);
    let first_seed = env_u64("WASMRAFT_POWER_SEED", 0x9a11_1001);
    let mut pc = start(3);
    let rt = wasmraft_tests::runtime();
    let mut every: Vec<Acked> = Vec::new();
    let (mut all_cuts, mut one_cuts) = (0, 0);
    for trial in 0..trials {
        let seed = first_seed + trial;
        let mut rng = Prng::new(seed);
        let w = Writers::start(&rt, pc.cluster.endpoints(), &format!("p/t{trial:04}/"), 6);
        w.wait_for(10, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(rng.below(800)));
        let mut order: Vec<usize> = (0..pc.cluster.size()).collect();
        rng.shuffle(&mut order);
        let all = rng.below(2) == 1;
        if !all {
            order.truncate(1);
            one_cuts += 1;
        } else {
            all_cuts += 1;
        }
        let mut plan = Vec::new();
        for &m in &order {
            let torn = (rng.below(2) == 1).then(|| rng.next_u64());
            let kept = pc.cut(m, torn);
            plan.push(format!("m{m} torn {torn:?} kept {kept}"));
            std::thread::sleep(Duration::from_millis(rng.below(10)));
        }
        if !all {
            // The survivors go on taking writes while the cut member is down.
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
        let acked = w.stop(&rt);
        for &m in &order {
            pc.cluster.member_mut(m).restart_no_wait();
        }
        for &m in &order {
            pc.cluster
                .member_mut(m)
                .try_wait_ready(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("seed {seed} ({plan:?}): member {m} failed to restart: {e}"));
        }
        let converged = check_convergence(&mut pc.cluster, &rt, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("seed {seed} ({plan:?}): {e}"));
        every.extend(acked.iter().cloned());
        check_members(&pc.cluster, &rt, "p/", &every).unwrap_or_else(|e| panic!("seed {seed} ({plan:?}): {e}"));
        eprintln!(
            "trial {trial} (seed {seed}): {} puts acknowledged, cuts {plan:?}; all present on every member, \
             revision {} and HashKV {:#x} on all",
            acked.len(),
            converged.revision,
            converged.hash
        );
    }
    eprintln!(
        "power loss, 3 members: {trials} trials ({one_cuts} one-member cuts, {all_cuts} whole-cluster cuts), {} \
         acknowledged puts, 0 lost, 0 failed restarts",
        every.len()
    );
}

/// Bug found by these trials: the guest cache created `data/` and `data/member/` before the
/// node started, without syncing their parents, and the node's durable `create_dir_all` found
/// them and synced nothing; a power cut then took the whole member dir with every acknowledged
/// write. A put, a cut at once, a restart: the put is there.
#[test]
fn member_dir_made_by_the_guest_cache_survives_a_power_cut() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let mut pc = start(1);
    let rt = wasmraft_tests::runtime();
    let w = Writers::start(&rt, pc.cluster.endpoints(), "p/", 1);
    w.wait_for(1, Duration::from_secs(30));
    pc.cut(0, None);
    let acked = w.stop(&rt);
    pc.cluster.member_mut(0).restart_no_wait();
    pc.cluster.member_mut(0).try_wait_ready(Duration::from_secs(60)).unwrap_or_else(|e| panic!("restart: {e}"));
    check_members(&pc.cluster, &rt, "p/", &acked).unwrap_or_else(|e| panic!("{e}"));
}
