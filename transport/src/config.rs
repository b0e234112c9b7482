//! The transport's configuration: etcd's `Transport` fields and rafthttp's constants, with etcd
//! 3.4.23's defaults.

use std::time::Duration;

use crate::msg_codec;

/// Configuration (etcd's `Transport` fields and rafthttp constants).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub member_id: u64,
    pub cluster_id: u64,
    /// This member's advertised peer URLs (sent as `X-PeerURLs`).
    pub peer_urls: Vec<String>,
    /// `X-Server-Version`: "3.4.23".
    pub server_version: String,
    /// `X-Min-Cluster-Version`: "3.0.0".
    pub min_cluster_version: String,
    /// etcd: 1 s + election timeout (`peerDialTimeout`), 2 s with the defaults.
    pub dial_timeout: Duration,
    /// etcd's `ConnReadTimeout` (5 s): stream reads, server reads; heartbeats every third of it.
    pub conn_read_timeout: Duration,
    /// etcd's `ConnWriteTimeout` (5 s): a stream write that cannot complete in this time fails.
    pub conn_write_timeout: Duration,
    /// Bound on one pipeline request's response (etcd has none; beyond dialing).
    pub pipeline_timeout: Duration,
    /// etcd's `DialRetryFrequency` (one dial per 100 ms per stream).
    pub dial_retry_interval: Duration,
    /// Largest message accepted from the network (etcd's 512 MB `readBytesLimit`).
    pub max_message_bytes: u64,
    /// How often each peer is probed on `/raft/probing` (etcd's `proberInterval`,
    /// `ConnReadTimeout - 1s`: 4 s).
    pub probe_interval: Duration,
    /// How https peer URLs are dialed (etcd's `PeerTLSInfo.ClientConfig()`); None: they are not.
    pub client_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Tests only: serve `/wasmraft/faults` on the peer URL and obey its cuts (see `fault.rs`).
    pub fault_injection: bool,
}

impl TransportConfig {
    /// etcd 3.4.23's defaults for the given member.
    pub fn new(member_id: u64, cluster_id: u64, peer_urls: Vec<String>) -> Self {
        TransportConfig {
            member_id,
            cluster_id,
            peer_urls,
            server_version: "3.4.23".into(),
            min_cluster_version: "3.0.0".into(),
            dial_timeout: Duration::from_secs(2),
            conn_read_timeout: Duration::from_secs(5),
            conn_write_timeout: Duration::from_secs(5),
            pipeline_timeout: Duration::from_secs(30),
            dial_retry_interval: Duration::from_millis(100),
            max_message_bytes: msg_codec::READ_BYTES_LIMIT,
            probe_interval: Duration::from_secs(4),
            client_tls: None,
            fault_injection: false,
        }
    }
}
