//! etcd 3.4's revision compactor (`v3compactor/revision.go`): keep `retention` revisions.
//!
//! Every `interval` (etcd: 5 minutes) the leader compacts to the current revision minus the
//! retention, unless that is not positive or is where the last success already compacted to. A
//! failure is retried at the next interval.

use std::time::Duration;

use wasmraft_proto::go;

use super::{Compacted, Target};

pub(super) async fn run<T: Target>(target: T, retention: i64, interval: Duration) {
    tracing::info!(
        "compactor: revision auto-compaction keeping {retention} revisions, every {}",
        go::format_duration(interval)
    );
    let mut prev = 0;
    loop {
        tokio::time::sleep(interval).await;
        if !target.is_leader() {
            continue;
        }
        let rev = target.rev().await.saturating_sub(retention);
        if rev <= 0 || rev == prev {
            continue;
        }
        tracing::info!("compactor: Starting auto-compaction at revision {rev} (retention: {retention} revisions)");
        match target.compact(rev).await {
            Compacted::Done => {
                prev = rev;
                tracing::info!("compactor: Finished auto-compaction at revision {rev}");
            }
            Compacted::Failed(e) => {
                tracing::info!("compactor: Failed auto-compaction at revision {rev} ({e})");
                tracing::info!("compactor: Retry after {}", go::format_duration(interval));
            }
        }
    }
}
