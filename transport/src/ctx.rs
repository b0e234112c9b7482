//! What every role's tasks share (one per transport): the configuration, the host's raft, the
//! HTTP client the sending roles dial with, and the fault switch. The roles, the prober and the
//! router's handlers all take it; it knows none of them.

use std::sync::Arc;

use hyper_util::client::legacy::Client;

use crate::body::ChannelBody;
use crate::config::TransportConfig;
use crate::dial::Dialer;
use crate::fault::Faults;
use crate::host::{PeerHashKv, Raft};

/// What every role's tasks share: configuration, the host's raft, the HTTP client.
pub(crate) struct Ctx {
    pub cfg: TransportConfig,
    pub raft: Arc<dyn Raft>,
    pub client: Client<Dialer, ChannelBody>,
    /// Partitions injected by tests (inert unless `cfg.fault_injection`).
    pub faults: Faults,
    /// The host's keyspace hash for `/members/hashkv`, once it has set one.
    pub hash_kv: std::sync::OnceLock<Arc<dyn PeerHashKv>>,
}
