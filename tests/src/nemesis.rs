//! The nemesis of a fault run: from a seed, a schedule of faults injected one at a time into a
//! running cluster while the clients and watchers work — each held for a while, then healed,
//! then a quiet spell — until the run's time is up; [`Nemesis::heal_all`] ends whatever is still
//! active.
//!
//! | fault | injected | healed |
//! |---|---|---|
//! | `kill` / `kill-leader` | kill -9 of a random member / of the leader | restart on the same data dir |
//! | `pause` / `pause-leader` | SIGSTOP | SIGCONT |
//! | `partition-minority` | a random minority cut off from the majority (both ways) | cuts removed |
//! | `partition-leader` | the leader alone on one side | cuts removed |
//! | `partition-bridge` | two halves that cannot talk, one member talking to both | cuts removed |
//! | `move-leader` | Maintenance.MoveLeader to a random follower | (instant) |
//! | `guest-swap` | `wasmraft guest deploy` of kv-v2 | rollback to the bundled KV guest |
//! | `compact` | KV Compact at a recent revision | (instant; irreversible) |
//!
//! Partitions and guest swaps are wasmraft's (the transport's fault hook, the guest admin API):
//! against real etcd the nemesis leaves them out.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::partition::Partitioner;
use crate::prng::Prng;
use crate::{Cluster, Flavor};

/// The bundled KV guest's version (what a swap rolls back to).
pub const KV_V1_VERSION: &str = "0.1.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    KillLeader,
    Pause,
    PauseLeader,
    PartitionMinority,
    PartitionLeader,
    PartitionBridge,
    MoveLeader,
    GuestSwap,
    Compact,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::Pause,
        FaultKind::PauseLeader,
        FaultKind::PartitionMinority,
        FaultKind::PartitionLeader,
        FaultKind::PartitionBridge,
        FaultKind::MoveLeader,
        FaultKind::GuestSwap,
        FaultKind::Compact,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::Pause => "pause",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::PartitionBridge => "partition-bridge",
            FaultKind::MoveLeader => "move-leader",
            FaultKind::GuestSwap => "guest-swap",
            FaultKind::Compact => "compact",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether `flavor` supports it (partitions need the transport hook, swaps wasmraft's guests).
    pub fn supported_by(self, flavor: Flavor) -> bool {
        flavor == Flavor::Wasmraft
            || !matches!(
                self,
                FaultKind::PartitionMinority
                    | FaultKind::PartitionLeader
                    | FaultKind::PartitionBridge
                    | FaultKind::GuestSwap
            )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault being held.
enum Active {
    None,
    Killed(usize),
    Paused(usize),
    Partitioned,
    Swapped,
}

/// How long faults last.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// A fault is held for a time in this range (ms).
    pub hold_ms: (u64, u64),
    /// Then everything is quiet for a time in this range (ms).
    pub quiet_ms: (u64, u64),
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing { hold_ms: (1000, 4000), quiet_ms: (500, 2000) }
    }
}

pub struct Nemesis {
    rng: Prng,
    kinds: Vec<FaultKind>,
    pacing: Pacing,
    partitioner: Option<Partitioner>,
    /// The kv-v2 component (guest swaps).
    v2_guest: std::path::PathBuf,
    active: Active,
    /// Faults injected, by kind (attempts that the cluster refused are counted in `refused`).
    pub injected: BTreeMap<FaultKind, u64>,
    pub refused: BTreeMap<FaultKind, u64>,
    /// The highest revision a compaction was requested at.
    pub max_compaction: i64,
    /// What happened, one line per step, with the time since the nemesis started.
    pub log: Vec<String>,
    started: Instant,
}

impl Nemesis {
    /// `kinds` are narrowed to what the cluster's flavor supports.
    pub fn new(cluster: &Cluster, rng: Prng, kinds: &[FaultKind], pacing: Pacing) -> Result<Nemesis, String> {
        let kinds: Vec<FaultKind> = kinds.iter().copied().filter(|k| k.supported_by(cluster.flavor())).collect();
        let needs_partitions = kinds.iter().any(|k| {
            matches!(k, FaultKind::PartitionMinority | FaultKind::PartitionLeader | FaultKind::PartitionBridge)
        });
        let partitioner = if needs_partitions { Some(Partitioner::new(cluster)?) } else { None };
        Ok(Nemesis {
            rng,
            kinds,
            pacing,
            partitioner,
            v2_guest: env!("WASMRAFT_TEST_KV_V2_GUEST").into(),
            active: Active::None,
            injected: BTreeMap::new(),
            refused: BTreeMap::new(),
            max_compaction: 0,
            log: Vec::new(),
            started: Instant::now(),
        })
    }

    fn note(&mut self, what: String) {
        let t = self.started.elapsed().as_secs_f64();
        self.log.push(format!("{t:7.2}s {what}"));
    }

    /// Injects, holds and heals faults until `until`; everything is healed when it returns.
    pub fn run(&mut self, cluster: &mut Cluster, rt: &tokio::runtime::Runtime, until: Instant) {
        if self.kinds.is_empty() {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            return;
        }
        while Instant::now() < until {
            let kind = *self.rng.pick(&self.kinds).unwrap_or(&FaultKind::Compact);
            match self.inject(kind, cluster, rt) {
                Ok(()) => *self.injected.entry(kind).or_default() += 1,
                Err(e) => {
                    *self.refused.entry(kind).or_default() += 1;
                    self.note(format!("{kind}: not injected: {e}"));
                }
            }
            let hold = self.rng.between(self.pacing.hold_ms.0, self.pacing.hold_ms.1);
            std::thread::sleep(
                Duration::from_millis(hold)
                    .min(until.saturating_duration_since(Instant::now()) + Duration::from_millis(200)),
            );
            self.heal_all(cluster);
            let quiet = self.rng.between(self.pacing.quiet_ms.0, self.pacing.quiet_ms.1);
            std::thread::sleep(Duration::from_millis(quiet));
        }
    }

    /// A random running member other than `not`.
    fn some_member(&mut self, cluster: &mut Cluster, not: Option<usize>) -> Option<usize> {
        let running: Vec<usize> = cluster.running().into_iter().filter(|&i| Some(i) != not).collect();
        self.rng.pick(&running).copied()
    }

    /// The leader, asked a few times (it may be moving).
    fn leader(cluster: &mut Cluster) -> Option<usize> {
        for _ in 0..20 {
            if let Some(l) = cluster.leader() {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        None
    }

    fn inject(&mut self, kind: FaultKind, cluster: &mut Cluster, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        match kind {
            FaultKind::Kill | FaultKind::KillLeader | FaultKind::Pause | FaultKind::PauseLeader => {
                let leader = matches!(kind, FaultKind::KillLeader | FaultKind::PauseLeader);
                let target = if leader { Self::leader(cluster) } else { self.some_member(cluster, None) }
                    .ok_or("no leader agreed on")?;
                if matches!(kind, FaultKind::Kill | FaultKind::KillLeader) {
                    cluster.kill9(target);
                    self.active = Active::Killed(target);
                } else {
                    cluster.pause(target);
                    self.active = Active::Paused(target);
                }
                self.note(format!("{kind}: member {target}"));
            }
            FaultKind::PartitionMinority | FaultKind::PartitionLeader | FaultKind::PartitionBridge => {
                let n = cluster.size();
                let mut order: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut order);
                let (a, b): (Vec<usize>, Vec<usize>) = match kind {
                    FaultKind::PartitionMinority => {
                        let k = self.rng.between(1, ((n - 1) / 2).max(1) as u64) as usize;
                        (order[..k].to_vec(), order[k..].to_vec())
                    }
                    FaultKind::PartitionLeader => {
                        let l = Self::leader(cluster).ok_or("no leader agreed on")?;
                        (vec![l], (0..n).filter(|&i| i != l).collect())
                    }
                    _ => {
                        // order[0] is the bridge; the rest in two halves that cannot talk.
                        let rest = &order[1..];
                        let half = rest.len() / 2;
                        (rest[..half].to_vec(), rest[half..].to_vec())
                    }
                };
                let p = self.partitioner.as_ref().ok_or("no partitioner")?;
                p.split(&a, &b)?;
                self.active = Active::Partitioned;
                let bridge =
                    if kind == FaultKind::PartitionBridge { format!(", bridge {}", order[0]) } else { String::new() };
                self.note(format!("{kind}: {a:?} | {b:?}{bridge}"));
            }
            FaultKind::MoveLeader => {
                let l = Self::leader(cluster).ok_or("no leader agreed on")?;
                let to = self.some_member(cluster, Some(l)).ok_or("no other member")?;
                let to_id = cluster.status(to)?.member_id;
                rt.block_on(async {
                    let mut c = cluster.client(l, Duration::from_secs(5)).await;
                    c.move_leader(to_id).await.map_err(|e| e.to_string())
                })?;
                self.note(format!("{kind}: {l} -> {to}"));
            }
            FaultKind::GuestSwap => {
                let d = cluster.deploy(&self.v2_guest, false)?;
                self.active = Active::Swapped;
                self.note(format!("{kind}: {} {} since index {}", d.name, d.version, d.since_index));
            }
            FaultKind::Compact => {
                let via = self.some_member(cluster, None).ok_or("no running member")?;
                let back = self.rng.between(0, 30) as i64;
                let rev = rt.block_on(async {
                    let mut c = cluster.client(via, Duration::from_secs(5)).await;
                    let now = c.get("nemesis/", None).await.map_err(|e| e.to_string())?;
                    let current = now.header().map_or(1, |h| h.revision());
                    let rev = (current - back).max(1);
                    Ok::<i64, String>(rev)
                })?;
                // Counted before the answer: a compaction that timed out may still happen.
                self.max_compaction = self.max_compaction.max(rev);
                rt.block_on(async {
                    let mut c = cluster.client(via, Duration::from_secs(5)).await;
                    c.compact(rev, None).await.map_err(|e| e.to_string())
                })?;
                self.note(format!("{kind}: at revision {rev} via member {via}"));
            }
        }
        Ok(())
    }

    /// Ends the active fault (restart, resume, heal the cuts, roll the guest back).
    pub fn heal_all(&mut self, cluster: &mut Cluster) {
        match std::mem::replace(&mut self.active, Active::None) {
            Active::None => {}
            Active::Killed(i) => {
                cluster.restart(i);
                self.note(format!("healed: member {i} restarted"));
            }
            Active::Paused(i) => {
                cluster.resume(i);
                self.note(format!("healed: member {i} resumed"));
            }
            Active::Partitioned => {
                let r = self.partitioner.as_ref().map(|p| p.heal());
                self.note(format!("healed: partition ({r:?})"));
            }
            Active::Swapped => {
                // The rollback is retried: a swap's heal must not be lost to one timeout.
                let mut last = String::new();
                for _ in 0..5 {
                    match cluster.rollback(KV_V1_VERSION) {
                        Ok(d) => {
                            self.note(format!("healed: rolled back to {} {}", d.name, d.version));
                            return;
                        }
                        Err(e) => last = e,
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                self.note(format!("heal of guest-swap failed: {last}"));
            }
        }
    }
}
