//! The member's command line: etcd 3.4's flags with etcd's defaults and environment variables
//! (`ETCD_NAME`, …), so scripts written for etcd start wasmraft unchanged, plus wasmraft's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use url::Url;
use wasmraft_transport::socket::is_tls_scheme;

/// etcd's `embed.DefaultMaxRequestBytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Flags for running a member. Names, defaults and env vars are etcd 3.4's.
#[derive(Args, Debug, Clone)]
pub struct MemberFlags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,

    /// Path to the data directory [default: ${name}.etcd].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

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

    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,

    /// Entries kept in the raft log behind a snapshot, so slow followers can catch up from the
    /// log instead of a full snapshot (etcd's SnapshotCatchUpEntries).
    #[arg(long, env = "ETCD_SNAPSHOT_CATCHUP_ENTRIES", default_value_t = 5000)]
    pub snapshot_catchup_entries: u64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,

    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,

    /// Specify auth token type and its options: 'simple', or 'jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m'
    /// (sign methods RS/PS 256/384/512, ES256/384, HS256/384/512; only pub-key: verify-only).
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,

    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = wasmraft_node::auth::DEFAULT_BCRYPT_COST)]
    pub bcrypt_cost: u32,

    /// The lifetime in seconds of the auth token.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,

    /// Duration of periodic watch progress notifications (etcd's default: 10 minutes).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = wasmraft_client::go_duration::parse)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Specify 'zap' for structured logging or 'capnslog'.
    #[arg(long, env = "ETCD_LOGGER", default_value = "capnslog")]
    pub logger: Logger,

    /// Configures log level. Only supports debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: LogLevel,

    /// Enable debug-level logging for etcd.
    #[arg(long, env = "ETCD_DEBUG", default_value_t = false)]
    pub debug: bool,

    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", value_name = "PATH")]
    pub cert_file: Option<PathBuf>,

    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", value_name = "PATH")]
    pub trusted_ca_file: Option<PathBuf>,

    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub client_cert_auth: bool,

    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub auto_tls: bool,

    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", value_name = "PATH")]
    pub peer_cert_file: Option<PathBuf>,

    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", value_name = "PATH")]
    pub peer_key_file: Option<PathBuf>,

    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", value_name = "PATH")]
    pub peer_trusted_ca_file: Option<PathBuf>,

    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_client_cert_auth: bool,

    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_auto_tls: bool,

    /// Skip verification of SAN field in client certificate for peer connections.
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub experimental_peer_skip_client_san_verification: bool,

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

    /// Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,

    /// Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub host_whitelist: String,

    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,

    /// Maximum concurrent streams that each client can open at a time.
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,

    /// Minimum duration interval that a client should wait before pinging server.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s", value_parser = wasmraft_client::go_duration::parse)]
    pub grpc_keepalive_min_time: Duration,

    /// Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h", value_parser = wasmraft_client::go_duration::parse)]
    pub grpc_keepalive_interval: Duration,

    /// Additional duration of wait before closing a non-responsive connection (0 to disable).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = wasmraft_client::go_duration::parse)]
    pub grpc_keepalive_timeout: Duration,

    /// The first guest of a new cluster (a component .wasm), instead of the bundled etcd KV
    /// guest. Afterwards the cluster's replicated deployment decides (`wasmraft guest deploy`).
    #[arg(long, env = "WASMRAFT_GUEST")]
    pub guest: Option<PathBuf>,

    /// Fuel (roughly, Wasm instructions) the first guest may spend on one entry before it is
    /// aborted; recorded in the replicated deployment, which every member then follows.
    #[arg(long, env = "WASMRAFT_GUEST_FUEL")]
    pub guest_fuel: Option<u64>,

    /// Linear memory (bytes) an instance of the first guest may grow to; recorded in the
    /// replicated deployment, which every member then follows.
    #[arg(long, visible_alias = "guest-memory", env = "WASMRAFT_GUEST_MEMORY_BYTES")]
    pub guest_memory_bytes: Option<u64>,

    /// Native stack (bytes) the first guest's Wasm frames may take before a call traps: a
    /// power of two from 65536 to 8388608 (default 524288); recorded in the replicated
    /// deployment, which every member then follows.
    #[arg(long, env = "WASMRAFT_GUEST_STACK_BYTES")]
    pub guest_stack_bytes: Option<u64>,

    /// wasmraft only, FOR TESTS ONLY: serve `PUT/GET /wasmraft/faults` on the peer URL, which
    /// cuts this member off from chosen peers (network partitions for the fault-injection
    /// harness, tests/src/nemesis.rs). Anyone who can reach the peer port can then partition the
    /// member: never enable it in production.
    #[arg(long, env = "WASMRAFT_FAULT_INJECTION", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wasmraft_fault_injection: bool,
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

/// The validated configuration of a member.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
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
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub quota_backend_bytes: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub watch_progress_notify_interval: Duration,
    /// --bcrypt-cost (checked when the member starts, as etcd does).
    pub bcrypt_cost: u32,
    /// --auth-token, checked (a JWT's keys loaded).
    pub auth_token: wasmraft_node::auth::TokenOptions,
    /// --auth-token-ttl: simple tokens unused this long are dropped.
    pub auth_token_ttl: Duration,
    pub guest: Option<PathBuf>,
    pub guest_fuel: Option<u64>,
    pub guest_memory_bytes: Option<u64>,
    pub guest_stack_bytes: Option<u64>,
    /// `--wasmraft-fault-injection`: the transport's test-only partition hook.
    pub fault_injection: bool,
    /// TLS for the client listeners with https URLs (auto-TLS applied when the member starts).
    pub client_tls: crate::tls::TlsInfo,
    /// TLS for the https peer listeners and for dialing https peer URLs (auto-TLS applied when
    /// the member starts: `crate::tls::peer_tls`).
    pub peer_tls: crate::tls::TlsInfo,
    /// --discovery-srv: `initial_cluster` is empty, to be filled from DNS SRV records when the
    /// member starts with no data (`crate::discovery_srv`).
    pub discovery_srv: Option<crate::discovery_srv::SrvDiscovery>,
    /// The client listener's connection settings: gRPC keepalive, --max-concurrent-streams,
    /// --cors and --host-whitelist.
    pub client_conn: wasmraft_api::ConnOptions,
}

impl Config {
    /// etcd's `RequestTimeout`: 5s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        wasmraft_node::request_timeout(self.election_timeout)
    }

    /// What the member's core needs of these flags.
    pub fn node_config(&self) -> wasmraft_node::NodeConfig {
        wasmraft_node::NodeConfig {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            initial_cluster: self
                .initial_cluster
                .iter()
                .map(|(name, urls)| (name.clone(), urls.iter().map(trim_url).collect()))
                .collect(),
            initial_cluster_token: self.initial_cluster_token.clone(),
            join_existing: self.initial_cluster_state == ClusterState::Existing,
            heartbeat_interval: self.heartbeat_interval,
            election_timeout: self.election_timeout,
            quota_backend_bytes: self.quota_backend_bytes,
            max_request_bytes: self.max_request_bytes,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            auth_token: self.auth_token.clone(),
            auth_token_ttl: self.auth_token_ttl,
        }
    }
}

impl MemberFlags {
    /// Checks the flags the way etcd does and fills in derived defaults.
    pub fn validate(self) -> anyhow::Result<Config> {
        if self.heartbeat_interval == 0 {
            bail!("--heartbeat-interval must be > 0 (set to {}ms)", self.heartbeat_interval);
        }
        // etcd: "--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]"
        if 5 * self.heartbeat_interval > self.election_timeout {
            bail!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout,
                self.heartbeat_interval
            );
        }
        if self.election_timeout > 50_000 {
            bail!("--election-timeout[{}ms] is too long, and should be set less than 50000ms", self.election_timeout);
        }
        if self.snapshot_count == 0 {
            bail!("--snapshot-count must be > 0");
        }
        if self.max_request_bytes == 0 {
            bail!("--max-request-bytes must be > 0");
        }
        if self.max_txn_ops == 0 {
            bail!("--max-txn-ops must be > 0");
        }
        let listen_client_urls = parse_urls("--listen-client-urls", &self.listen_client_urls)?;
        let advertise_client_urls = parse_urls("--advertise-client-urls", &self.advertise_client_urls)?;
        let listen_metrics_urls = if self.listen_metrics_urls.trim().is_empty() {
            Vec::new()
        } else {
            parse_urls("--listen-metrics-urls", &self.listen_metrics_urls)?
        };
        if let Some(u) = listen_metrics_urls.iter().find(|u| u.scheme() != "http") {
            bail!("--listen-metrics-urls: {}: wasmraft serves metrics URLs over http only", trim_url(u));
        }
        let listen_peer_urls = parse_urls("--listen-peer-urls", &self.listen_peer_urls)?;
        let initial_advertise_peer_urls =
            parse_urls("--initial-advertise-peer-urls", &self.initial_advertise_peer_urls)?;
        for u in listen_client_urls.iter().chain(&listen_peer_urls).chain(&listen_metrics_urls) {
            if u.path() != "/" && !u.path().is_empty() {
                bail!("listen URL {u} must not have a path");
            }
        }
        let client_tls = crate::tls::TlsInfo {
            cert_file: self.cert_file,
            key_file: self.key_file,
            trusted_ca_file: self.trusted_ca_file,
            client_cert_auth: self.client_cert_auth,
            auto_tls: self.auto_tls,
            ..Default::default()
        };
        let peer_tls = crate::tls::TlsInfo {
            cert_file: self.peer_cert_file,
            key_file: self.peer_key_file,
            trusted_ca_file: self.peer_trusted_ca_file,
            client_cert_auth: self.peer_client_cert_auth,
            auto_tls: self.peer_auto_tls,
            skip_client_san_verify: self.experimental_peer_skip_client_san_verification,
            ..Default::default()
        };
        if client_tls.is_empty()
            && !client_tls.auto_tls
            && let Some(u) = listen_client_urls.iter().find(|u| is_tls_scheme(u.scheme()))
        {
            bail!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                trim_url(u)
            );
        }
        let discovery_srv = crate::discovery_srv::SrvDiscovery::from_flags(
            &self.discovery_srv,
            &self.discovery_srv_name,
            self.wasmraft_discovery_srv_nameserver.as_deref(),
        )?;
        if discovery_srv.is_some() && self.initial_cluster.is_some() {
            bail!(
                "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\""
            );
        }
        // etcd: without an explicit --initial-cluster, a member named other than "default" forms a
        // cluster of itself under its own name; with --discovery-srv, DNS names the members.
        let initial_cluster = match (&self.initial_cluster, &discovery_srv) {
            (_, Some(_)) => BTreeMap::new(),
            (Some(c), None) => parse_initial_cluster(c)?,
            (None, None) => parse_initial_cluster(
                &initial_advertise_peer_urls
                    .iter()
                    .map(|u| format!("{}={}", self.name, trim_url(u)))
                    .collect::<Vec<_>>()
                    .join(","),
            )?,
        };
        // etcd's peer listener refuses TLS without a certificate (advertised and other members'
        // https URLs need none: they are dialed, verified against the system's roots then).
        if peer_tls.is_empty()
            && !peer_tls.auto_tls
            && let Some(u) = listen_peer_urls.iter().find(|u| is_tls_scheme(u.scheme()))
        {
            bail!("cannot listen on TLS for {}: KeyFile and CertFile are not presented", host_port(u));
        }
        if self.initial_cluster_state == ClusterState::New && discovery_srv.is_none() {
            let Some(mine) = initial_cluster.get(&self.name) else {
                bail!("couldn't find local name {:?} in the initial cluster configuration", self.name);
            };
            let mut a: Vec<String> = mine.iter().map(trim_url).collect();
            let mut b: Vec<String> = initial_advertise_peer_urls.iter().map(trim_url).collect();
            a.sort();
            b.sort();
            if a != b {
                bail!(
                    "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (resolved urls: {:?} != {:?})",
                    self.name,
                    a.join(","),
                    b.join(","),
                    a,
                    b
                );
            }
        }
        if let Some(stack) = self.guest_stack_bytes
            && wasmraft_runtime::limits::check_stack_bytes(stack).is_err()
        {
            use wasmraft_runtime::limits::{MAX_STACK_BYTES, STACK_BYTES_CHOICES};
            bail!(
                "--guest-stack-bytes {stack}: must be a power of two from {} to {MAX_STACK_BYTES}",
                STACK_BYTES_CHOICES[0]
            );
        }
        let auth_token = wasmraft_node::auth::TokenOptions::parse(&self.auth_token)?;
        let client_conn = wasmraft_api::ConnOptions {
            keepalive_min_time: self.grpc_keepalive_min_time,
            keepalive_interval: self.grpc_keepalive_interval,
            keepalive_timeout: self.grpc_keepalive_timeout,
            max_concurrent_streams: self.max_concurrent_streams,
            access: wasmraft_api::AccessControl {
                cors: parse_cors(&self.cors)?,
                // etcd's strings flag: split on commas, empty pieces kept (`--host-whitelist=`
                // allows only an empty Host).
                host_whitelist: self.host_whitelist.split(',').map(str::to_string).collect(),
            },
        };
        let data_dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        Ok(Config {
            name: self.name,
            data_dir,
            listen_client_urls,
            listen_metrics_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            quota_backend_bytes: self.quota_backend_bytes,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            watch_progress_notify_interval: self.experimental_watch_progress_notify_interval,
            bcrypt_cost: self.bcrypt_cost,
            auth_token,
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            guest: self.guest,
            guest_fuel: self.guest_fuel,
            guest_memory_bytes: self.guest_memory_bytes,
            guest_stack_bytes: self.guest_stack_bytes,
            fault_injection: self.wasmraft_fault_injection,
            client_tls,
            peer_tls,
            discovery_srv,
            client_conn,
        })
    }
}

/// `--cors` as etcd's flag takes it: `*`, or a list of URLs (etcd's URL rules, so an origin
/// needs its port), kept in Go's `url.String()` form, which is what an `Origin` header is
/// compared with.
fn parse_cors(value: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
    if value == "*" {
        return Ok(["*".to_string()].into());
    }
    let mut out = std::collections::BTreeSet::new();
    for part in value.split(',') {
        let invalid = |why: &str| anyhow::anyhow!("invalid value {value:?} for flag -cors: {why}");
        let part = part.trim();
        let url = Url::parse(part)
            .map_err(|_| invalid(&format!("URL scheme must be http, https, unix, or unixs: {part}")))?;
        if !matches!(url.scheme(), "http" | "https" | "unix" | "unixs") {
            return Err(invalid(&format!("URL scheme must be http, https, unix, or unixs: {part}")));
        }
        // The url crate drops a scheme's default port, which Go keeps: look for it as given.
        let has_port =
            url.port().is_some() || url.port_or_known_default().is_some_and(|p| part.contains(&format!(":{p}")));
        if url.host_str().is_none() || !has_port {
            return Err(invalid(&format!("URL address does not have the form \"host:port\": {part}")));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(invalid(&format!("URL must not contain a path: {part}")));
        }
        out.insert(part.trim_end_matches('/').to_string());
    }
    Ok(out)
}

/// A URL as etcd prints and hashes it: no trailing slash.
pub fn trim_url(u: &Url) -> String {
    u.as_str().trim_end_matches('/').to_string()
}

/// A URL's `host:port`, as Go's `url.URL.Host` prints it.
fn host_port(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        _ => trim_url(u),
    }
}

pub(crate) fn parse_urls(flag: &str, value: &str) -> anyhow::Result<Vec<Url>> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(part).with_context(|| format!("invalid value {part:?} for flag {flag}"))?;
        match url.scheme() {
            "http" | "https" | "unix" | "unixs" => {}
            _ => bail!("{flag}: URL scheme must be http, https, unix, or unixs: {part}"),
        }
        if url.host_str().is_none() || url.port().is_none() {
            bail!("{flag}: URL address does not have the form \"host:port\": {part}");
        }
        out.push(url);
    }
    if out.is_empty() {
        bail!("{flag} must not be empty");
    }
    Ok(out)
}

/// Parses `name1=url1,name1=url2,name2=url3`: a name may appear several times, once per URL.
pub(crate) fn parse_initial_cluster(value: &str) -> anyhow::Result<BTreeMap<String, Vec<Url>>> {
    let mut out: BTreeMap<String, Vec<Url>> = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            bail!("--initial-cluster: {part:?} is not of the form name=url");
        };
        let url = parse_urls("--initial-cluster", url)?.remove(0);
        let urls = out.entry(name.to_string()).or_default();
        if urls.contains(&url) {
            bail!("--initial-cluster: duplicate URL {url} for member {name:?}");
        }
        urls.push(url);
    }
    if out.is_empty() {
        bail!("--initial-cluster must not be empty");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: MemberFlags,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let mut all = vec!["wasmraft"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)?.flags.validate()
    }

    #[test]
    fn etcd_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(c.listen_client_urls[0].as_str(), "http://localhost:2379/");
        assert_eq!(c.initial_cluster.len(), 1);
        assert_eq!(c.node_config().election_ticks(), 10);
        assert_eq!(c.request_timeout(), Duration::from_secs(7));
    }

    #[test]
    fn guest_limits_flags_for_the_first_deployment() {
        let c = parse(&["--guest-fuel", "1000", "--guest-memory", "65536"]).unwrap();
        assert_eq!((c.guest_fuel, c.guest_memory_bytes), (Some(1000), Some(65536)));
        let c = parse(&["--guest-memory-bytes", "131072"]).unwrap();
        assert_eq!(c.guest_memory_bytes, Some(131072));
        assert_eq!(parse(&["--guest-stack-bytes", "1048576"]).unwrap().guest_stack_bytes, Some(1 << 20));
        let e = parse(&["--guest-stack-bytes", "1000000"]).unwrap_err().to_string();
        assert!(e.contains("--guest-stack-bytes 1000000: must be a power of two"), "{e}");
    }

    #[test]
    fn name_without_initial_cluster_forms_own_cluster() {
        let c = parse(&["--name", "n1", "--initial-advertise-peer-urls", "http://127.0.0.1:9000"]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("n1.etcd"));
        assert_eq!(c.initial_cluster["n1"][0].as_str(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn bad_flags_are_clear() {
        let e = parse(&["--name", "x", "--initial-cluster", "y=http://localhost:2380"]).unwrap_err();
        assert!(e.to_string().contains("couldn't find local name \"x\""), "{e}");
        let e = parse(&["--election-timeout", "200"]).unwrap_err();
        assert!(e.to_string().contains("at least as 5 times"), "{e}");
        let e = parse(&["--listen-client-urls", "localhost:2379"]).unwrap_err();
        assert!(format!("{e:#}").contains("--listen-client-urls"), "{e:#}");
        assert!(parse(&["--no-such-flag"]).is_err());
    }

    #[test]
    fn metrics_urls() {
        assert!(parse(&[]).unwrap().listen_metrics_urls.is_empty(), "etcd's default is none");
        let c = parse(&["--listen-metrics-urls", "http://127.0.0.1:9100,http://localhost:9101"]).unwrap();
        assert_eq!(c.listen_metrics_urls.len(), 2);
        let e = parse(&["--listen-metrics-urls", "https://127.0.0.1:9100"]).unwrap_err();
        assert!(e.to_string().contains("http only"), "{e}");
        assert!(parse(&["--listen-metrics-urls", "127.0.0.1:9100"]).is_err());
    }

    #[test]
    fn client_tls_flags() {
        let https = ["--listen-client-urls", "https://127.0.0.1:2379"];
        let e = parse(&https).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        let c = parse(&[https[0], https[1], "--auto-tls"]).unwrap();
        assert!(c.client_tls.auto_tls && c.client_tls.is_empty());
        let c = parse(&[https[0], https[1], "--cert-file", "c.pem", "--key-file", "k.pem", "--client-cert-auth=true"])
            .unwrap();
        assert!(c.client_tls.client_cert_auth);
        assert_eq!(c.client_tls.cert_file.as_deref(), Some(std::path::Path::new("c.pem")));
        // Go's boolean flags: bare, =true and =false.
        assert!(parse(&["--client-cert-auth"]).unwrap().client_tls.client_cert_auth);
        assert!(!parse(&["--client-cert-auth=false"]).unwrap().client_tls.client_cert_auth);
    }

    #[test]
    fn peer_tls_flags() {
        let https = ["--listen-peer-urls", "https://127.0.0.1:2380"];
        let e = parse(&https).unwrap_err();
        assert_eq!(format!("{e:#}"), "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented");
        let c = parse(&[https[0], https[1], "--peer-auto-tls"]).unwrap();
        assert!(c.peer_tls.auto_tls && c.peer_tls.is_empty() && !c.peer_tls.skip_client_san_verify);
        let c = parse(&[
            https[0],
            https[1],
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-cluster",
            "default=https://127.0.0.1:2380",
            "--peer-cert-file=p.pem",
            "--peer-key-file=pk.pem",
            "--peer-trusted-ca-file=ca.pem",
            "--peer-client-cert-auth",
            "--experimental-peer-skip-client-san-verification",
        ])
        .unwrap();
        assert_eq!(c.peer_tls.cert_file.as_deref(), Some(std::path::Path::new("p.pem")));
        assert!(c.peer_tls.client_cert_auth && c.peer_tls.skip_client_san_verify);
        assert_eq!(c.initial_cluster["default"][0].scheme(), "https");
        // https URLs of other members need no certificate here (they are only dialed).
        assert!(parse(&["--initial-cluster", "default=http://localhost:2380,other=https://127.0.0.1:2390"]).is_ok());
    }
}
