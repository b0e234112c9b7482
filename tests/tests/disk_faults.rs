//! Disk faults under a member, for real: ENOSPC and EIO on write and on fsync of the WAL and of
//! the state database, and slow fsyncs, injected by the lazy file system its data dir is on
//! (tests/lazyfs). The member must never acknowledge a write it could not sync: after the fault
//! the member's power is cut (so whatever was not synced is gone), the fault cleared, the member
//! restarted; every acknowledged put must be there, revisions continuous. A fault on the WAL
//! must stop the member (etcd 3.4: a WAL save error is fatal) with the error in its log; so must
//! a fault on the state database (etcd: a backend commit failure panics), whose apply stops.
//!
//! `WASMRAFT_LONG_TRIALS=N` repeats each fault N times (docs/reliability.md).

use std::time::{Duration, Instant};

use wasmraft_tests::power_loss::{Acked, PowerCluster, Writers, check_members};
use wasmraft_tests::{ClusterConfig, Flavor};

fn trials() -> u64 {
    std::env::var("WASMRAFT_LONG_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// What a fault did to the member.
struct Outcome {
    exited: bool,
    acked_after: usize,
    log: String,
}

/// One trial: load, `fault` on the member's disk, watch `watch` long, cut, clear, restart,
/// check every acknowledged put.
fn trial(fault: &str, watch: Duration) -> Outcome {
    let mut pc = PowerCluster::start(ClusterConfig::new(Flavor::subject(), 1).arg("--snapshot-count=100"));
    let rt = wasmraft_tests::runtime();
    let w = Writers::start(&rt, pc.cluster.endpoints(), "f/", 3);
    w.wait_for(20, Duration::from_secs(30));
    pc.disk(0, fault);
    let at_fault = w.acknowledged();
    let deadline = Instant::now() + watch;
    let mut exited = false;
    while Instant::now() < deadline {
        if !pc.cluster.member_mut(0).is_running() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Anything acknowledged but not synced is lost now.
    pc.cut(0, None);
    let acked: Vec<Acked> = w.stop(&rt);
    let log = pc.cluster.member(0).log();
    pc.disk(0, "clear");
    pc.cluster.member_mut(0).restart_no_wait();
    pc.cluster
        .member_mut(0)
        .try_wait_ready(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{fault}: no restart after the fault was cleared: {e}"));
    check_members(&pc.cluster, &rt, "f/", &acked).unwrap_or_else(|e| panic!("{fault}: {e}"));
    // It serves again.
    let w = Writers::start(&rt, pc.cluster.endpoints(), "g/", 1);
    w.wait_for(5, Duration::from_secs(30));
    w.stop(&rt);
    Outcome { exited, acked_after: acked.len() - at_fault, log }
}

fn wal_fault_stops_the_member(fault: &str, error_text: &str) {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    for t in 0..trials() {
        let o = trial(fault, Duration::from_secs(15));
        assert!(o.exited, "{fault}: the member kept running after its WAL failed");
        let tail: String = o.log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        assert!(tail.contains(error_text), "{fault}: no {error_text:?} in the member's last log lines:\n{tail}");
        eprintln!("{fault} #{t}: member stopped; {} puts acknowledged around the fault, all kept", o.acked_after);
    }
}

#[test]
fn enospc_on_wal_write_stops_the_member_and_loses_nothing() {
    wal_fault_stops_the_member("fault write enospc /member/wal/", "No space left on device");
}

#[test]
fn eio_on_wal_fsync_stops_the_member_and_loses_nothing() {
    wal_fault_stops_the_member("fault fsync eio /member/wal/", "Input/output error");
}

#[test]
fn eio_on_wal_write_stops_the_member_and_loses_nothing() {
    wal_fault_stops_the_member("fault write eio /member/wal/", "Input/output error");
}

#[test]
fn state_database_faults_lose_nothing() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    for t in 0..trials() {
        for fault in [
            "fault write enospc /member/state.redb",
            "fault write eio /member/state.redb",
            "fault fsync eio /member/state.redb",
            "fault fsync enospc /member/state.redb",
        ] {
            let o = trial(fault, Duration::from_secs(10));
            assert!(o.exited, "{fault}: the member kept running after its state database failed");
            let text = if fault.contains("enospc") { "No space left on device" } else { "Input/output error" };
            let tail: String = o.log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            assert!(o.log.contains(text), "{fault}: no {text:?} in the member's log; its last lines: {tail}");
            eprintln!("{fault} #{t}: exited {}, {} acknowledged after, all kept; log: {tail}", o.exited, o.acked_after);
        }
    }
}

#[test]
fn slow_wal_fsync_slows_but_loses_nothing() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    for t in 0..trials() {
        let o = trial("slow /member/wal/ 1500", Duration::from_secs(5));
        assert!(!o.exited, "a slow fsync stopped the member:\n{}", o.log);
        assert!(o.acked_after > 0, "nothing acknowledged while fsyncs took 1.5 s");
        eprintln!("slow fsync #{t}: {} puts acknowledged at 1.5 s per fsync, all kept", o.acked_after);
    }
}
