//! The member's Prometheus metrics: one registry, rendered in the text exposition format etcd
//! serves at `/metrics` (see `docs/metrics.md` for every metric and what it means).
//!
//! Where a wasmraft measurement means what an etcd 3.4 metric means, it carries etcd's name,
//! type, labels and help text, so dashboards, alerts and `etcdctl check datascale` work
//! unchanged; wasmraft's own (the guest's) are named `wasmraft_*`. Nothing etcd measures that
//! wasmraft does not do is served under etcd's name.
//!
//! Two kinds of values, so the hot paths pay nothing beyond atomics:
//! - **events** (counters, histograms) are recorded where they happen — the raft thread's fsync,
//!   the apply thread's commit, each guest call, each gRPC call — through [`metrics()`], a
//!   process-wide instance: the prometheus crate's counters and histograms are atomics, and
//!   labelled series on paths taken per entry are resolved once, here;
//! - **state** (leader, indexes, sizes, the active guest) is read from the member when
//!   `/metrics` is scraped ([`render`]), never maintained on the data path.
//!
//! A leaf crate: it knows counters and the text format, nothing of the node. The state gauges
//! come in as a [`MemberState`] the caller reads from its member at scrape time.
//!
//! One process runs one member, so process-wide is member-wide. (In-process test harnesses that
//! run several members in one process share the event counters; their scrapes are not meant to
//! be read per member.)

mod guest;

pub use guest::{GUEST_PREFIX, GuestExport, GuestSample};

use std::sync::{LazyLock, Mutex, OnceLock};

use prometheus::core::Collector;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
/// The metric types callers hold on to (a resolved labelled series, a gauge passed around).
pub use prometheus::{Histogram, IntCounter, IntGauge};

/// What the state gauges show, read from the member when `/metrics` is scraped.
#[derive(Debug, Clone, Default)]
pub struct MemberState {
    pub member_id: u64,
    /// 0: no leader known.
    pub leader: u64,
    pub is_learner: bool,
    pub committed_index: u64,
    pub applied_index: u64,
    pub quota_bytes: u64,
    pub db_size: u64,
    /// Bytes carried to and from each peer so far.
    pub peers: Vec<PeerBytes>,
    /// The active guest's name, version and module hash.
    pub guest: Option<(String, String, String)>,
    /// What the active guest exported (WIT `metrics`), as of the last applied batch.
    pub guest_export: Option<GuestExport>,
}

/// One peer's traffic: totals kept by the transport, which the counters are brought up to.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerBytes {
    pub id: u64,
    pub sent: u64,
    pub received: u64,
}

/// The Content-Type etcd (Go's promhttp) serves the text format with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a guest call on an entry (`apply`, or `migrate` in a swap entry) failed. Every member
/// fails the same entry the same way, so these counts agree across members that applied the same
/// log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFailure {
    /// The guest trapped (a panic, `unreachable`, a bad memory access, …).
    Trap,
    /// The entry used up its fuel.
    OutOfFuel,
    /// The guest hit the deployment's memory limit.
    Memory,
    /// The guest returned `Err`.
    Err,
    /// The guest broke a host limit (a key, value, event or result too large).
    HostLimit,
}

impl GuestFailure {
    const ALL: [GuestFailure; 5] = [Self::Trap, Self::OutOfFuel, Self::Memory, Self::Err, Self::HostLimit];

    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::OutOfFuel => "out_of_fuel",
            Self::Memory => "memory",
            Self::Err => "err",
            Self::HostLimit => "host_limit",
        }
    }
}

/// Every metric of the member. Fields are public where code outside this module records an
/// event; state gauges are private and set by [`render`].
pub struct Metrics {
    registry: Registry,

    // etcd_server_*: state, set at scrape.
    has_leader: IntGauge,
    is_leader: IntGauge,
    is_learner: IntGauge,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    quota_backend_bytes: IntGauge,
    server_id: IntGaugeVec,
    // etcd_server_*: events.
    pub leader_changes: IntCounter,
    pub proposals_pending: IntGauge,
    pub proposals_failed: IntCounter,
    pub slow_apply: IntCounter,
    pub heartbeat_send_failures: IntCounter,
    pub slow_read_indexes: IntCounter,
    pub read_indexes_failed: IntCounter,
    pub health_success: IntCounter,
    pub health_failures: IntCounter,

    // etcd_disk_*, etcd_mvcc_*.
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub backend_snapshot: Histogram,
    pub backend_durable_commits: IntCounter,
    db_total_size: IntGauge,
    db_total_size_debugging: IntGauge,

    // etcd_network_peer_*: the transport's counts, carried over at scrape.
    peer_sent_bytes: IntCounterVec,
    peer_received_bytes: IntCounterVec,
    /// Serializes scrapes: state gauges are reset and set, and peer counters advanced by the
    /// difference since the last scrape, which two scrapes at once would count twice.
    scrape: Mutex<()>,

    // etcd_network_client_*, go-grpc-prometheus's grpc_server_*.
    pub grpc_received_bytes: IntCounter,
    pub grpc_sent_bytes: IntCounter,
    pub grpc_started: IntCounterVec,
    pub grpc_handled: IntCounterVec,
    pub grpc_msg_received: IntCounterVec,
    pub grpc_msg_sent: IntCounterVec,
    /// `--metrics=extensive` only: go-grpc-prometheus's handling-time histogram, which etcd
    /// turns on with `EnableHandlingTimeHistogram` (None: not enabled, nothing recorded).
    grpc_handling: OnceLock<HistogramVec>,

    // wasmraft_guest_*.
    pub guest_apply_duration: Histogram,
    pub guest_fuel_consumed: IntCounter,
    guest_failures: [IntCounter; GuestFailure::ALL.len()],
    pub guest_swaps: IntCounter,
    guest_info: IntGaugeVec,
    // etcd_server_version, etcd_cluster_version: 1 for the version reported.
    server_version: IntGaugeVec,
    cluster_version: IntGaugeVec,
}

/// The process's metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// etcd's buckets for the WAL fsync and backend commit latencies: 1 ms to ~8 s, doubling.
fn disk_buckets() -> Vec<f64> {
    exponential(0.001, 14)
}

/// `count` bucket bounds from `start`, doubling (Prometheus' `ExponentialBuckets(start, 2, count)`).
fn exponential(start: f64, count: u32) -> Vec<f64> {
    (0..count).map(|i| start * f64::from(1u32 << i)).collect()
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            has_leader: gauge(
                &r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            is_learner: gauge(
                &r,
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            ),
            proposals_committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            quota_backend_bytes: gauge(
                &r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            server_id: gauge_vec(
                &r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                &["server_id"],
            ),
            leader_changes: counter(&r, "etcd_server_leader_changes_seen_total", "The number of leader changes seen."),
            proposals_pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            slow_apply: counter(
                &r,
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            heartbeat_send_failures: counter(
                &r,
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            slow_read_indexes: counter(
                &r,
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            ),
            read_indexes_failed: counter(
                &r,
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            ),
            health_success: counter(&r, "etcd_server_health_success", "The total number of successful health checks"),
            health_failures: counter(&r, "etcd_server_health_failures", "The total number of failed health checks"),
            wal_fsync: histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                disk_buckets(),
            ),
            backend_commit: histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                disk_buckets(),
            ),
            backend_snapshot: histogram(
                &r,
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                exponential(0.01, 17),
            ),
            backend_durable_commits: counter(
                &r,
                "wasmraft_state_durable_commits_total",
                "State database commits made durable (fsynced): every --backend-batch-interval while entries were applied, or after --backend-batch-limit entries.",
            ),
            db_total_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_total_size_debugging: gauge(
                &r,
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            peer_sent_bytes: counter_vec(
                &r,
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            ),
            peer_received_bytes: counter_vec(
                &r,
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            ),
            scrape: Mutex::new(()),
            grpc_received_bytes: counter(
                &r,
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            grpc_sent_bytes: counter(
                &r,
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            grpc_started: counter_vec(
                &r,
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
            ),
            grpc_handled: counter_vec(
                &r,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            grpc_msg_received: counter_vec(
                &r,
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
            ),
            grpc_msg_sent: counter_vec(
                &r,
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
            ),
            grpc_handling: OnceLock::new(),
            guest_apply_duration: histogram(
                &r,
                "wasmraft_guest_apply_duration_seconds",
                "Time a guest call on one entry (apply, or migrate in a swap entry) took, from instantiation to its result.",
                // 50 µs to ~52 s: entries take well under a millisecond, a compaction or a
                // swap's migrate can take seconds.
                exponential(0.000_05, 21),
            ),
            guest_fuel_consumed: counter(
                &r,
                "wasmraft_guest_fuel_consumed_total",
                "Fuel (roughly, Wasm instructions plus host-call charges) guests spent applying entries.",
            ),
            guest_failures: {
                let v = counter_vec(
                    &r,
                    "wasmraft_guest_apply_failures_total",
                    "Entries whose guest call failed (and so changed nothing), by kind: trap, out_of_fuel, memory, err (the guest returned Err), host_limit.",
                    &["kind"],
                );
                GuestFailure::ALL.map(|k| v.with_label_values(&[k.label()]))
            },
            guest_swaps: counter(
                &r,
                "wasmraft_guest_swaps_total",
                "Guest swaps applied (a deploy entry that switched the active guest).",
            ),
            guest_info: gauge_vec(
                &r,
                "wasmraft_guest_info",
                "The active guest: 1 for its name, version and module sha256.",
                &["name", "version", "hash"],
            ),
            server_version: gauge_vec(
                &r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                &["server_version"],
            ),
            cluster_version: gauge_vec(
                &r,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                &["cluster_version"],
            ),
            registry: r,
        };
        m.register_constants();
        m
    }

    /// Metrics whose value never changes in a process.
    fn register_constants(&self) {
        self.report_etcd_version(wasmraft_proto::contract::ETCD_VERSION);
        #[cfg(target_os = "linux")]
        register(&self.registry, prometheus::process_collector::ProcessCollector::for_self());
    }

    /// `etcd_server_version` and `etcd_cluster_version` (major.minor) for the etcd version the
    /// member reports (`--wasmraft-emulated-etcd-version`); replaces what was reported before.
    pub fn report_etcd_version(&self, version: &str) {
        self.server_version.reset();
        self.server_version.with_label_values(&[version]).set(1);
        let cluster = wasmraft_proto::contract::cluster_version(version);
        let minor = cluster.strip_suffix(".0").unwrap_or(&cluster);
        self.cluster_version.reset();
        self.cluster_version.with_label_values(&[minor]).set(1);
    }

    /// etcd's `--metrics=extensive`: from now on every gRPC call's handling time is recorded in
    /// `grpc_server_handling_seconds` (go-grpc-prometheus' name, help, labels and Prometheus'
    /// default buckets). Off by default, as in etcd, because it adds a dozen series per method.
    pub fn enable_handling_time_histogram(&self) {
        self.grpc_handling.get_or_init(|| {
            let h = HistogramVec::new(
                HistogramOpts::new(
                    "grpc_server_handling_seconds",
                    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                )
                .buckets(prometheus::DEFAULT_BUCKETS.to_vec()),
                &["grpc_type", "grpc_service", "grpc_method"],
            )
            .expect("a valid metric definition");
            register(&self.registry, h.clone());
            h
        });
    }

    /// The handling-time histogram, when `--metrics=extensive` enabled it.
    pub fn grpc_handling(&self) -> Option<&HistogramVec> {
        self.grpc_handling.get()
    }

    /// Counts a guest call on an entry that failed.
    pub fn guest_failed(&self, kind: GuestFailure) {
        self.guest_failures[kind as usize].inc();
    }

    /// Guest calls on entries that failed this way so far.
    pub fn guest_failures(&self, kind: GuestFailure) -> u64 {
        self.guest_failures[kind as usize].get()
    }

    /// Sets the state gauges from `state` and renders every metric in the text format.
    fn render(&self, state: &MemberState) -> Vec<u8> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.has_leader.set(i64::from(state.leader != 0));
        self.is_leader.set(i64::from(state.leader != 0 && state.leader == state.member_id));
        self.is_learner.set(i64::from(state.is_learner));
        self.proposals_committed.set(saturating_i64(state.committed_index));
        self.proposals_applied.set(saturating_i64(state.applied_index));
        self.quota_backend_bytes.set(saturating_i64(state.quota_bytes));
        self.server_id.reset();
        self.server_id.with_label_values(&[&format!("{:x}", state.member_id)]).set(1);
        self.db_total_size.set(saturating_i64(state.db_size));
        self.db_total_size_debugging.set(saturating_i64(state.db_size));
        for t in &state.peers {
            let id = format!("{:x}", t.id);
            advance(&self.peer_sent_bytes.with_label_values(&[&id]), t.sent);
            advance(&self.peer_received_bytes.with_label_values(&[&id]), t.received);
        }
        self.guest_info.reset();
        if let Some((name, version, hash)) = &state.guest {
            self.guest_info.with_label_values(&[name, version, hash]).set(1);
        }
        let families = self.registry.gather();
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!("encoding /metrics: {e}");
        }
        if let Some(export) = &state.guest_export {
            let taken = families.iter().map(|f| f.name().to_string()).collect();
            let mut text = String::new();
            guest::render(export, &taken, &mut text);
            out.extend_from_slice(text.as_bytes());
        }
        out
    }
}

/// The text `/metrics` answers for a member in `state`.
pub fn render(state: &MemberState) -> Vec<u8> {
    metrics().render(state)
}

/// Brings a counter up to `total` (a count kept elsewhere); never down.
fn advance(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

// The metric definitions above are constants: a name or label the prometheus crate refuses is a
// bug in this file, caught by the unit tests below, never something a client, peer, guest or disk
// can cause. Registration failures (a duplicate name) are logged and the metric goes unserved.

fn register<C: Collector + 'static>(r: &Registry, c: C) {
    if let Err(e) = r.register(Box::new(c)) {
        tracing::error!("registering a metric: {e}");
    }
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric definition");
    register(r, g.clone());
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric definition");
    register(r, c.clone());
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
    register(r, g.clone());
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
    register(r, c.clone());
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("a valid metric definition");
    register(r, h.clone());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_buckets() {
        assert_eq!(disk_buckets().first(), Some(&0.001));
        assert_eq!(disk_buckets().last(), Some(&8.192));
        assert_eq!(disk_buckets().len(), 14);
        let snap = exponential(0.01, 17);
        assert!((snap[16] - 655.36).abs() < 1e-9, "{snap:?}");
    }

    #[test]
    fn every_definition_registers() {
        let m = Metrics::new();
        m.guest_failed(GuestFailure::OutOfFuel);
        m.grpc_started.with_label_values(&["unary", "etcdserverpb.KV", "Put"]).inc();
        let families = m.registry.gather();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for want in [
            "etcd_server_has_leader",
            "etcd_server_version",
            "etcd_disk_wal_fsync_duration_seconds",
            "grpc_server_started_total",
            "wasmraft_guest_apply_failures_total",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        #[cfg(target_os = "linux")]
        assert!(names.contains(&"process_resident_memory_bytes"), "{names:?}");
        let mut text = Vec::new();
        prometheus::TextEncoder::new().encode(&families, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("wasmraft_guest_apply_failures_total{kind=\"out_of_fuel\"} 1"), "{text}");
        assert!(text.contains("# TYPE etcd_server_proposals_applied_total gauge"), "{text}");
    }

    #[test]
    fn handling_time_histogram_only_once_enabled() {
        let m = Metrics::new();
        let names = |m: &Metrics| m.registry.gather().iter().map(|f| f.name().to_string()).collect::<Vec<_>>();
        assert!(m.grpc_handling().is_none());
        assert!(!names(&m).contains(&"grpc_server_handling_seconds".to_string()));
        m.enable_handling_time_histogram();
        m.enable_handling_time_histogram();
        let h = m.grpc_handling().expect("enabled");
        h.with_label_values(&["unary", "etcdserverpb.KV", "Put"]).observe(0.002);
        let mut text = Vec::new();
        prometheus::TextEncoder::new().encode(&m.registry.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("grpc_server_handling_seconds_bucket{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\",le=\"0.005\"} 1"),
            "{text}"
        );
    }
}
