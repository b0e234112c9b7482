//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`): etcd 3.4's
//! `v3compactor`, which compacts the MVCC history behind the member's back so that a cluster
//! nobody compacts does not grow without bound.
//!
//! One mode per file, as etcd has them: [`periodic`] keeps a time window of history, [`revision`]
//! a number of revisions. This file holds what both share: the flags' parsing ([`Policy`], with
//! etcd's rules and startup errors), the running task ([`Compactor`]) and how it reaches the
//! member ([`Target`]): the store's revision read locally, leadership, and the compaction itself
//! proposed through the log exactly as a client's `Compact` RPC is (`kv.rs`), so every member
//! compacts at the same index.
//!
//! Every member runs the loop — the periodic mode samples revisions on followers too, as etcd's
//! does — but only the leader compacts: etcd pauses its compactor when the member loses
//! leadership and resumes it when it wins, and checks the pause when a tick fires; here the tick
//! asks whether this member leads, which is the same moment.

mod periodic;
mod revision;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmraft_node::NodeHandle;
use wasmraft_proto::etcdserverpb::{CompactionRequest, CompactionResponse, InternalRaftRequest};
use wasmraft_proto::go;

use crate::authz::Caller;
use crate::{Api, ApiLimits, errors};

/// etcd's `ModePeriodic` / `ModeRevision`, the values `--auto-compaction-mode` takes.
pub const MODE_PERIODIC: &str = "periodic";
pub const MODE_REVISION: &str = "revision";

/// etcd's `revInterval`: how often the revision mode compacts.
pub const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// What to keep, from `--auto-compaction-mode` and `--auto-compaction-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Keep this much time of history (etcd's periodic compactor).
    Periodic(Duration),
    /// Keep this many revisions; compact every `interval` (etcd: [`REVISION_INTERVAL`]).
    Revision { retention: i64, interval: Duration },
}

/// Why the flags do not make a policy: etcd's startup errors, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// etcd's `Config.Validate`.
    #[error("unknown auto-compaction-mode {0:?}")]
    UnknownMode(String),
    /// etcd's `parseCompactionRetention` (the text after the prefix is Go's `time.ParseDuration`
    /// error).
    #[error("error parsing CompactionRetention: {0}")]
    Retention(String),
}

impl Policy {
    /// etcd's rules: the mode is `periodic` or `revision`; a retention that is a whole number is
    /// hours in periodic mode and revisions in revision mode, anything else a Go duration (in
    /// revision mode too, where etcd then keeps that many nanoseconds' worth of revisions); 0
    /// disables auto-compaction (None).
    ///
    /// One refusal etcd does not make: a negative duration (`-1h`), which etcd accepts and then
    /// compacts in a busy loop.
    pub fn parse(mode: &str, retention: &str) -> Result<Option<Policy>, PolicyError> {
        if mode != MODE_PERIODIC && mode != MODE_REVISION {
            return Err(PolicyError::UnknownMode(mode.to_string()));
        }
        // etcd: an empty retention is "0".
        let retention = if retention.is_empty() { "0" } else { retention };
        let policy = match parse_go_int(retention) {
            Some(n) if n >= 0 => {
                if mode == MODE_REVISION {
                    Policy::Revision { retention: n, interval: REVISION_INTERVAL }
                } else {
                    let hours = u64::try_from(n).unwrap_or(0);
                    let d = hours
                        .checked_mul(3600)
                        .map(Duration::from_secs)
                        .ok_or_else(|| PolicyError::Retention(format!("{retention} hours is out of range")))?;
                    Policy::Periodic(d)
                }
            }
            // Go's time.ParseDuration says so for a bare negative number.
            Some(_) => {
                return Err(PolicyError::Retention(format!("time: missing unit in duration {retention:?}")));
            }
            None => {
                let (negative, magnitude) = match retention.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, retention),
                };
                let d = go::parse_duration(magnitude).map_err(|e| {
                    PolicyError::Retention(e.replace(&format!("{magnitude:?}"), &format!("{retention:?}")))
                })?;
                if negative && !d.is_zero() {
                    return Err(PolicyError::Retention(format!(
                        "wasmraft refuses a negative retention {retention:?} (etcd would compact without pause)"
                    )));
                }
                if mode == MODE_REVISION {
                    Policy::Revision {
                        retention: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
                        interval: REVISION_INTERVAL,
                    }
                } else {
                    Policy::Periodic(d)
                }
            }
        };
        let disabled = match policy {
            Policy::Periodic(d) => d.is_zero(),
            Policy::Revision { retention, .. } => retention == 0,
        };
        Ok((!disabled).then_some(policy))
    }

    /// The revision mode's interval changed (tests: a process cannot wait etcd's 5 minutes).
    pub fn with_revision_interval(self, every: Duration) -> Policy {
        match self {
            Policy::Revision { retention, .. } => Policy::Revision { retention, interval: every },
            other => other,
        }
    }

    /// etcd's `AutoCompactionMode`.
    pub fn mode(&self) -> &'static str {
        match self {
            Policy::Periodic(_) => MODE_PERIODIC,
            Policy::Revision { .. } => MODE_REVISION,
        }
    }
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits, nothing else.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A running auto-compactor. Stops when dropped.
pub struct Compactor {
    task: tokio::task::JoinHandle<()>,
}

impl Compactor {
    /// Starts compacting `node`'s keyspace by `policy` (etcd starts its compactor with the
    /// server, before it serves clients). `limits` are the client API's: the compaction is
    /// proposed as a client's would be, --max-request-bytes included.
    pub fn start(node: NodeHandle, limits: ApiLimits, policy: Policy) -> Compactor {
        let target = NodeTarget { api: Arc::new(Api::new(node, limits)) };
        Compactor::start_on(target, policy)
    }

    fn start_on<T: Target>(target: T, policy: Policy) -> Compactor {
        let task = match policy {
            Policy::Periodic(period) => tokio::spawn(periodic::run(target, period)),
            Policy::Revision { retention, interval } => tokio::spawn(revision::run(target, retention, interval)),
        };
        Compactor { task }
    }

    /// etcd's `Compactor.Stop`.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a compaction attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Compacted {
    /// Done, or the revision was compacted already (etcd counts `ErrCompacted` as success).
    Done,
    /// Refused or failed, with the error's text: retried at the next tick.
    Failed(String),
}

/// What the compactor needs of the member (etcd's `RevGetter` and `Compactable`, and its
/// leadership), so the loops run against a fake in unit tests.
trait Target: Send + Sync + 'static {
    /// The store's current revision on this member (etcd's `kv.Rev()`).
    fn rev(&self) -> impl Future<Output = i64> + Send;
    /// Whether this member leads (etcd resumes the compactor on the leader only).
    fn is_leader(&self) -> bool;
    /// Compacts to `revision` through the log.
    fn compact(&self, revision: i64) -> impl Future<Output = Compacted> + Send;
}

/// The member behind the client API.
struct NodeTarget {
    api: Arc<Api>,
}

impl Target for NodeTarget {
    async fn rev(&self) -> i64 {
        self.api.current_revision().await
    }

    fn is_leader(&self) -> bool {
        self.api.node.status().leader() == self.api.node.member_id()
    }

    /// The Compact RPC's own path (`kv.rs`): as the member itself (etcd's compactor calls
    /// `EtcdServer.Compact` with no user), through the log, answered once applied.
    async fn compact(&self, revision: i64) -> Compacted {
        if let Err(status) = self.api.require_kv_guest() {
            return Compacted::Failed(status.message().to_string());
        }
        let request = InternalRaftRequest {
            compaction: Some(CompactionRequest { revision, physical: false }),
            ..Default::default()
        };
        match self.api.propose::<CompactionResponse>(&Caller::system(), request, "CompactionResponse").await {
            Ok(_) => Compacted::Done,
            Err(status) if status.message() == errors::COMPACTED.message => Compacted::Done,
            Err(status) => Compacted::Failed(status.message().to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
