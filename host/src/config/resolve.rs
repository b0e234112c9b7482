//! From parsed flags to a [`Config`]: etcd's checks (embed.Config.Validate, setupLogging, the
//! parsing StartEtcd does of --auto-compaction-retention), its derived defaults (data dir,
//! initial cluster), and the values other code reads typed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use url::Url;
use wasmraft_client::tls::TlsPolicy;
use wasmraft_transport::socket::is_tls_scheme;

use super::urls::{host_port, parse_initial_cluster, parse_urls, trim_url};
use super::{ClusterState, Config, LogLevel, Logger, MemberFlags};

/// One `--log-outputs` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// etcd: journald under systemd, else stderr; wasmraft: stderr.
    Default,
    Stderr,
    Stdout,
    /// Appended to (zap logger only, as in etcd).
    File(PathBuf),
}

/// `--metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    Basic,
    /// Also the gRPC handling-time histograms.
    Extensive,
}

impl MemberFlags {
    /// Checks the flags the way etcd does and fills in derived defaults.
    pub fn validate(self) -> anyhow::Result<Config> {
        super::refused::check(&self)?;
        if self.heartbeat_interval == 0 {
            bail!("--heartbeat-interval must be > 0 (set to {}ms)", self.heartbeat_interval);
        }
        if self.election_timeout == 0 {
            bail!("--election-timeout must be >0 (set to {}ms)", self.election_timeout);
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
        if self.experimental_enable_lease_checkpoint_persist && !self.experimental_enable_lease_checkpoint {
            bail!("setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint");
        }
        // etcd's parsing and texts (the compactor's own); the hidden test flag shortens revision
        // mode's fixed 5 minutes.
        let mut auto_compaction =
            wasmraft_api::compactor::Policy::parse(&self.auto_compaction_mode, &self.auto_compaction_retention)?;
        if let (Some(p), Some(every)) = (auto_compaction, self.wasmraft_test_revision_compaction_interval) {
            auto_compaction = Some(p.with_revision_interval(every));
        }
        let log_outputs = log_outputs(&self)?;
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
            enable_pprof: self.enable_pprof,
        };
        // --cipher-suites applies to both ports; the CRL and allowed names to one each.
        let cipher_suites = list(&self.cipher_suites, "");
        let client_tls = crate::tls::TlsInfo {
            cert_file: set(self.cert_file),
            key_file: set(self.key_file),
            trusted_ca_file: set(self.trusted_ca_file),
            client_cert_auth: self.client_cert_auth,
            auto_tls: self.auto_tls,
            policy: TlsPolicy {
                cipher_suites: cipher_suites.clone(),
                crl_file: set(self.client_crl_file),
                allowed_cn: String::new(),
                allowed_hostname: self.client_cert_allowed_hostname.unwrap_or_default(),
            },
            ..Default::default()
        };
        let peer_tls = crate::tls::TlsInfo {
            cert_file: set(self.peer_cert_file),
            key_file: set(self.peer_key_file),
            trusted_ca_file: set(self.peer_trusted_ca_file),
            client_cert_auth: self.peer_client_cert_auth,
            auto_tls: self.peer_auto_tls,
            skip_client_san_verify: self.experimental_peer_skip_client_san_verification,
            policy: TlsPolicy {
                cipher_suites,
                crl_file: set(self.peer_crl_file),
                allowed_cn: self.peer_cert_allowed_cn.unwrap_or_default(),
                allowed_hostname: self.peer_cert_allowed_hostname.unwrap_or_default(),
            },
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
        // cluster of itself under its own name; with --discovery-srv, DNS names the members when
        // the member starts (`server.rs`).
        let initial_cluster = match (&self.initial_cluster, &discovery_srv) {
            (_, Some(_)) => std::collections::BTreeMap::new(),
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
        // With --discovery-srv the initial cluster comes from DNS when the member starts (until
        // then `initial_cluster` is this member alone); the check that it contains this member is
        // made then (etcd: "cannot find local etcd member ... in SRV records").
        if self.initial_cluster_state == ClusterState::New && discovery_srv.is_none() {
            check_own_entry(&self.name, &initial_cluster, &initial_advertise_peer_urls)?;
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
        let data_dir = set(self.data_dir.clone()).unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        Ok(Config {
            name: self.name,
            data_dir,
            wal_dir: set(self.wal_dir),
            listen_client_urls,
            listen_metrics_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            discovery_srv,
            max_snapshots: self.max_snapshots,
            max_wals: self.max_wals,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            initial_election_tick_advance: self.initial_election_tick_advance,
            strict_reconfig_check: self.strict_reconfig_check,
            pre_vote: self.pre_vote,
            force_new_cluster: self.force_new_cluster,
            auto_compaction,
            quota_backend_bytes: self.quota_backend_bytes,
            backend_batch_interval: self.backend_batch_interval,
            backend_batch_limit: self.backend_batch_limit,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            client_conn,
            watch_progress_notify_interval: self.experimental_watch_progress_notify_interval,
            experimental_initial_corrupt_check: self.experimental_initial_corrupt_check,
            experimental_corrupt_check_time: self.experimental_corrupt_check_time,
            experimental_enable_lease_checkpoint: self.experimental_enable_lease_checkpoint,
            experimental_enable_lease_checkpoint_persist: self.experimental_enable_lease_checkpoint_persist,
            lease_checkpoint_interval: self
                .wasmraft_test_lease_checkpoint_interval
                .unwrap_or(wasmraft_api::lessor::DEFAULT_CHECKPOINT_INTERVAL),
            experimental_warning_apply_duration: self.experimental_warning_apply_duration,
            unsafe_no_fsync: self.unsafe_no_fsync,
            enable_grpc_gateway: self.enable_grpc_gateway,
            bcrypt_cost: self.bcrypt_cost,
            auth_token: self.auth_token,
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            logger: self.logger,
            // etcd 3.4: --debug means debug level with capnslog only; zap reads --log-level alone.
            log_level: if self.debug && self.logger == Logger::Capnslog { LogLevel::Debug } else { self.log_level },
            log_outputs,
            enable_pprof: self.enable_pprof,
            metrics: if self.metrics == "extensive" { super::Metrics::Extensive } else { super::Metrics::Basic },
            guest: set(self.guest),
            guest_fuel: self.guest_fuel,
            guest_memory_bytes: self.guest_memory_bytes,
            guest_stack_bytes: self.guest_stack_bytes,
            fault_injection: self.wasmraft_fault_injection,
            emulated_etcd_version: self.wasmraft_emulated_etcd_version,
            proposal_batch_limit: self.wasmraft_proposal_batch_limit,
            client_tls,
            peer_tls,
        })
    }
}

/// etcd: a new member must be in --initial-cluster with exactly its advertised peer URLs.
fn check_own_entry(
    name: &str,
    initial_cluster: &std::collections::BTreeMap<String, Vec<Url>>,
    advertised: &[Url],
) -> anyhow::Result<()> {
    let Some(mine) = initial_cluster.get(name) else {
        bail!("couldn't find local name {name:?} in the initial cluster configuration");
    };
    let mut a: Vec<String> = mine.iter().map(trim_url).collect();
    let mut b: Vec<String> = advertised.iter().map(trim_url).collect();
    a.sort();
    b.sort();
    if a != b {
        bail!(
            "--initial-cluster has {name}={} but missing from --initial-advertise-peer-urls={} (resolved urls: {:?} != {:?})",
            a.join(","),
            b.join(","),
            a,
            b
        );
    }
    Ok(())
}

/// etcd's setupLogging: the deprecated --log-output, then what each logger can write to.
fn log_outputs(flags: &MemberFlags) -> anyhow::Result<Vec<super::LogOutput>> {
    let outputs = list(&flags.log_outputs, "");
    let deprecated = list(&flags.log_output, "");
    let chosen = match (deprecated.as_slice(), outputs.as_slice()) {
        ([d], _) if d == "default" => outputs,
        (_, [o]) if o == "default" => deprecated,
        _ => bail!("both '--log-output' and '--log-outputs' are set; only set '--log-outputs'"),
    };
    if chosen.is_empty() {
        bail!("either '--log-output' or '--log-outputs' flag must be set");
    }
    if flags.logger == Logger::Capnslog && chosen.len() != 1 {
        bail!("--logger=capnslog supports only 1 value in '--log-outputs', got {chosen:?}");
    }
    chosen
        .into_iter()
        .map(|o| {
            Ok(match o.as_str() {
                "default" => super::LogOutput::Default,
                "stderr" => super::LogOutput::Stderr,
                "stdout" => super::LogOutput::Stdout,
                // etcd's capnslog writes to one of the three only.
                _ if flags.logger == Logger::Capnslog => {
                    bail!("unknown log-output {o:?} (only supports \"default\", \"stderr\", \"stdout\")")
                }
                // etcd 3.4's zap also takes "systemd/journal"; wasmraft has no journald writer.
                "systemd/journal" => bail!("--log-outputs: wasmraft cannot write to systemd/journal: use stderr"),
                path => super::LogOutput::File(PathBuf::from(path)),
            })
        })
        .collect()
}

/// A comma-separated flag value, trimmed, without empty items (etcd's StringsValue).
fn list(value: &str, empty_means: &str) -> Vec<String> {
    let items: Vec<String> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if items.is_empty() && !empty_means.is_empty() { vec![empty_means.to_string()] } else { items }
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

/// A path flag given empty is unset, as etcd's string flags are.
fn set(p: Option<PathBuf>) -> Option<PathBuf> {
    p.filter(|p| !p.as_os_str().is_empty())
}
