//! The compactor loops against a fake member, on tokio's paused clock: etcd's
//! `periodic_test.go` and `revision_test.go` cases, plus leadership and the flags' parsing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// A store whose revision grows by one every `tick`, led or not, recording compactions.
#[derive(Clone)]
struct Fake {
    start: Instant,
    tick: Duration,
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    follower: bool,
    /// Rev stops growing at this revision (None: grows forever).
    frozen_at: Option<i64>,
    /// Attempts to fail before succeeding.
    failures: u32,
    /// (seconds since start, revision) of every successful compaction.
    compacted: Vec<(u64, i64)>,
    attempts: u32,
}

impl Fake {
    fn new(tick: Duration) -> Fake {
        Fake { start: Instant::now(), tick, state: Arc::default() }
    }

    fn elapsed_secs(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    fn compacted(&self) -> Vec<(u64, i64)> {
        self.state.lock().unwrap().compacted.clone()
    }

    fn set(&self, f: impl FnOnce(&mut FakeState)) {
        f(&mut self.state.lock().unwrap());
    }
}

impl Target for Fake {
    async fn rev(&self) -> i64 {
        let rev = 1 + (self.start.elapsed().as_nanos() / self.tick.as_nanos()) as i64;
        let frozen = self.state.lock().unwrap().frozen_at;
        frozen.map_or(rev, |f| rev.min(f))
    }

    fn is_leader(&self) -> bool {
        !self.state.lock().unwrap().follower
    }

    async fn compact(&self, revision: i64) -> Compacted {
        let at = self.elapsed_secs();
        let mut s = self.state.lock().unwrap();
        s.attempts += 1;
        if s.failures > 0 {
            s.failures -= 1;
            return Compacted::Failed("etcdserver: request timed out".into());
        }
        s.compacted.push((at, revision));
        Compacted::Done
    }
}

/// Lets the loop run until `at` since the fake's start.
async fn run_until(fake: &Fake, at: Duration) {
    tokio::time::sleep_until(fake.start + at).await;
    // Let the compactor's task finish what this instant woke it for.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn periodic_waits_one_period_then_compacts_every_period_to_one_period_ago() {
    // One revision a second; keep 10 s.
    let fake = Fake::new(Duration::from_secs(1));
    let c = Compactor::start_on(fake.clone(), Policy::Periodic(Duration::from_secs(10)));
    run_until(&fake, Duration::from_millis(9_900)).await;
    assert!(fake.compacted().is_empty(), "nothing during the first period");
    run_until(&fake, Duration::from_millis(10_100)).await;
    assert_eq!(fake.compacted(), vec![(10, 1)], "the revision the store had at the start");
    run_until(&fake, Duration::from_millis(30_100)).await;
    // Then every period, to the oldest of the 11 samples kept (taken a sample interval more than
    // a period ago, as in etcd: the sample at the compaction's own tick is taken after it).
    assert_eq!(fake.compacted(), vec![(10, 1), (20, 10), (30, 20)]);
    c.stop();
}

#[tokio::test(start_paused = true)]
async fn periodic_above_an_hour_compacts_hourly_to_the_whole_retention_ago() {
    // One revision a minute; keep 2 h.
    let fake = Fake::new(Duration::from_secs(60));
    let _c = Compactor::start_on(fake.clone(), Policy::Periodic(Duration::from_secs(2 * 3600)));
    run_until(&fake, Duration::from_secs(2 * 3600 - 60)).await;
    assert!(fake.compacted().is_empty());
    run_until(&fake, Duration::from_secs(4 * 3600 + 60)).await;
    let got = fake.compacted();
    assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), vec![7200, 10800, 14400], "hourly after 2 h");
    // 21 samples, one every 6 minutes: the oldest kept is 2 h old, or 2 h and a sample once the
    // window is full (the sample of the compaction's own tick comes after it).
    for (at, rev) in got {
        let rev_at = (at / 60) as i64 + 1;
        assert!((120..=126).contains(&(rev_at - rev)), "at {at}s compacted to {rev}, the store at {rev_at}");
    }
}

#[tokio::test(start_paused = true)]
async fn periodic_retries_a_failure_at_the_next_sample() {
    let fake = Fake::new(Duration::from_secs(1));
    fake.set(|s| s.failures = 2);
    let _c = Compactor::start_on(fake.clone(), Policy::Periodic(Duration::from_secs(10)));
    run_until(&fake, Duration::from_millis(12_100)).await;
    assert_eq!(fake.state.lock().unwrap().attempts, 3, "at 10 s, 11 s and 12 s");
    assert_eq!(fake.compacted(), vec![(12, 2)]);
}

#[tokio::test(start_paused = true)]
async fn periodic_compacts_only_while_leading_and_catches_up_on_election() {
    let fake = Fake::new(Duration::from_secs(1));
    fake.set(|s| s.follower = true);
    let _c = Compactor::start_on(fake.clone(), Policy::Periodic(Duration::from_secs(10)));
    run_until(&fake, Duration::from_millis(35_100)).await;
    assert!(fake.compacted().is_empty(), "a follower never compacts");
    fake.set(|s| s.follower = false);
    // The samples went on while following: the new leader compacts at its first tick, to the
    // revision of one period before.
    run_until(&fake, Duration::from_millis(36_100)).await;
    assert_eq!(fake.compacted(), vec![(36, 26)]);
}

#[tokio::test(start_paused = true)]
async fn revision_compacts_to_current_minus_retention_each_interval() {
    // etcd's TestRevision: a revision a second, keep 10, compact every 5 minutes.
    let fake = Fake::new(Duration::from_secs(1));
    let _c = Compactor::start_on(fake.clone(), Policy::Revision { retention: 10, interval: REVISION_INTERVAL });
    run_until(&fake, Duration::from_secs(299)).await;
    assert!(fake.compacted().is_empty());
    run_until(&fake, Duration::from_secs(601)).await;
    assert_eq!(fake.compacted(), vec![(300, 291), (600, 591)]);
    // A store that stopped growing is not compacted to the same revision again.
    fake.set(|s| s.frozen_at = Some(700));
    run_until(&fake, Duration::from_secs(1501)).await;
    assert_eq!(fake.compacted(), vec![(300, 291), (600, 591), (900, 690)]);
}

#[tokio::test(start_paused = true)]
async fn revision_skips_a_store_younger_than_the_retention_and_followers() {
    let fake = Fake::new(Duration::from_secs(100));
    let _c = Compactor::start_on(fake.clone(), Policy::Revision { retention: 10, interval: Duration::from_secs(60) });
    // Revision 7 at 600 s: 7 - 10 is not a revision.
    run_until(&fake, Duration::from_secs(601)).await;
    assert!(fake.compacted().is_empty());
    fake.set(|s| s.follower = true);
    run_until(&fake, Duration::from_secs(2401)).await;
    assert!(fake.compacted().is_empty(), "a follower never compacts");
    fake.set(|s| s.follower = false);
    run_until(&fake, Duration::from_secs(2461)).await;
    assert_eq!(fake.compacted(), vec![(2460, 15)]);
}

#[test]
fn retention_as_etcd_parses_it() {
    let periodic = |d| Ok(Some(Policy::Periodic(d)));
    let revisions = |n| Ok(Some(Policy::Revision { retention: n, interval: REVISION_INTERVAL }));
    assert_eq!(Policy::parse("periodic", "0"), Ok(None), "0 disables");
    assert_eq!(Policy::parse("periodic", ""), Ok(None), "empty is 0");
    assert_eq!(Policy::parse("revision", "0"), Ok(None));
    assert_eq!(Policy::parse("periodic", "0s"), Ok(None));
    assert_eq!(Policy::parse("periodic", "1"), periodic(Duration::from_secs(3600)), "a number is hours");
    assert_eq!(Policy::parse("periodic", "+72"), periodic(Duration::from_secs(72 * 3600)));
    assert_eq!(Policy::parse("periodic", "2s"), periodic(Duration::from_secs(2)));
    assert_eq!(Policy::parse("periodic", "1h30m"), periodic(Duration::from_secs(5400)));
    assert_eq!(Policy::parse("revision", "1000"), revisions(1000));
    // etcd reads a duration in revision mode as that many nanoseconds' worth of revisions.
    assert_eq!(Policy::parse("revision", "2s"), revisions(2_000_000_000));
}

#[test]
fn bad_flags_get_etcds_errors() {
    let err = |mode, retention| Policy::parse(mode, retention).unwrap_err().to_string();
    assert_eq!(err("bogus", "1"), "unknown auto-compaction-mode \"bogus\"");
    assert_eq!(err("", "1"), "unknown auto-compaction-mode \"\"");
    assert_eq!(err("periodic", "abc"), "error parsing CompactionRetention: time: invalid duration \"abc\"");
    assert_eq!(err("periodic", "1.5"), "error parsing CompactionRetention: time: missing unit in duration \"1.5\"");
    assert_eq!(err("periodic", "-1"), "error parsing CompactionRetention: time: missing unit in duration \"-1\"");
    assert!(err("periodic", "-1h").contains("negative retention \"-1h\""));
    assert_eq!(Policy::parse("periodic", "-0s"), Ok(None));
}

#[test]
fn the_revision_interval_can_be_shortened_for_tests() {
    let p = Policy::parse("revision", "10").unwrap().unwrap().with_revision_interval(Duration::from_secs(1));
    assert_eq!(p, Policy::Revision { retention: 10, interval: Duration::from_secs(1) });
    let p = Policy::Periodic(Duration::from_secs(1));
    assert_eq!(p.with_revision_interval(Duration::from_secs(9)), p);
}
