//! Disk faults on command: an errno for writes or fsyncs of matching paths once a budget of
//! bytes or operations is spent, and fsyncs that take seconds.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    Write,
    Fsync,
}

#[derive(Clone, Debug)]
pub struct FaultRule {
    pub op: FaultOp,
    pub errno: i32,
    /// A substring of the path inside the mount (`/member/wal/` matches every WAL segment).
    pub pattern: String,
    /// Matching bytes (writes) let through before the fault starts.
    pub after_bytes: u64,
    /// Matching operations let through before the fault starts.
    pub after_ops: u64,
    seen_bytes: u64,
    seen_ops: u64,
    pub hits: u64,
}

#[derive(Clone, Debug)]
pub struct SlowRule {
    pub pattern: String,
    pub delay: Duration,
}

#[derive(Debug, Default)]
pub struct Faults {
    pub rules: Vec<FaultRule>,
    pub slow: Vec<SlowRule>,
}

impl FaultRule {
    pub fn new(op: FaultOp, errno: i32, pattern: String, after_bytes: u64, after_ops: u64) -> Self {
        FaultRule { op, errno, pattern, after_bytes, after_ops, seen_bytes: 0, seen_ops: 0, hits: 0 }
    }
}

impl Faults {
    /// The errno an operation on `path` of `len` bytes fails with, if a rule says so; otherwise
    /// the operation counts against every matching rule's budget.
    pub fn check(&mut self, op: FaultOp, path: &str, len: u64) -> Option<i32> {
        let mut failed = None;
        for r in self.rules.iter_mut().filter(|r| r.op == op && path.contains(&r.pattern)) {
            let bytes_spent = r.op == FaultOp::Fsync || r.seen_bytes + len > r.after_bytes;
            if failed.is_none() && r.seen_ops >= r.after_ops && bytes_spent {
                r.hits += 1;
                failed = Some(r.errno);
            }
        }
        if failed.is_none() {
            for r in self.rules.iter_mut().filter(|r| r.op == op && path.contains(&r.pattern)) {
                r.seen_ops += 1;
                r.seen_bytes += len;
            }
        }
        failed
    }

    pub fn fsync_delay(&self, path: &str) -> Option<Duration> {
        self.slow.iter().filter(|s| path.contains(&s.pattern)).map(|s| s.delay).max()
    }

    pub fn hits(&self) -> u64 {
        self.rules.iter().map(|r| r.hits).sum()
    }
}
