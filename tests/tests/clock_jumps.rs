//! Wall-clock jumps on members (issue 27, part 3: "clock jumps and skew on one member; leases
//! must not expire early"). Every member runs under libfaketime (Debian's `libfaketime`,
//! installed by scripts/test) with its own offset file, so the test moves one member's wall
//! clock by hours, forwards or backwards, while the cluster runs. Lease expiry, elections and
//! request timeouts must go by the monotonic clock: a lease granted for 12 s is still there 10 s
//! later on every member after the leader's clock jumped hours ahead, and after backward jumps
//! and a leader change it expires, never before its TTL; the cluster keeps serving writes and
//! linearizable reads throughout.
//!
//! Each member's `Date` header (hyper stamps it from the wall clock) and its log's stamps show
//! that the jumps really reached the process. wasmraft only: etcd is a Go binary, whose clock
//! calls bypass libc, so LD_PRELOAD cannot move it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmraft_tests::{ClusterConfig, Flavor, one_cluster_at_a_time, runtime};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const TTL: i64 = 12;

/// Sets member's clock offset (libfaketime's syntax: "+3h", "-2h", "+0").
fn jump(file: &Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).expect("write the clock file");
}

/// Seconds since the epoch of a date `date -d` reads (an HTTP date, an RFC 3339 stamp).
fn epoch_of(date: &str) -> i64 {
    let out = std::process::Command::new("date").args(["-d", date, "+%s"]).output().expect("date");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|e| panic!("date -d {date:?}: {e}"))
}

fn real_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

/// The member's wall clock minus the real one (seconds), from the `Date` header of its
/// `/version` answer. Only good after a forward jump: hyper refreshes its cached date once the
/// clock passes the next second, which after a backward jump takes as long as the jump.
fn date_header_skew(endpoint: &str) -> i64 {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET /version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    let date = answer
        .lines()
        .find_map(|l| l.strip_prefix("date: ").or_else(|| l.strip_prefix("Date: ")))
        .unwrap_or_else(|| panic!("no Date header in {answer:?}"));
    epoch_of(date) - real_now()
}

/// Waits until the member's `Date` header is `want` seconds off.
fn wait_date_skew(endpoint: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let skew = date_header_skew(endpoint);
        if (skew - want).abs() <= 5 {
            return;
        }
        assert!(Instant::now() < deadline, "{endpoint}: clock is {skew} s off, wanted {want}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The member's wall clock minus the real one, from the stamp of its last log line (written
/// just now: the caller made every member log).
fn log_skew(member: &wasmraft_tests::member::Member) -> i64 {
    let log = member.current_log();
    let stamp = log
        .lines()
        .rev()
        .find_map(|l| l.split_whitespace().next().filter(|t| t.starts_with(|c: char| c.is_ascii_digit())))
        .unwrap_or_else(|| panic!("no stamped line in {}'s log", member.name()))
        .to_string();
    epoch_of(&stamp) - real_now()
}

/// The key's value as a linearizable read through member `endpoint` sees it.
fn read(endpoint: &str) -> Option<String> {
    runtime().block_on(async {
        let mut c = wasmraft_tests::cluster::connect(&[endpoint.to_string()], Duration::from_secs(10)).await;
        let r = c.get("clock/leased", None).await.unwrap_or_else(|e| panic!("get via {endpoint}: {e}"));
        r.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    })
}

#[test]
fn leases_and_the_cluster_ignore_wall_clock_jumps() {
    if Flavor::subject() != Flavor::Wasmraft {
        return; // see the module docs: LD_PRELOAD does not reach Go's clock
    }
    assert!(Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: scripts/test installs libfaketime");
    let _one = one_cluster_at_a_time();
    let dir = tempfile::tempdir().expect("temp dir");
    let clocks: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("clock-{i}"))).collect();
    let mut cfg = ClusterConfig::new(Flavor::Wasmraft, 3);
    for (i, clock) in clocks.iter().enumerate() {
        jump(clock, "+0");
        cfg = cfg
            .member_env(i, "LD_PRELOAD", LIBFAKETIME)
            .member_env(i, "FAKETIME_TIMESTAMP_FILE", clock.display().to_string())
            // Read the file at every call: with a cache, libfaketime would not see a jump back
            // until the moved clock passed the cache's expiry, hours later.
            .member_env(i, "FAKETIME_NO_CACHE", "1")
            .member_env(i, "FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    let mut cluster = cfg.start();
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let endpoints = cluster.endpoints();

    let granted = runtime().block_on(async {
        let mut c = wasmraft_tests::cluster::connect(&[endpoints[leader].clone()], Duration::from_secs(10)).await;
        let lease = c.lease_grant(TTL, None).await.expect("grant");
        c.put("clock/leased", "v", Some(etcd_client::PutOptions::new().with_lease(lease.id()))).await.expect("put");
        lease.id()
    });
    let t0 = Instant::now();

    // Forward jumps, the leader's by three hours and a follower's by a day; nothing else moves,
    // so the lease must last its whole TTL on the leader's monotonic clock.
    jump(&clocks[leader], "+3h");
    jump(&clocks[f1], "+1d");
    wait_date_skew(&endpoints[leader], 3 * 3600);
    wait_date_skew(&endpoints[f1], 24 * 3600);
    let left = runtime().block_on(async {
        let mut c = wasmraft_tests::cluster::connect(&[endpoints[leader].clone()], Duration::from_secs(10)).await;
        c.lease_time_to_live(granted, None).await.expect("time to live").ttl()
    });
    assert!(left >= TTL - 4, "the lease has {left} s left {:?} after its grant", t0.elapsed());
    std::thread::sleep(Duration::from_secs(TTL as u64 - 2).saturating_sub(t0.elapsed()));
    assert!(t0.elapsed() < Duration::from_secs(TTL as u64), "the test itself was too slow to check");
    for e in &endpoints {
        assert_eq!(read(e).as_deref(), Some("v"), "the key vanished before its TTL (via {e})");
    }

    // Backward jumps (the leader to two hours behind, the day-ahead follower to a day behind,
    // the third member five hours ahead), then leadership moves to the third: every member
    // logs the new term, stamped with its moved clock.
    jump(&clocks[leader], "-2h");
    jump(&clocks[f1], "-1d");
    jump(&clocks[f2], "+5h");
    std::thread::sleep(Duration::from_millis(1500));
    let to = cluster.status(f2).expect("status").member_id;
    runtime().block_on(async {
        let mut c = wasmraft_tests::cluster::connect(&[endpoints[leader].clone()], Duration::from_secs(10)).await;
        c.move_leader(to).await.expect("move leader");
    });
    assert_eq!(cluster.wait_leader(Duration::from_secs(30)), f2);
    for (i, want) in [(leader, -2 * 3600), (f1, -24 * 3600), (f2, 5 * 3600)] {
        let skew = log_skew(cluster.member(i));
        assert!((skew - want).abs() <= 30, "member {i}'s log is stamped {skew} s off, wanted {want}");
    }

    // The lease still expires (its new leader renewed it on taking over, as etcd's does), and
    // never before its TTL from the grant.
    let deadline = t0 + Duration::from_secs(TTL as u64 + 15);
    while read(&endpoints[f2]).is_some() {
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(t0.elapsed() >= Duration::from_secs(TTL as u64), "the lease expired after only {:?}", t0.elapsed());
    for e in &endpoints {
        assert_eq!(read(e), None, "the expired lease's key is still readable via {e}");
    }
    // Still a working cluster, with the clocks all over the place.
    runtime().block_on(async {
        for e in &endpoints {
            let mut c = wasmraft_tests::cluster::connect(std::slice::from_ref(e), Duration::from_secs(10)).await;
            c.put("clock/after", e.as_str(), None).await.unwrap_or_else(|err| panic!("put via {e}: {err}"));
        }
    });
    cluster.wait_converged(Duration::from_secs(30));
}
