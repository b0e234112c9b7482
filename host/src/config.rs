//! The member's command line: etcd 3.4's flags with etcd's defaults and environment variables
//! (`ETCD_NAME`, …), so scripts written for etcd start wasmraft unchanged, plus wasmraft's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use url::Url;

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
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0, allow_negative_numbers = true)]
    pub quota_backend_bytes: i64,

    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub experimental_initial_corrupt_check: bool,

    /// Duration of time between cluster corruption check passes.
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = wasmraft_client::go_duration::parse)]
    pub experimental_corrupt_check_time: Duration,

    /// Auto compaction retention length. 0 means disable auto compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,

    /// Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,

    /// wasmraft only, FOR TESTS ONLY: how often `--auto-compaction-mode=revision` compacts
    /// (etcd's fixed 5 minutes, too long for a test to wait).
    #[arg(long, hide = true, env = "WASMRAFT_TEST_REVISION_COMPACTION_INTERVAL", value_parser = wasmraft_client::go_duration::parse)]
    pub wasmraft_test_revision_compaction_interval: Option<Duration>,

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
    /// --quota-backend-bytes: 0 is etcd's default (2 GiB), a negative value disables the quota.
    pub quota_backend_bytes: i64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub watch_progress_notify_interval: Duration,
    /// --experimental-initial-corrupt-check: compare HashKV with the peers before serving.
    pub initial_corrupt_check: bool,
    /// --experimental-corrupt-check-time: how often the leader compares (None: never).
    pub corrupt_check_time: Option<Duration>,
    /// --auto-compaction-mode and --auto-compaction-retention (None: disabled, etcd's default).
    pub auto_compaction: Option<wasmraft_api::compactor::Policy>,
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
        if let Some(u) = listen_metrics_urls.iter().find(|u| u.scheme() == "https") {
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
            && let Some(u) = listen_client_urls.iter().find(|u| u.scheme() == "https")
        {
            bail!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                trim_url(u)
            );
        }
        // etcd: without an explicit --initial-cluster, a member named other than "default" forms a
        // cluster of itself under its own name.
        let initial_cluster_flag = match &self.initial_cluster {
            Some(c) => c.clone(),
            None => initial_advertise_peer_urls
                .iter()
                .map(|u| format!("{}={}", self.name, trim_url(u)))
                .collect::<Vec<_>>()
                .join(","),
        };
        let initial_cluster = parse_initial_cluster(&initial_cluster_flag)?;
        // etcd's peer listener refuses TLS without a certificate (advertised and other members'
        // https URLs need none: they are dialed, verified against the system's roots then).
        if peer_tls.is_empty()
            && !peer_tls.auto_tls
            && let Some(u) = listen_peer_urls.iter().find(|u| u.scheme() == "https")
        {
            bail!("cannot listen on TLS for {}: KeyFile and CertFile are not presented", host_port(u));
        }
        if self.initial_cluster_state == ClusterState::New {
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
        let mut auto_compaction =
            wasmraft_api::compactor::Policy::parse(&self.auto_compaction_mode, &self.auto_compaction_retention)?;
        if let (Some(p), Some(every)) = (auto_compaction, self.wasmraft_test_revision_compaction_interval) {
            auto_compaction = Some(p.with_revision_interval(every));
        }
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
            auto_compaction,
            initial_corrupt_check: self.experimental_initial_corrupt_check,
            corrupt_check_time: (!self.experimental_corrupt_check_time.is_zero())
                .then_some(self.experimental_corrupt_check_time),
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
        })
    }
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
            "http" | "https" => {}
            "unix" | "unixs" => bail!("{flag}: {part}: unix socket URLs are not supported by wasmraft"),
            other => bail!("{flag}: URL scheme must be http or https, got {other:?} in {part:?}"),
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
    fn auto_compaction_flags() {
        use wasmraft_api::compactor::Policy;
        assert_eq!(parse(&[]).unwrap().auto_compaction, None, "etcd's default: off");
        let c = parse(&["--auto-compaction-retention", "2s"]).unwrap();
        assert_eq!(c.auto_compaction, Some(Policy::Periodic(Duration::from_secs(2))));
        let c = parse(&["--auto-compaction-retention=1"]).unwrap();
        assert_eq!(c.auto_compaction, Some(Policy::Periodic(Duration::from_secs(3600))));
        let c = parse(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=10",
            "--wasmraft-test-revision-compaction-interval=1s",
        ])
        .unwrap();
        assert_eq!(c.auto_compaction, Some(Policy::Revision { retention: 10, interval: Duration::from_secs(1) }));
        let e = parse(&["--auto-compaction-mode", "bogus"]).unwrap_err();
        assert_eq!(format!("{e:#}"), "unknown auto-compaction-mode \"bogus\"");
        let e = parse(&["--auto-compaction-retention", "abc"]).unwrap_err();
        assert_eq!(format!("{e:#}"), "error parsing CompactionRetention: time: invalid duration \"abc\"");
    }

    #[test]
    fn corrupt_check_flags() {
        let c = parse(&[]).unwrap();
        assert!(!c.initial_corrupt_check && c.corrupt_check_time.is_none(), "etcd's defaults: off, 0s");
        let c = parse(&["--experimental-initial-corrupt-check", "--experimental-corrupt-check-time=1m30s"]).unwrap();
        assert!(c.initial_corrupt_check);
        assert_eq!(c.corrupt_check_time, Some(Duration::from_secs(90)));
        assert!(!parse(&["--experimental-initial-corrupt-check=false"]).unwrap().initial_corrupt_check);
        assert!(parse(&["--experimental-corrupt-check-time=5"]).is_err(), "a Go duration needs its unit");
    }

    #[test]
    fn quota_flag_takes_etcds_negative_to_disable() {
        assert_eq!(parse(&[]).unwrap().quota_backend_bytes, 0);
        assert_eq!(parse(&["--quota-backend-bytes", "-1"]).unwrap().quota_backend_bytes, -1);
        assert_eq!(parse(&["--quota-backend-bytes=53248"]).unwrap().quota_backend_bytes, 53248);
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
