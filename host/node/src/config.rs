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
}

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
