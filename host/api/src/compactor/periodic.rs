//! etcd 3.4's periodic compactor (`v3compactor/periodic.go`): keep `period` of history.
//!
//! It samples the store's revision every tenth of the compaction interval (the period, at most
//! an hour) and keeps the samples of one period, so the oldest is the revision the store had a
//! period ago. Nothing is compacted during the first period; then, once the last success is an
//! interval old, it compacts to that oldest sample: for `--auto-compaction-retention=2s`, every
//! 2 s to the revision of 2 s before, and for `72h`, every hour to the revision of 72 h before.
//! A failure is retried at the next sample. So a tenth of the interval is how often it samples
//! and retries, not how often it compacts.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use wasmraft_proto::go;

use super::{Compacted, Target};

/// etcd's cap on the compaction interval.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// etcd's `retryDivisor`: samples per interval.
const RETRY_DIVISOR: u32 = 10;
/// Below etcd's smallest useful sample interval; only guards a nanosecond retention from a
/// division by zero (etcd panics there) and a busy loop.
const MIN_RETRY: Duration = Duration::from_millis(1);

pub(super) async fn run<T: Target>(target: T, period: Duration) {
    let compact_interval = period.min(MAX_INTERVAL);
    let retry_interval = (compact_interval / RETRY_DIVISOR).max(MIN_RETRY);
    let retentions = usize::try_from(period.as_nanos() / retry_interval.as_nanos()).unwrap_or(usize::MAX - 1) + 1;
    let shown = go::format_duration(period);
    tracing::info!(
        "compactor: periodic auto-compaction with a retention of {shown}: compacting every {}",
        go::format_duration(compact_interval)
    );
    let mut revs: VecDeque<i64> = VecDeque::new();
    let mut last_success = Instant::now();
    let mut base_interval = period;
    loop {
        revs.push_back(target.rev().await);
        if revs.len() > retentions {
            // revs[0] is always the revision of one period ago.
            revs.pop_front();
        }
        tokio::time::sleep(retry_interval).await;
        if !target.is_leader() {
            continue;
        }
        if last_success.elapsed() < base_interval {
            continue;
        }
        // The first compaction waits a whole period; the next ones an interval each.
        if base_interval == period {
            base_interval = compact_interval;
        }
        let Some(&rev) = revs.front() else { continue };
        tracing::info!("compactor: Starting auto-compaction at revision {rev} (retention: {shown})");
        match target.compact(rev).await {
            Compacted::Done => {
                tracing::info!("compactor: Finished auto-compaction at revision {rev}");
                last_success = Instant::now();
            }
            Compacted::Failed(e) => {
                tracing::info!("compactor: Failed auto-compaction at revision {rev} ({e})");
                tracing::info!("compactor: Retry after {}", go::format_duration(retry_interval));
            }
        }
    }
}
