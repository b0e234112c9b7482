//! The member's command line: etcd 3.4's flags with etcd's names, types, defaults and environment
//! variables (`ETCD_NAME`, …), so scripts written for etcd start wasmraft unchanged, plus
//! wasmraft's own; resolved into the [`Config`] the rest of the binary reads.
//!
//! Where a command line comes from is [`load`]'s job (etcd's order: a config file replaces flags
//! and environment; otherwise flags, then `ETCD_*` variables for the flags not given); the value
//! syntax is Go's ([`go_flag`]); the config file is [`file`]; what wasmraft refuses (etcd's v2
//! API and v2 proxy) is [`refused`]; what it accepts without effect is [`no_effect`].

mod dump;
mod env;
pub mod file;
pub mod go_flag;
mod load;
mod no_effect;
mod refused;
mod resolve;
#[cfg(test)]
mod tests;
mod urls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use url::Url;

use go_flag::{go_bool, go_i64, go_path, go_u32, go_u64, go_usize};
use wasmraft_client::go_duration::parse as go_duration;

pub use load::{Invocation, LoadError, Note, load, long_names, member_command, strip_env, with_extras};
pub use resolve::{LogOutput, Metrics};
pub use urls::{parse_initial_cluster, parse_urls, trim_url};

/// etcd's `embed.DefaultMaxRequestBytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Flags for running a member. Names, types, defaults and env vars are etcd 3.4's
/// (etcdmain/config.go); booleans and integers take Go's syntax ([`go_flag`]).
#[derive(Args, Debug, Clone)]
pub struct MemberFlags {
    /// Path to the server configuration file. Note that if a configuration file is provided,
    /// other command line flags and environment variables will be ignored.
    #[arg(long, env = "ETCD_CONFIG_FILE", value_name = "PATH", value_parser = go_path)]
    pub config_file: Option<PathBuf>,

    /// Print the version and exit.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub version: bool,

    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,

    /// Path to the data directory [default: ${name}.etcd].
    #[arg(long, env = "ETCD_DATA_DIR", value_parser = go_path)]
    pub data_dir: Option<PathBuf>,

    /// Path to the dedicated wal directory.
    #[arg(long, env = "ETCD_WAL_DIR", value_name = "PATH", value_parser = go_path)]
    pub wal_dir: Option<PathBuf>,

    /// List of URLs to listen on for peer traffic.
    #[arg(long, env = "ETCD_LISTEN_PEER_URLS", default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,

    /// List of URLs to listen on for client traffic.
    #[arg(long, env = "ETCD_LISTEN_CLIENT_URLS", default_value = "http://localhost:2379")]
    pub listen_client_urls: String,

    /// List of additional URLs to listen on that will respond to both the /metrics and /health
    /// endpoints.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    pub listen_metrics_urls: String,

    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(long, env = "ETCD_MAX_SNAPSHOTS", default_value = "5", value_parser = go_u64)]
    pub max_snapshots: u64,

    /// Maximum number of wal files to retain (0 is unlimited).
    #[arg(long, env = "ETCD_MAX_WALS", default_value = "5", value_parser = go_u64)]
    pub max_wals: u64,

    /// List of this member's client URLs to advertise to the public.
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS", default_value = "http://localhost:2379")]
    pub advertise_client_urls: String,

    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, env = "ETCD_INITIAL_ADVERTISE_PEER_URLS", default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,

    /// Initial cluster configuration for bootstrapping
    /// [default: ${name}=${initial-advertise-peer-urls}].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: ClusterState,

    /// Initial cluster token for the etcd cluster during bootstrap.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_TOKEN", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,

    /// Discovery URL used to bootstrap the cluster (etcd's v2 discovery: refused by wasmraft).
    #[arg(long, env = "ETCD_DISCOVERY", default_value = "")]
    pub discovery: String,

    /// Expected behavior ('exit' or 'proxy') when discovery services fails.
    #[arg(long, env = "ETCD_DISCOVERY_FALLBACK", default_value = "proxy")]
    pub discovery_fallback: DiscoveryFallback,

    /// HTTP proxy to use for traffic to discovery service.
    #[arg(long, env = "ETCD_DISCOVERY_PROXY", default_value = "")]
    pub discovery_proxy: String,

    /// DNS srv domain used to bootstrap the cluster.
    #[arg(long, env = "ETCD_DISCOVERY_SRV", default_value = "")]
    pub discovery_srv: String,

    /// Suffix to the dns srv name queried when bootstrapping.
    #[arg(long, env = "ETCD_DISCOVERY_SRV_NAME", default_value = "")]
    pub discovery_srv_name: String,

    /// wasmraft only: the DNS server (`ip:port`, or `ip` for port 53) that --discovery-srv asks,
    /// instead of the ones /etc/resolv.conf names.
    #[arg(long, env = "WASMRAFT_DISCOVERY_SRV_NAMESERVER")]
    pub wasmraft_discovery_srv_nameserver: Option<String>,

    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub strict_reconfig_check: bool,

    /// Enable to run an additional Raft election phase.
    #[arg(long, env = "ETCD_PRE_VOTE", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub pre_vote: bool,

    /// Auto compaction retention length. 0 means disable auto compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,

    /// Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration
    /// based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision'
    /// for revision number based retention.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,

    /// Accept etcd V2 client requests (only false: wasmraft serves the v3 API).
    #[arg(long, env = "ETCD_ENABLE_V2", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub enable_v2: bool,

    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value = "100000", value_parser = go_u64)]
    pub snapshot_count: u64,

    /// Entries kept in the raft log behind a snapshot, so slow followers can catch up from the
    /// log instead of a full snapshot (etcd's SnapshotCatchUpEntries).
    #[arg(long, env = "ETCD_SNAPSHOT_CATCHUP_ENTRIES", default_value = "5000", value_parser = go_u64)]
    pub snapshot_catchup_entries: u64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value = "100", value_parser = go_u64)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value = "1000", value_parser = go_u64)]
    pub election_timeout: u64,

    /// Whether to fast-forward initial election ticks on boot for faster election.
    #[arg(long, env = "ETCD_INITIAL_ELECTION_TICK_ADVANCE", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub initial_election_tick_advance: bool,

    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value = "0", allow_negative_numbers = true, value_parser = go_i64)]
    pub quota_backend_bytes: i64,

    /// wasmraft only, FOR TESTS ONLY: how often `--auto-compaction-mode=revision` compacts
    /// (etcd's fixed 5 minutes, too long for a test to wait).
    #[arg(long, hide = true, env = "WASMRAFT_TEST_REVISION_COMPACTION_INTERVAL", value_parser = go_duration)]
    pub wasmraft_test_revision_compaction_interval: Option<Duration>,

    /// BackendBatchInterval is the maximum time before commit the backend transaction.
    #[arg(long, env = "ETCD_BACKEND_BATCH_INTERVAL", default_value = "0s", value_parser = go_duration)]
    pub backend_batch_interval: Duration,

    /// BackendBatchLimit is the maximum operations before commit the backend transaction.
    #[arg(long, env = "ETCD_BACKEND_BATCH_LIMIT", default_value = "0", value_parser = go_i64, allow_negative_numbers = true)]
    pub backend_batch_limit: i64,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value = "1572864", value_parser = go_usize)]
    pub max_request_bytes: usize,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value = "128", value_parser = go_usize)]
    pub max_txn_ops: usize,

    /// Maximum concurrent streams that each client can open at a time.
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value = "4294967295", value_parser = go_u32)]
    pub max_concurrent_streams: u32,

    /// Minimum duration interval that a client should wait before pinging server.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s", value_parser = go_duration)]
    pub grpc_keepalive_min_time: Duration,

    /// Frequency duration of server-to-client ping to check if a connection is alive (0 to
    /// disable).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h", value_parser = go_duration)]
    pub grpc_keepalive_interval: Duration,

    /// Additional duration of wait before closing a non-responsive connection (0 to disable).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = go_duration)]
    pub grpc_keepalive_timeout: Duration,

    /// Specify auth token type and its options: 'simple', or 'jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m'
    /// (sign methods RS/PS 256/384/512, ES256/384, HS256/384/512; only pub-key: verify-only).
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,

    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = wasmraft_node::auth::DEFAULT_BCRYPT_COST, value_parser = go_u32_of_uint)]
    pub bcrypt_cost: u32,

    /// The lifetime in seconds of the auth token.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value = "300", value_parser = go_u64)]
    pub auth_token_ttl: u64,

    /// Duration of periodic watch progress notifications (etcd's default: 10 minutes).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = go_duration)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub experimental_initial_corrupt_check: bool,

    /// Duration of time between cluster corruption check passes.
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = go_duration)]
    pub experimental_corrupt_check_time: Duration,

    /// Serve v2 requests through the v3 backend under a given prefix (refused by wasmraft).
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_V2V3", default_value = "")]
    pub experimental_enable_v2v3: String,

    /// The type of freelist that boltdb backend uses (array and map are supported types); no
    /// effect on wasmraft's state database.
    #[arg(long, env = "ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE", default_value = "array")]
    pub experimental_backend_bbolt_freelist_type: String,

    /// Enable leader to send regular checkpoints to other members to prevent reset of remaining
    /// TTL on leader change.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub experimental_enable_lease_checkpoint: bool,

    /// wasmraft only, FOR TESTS ONLY: how often the leader checkpoints lease TTLs with
    /// --experimental-enable-lease-checkpoint (etcd's fixed 5 minutes, too long for a test).
    #[arg(long, hide = true, env = "WASMRAFT_TEST_LEASE_CHECKPOINT_INTERVAL", value_parser = go_duration)]
    pub wasmraft_test_lease_checkpoint_interval: Option<Duration>,

    /// Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases
    /// (etcd 3.4.23; requires --experimental-enable-lease-checkpoint).
    #[arg(long, hide = true, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT_PERSIST", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub experimental_enable_lease_checkpoint_persist: bool,

    /// Sets the maximum revisions deleted in each compaction batch; no effect on wasmraft (the KV
    /// guest compacts within one entry).
    #[arg(long, env = "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT", default_value = "1000", value_parser = go_i64, allow_negative_numbers = true)]
    pub experimental_compaction_batch_limit: i64,

    /// Time duration after which a warning is generated if request takes more time.
    #[arg(long, env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION", default_value = "100ms", value_parser = go_duration)]
    pub experimental_warning_apply_duration: Duration,

    /// Force to create a new one-member cluster.
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub force_new_cluster: bool,

    /// Disables fsync, unsafe, will cause data loss (etcd 3.4.23, not in its --help).
    #[arg(long, hide = true, env = "ETCD_UNSAFE_NO_FSYNC", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub unsafe_no_fsync: bool,

    /// Enable GRPC gateway (etcd 3.4.23, not in its --help).
    #[arg(long, hide = true, env = "ETCD_ENABLE_GRPC_GATEWAY", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub enable_grpc_gateway: bool,

    /// Specify 'zap' for structured logging or 'capnslog'.
    #[arg(long, env = "ETCD_LOGGER", default_value = "capnslog")]
    pub logger: Logger,

    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or
    /// list of comma separated output targets.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,

    /// [TO BE DEPRECATED IN v3.5] use '--log-outputs'.
    #[arg(long, hide = true, env = "ETCD_LOG_OUTPUT", default_value = "default")]
    pub log_output: String,

    /// Configures log level. Only supports debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: LogLevel,

    /// Enable debug-level logging for etcd.
    #[arg(long, env = "ETCD_DEBUG", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub debug: bool,

    /// Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG');
    /// capnslog's packages, no effect on wasmraft.
    #[arg(long, env = "ETCD_LOG_PACKAGE_LEVELS", default_value = "")]
    pub log_package_levels: String,

    /// Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"
    #[arg(long, env = "ETCD_ENABLE_PPROF", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub enable_pprof: bool,

    /// Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.
    #[arg(long, env = "ETCD_METRICS", default_value = "basic")]
    pub metrics: String,

    /// Proxy mode setting ('off', 'readonly' or 'on'); only 'off': wasmraft has no v2 proxy.
    #[arg(long, env = "ETCD_PROXY", default_value = "off")]
    pub proxy: ProxyMode,

    /// Time (in milliseconds) an endpoint will be held in a failed state.
    #[arg(long, env = "ETCD_PROXY_FAILURE_WAIT", default_value = "5000", value_parser = go_u64)]
    pub proxy_failure_wait: u64,

    /// Time (in milliseconds) of the endpoints refresh interval.
    #[arg(long, env = "ETCD_PROXY_REFRESH_INTERVAL", default_value = "30000", value_parser = go_u64)]
    pub proxy_refresh_interval: u64,

    /// Time (in milliseconds) for a dial to timeout.
    #[arg(long, env = "ETCD_PROXY_DIAL_TIMEOUT", default_value = "1000", value_parser = go_u64)]
    pub proxy_dial_timeout: u64,

    /// Time (in milliseconds) for a write to timeout.
    #[arg(long, env = "ETCD_PROXY_WRITE_TIMEOUT", default_value = "5000", value_parser = go_u64)]
    pub proxy_write_timeout: u64,

    /// Time (in milliseconds) for a read to timeout.
    #[arg(long, env = "ETCD_PROXY_READ_TIMEOUT", default_value = "0", value_parser = go_u64)]
    pub proxy_read_timeout: u64,

    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", value_name = "PATH", value_parser = go_path)]
    pub cert_file: Option<PathBuf>,

    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", value_name = "PATH", value_parser = go_path)]
    pub key_file: Option<PathBuf>,

    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", value_name = "PATH", value_parser = go_path)]
    pub trusted_ca_file: Option<PathBuf>,

    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub client_cert_auth: bool,

    /// Path to the client certificate revocation list file.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE", value_name = "PATH", value_parser = go_path)]
    pub client_crl_file: Option<PathBuf>,

    /// Allowed TLS hostname for client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME")]
    pub client_cert_allowed_hostname: Option<String>,

    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub auto_tls: bool,

    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", value_name = "PATH", value_parser = go_path)]
    pub peer_cert_file: Option<PathBuf>,

    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", value_name = "PATH", value_parser = go_path)]
    pub peer_key_file: Option<PathBuf>,

    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", value_name = "PATH", value_parser = go_path)]
    pub peer_trusted_ca_file: Option<PathBuf>,

    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub peer_client_cert_auth: bool,

    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub peer_auto_tls: bool,

    /// Path to the peer certificate revocation list file.
    #[arg(long, env = "ETCD_PEER_CRL_FILE", value_name = "PATH", value_parser = go_path)]
    pub peer_crl_file: Option<PathBuf>,

    /// Required CN for client certs connecting to the peer endpoint.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,

    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME")]
    pub peer_cert_allowed_hostname: Option<String>,

    /// Skip verification of SAN field in client certificate for peer connections.
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub experimental_peer_skip_client_san_verification: bool,

    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (empty will be auto-populated).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,

    /// Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or
    /// * means allow all).
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,

    /// Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means
    /// allow all).
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub host_whitelist: String,

    /// The first guest of a new cluster (a component .wasm), instead of the bundled etcd KV
    /// guest. Afterwards the cluster's replicated deployment decides (`wasmraft guest deploy`).
    #[arg(long, env = "WASMRAFT_GUEST", value_parser = go_path)]
    pub guest: Option<PathBuf>,

    /// Fuel (roughly, Wasm instructions) the first guest may spend on one entry before it is
    /// aborted; recorded in the replicated deployment, which every member then follows.
    #[arg(long, env = "WASMRAFT_GUEST_FUEL", value_parser = go_u64)]
    pub guest_fuel: Option<u64>,

    /// Linear memory (bytes) an instance of the first guest may grow to; recorded in the
    /// replicated deployment, which every member then follows.
    #[arg(long, visible_alias = "guest-memory", env = "WASMRAFT_GUEST_MEMORY_BYTES", value_parser = go_u64)]
    pub guest_memory_bytes: Option<u64>,

    /// Native stack (bytes) the first guest's Wasm frames may take before a call traps: a
    /// power of two from 65536 to 8388608 (default 524288); recorded in the replicated
    /// deployment, which every member then follows.
    #[arg(long, env = "WASMRAFT_GUEST_STACK_BYTES", value_parser = go_u64)]
    pub guest_stack_bytes: Option<u64>,

    /// wasmraft only, FOR TESTS ONLY: serve `PUT/GET /wasmraft/faults` on the peer URL, which
    /// cuts this member off from chosen peers (network partitions for the fault-injection
    /// harness, tests/src/nemesis.rs). Anyone who can reach the peer port can then partition the
    /// member: never enable it in production.
    #[arg(long, env = "WASMRAFT_FAULT_INJECTION", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = go_bool)]
    pub wasmraft_fault_injection: bool,

    /// wasmraft only: the etcd version reported to clients (Maintenance.Status, /version,
    /// etcd_server_version), as kine's --emulated-etcd-version. Clients such as Kubernetes turn
    /// features on by it; the README says what each version implies. A semantic version.
    #[arg(long, env = "WASMRAFT_EMULATED_ETCD_VERSION", default_value = wasmraft_proto::contract::ETCD_VERSION, value_parser = semantic_version)]
    pub wasmraft_emulated_etcd_version: semver::Version,

    /// wasmraft only: client commands a member packs into one raft entry at most, from those
    /// that queue while its previous proposal is in flight (a lone request is never held
    /// back). 0 or 1: one command per entry.
    #[arg(long, env = "WASMRAFT_PROPOSAL_BATCH_LIMIT", default_value_t = wasmraft_node::DEFAULT_PROPOSAL_BATCH_LIMIT, value_parser = go_usize)]
    pub wasmraft_proposal_batch_limit: usize,
}

/// `--wasmraft-emulated-etcd-version`: a semantic version (`3.4.31`, `3.5.13-rc.0`), as etcd's
/// own versions are; a leading `v` is refused, as etcd never reports one.
fn semantic_version(s: &str) -> Result<semver::Version, String> {
    semver::Version::parse(s)
        .map_err(|e| format!("{s:?} is not a semantic version (MAJOR.MINOR.PATCH, as 3.4.31): {e}"))
}

/// etcd's `--bcrypt-cost` is a Go `uint`; the cost itself is checked when the member starts.
fn go_u32_of_uint(s: &str) -> Result<u32, String> {
    go_u64(s).and_then(|v| u32::try_from(v).map_err(|_| format!("bcrypt cost {v} is out of range")))
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logger {
    Capnslog,
    Zap,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

/// `--discovery-fallback`: what etcd does when its v2 discovery fails (only with --discovery,
/// which wasmraft refuses).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFallback {
    Exit,
    Proxy,
}

/// `--proxy`: etcd's v2 proxy; wasmraft accepts only `off`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Off,
    Readonly,
    On,
}

/// The validated configuration of a member.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    /// --wal-dir: the raft log's own directory (None: inside the data dir).
    pub wal_dir: Option<PathBuf>,
    pub listen_client_urls: Vec<Url>,
    /// --listen-metrics-urls: plain http listeners for /metrics and /health (none by default).
    pub listen_metrics_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>,
    pub initial_advertise_peer_urls: Vec<Url>,
    /// Member name → its peer URLs, in flag order of first appearance.
    pub initial_cluster: BTreeMap<String, Vec<Url>>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    /// --discovery-srv: `initial_cluster` is empty, to be filled from DNS SRV records when the
    /// member starts with no data (`crate::discovery_srv`).
    pub discovery_srv: Option<crate::discovery_srv::SrvDiscovery>,
    /// --max-snapshots (0: keep all).
    pub max_snapshots: u64,
    /// --max-wals (0: keep all).
    pub max_wals: u64,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub initial_election_tick_advance: bool,
    pub strict_reconfig_check: bool,
    pub pre_vote: bool,
    /// --force-new-cluster: restart this member's data as a one-member cluster.
    pub force_new_cluster: bool,
    /// --auto-compaction-mode and --auto-compaction-retention, parsed as etcd parses them (None:
    /// retention 0, no auto compaction).
    pub auto_compaction: Option<wasmraft_api::compactor::Policy>,
    /// --quota-backend-bytes: 0 is etcd's default (2 GiB), a negative value disables the quota.
    pub quota_backend_bytes: i64,
    /// --backend-batch-interval (ZERO: the state database's default).
    pub backend_batch_interval: Duration,
    /// --backend-batch-limit (0 or less: the state database's default).
    pub backend_batch_limit: i64,
    pub max_request_bytes: usize,
    /// --wasmraft-proposal-batch-limit.
    pub proposal_batch_limit: usize,
    pub max_txn_ops: usize,
    pub watch_progress_notify_interval: Duration,
    pub experimental_initial_corrupt_check: bool,
    /// --experimental-corrupt-check-time (ZERO: no periodic check).
    pub experimental_corrupt_check_time: Duration,
    pub experimental_enable_lease_checkpoint: bool,
    pub experimental_enable_lease_checkpoint_persist: bool,
    /// How often lease TTLs are checkpointed (etcd's 5 minutes; shorter only in tests).
    pub lease_checkpoint_interval: Duration,
    /// --experimental-warning-apply-duration: applies slower than this are logged.
    pub experimental_warning_apply_duration: Duration,
    /// --unsafe-no-fsync.
    pub unsafe_no_fsync: bool,
    /// --enable-grpc-gateway: the JSON gateway on the client port.
    pub enable_grpc_gateway: bool,
    /// The client listener's connection settings: gRPC keepalive (--grpc-keepalive-*),
    /// --max-concurrent-streams, --cors and --host-whitelist.
    pub client_conn: wasmraft_api::ConnOptions,
    /// --bcrypt-cost (checked when the member starts, as etcd does).
    pub bcrypt_cost: u32,
    /// --auth-token as given: checked (a JWT's keys loaded) when the member starts, after
    /// logging is set up, as etcd's server does, so its warnings reach the log.
    pub auth_token: String,
    /// --auth-token-ttl: simple tokens unused this long are dropped.
    pub auth_token_ttl: Duration,
    /// --logger.
    pub logger: Logger,
    /// --log-level, with --debug folded in (etcd 3.4: --debug wins, with the capnslog logger).
    pub log_level: LogLevel,
    /// --log-outputs (or the deprecated --log-output), checked as etcd checks them.
    pub log_outputs: Vec<LogOutput>,
    /// --enable-pprof: /debug/pprof/ on the client URLs.
    pub enable_pprof: bool,
    /// --metrics.
    pub metrics: Metrics,
    pub guest: Option<PathBuf>,
    pub guest_fuel: Option<u64>,
    pub guest_memory_bytes: Option<u64>,
    pub guest_stack_bytes: Option<u64>,
    /// `--wasmraft-fault-injection`: the transport's test-only partition hook.
    pub fault_injection: bool,
    /// `--wasmraft-emulated-etcd-version`: the etcd version the member reports.
    pub emulated_etcd_version: semver::Version,
    /// TLS for the client listeners with https URLs (auto-TLS applied when the member starts).
    pub client_tls: crate::tls::TlsInfo,
    /// TLS for the https peer listeners and for dialing https peer URLs (auto-TLS applied when
    /// the member starts: `crate::tls::peer_tls`).
    pub peer_tls: crate::tls::TlsInfo,
}

impl Config {
    /// etcd's `RequestTimeout`: 5s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        wasmraft_node::request_timeout(self.election_timeout)
    }

    /// `initial_cluster` as the node takes it: peer URLs as written, without a trailing slash.
    pub fn node_initial_cluster(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.initial_cluster.iter().map(|(name, urls)| (name.clone(), urls.iter().map(trim_url).collect())).collect()
    }

    /// What the member's core needs of these flags; loads the `--auth-token` keys (etcd's
    /// texts when they cannot be used).
    pub fn node_config(&self) -> Result<wasmraft_node::NodeConfig, wasmraft_node::auth::TokenOptionsError> {
        Ok(wasmraft_node::NodeConfig {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            initial_cluster: self.node_initial_cluster(),
            initial_cluster_token: self.initial_cluster_token.clone(),
            join_existing: self.initial_cluster_state == ClusterState::Existing,
            heartbeat_interval: self.heartbeat_interval,
            election_timeout: self.election_timeout,
            quota_backend_bytes: self.quota_backend_bytes,
            max_request_bytes: self.max_request_bytes,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            raft: wasmraft_node::RaftOptions {
                wal_dir: self.wal_dir.clone(),
                max_snapshots: u32::try_from(self.max_snapshots).unwrap_or(u32::MAX),
                max_wals: u32::try_from(self.max_wals).unwrap_or(u32::MAX),
                strict_reconfig_check: self.strict_reconfig_check,
                pre_vote: self.pre_vote,
                initial_election_tick_advance: self.initial_election_tick_advance,
                force_new_cluster: self.force_new_cluster,
                proposal_batch_limit: self.proposal_batch_limit,
            },
            auth_token: wasmraft_node::auth::TokenOptions::parse(&self.auth_token)?,
            auth_token_ttl: self.auth_token_ttl,
            apply: wasmraft_node::ApplyOptions::from_flags(
                self.experimental_warning_apply_duration,
                self.backend_batch_interval,
                self.backend_batch_limit,
            ),
        })
    }
}
