//! What a member's core needs to know of its configuration. The binary resolves etcd's flags
//! (and later its config file) into this; the node never sees a flag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::TokenOptions;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// --name: which entry of `initial_cluster` this member is.
    pub name: String,
    pub data_dir: PathBuf,
    /// --initial-cluster: member name → peer URLs, as written (no trailing slash).
    pub initial_cluster: BTreeMap<String, Vec<String>>,
    pub initial_cluster_token: String,
    /// --initial-cluster-state existing: a new data dir joins the cluster it was added to
    /// instead of bootstrapping one.
    pub join_existing: bool,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// --quota-backend-bytes (0: etcd's default; negative: no quota).
    pub quota_backend_bytes: i64,
    pub max_request_bytes: usize,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub raft: RaftOptions,
    /// --auth-token: how tokens are made (a member's simple tokens die with it).
    pub auth_token: TokenOptions,
    pub auth_token_ttl: Duration,
    pub apply: ApplyOptions,
}

/// etcd's flags about applying entries and committing the state database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// --experimental-warning-apply-duration: a client command whose apply takes longer is
    /// logged (etcd's "took too long" warning) and counted in `etcd_server_slow_apply_total`.
    pub warning_apply_duration: Duration,
    /// --backend-batch-interval: how often the state database is made durable (fsynced) while
    /// there is something to make durable. See docs/decisions.md ("Durability of the state").
    pub durable_interval: Duration,
    /// --backend-batch-limit: the state database is made durable once this many entries were
    /// applied since it last was, even before `durable_interval`.
    pub durable_limit: u64,
}

impl ApplyOptions {
    /// etcd's `DefaultWarningApplyDuration`.
    pub const DEFAULT_WARNING_APPLY_DURATION: Duration = Duration::from_millis(100);
    /// wasmraft's default for --backend-batch-interval (etcd's bbolt: 100 ms); see
    /// docs/decisions.md for why a second.
    pub const DEFAULT_DURABLE_INTERVAL: Duration = Duration::from_secs(1);
    /// etcd's `defaultBatchLimit`, counted in applied entries.
    pub const DEFAULT_DURABLE_LIMIT: u64 = 10_000;

    /// From etcd's flags: 0 (or less) for --backend-batch-interval or --backend-batch-limit
    /// means the default, as in etcd.
    pub fn from_flags(warning_apply_duration: Duration, batch_interval: Duration, batch_limit: i64) -> Self {
        ApplyOptions {
            warning_apply_duration,
            durable_interval: if batch_interval.is_zero() { Self::DEFAULT_DURABLE_INTERVAL } else { batch_interval },
            durable_limit: u64::try_from(batch_limit).ok().filter(|l| *l > 0).unwrap_or(Self::DEFAULT_DURABLE_LIMIT),
        }
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions::from_flags(Self::DEFAULT_WARNING_APPLY_DURATION, Duration::ZERO, 0)
    }
}

/// etcd's flags about the raft log, its files and elections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftOptions {
    /// --wal-dir: the raft log in a directory of its own instead of `<data-dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// --max-snapshots: snapshot files kept in `member/snap` (0: all).
    pub max_snapshots: u32,
    /// --max-wals: WAL segment files kept, released ones included (0: all).
    pub max_wals: u32,
    /// --strict-reconfig-check: refuse membership changes that would cost the quorum.
    pub strict_reconfig_check: bool,
    /// --pre-vote: raft's pre-vote phase.
    pub pre_vote: bool,
    /// --initial-election-tick-advance: fast-forward the first election once peers answer.
    pub initial_election_tick_advance: bool,
    /// --force-new-cluster: restart this member's data as a one-member cluster.
    pub force_new_cluster: bool,
    /// --wasmraft-proposal-batch-limit: guest commands packed into one raft entry at most
    /// (0 and 1: one command per entry).
    pub proposal_batch_limit: usize,
}

/// Commands per entry by default: enough that a thousand clients' puts fill a few entries per
/// fsync, few enough that one entry's apply never holds the apply thread for long.
pub const DEFAULT_PROPOSAL_BATCH_LIMIT: usize = 256;

impl Default for RaftOptions {
    /// etcd 3.4's defaults.
    fn default() -> Self {
        RaftOptions {
            wal_dir: None,
            max_snapshots: 5,
            max_wals: 5,
            strict_reconfig_check: true,
            pre_vote: false,
            initial_election_tick_advance: true,
            force_new_cluster: false,
            proposal_batch_limit: DEFAULT_PROPOSAL_BATCH_LIMIT,
        }
    }
}

impl NodeConfig {
    /// Where the raft log lives (--wal-dir, or etcd's place under the data dir).
    pub fn wal_dir(&self) -> PathBuf {
        self.raft.wal_dir.clone().unwrap_or_else(|| self.data_dir.join("member").join("wal"))
    }

    /// How long a client request waits for its entry (etcd's `ReqTimeout`).
    pub fn request_timeout(&self) -> Duration {
        request_timeout(self.election_timeout)
    }

    /// The election timeout in heartbeat ticks, as raft counts it.
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout.as_millis() / self.heartbeat_interval.as_millis().max(1)) as usize
    }
}

/// etcd's `ReqTimeout`: 5 s plus two election timeouts, for a request waiting on the log.
pub fn request_timeout(election_timeout: Duration) -> Duration {
    Duration::from_secs(5) + 2 * election_timeout
}
