//! The lessor's clock: etcd's `lease/lessor.go` without the parts that are state.
//!
//! What a lease is (id, granted TTL, checkpointed remaining TTL, attached keys) is replicated
//! state, kept by the KV guest. What this module keeps is *when* each lease expires, which only
//! makes sense on one member at a time: as in etcd, every member knows every lease (it follows
//! the applied grants and revokes, [`observer`]), but only the leader's lessor is *primary* —
//! tracks deadlines, answers keep-alives and proposes a revoke for each lease that runs out
//! ([`primary`]). A follower's leases never expire; a member that becomes leader first applies
//! everything of the old terms, then gives every lease its remaining TTL plus an election
//! timeout (etcd's `Promote`), so a leader change never ends a lease early.
//!
//! One concept per file: [`lease`] (a lease's deadline), [`observer`] (following the log, and
//! reloading the set from the guest at start and after a snapshot), [`primary`] (promotion,
//! demotion and expiry).

mod lease;
mod observer;
mod primary;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use lease::Lease;
use observer::Change;
use wasmraft_node::{NodeHandle, WeakNodeHandle};

/// The lessor's timing, from the member's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LessorConfig {
    /// etcd's `minLeaseTTL` (seconds): shorter grants are lengthened to it, so that a lease
    /// cannot expire within the time an election may take.
    pub min_ttl: i64,
    /// What a new primary adds to every lease's remaining TTL (etcd: the election timeout).
    pub promote_extension: Duration,
    /// How long an expired lease waits before its revoke is proposed again, should the first
    /// not have been applied (etcd: the request timeout).
    pub revoke_retry: Duration,
    /// `--experimental-enable-lease-checkpoint`: how often the primary records each lease's
    /// remaining TTL through the log, so a new leader does not give it its whole TTL again
    /// (None: never, etcd's default).
    pub checkpoint_interval: Option<Duration>,
}

/// etcd's `defaultLeaseCheckpointInterval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5 * 60);

impl LessorConfig {
    /// etcd's derivation (`etcdserver.NewServer`): the minimum TTL is one and a half election
    /// timeouts, counted in heartbeats and rounded up to whole seconds.
    pub fn new(heartbeat: Duration, election: Duration, request_timeout: Duration) -> Self {
        let ticks = (election.as_millis() / heartbeat.as_millis().max(1)) as u32;
        let min = heartbeat * ((3 * ticks) / 2);
        LessorConfig {
            min_ttl: min.as_secs_f64().ceil() as i64,
            promote_extension: election,
            revoke_retry: request_timeout,
            checkpoint_interval: None,
        }
    }

    /// With etcd's lease checkpoints every `interval` (0: etcd's default, 5 minutes).
    pub fn with_checkpoints(self, interval: Duration) -> Self {
        let interval = if interval.is_zero() { DEFAULT_CHECKPOINT_INTERVAL } else { interval };
        LessorConfig { checkpoint_interval: Some(interval), ..self }
    }
}

/// Why a keep-alive was not answered with a TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// The lease is not granted, or it expired and was revoked.
    NotFound,
    /// This member's lessor is not primary (not the leader, or not yet promoted).
    NotPrimary,
}

/// A lease as TimeToLive reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTtl {
    pub granted: i64,
    /// Seconds left, truncated as etcd truncates (`int64(Remaining().Seconds())`); `None` when
    /// this lessor tracks no deadline (not primary).
    pub remaining: Option<i64>,
}

pub struct Lessor {
    node: WeakNodeHandle,
    cfg: LessorConfig,
    state: Mutex<State>,
    /// Wakes those waiting for a lease to be revoked or for this lessor to become primary.
    changed: Notify,
    /// Asks the reload task to read the lease table from the guest again.
    reload: Notify,
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, Lease>,
    /// The raft term this lessor was promoted in, while it is primary.
    primary: Option<u64>,
    /// Changes applied since a reload of the table began, to replay on the table read (which
    /// may or may not include them); `None` when no reload is under way.
    journal: Option<Vec<Change>>,
    /// The lease set has been loaded from the guest at least once.
    loaded: bool,
    /// [`LessorConfig::checkpoint_interval`].
    checkpoint_interval: Option<Duration>,
}

impl Lessor {
    /// Starts the lessor of `node`: it follows the log from now on, loads the lease table from
    /// the guest, and runs its clock until the member stops. Must be called within a tokio
    /// runtime.
    pub fn start(node: &NodeHandle, cfg: LessorConfig) -> Arc<Lessor> {
        let lessor = Arc::new(Lessor {
            node: node.downgrade(),
            cfg,
            state: Mutex::new(State { checkpoint_interval: cfg.checkpoint_interval, ..State::default() }),
            changed: Notify::new(),
            reload: Notify::new(),
        });
        node.observe(Arc::new(observer::LeaseObserver::new(&lessor)));
        lessor.request_reload();
        tokio::spawn(observer::reload_task(Arc::downgrade(&lessor)));
        tokio::spawn(primary::clock_task(Arc::downgrade(&lessor)));
        lessor
    }

    pub fn config(&self) -> LessorConfig {
        self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self) -> Option<NodeHandle> {
        self.node.upgrade()
    }

    /// The TTL a grant asking for `ttl` gets: at least the minimum (etcd clamps the same way,
    /// negative TTLs included).
    pub fn clamp_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.cfg.min_ttl)
    }

    /// Whether this member's lessor is primary now.
    pub fn is_primary(&self) -> bool {
        self.lock().primary.is_some()
    }

    /// etcd's `Renew`: restarts the lease's deadline and returns its TTL. An expired lease that
    /// is waiting for its revoke is not renewed: the call waits for the revoke (then
    /// `NotFound`) or for this lessor to lose primacy (then `NotPrimary`, and the caller tries
    /// the new leader).
    pub async fn renew(&self, id: i64) -> Result<i64, RenewError> {
        loop {
            let wait = self.changed.notified();
            {
                let mut st = self.lock();
                if st.primary.is_none() {
                    return Err(RenewError::NotPrimary);
                }
                let checkpoints = st.checkpoint_interval.is_some();
                let lease = st.leases.get_mut(&id).ok_or(RenewError::NotFound)?;
                let now = Instant::now();
                if !lease.expired(now) {
                    // etcd 3.4.23's Renew: a checkpointed remainder is cleared on every member
                    // too, or a new leader would cut the renewed lease short.
                    if checkpoints && lease.remaining_ttl > 0 {
                        self.clear_checkpoint(id);
                    }
                    lease.renew(now);
                    return Ok(lease.ttl);
                }
            }
            // Expired: its revoke is in flight (or will be retried); a revoke or a demotion
            // wakes us, the timeout only guards against a lost wakeup.
            let _ = tokio::time::timeout(self.cfg.revoke_retry, wait).await;
        }
    }

    /// The lease's granted TTL and time left, if this lessor knows it.
    pub fn time_to_live(&self, id: i64) -> Option<LeaseTtl> {
        let st = self.lock();
        let lease = st.leases.get(&id)?;
        Some(LeaseTtl { granted: lease.ttl, remaining: lease.remaining_secs(Instant::now()) })
    }

    /// Every lease this member knows, soonest deadline first (etcd's `Leases`), then by id.
    pub fn leases(&self) -> Vec<i64> {
        let st = self.lock();
        let now = Instant::now();
        let mut all: Vec<(Duration, i64)> =
            st.leases.iter().map(|(id, l)| (l.remaining(now).unwrap_or(Duration::MAX), *id)).collect();
        all.sort();
        all.into_iter().map(|(_, id)| id).collect()
    }

    /// Waits until this lessor is primary, for at most `timeout`; false if it did not become so
    /// (a member that just won an election promotes once it has applied the old terms).
    pub async fn wait_primary(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let wait = self.changed.notified();
            if self.is_primary() {
                return true;
            }
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                return self.is_primary();
            }
        }
    }
}
