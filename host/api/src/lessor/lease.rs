//! One lease's deadline, as the lessor tracks it (etcd's `lease.Lease` minus the item set,
//! which the guest keeps).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lease {
    /// The granted TTL (seconds), after the minimum was applied.
    pub ttl: i64,
    /// The remaining TTL the last checkpoint recorded (0: none), which a promotion starts from.
    pub remaining_ttl: i64,
    /// When the lease runs out; `None` ("forever", etcd's zero time) unless this lessor is
    /// primary.
    pub expiry: Option<Instant>,
    /// While an expired lease's revoke is in flight: when to propose it again.
    pub revoke_retry: Option<Instant>,
    /// With lease checkpoints, on the primary: when its remaining TTL is next checkpointed.
    pub checkpoint_at: Option<Instant>,
}

impl Lease {
    pub fn new(ttl: i64, remaining_ttl: i64) -> Self {
        Lease { ttl, remaining_ttl, expiry: None, revoke_retry: None, checkpoint_at: None }
    }

    /// etcd's `RemainingTTL`: the checkpointed remainder if there is one, else the TTL.
    pub fn remaining_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 { self.remaining_ttl } else { self.ttl }
    }

    /// etcd's `refresh(extend)`: the deadline is now + remaining TTL + `extend`.
    pub fn refresh(&mut self, now: Instant, extend: Duration) {
        let secs = Duration::from_secs(self.remaining_ttl().max(0) as u64);
        self.expiry = now.checked_add(secs + extend);
        self.revoke_retry = None;
    }

    /// A keep-alive: the full TTL again, and any checkpointed remainder is spent.
    pub fn renew(&mut self, now: Instant) {
        self.remaining_ttl = 0;
        self.refresh(now, Duration::ZERO);
    }

    /// etcd's `scheduleCheckpointIfNeeded`: a lease with more than `interval` to go is
    /// checkpointed `interval` from now (a shorter one would expire before it mattered).
    pub fn schedule_checkpoint(&mut self, now: Instant, interval: Duration) {
        if self.remaining_ttl() > interval.as_secs() as i64 {
            self.checkpoint_at = now.checked_add(interval);
        }
    }

    /// etcd's `findDueScheduledCheckpoints` for this lease: once its checkpoint is due, the
    /// remaining TTL to record (whole seconds, rounded up), unless it has expired or has its
    /// whole TTL left (nothing a checkpoint would change).
    pub fn take_due_checkpoint(&mut self, now: Instant) -> Option<i64> {
        if self.checkpoint_at.is_none_or(|at| at > now) {
            return None;
        }
        self.checkpoint_at = None;
        let left = self.expiry?.checked_duration_since(now).filter(|d| !d.is_zero())?;
        let remaining = left.as_secs_f64().ceil() as i64;
        (remaining < self.ttl).then_some(remaining)
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    /// Time left; `None` when no deadline is tracked.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expiry.map(|e| e.saturating_duration_since(now))
    }

    /// Whole seconds left, truncated toward zero and negative once past the deadline, as etcd's
    /// `int64(Remaining().Seconds())`.
    pub fn remaining_secs(&self, now: Instant) -> Option<i64> {
        self.expiry.map(|e| if e >= now { (e - now).as_secs() as i64 } else { -((now - e).as_secs() as i64) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_ttl_checkpoints_and_renewals() {
        let now = Instant::now();
        let mut l = Lease::new(10, 4);
        assert_eq!((l.expired(now), l.remaining_secs(now)), (false, None));
        l.refresh(now, Duration::from_secs(1));
        assert_eq!(l.remaining_secs(now), Some(5));
        l.renew(now);
        assert_eq!(l.remaining_secs(now), Some(10));
        assert!(l.expired(now + Duration::from_secs(10)));
        assert_eq!(l.remaining_secs(now + Duration::from_millis(11_500)), Some(-1));
    }

    #[test]
    fn checkpoints_record_the_time_left_as_etcds_lessor_does() {
        let now = Instant::now();
        let every = Duration::from_secs(2);
        let mut l = Lease::new(60, 0);
        l.refresh(now, Duration::ZERO);
        l.schedule_checkpoint(now, every);
        assert_eq!(l.take_due_checkpoint(now + Duration::from_secs(1)), None, "not due yet");
        // 60 s granted, 2.5 s gone: 57.5 s left, recorded as 58.
        assert_eq!(l.take_due_checkpoint(now + Duration::from_millis(2500)), Some(58));
        assert_eq!(l.take_due_checkpoint(now + Duration::from_secs(5)), None, "taken once");
        // A lease with no more than the interval to go is not scheduled.
        let mut short = Lease::new(2, 0);
        short.schedule_checkpoint(now, every);
        assert_eq!(short.checkpoint_at, None);
        // A promotion starts from the checkpointed remainder.
        let mut promoted = Lease::new(60, 58);
        promoted.refresh(now, Duration::from_secs(1));
        assert_eq!(promoted.remaining_secs(now), Some(59));
    }
}
