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
    /// --auth-token: how tokens are made (a member's simple tokens die with it).
    pub auth_token: TokenOptions,
    pub auth_token_ttl: Duration,
}

impl NodeConfig {
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
