//! The nemesis of a fault run: from a seed, a schedule of faults injected into a running cluster
//! while the clients and watchers work — each held for a while, then healed, then a quiet spell
//! — until the run's time is up; [`Nemesis::heal_all`] ends whatever is still active. Some
//! faults overlap ([`Pacing::overlap_percent`]): a second one, a kill or a pause of a random
//! member, is injected while the first is held, and both are healed together.
//!
//! | fault | injected | healed |
//! |---|---|---|
//! | `kill` / `kill-leader` | kill -9 of a random member / of the leader | restart on the same data dir |
//! | `kill-all` | kill -9 of every member, one right after the other | all restarted together |
//! | `pause` / `pause-leader` | SIGSTOP | SIGCONT |
//! | `partition-minority` | a random minority cut off from the majority (both ways) | cuts removed |
//! | `partition-leader` | the leader alone on one side | cuts removed |
//! | `partition-bridge` | two halves that cannot talk, one member talking to both | cuts removed |
//! | `blackhole-minority` | a random minority's traffic with the majority silently dropped, both ways | rules removed |
//! | `one-way-from-leader` | the leader's messages to every follower dropped (it still hears them) | rules removed |
//! | `one-way-to-leader` | every follower's messages to the leader dropped (they still hear it) | rules removed |
//! | `delay-leader` | the leader's messages to every follower held back 50–1500 ms | rules removed |
//! | `delay-member` | a random member's traffic with every other held back 20–400 ms, both ways | rules removed |
//! | `move-leader` | Maintenance.MoveLeader to a random follower | (instant) |
//! | `guest-swap` | `wasmraft guest deploy` of kv-v2 | rollback to the bundled KV guest |
//! | `compact` | KV Compact at a recent revision | (instant; irreversible) |
//!
//! Network faults and guest swaps are wasmraft's (the transport's fault hook, the guest admin
//! API): against real etcd the nemesis leaves them out.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::partition::{Link, Partitioner};
use crate::prng::Prng;
use crate::{Cluster, Flavor};

/// The bundled KV guest's version (what a swap rolls back to).
pub const KV_V1_VERSION: &str = "0.1.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    KillLeader,
    KillAll,
    Pause,
    PauseLeader,
    PartitionMinority,
    PartitionLeader,
    PartitionBridge,
    BlackholeMinority,
    OneWayFromLeader,
    OneWayToLeader,
    DelayLeader,
    DelayMember,
    MoveLeader,
    GuestSwap,
    Compact,
}

impl FaultKind {
    pub const ALL: [FaultKind; 16] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::KillAll,
        FaultKind::Pause,
        FaultKind::PauseLeader,
        FaultKind::PartitionMinority,
        FaultKind::PartitionLeader,
        FaultKind::PartitionBridge,
        FaultKind::BlackholeMinority,
        FaultKind::OneWayFromLeader,
        FaultKind::OneWayToLeader,
        FaultKind::DelayLeader,
        FaultKind::DelayMember,
        FaultKind::MoveLeader,
        FaultKind::GuestSwap,
        FaultKind::Compact,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillAll => "kill-all",
            FaultKind::Pause => "pause",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::PartitionBridge => "partition-bridge",
            FaultKind::BlackholeMinority => "blackhole-minority",
            FaultKind::OneWayFromLeader => "one-way-from-leader",
            FaultKind::OneWayToLeader => "one-way-to-leader",
            FaultKind::DelayLeader => "delay-leader",
            FaultKind::DelayMember => "delay-member",
            FaultKind::MoveLeader => "move-leader",
            FaultKind::GuestSwap => "guest-swap",
            FaultKind::Compact => "compact",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether it is made through the transport's fault hook.
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::PartitionMinority
                | FaultKind::PartitionLeader
                | FaultKind::PartitionBridge
                | FaultKind::BlackholeMinority
                | FaultKind::OneWayFromLeader
                | FaultKind::OneWayToLeader
                | FaultKind::DelayLeader
                | FaultKind::DelayMember
        )
    }

    /// Whether it means anything for a cluster of `members`: a lone member has no network and
    /// no one to hand leadership to.
    pub fn applies_to(self, members: usize) -> bool {
        members > 1 || !(self.is_network() || self == FaultKind::MoveLeader)
    }

    /// Whether `flavor` supports it (network faults need the transport hook, swaps wasmraft's
    /// guests).
    pub fn supported_by(self, flavor: Flavor) -> bool {
        flavor == Flavor::Wasmraft || !(self.is_network() || self == FaultKind::GuestSwap)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault being held.
enum Active {
    Killed(usize),
    /// Every member killed: they restart together (none is ready before a quorum is back).
    KilledAll(Vec<usize>),
    Paused(usize),
    Partitioned,
    Swapped,
}

/// How long faults last, and how often two overlap.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// A fault is held for a time in this range (ms).
    pub hold_ms: (u64, u64),
    /// Then everything is quiet for a time in this range (ms).
    pub quiet_ms: (u64, u64),
    /// Of the injected faults, this many in a hundred get a second one (a kill or a pause of a
    /// random running member) while they are held.
    pub overlap_percent: u64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing { hold_ms: (1000, 4000), quiet_ms: (500, 2000), overlap_percent: 20 }
    }
}

pub struct Nemesis {
    rng: Prng,
    kinds: Vec<FaultKind>,
    pacing: Pacing,
    partitioner: Option<Partitioner>,
    /// The kv-v2 component (guest swaps).
    v2_guest: std::path::PathBuf,
    /// What is held now.
    active: Vec<Active>,
    /// Faults injected, by kind (attempts that the cluster refused are counted in `refused`).
    pub injected: BTreeMap<FaultKind, u64>,
    pub refused: BTreeMap<FaultKind, u64>,
    /// Faults injected while another was held (also counted in `injected`).
    pub overlapped: u64,
    /// The highest revision a compaction was requested at.
    pub max_compaction: i64,
    /// What happened, one line per step, with the time since the nemesis started.
    pub log: Vec<String>,
    started: Instant,
}

impl Nemesis {
    /// `kinds` are narrowed to what the cluster's flavor supports.
    pub fn new(cluster: &Cluster, rng: Prng, kinds: &[FaultKind], pacing: Pacing) -> Result<Nemesis, String> {
        let kinds: Vec<FaultKind> = kinds
            .iter()
            .copied()
            .filter(|k| k.supported_by(cluster.flavor()) && k.applies_to(cluster.size()))
            .collect();
        let needs_partitions = kinds.iter().any(|k| k.is_network());
        let partitioner = if needs_partitions { Some(Partitioner::new(cluster)?) } else { None };
        Ok(Nemesis {
            rng,
            kinds,
            pacing,
            partitioner,
            v2_guest: env!("WASMRAFT_TEST_KV_V2_GUEST").into(),
            active: Vec::new(),
            injected: BTreeMap::new(),
            refused: BTreeMap::new(),
            overlapped: 0,
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
            let injected = self.try_inject(kind, cluster, rt);
            // A second fault needs a running member to hit: not after kill-all, nor on a lone one.
            if injected
                && kind != FaultKind::KillAll
                && cluster.size() > 1
                && self.rng.between(1, 100) <= self.pacing.overlap_percent
            {
                let second: Vec<FaultKind> =
                    [FaultKind::Kill, FaultKind::Pause].into_iter().filter(|k| self.kinds.contains(k)).collect();
                if let Some(&second) = self.rng.pick(&second) {
                    std::thread::sleep(Duration::from_millis(self.rng.between(0, 500)));
                    if self.try_inject(second, cluster, rt) {
                        self.overlapped += 1;
                    }
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

    /// Injects `kind` and counts it as injected or refused.
    fn try_inject(&mut self, kind: FaultKind, cluster: &mut Cluster, rt: &tokio::runtime::Runtime) -> bool {
        match self.inject(kind, cluster, rt) {
            Ok(()) => {
                *self.injected.entry(kind).or_default() += 1;
                true
            }
            Err(e) => {
                *self.refused.entry(kind).or_default() += 1;
                self.note(format!("{kind}: not injected: {e}"));
                false
            }
        }
    }

    /// A random running member other than `not`.
    fn some_member(&mut self, cluster: &mut Cluster, not: Option<usize>) -> Option<usize> {
        let running: Vec<usize> = cluster.running().into_iter().filter(|&i| Some(i) != not).collect();
        self.rng.pick(&running).copied()
    }

    /// The leader, asked for up to 10 s: after a one-way partition heals, the members may take a
    /// few election rounds to agree again (a deposed leader hears of the new term only when its
    /// messages get through), and an injection refused for that counts against the run.
    fn leader(cluster: &mut Cluster) -> Option<usize> {
        for _ in 0..50 {
            if let Some(l) = cluster.leader() {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(200));
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
                    self.active.push(Active::Killed(target));
                } else {
                    cluster.pause(target);
                    self.active.push(Active::Paused(target));
                }
                self.note(format!("{kind}: member {target}"));
            }
            FaultKind::KillAll => {
                let all = cluster.running();
                if all.is_empty() {
                    return Err("no running member".into());
                }
                for &i in &all {
                    cluster.kill9(i);
                }
                self.note(format!("{kind}: members {all:?}"));
                self.active.push(Active::KilledAll(all));
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
                // Held even when some member did not take its rules: the others did.
                self.active.push(Active::Partitioned);
                p.split(&a, &b)?;
                let bridge =
                    if kind == FaultKind::PartitionBridge { format!(", bridge {}", order[0]) } else { String::new() };
                self.note(format!("{kind}: {a:?} | {b:?}{bridge}"));
            }
            FaultKind::BlackholeMinority | FaultKind::DelayMember => {
                let n = cluster.size();
                let mut order: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut order);
                let (link, k) = if kind == FaultKind::DelayMember {
                    (Link::Delay(self.rng.between(20, 400)), 1)
                } else {
                    (Link::Drop, self.rng.between(1, ((n - 1) / 2).max(1) as u64) as usize)
                };
                let (a, b) = (order[..k].to_vec(), order[k..].to_vec());
                let p = self.partitioner.as_ref().ok_or("no partitioner")?;
                self.active.push(Active::Partitioned);
                p.set_links(link, &a, &b, true)?;
                self.note(format!("{kind}: {a:?} <-{link:?}-> {b:?}"));
            }
            FaultKind::OneWayFromLeader | FaultKind::OneWayToLeader | FaultKind::DelayLeader => {
                let l = Self::leader(cluster).ok_or("no leader agreed on")?;
                let others: Vec<usize> = (0..cluster.size()).filter(|&i| i != l).collect();
                let p = self.partitioner.as_ref().ok_or("no partitioner")?;
                self.active.push(Active::Partitioned);
                match kind {
                    FaultKind::OneWayFromLeader => p.set_links(Link::Drop, &[l], &others, false)?,
                    FaultKind::OneWayToLeader => p.set_links(Link::Drop, &others, &[l], false)?,
                    _ => p.set_links(Link::Delay(self.rng.between(50, 1500)), &[l], &others, false)?,
                }
                self.note(format!("{kind}: leader {l}"));
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
                self.active.push(Active::Swapped);
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

    /// Ends the active faults: paused members resume first (so that they answer the network's
    /// heal), then the network heals, then killed members restart (into a healed network, where
    /// they can catch up and become ready), then the guest rolls back.
    pub fn heal_all(&mut self, cluster: &mut Cluster) {
        let mut active = std::mem::take(&mut self.active);
        active.sort_by_key(|a| match a {
            Active::Paused(_) => 0,
            Active::Partitioned => 1,
            Active::Killed(_) | Active::KilledAll(_) => 2,
            Active::Swapped => 3,
        });
        for a in active {
            self.heal(a, cluster);
        }
    }

    fn heal(&mut self, active: Active, cluster: &mut Cluster) {
        match active {
            Active::Killed(i) => {
                cluster.restart(i);
                self.note(format!("healed: member {i} restarted"));
            }
            Active::KilledAll(all) => {
                for &i in &all {
                    cluster.restart_no_wait(i);
                }
                for &i in &all {
                    cluster.member_mut(i).wait_ready();
                }
                self.note(format!("healed: members {all:?} restarted"));
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
