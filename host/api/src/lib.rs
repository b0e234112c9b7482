//! # wasmraft-api: etcd's client API
//!
//! etcd's v3 gRPC client API (`etcdserverpb`), served over the member's [`NodeHandle`], with what
//! only a client API needs: the watch hub ([`watch_hub`]), the lessor's deadlines ([`lessor`]),
//! the HTTP/2 `:authority` rewriter in front of the gRPC router ([`authority`]), and the plain
//! HTTP endpoints (`/health`, `/version`, `/metrics`, and `/debug/pprof/` with `--enable-pprof`), and
//! etcd's JSON gateway at `/v3/` ([`gateway`]), which calls the same services in-process.
//!
//! It must not know raft, the raft log or the state database (it reaches the member only
//! through [`NodeHandle`]), nor flags, listeners or TLS files (the binary hands it a built
//! router's settings).
//!
//! This layer does what etcd's `etcdserver/api/v3rpc` package does: it checks requests the way
//! etcd checks them before they reach raft, wraps writes in etcd's `InternalRaftRequest` and
//! proposes them, serves reads through a ReadIndex barrier (or none, for serializable reads) and
//! the guest's `query`, fills response headers, and turns failures into etcd's gRPC statuses with
//! etcd's exact texts. The semantics of keys, revisions and leases belong to the guest.
//!
//! Services: all of etcd 3.4's — KV; Watch (over `crate::watch_hub`'s hub); Lease (the
//! timing is `crate::lessor`'s); Cluster (membership through raft conf changes); Maintenance; and
//! the Lock and Election services, etcd's concurrency recipes run in the member (`recipe.rs`);
//! Auth (`auth.rs`, over `wasmraft_node::auth`), with every other service checking the caller's
//! permissions through `authz.rs`.
//!
//! Next to etcd's services, wasmraft's own `wasmraft.v1.Generic` (`generic.rs`): Propose, Query
//! and Info with opaque bytes, for any guest; and `wasmraft.v1.GuestAdmin` (`admin.rs`): guest
//! deploy, rollback, status and list.

mod access;
mod admin;
mod auth;
// Public for the fuzz targets (tests/fuzz): the client listener's HTTP/2 rewriter.
pub mod authority;
mod authz;
mod cluster;
pub mod compactor;
mod conn;
pub mod corrupt;
mod election;
mod errors;
mod gateway;
mod generic;
mod grpc_metrics;
mod hash_kv;
mod header;
mod http;
mod kv;
mod lease;
mod lease_forward;
mod lock;
mod maintenance;
pub use maintenance::SNAPSHOT_FORMAT_HEADER;
mod ping_policy;
mod pprof;
mod probes;
pub use pprof::activate_heap_profile;
mod recipe;
mod request_stats;
// Public for the fuzz targets (tests/fuzz): request checks as pure functions.
pub mod lessor;
pub mod validate;
mod watch;
pub mod watch_hub;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use wasmraft_proto::etcdserverpb::auth_server::AuthServer;
use wasmraft_proto::etcdserverpb::cluster_server::ClusterServer;
use wasmraft_proto::etcdserverpb::kv_server::KvServer;
use wasmraft_proto::etcdserverpb::lease_server::LeaseServer;
use wasmraft_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use wasmraft_proto::etcdserverpb::watch_server::WatchServer;
use wasmraft_proto::v3electionpb::election_server::ElectionServer;
use wasmraft_proto::v3lockpb::lock_server::LockServer;
use wasmraft_proto::wasmraft::v1::generic_server::GenericServer;
use wasmraft_proto::wasmraft::v1::guest_admin_server::GuestAdminServer;
use wasmraft_transport::socket::{Listener, Socket};

pub use access::AccessControl;
pub use errors::{EtcdError, guest_error, node_error};
pub use http::{enable_extensive_metrics, metrics_router};

use authority::AuthorityFix;
use authz::Caller;
use errors::OrStatus as _;
use wasmraft_node::NodeHandle;
use wasmraft_proto::contract::ETCD_KV_API;
use wasmraft_transport::cork::Corked;

/// etcd's allowance for gRPC framing on top of --max-request-bytes (v3rpc's `grpcOverheadBytes`):
/// a request message may be this much larger than the largest proposal, so that the too-large
/// case is answered with etcd's "request is too large" rather than a gRPC decoding error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// etcd's send limit (v3rpc's `maxSendBytes`, math.MaxInt32): responses are effectively unbounded.
const MAX_SEND_BYTES: usize = i32::MAX as usize;

/// grpc-go's server keepalive defaults, which etcd's --grpc-keepalive-interval and
/// --grpc-keepalive-timeout also default to, and which apply when either flag is 0: ping an
/// idle client after 2 hours, drop it when the ping is not answered within 20 seconds.
pub const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);
pub const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// grpc-go's least keepalive interval: shorter ones are raised to it.
const GRPC_KEEPALIVE_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// TCP keepalive on accepted connections: Go's listener default, which etcd inherits.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// A bound client listener (TCP, or a Unix socket for a unix:// or unixs:// URL) and, for an
/// https:// or unixs:// URL, the TLS it serves.
pub struct ClientListener {
    pub listener: Listener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// How the client listener treats connections and plain HTTP requests, from etcd's flags of
/// the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnOptions {
    /// --grpc-keepalive-min-time: clients pinging more often are sent GOAWAY too_many_pings
    /// (`ping_policy.rs`); 0 means grpc-go's default of 5 minutes.
    pub keepalive_min_time: Duration,
    /// --grpc-keepalive-interval: idle clients are pinged this often.
    pub keepalive_interval: Duration,
    /// --grpc-keepalive-timeout: a ping unanswered this long closes the connection.
    pub keepalive_timeout: Duration,
    /// --max-concurrent-streams: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (advertised even at
    /// its default of u32::MAX, as grpc-go does).
    pub max_concurrent_streams: u32,
    /// --cors and --host-whitelist, for the plain HTTP requests (`access.rs`).
    pub access: AccessControl,
    /// --enable-pprof: `/debug/pprof/` on the client URLs (`pprof.rs`).
    pub enable_pprof: bool,
}

impl Default for ConnOptions {
    /// etcd 3.4's defaults.
    fn default() -> Self {
        ConnOptions {
            keepalive_min_time: Duration::from_secs(5),
            keepalive_interval: GRPC_KEEPALIVE_INTERVAL,
            keepalive_timeout: GRPC_KEEPALIVE_TIMEOUT,
            max_concurrent_streams: u32::MAX,
            access: AccessControl::allow_all(),
            enable_pprof: false,
        }
    }
}

impl ConnOptions {
    /// The server's keepalive as grpc-go takes etcd's two flags: both must be set (etcd passes
    /// them only then), else the defaults; an interval under a second is raised to one.
    fn keepalive(&self) -> (Duration, Duration) {
        if self.keepalive_interval.is_zero() || self.keepalive_timeout.is_zero() {
            return (GRPC_KEEPALIVE_INTERVAL, GRPC_KEEPALIVE_TIMEOUT);
        }
        (self.keepalive_interval.max(GRPC_KEEPALIVE_MIN_INTERVAL), self.keepalive_timeout)
    }
}

/// Request limits and the client-facing auth settings, from etcd's flags of the same names, and
/// the etcd version the member reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// --bcrypt-cost: how new passwords are hashed.
    pub bcrypt_cost: u32,
    /// --client-cert-auth: a verified client certificate's CN names the user.
    pub client_cert_auth: bool,
    /// --max-request-bytes: the largest encoded proposal (`InternalRaftRequest`) accepted.
    pub max_request_bytes: usize,
    /// --max-txn-ops: the most operations in each of a txn's compare, success and failure lists.
    pub max_txn_ops: usize,
    /// --experimental-watch-progress-notify-interval: how often watchers that asked for
    /// progress notifications get one.
    pub watch_progress_notify_interval: Duration,
    /// --election-timeout: streams that require a leader end after three of these without one.
    pub election_timeout: Duration,
    /// --experimental-warning-apply-duration: ranges slower than this are logged, as etcd logs
    /// them (`wasmraft_node::slow`).
    pub warning_apply_duration: Duration,
    /// --wasmraft-emulated-etcd-version: what Maintenance.Status and `/version` report (a
    /// semantic version, checked by the binary).
    pub etcd_version: Arc<str>,
    /// The sha256 of the guest whose keyspace `wasmraft-backup` writes as etcd's backend (the
    /// bundled KV guest, whose translation is linked into this binary): while it is active,
    /// `Maintenance.Snapshot` streams etcd's bbolt file.
    pub etcd_backend_guest: Option<[u8; 32]>,
}

impl Default for ApiLimits {
    /// etcd 3.4's defaults: 1.5 MiB and 128.
    fn default() -> Self {
        Self {
            bcrypt_cost: wasmraft_node::auth::DEFAULT_BCRYPT_COST,
            client_cert_auth: false,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            watch_progress_notify_interval: watch::DEFAULT_PROGRESS_NOTIFY_INTERVAL,
            election_timeout: Duration::from_millis(1000),
            warning_apply_duration: wasmraft_node::ApplyOptions::DEFAULT_WARNING_APPLY_DURATION,
            etcd_version: Arc::from(wasmraft_proto::contract::ETCD_VERSION),
            etcd_backend_guest: None,
        }
    }
}

/// What every service of this layer shares.
struct Api {
    node: NodeHandle,
    limits: ApiLimits,
    request_ids: wasmraft_node::ids::RequestIds,
    /// How new passwords are hashed (--bcrypt-cost).
    hasher: wasmraft_node::auth::PasswordHasher,
    /// --client-cert-auth: a verified client certificate's CN names the user.
    client_cert_auth: bool,
}

/// Why the client API stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("no client listeners: the etcd v3 API needs at least one address to serve on")]
    NoListeners,
    /// The gRPC server failed (not a single connection: those are dropped and logged).
    #[error("serving the etcd v3 gRPC API on {addresses}")]
    Server {
        addresses: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Serves etcd's v3 gRPC API for `node` on every listener until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their calls.
///
/// One server accepts from all listeners (they serve the same API). Accept errors that concern
/// one connection are skipped; others (such as running out of file descriptors) are logged and
/// retried with a backoff from 5 ms to 1 s, as Go's HTTP server (and so etcd) does, instead of
/// spinning or giving up.
pub async fn serve(
    node: NodeHandle,
    limits: ApiLimits,
    conn_options: ConnOptions,
    lessor: Arc<crate::lessor::Lessor>,
    listeners: Vec<ClientListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if listeners.is_empty() {
        return Err(ServeError::NoListeners);
    }
    let addrs: Vec<String> = listeners.iter().map(|l| l.listener.local_name()).collect();

    wasmraft_metrics::metrics().report_etcd_version(&limits.etcd_version);
    let max_decoding = limits.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES);
    let api = Arc::new(Api::new(node, limits));
    // The gateway calls the same service instances the gRPC servers hold.
    let kv_svc = Arc::new(kv::KvService::new(api.clone()));
    let lease_svc = Arc::new(lease::LeaseService::new(api.clone(), lessor));
    let auth_svc = Arc::new(auth::AuthService::new(api.clone()));
    let cluster_svc = Arc::new(cluster::ClusterService::new(api.clone()));
    let hub = crate::watch_hub::WatchHub::start(&api.node);
    let recipes = recipe::Recipes::new(api.clone(), hub.clone());
    let lock_svc = Arc::new(lock::LockService::new(recipes.clone()));
    let election_svc = Arc::new(election::ElectionService::new(recipes));
    let watch_svc = Arc::new(watch::WatchService::new(api.clone(), hub));
    let maintenance_svc = Arc::new(maintenance::MaintenanceService::new(api.clone()));
    let gateway = Arc::new(gateway::Gateway {
        kv: kv_svc.clone(),
        lease: lease_svc.clone(),
        cluster: cluster_svc.clone(),
        maintenance: maintenance_svc.clone(),
        auth: auth_svc.clone(),
        watch: watch_svc.clone(),
        lock: lock_svc.clone(),
        election: election_svc.clone(),
        max_message: max_decoding,
    });

    let kv =
        KvServer::from_arc(kv_svc).max_decoding_message_size(max_decoding).max_encoding_message_size(MAX_SEND_BYTES);
    let lease = LeaseServer::from_arc(lease_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let auth = AuthServer::from_arc(auth_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let cluster = ClusterServer::from_arc(cluster_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let generic = GenericServer::new(generic::GenericService::new(api.clone()))
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    // A deploy carries a whole module; --max-request-bytes is for proposals, and the module
    // goes through the log in pieces well below it. Who may send one is checked on the
    // headers, before any of it is read (`authz::GuestAdminGate`).
    let admin = GuestAdminServer::new(admin::AdminService::new(api.clone()))
        .max_decoding_message_size(wasmraft_node::MAX_MODULE_BYTES as usize + GRPC_OVERHEAD_BYTES)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let admin = InterceptedService::new(admin, authz::GuestAdminGate(api.clone()));
    let lock = LockServer::from_arc(lock_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let election = ElectionServer::from_arc(election_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let watch = WatchServer::from_arc(watch_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);
    let maintenance = MaintenanceServer::from_arc(maintenance_svc)
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(MAX_SEND_BYTES);

    let min_time = conn_options.keepalive_min_time;
    let access = access::AccessLayer(Arc::new(conn_options.access.clone()));
    let incoming = futures::stream::select_all(listeners.into_iter().map(|l| {
        let accepted = accept_with_backoff(l.listener);
        let conns = match l.tls {
            Some(acceptor) => conn::handshakes(accepted, acceptor),
            None => accepted.map(|socket| conn::ClientConn::Plain(Corked::new(socket))).boxed(),
        };
        // The gateway's WebSocket connections are served apart (gateway/upgrade.rs).
        let conns = gateway::divert_websockets(conns, gateway.clone(), access.clone());
        conns.map(move |c| Ok::<_, io::Error>(AuthorityFix::new(ping_policy::PingEnforced::new(c, min_time))))
    }));

    let request_timeout = wasmraft_node::request_timeout(api.limits.election_timeout);
    let mut health = http::router(api.node.clone(), api.limits.etcd_version.clone(), request_timeout)
        .merge(gateway::router(gateway));
    if conn_options.enable_pprof {
        health = health.merge(pprof::router());
    }
    let mut grpc = tonic::service::RoutesBuilder::default();
    grpc.add_service(kv)
        .add_service(lease)
        .add_service(cluster)
        .add_service(auth)
        .add_service(maintenance)
        .add_service(watch)
        .add_service(lock)
        .add_service(election)
        .add_service(generic)
        .add_service(admin);
    let routes = tonic::service::Routes::from(grpc.routes().into_axum_router().merge(health).fallback(http::fallback));

    tracing::info!(addresses = ?addrs, "serving the etcd v3 gRPC client API");
    let (keepalive_interval, keepalive_timeout) = conn_options.keepalive();
    // etcd's --max-concurrent-streams default is unlimited (u32::MAX): clientv3 multiplexes
    // every watch and keepalive stream of a client over one connection.
    let max_streams = conn_options.max_concurrent_streams;
    Server::builder()
        .http2_keepalive_interval(Some(keepalive_interval))
        .http2_keepalive_timeout(Some(keepalive_timeout))
        .max_concurrent_streams(max_streams)
        // `/health` and `/version` (http.rs) are plain HTTP/1.1 on the same port, as in etcd.
        .accept_http1(true)
        // grpc_server_* and etcd's client byte counters (see grpc_metrics.rs).
        .layer(grpc_metrics::GrpcMetricsLayer)
        // etcd's "request stats" line per unary call, at debug level (see request_stats/).
        .layer(request_stats::RequestStatsLayer)
        // --cors and --host-whitelist for the plain HTTP requests (see access.rs).
        .layer(access)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| ServeError::Server { addresses: addrs.join(", "), source })
}

/// The connections a listener accepts, with TCP_NODELAY and keepalive set, never yielding an
/// error: see [`serve`] for how errors are handled. [`serve`] wraps each (after the TLS
/// handshake, for https) in [`AuthorityFix`], which turns the `:authority` of a whole URL that
/// etcdctl 3.4's `endpoint` commands send (`http://host:port`) into `host:port`; h2 would reset
/// those streams (see `authority.rs`).
fn accept_with_backoff(listener: Listener) -> BoxStream<'static, Socket> {
    const FIRST_DELAY: Duration = Duration::from_millis(5);
    const MAX_DELAY: Duration = Duration::from_secs(1);

    let incoming: BoxStream<'static, io::Result<Socket>> = match listener {
        Listener::Tcp(listener) => TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(TCP_KEEPALIVE))
            .map(|r| r.map(Socket::Tcp))
            .boxed(),
        unix @ Listener::Unix { .. } => {
            futures::stream::unfold(unix, |l| async move { Some((l.accept().await, l)) }).boxed()
        }
    };
    futures::stream::unfold((incoming, Duration::ZERO), |(mut incoming, mut delay)| async move {
        loop {
            match incoming.next().await? {
                Ok(stream) => {
                    return Some((stream, (incoming, Duration::ZERO)));
                }
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    delay = if delay.is_zero() { FIRST_DELAY } else { (delay * 2).min(MAX_DELAY) };
                    tracing::warn!(error = %e, retry_in = ?delay, "accepting a client connection failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    })
    .boxed()
}

/// Errors about one would-be connection (the client went away before we accepted it), not about
/// the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

impl Api {
    fn new(node: NodeHandle, limits: ApiLimits) -> Api {
        Api {
            request_ids: wasmraft_node::ids::RequestIds::from_clock(node.member_id()),
            node,
            hasher: wasmraft_node::auth::PasswordHasher::new(limits.bcrypt_cost),
            client_cert_auth: limits.client_cert_auth,
            limits,
        }
    }

    /// The store's current revision for headers etcd fills from its MVCC store
    /// (Status, MemberList).
    /// The host has no revision of its own, so it asks a KV guest with the cheapest read there is
    /// (a count of one key, serializable). 0 when the guest is not a KV guest or cannot answer:
    /// Status is what operators use on a sick member, so it must not fail for this.
    pub(crate) async fn current_revision(&self) -> i64 {
        if !self.node.guests().guest_serves(ETCD_KV_API) {
            return 0;
        }
        let probe = wasmraft_proto::etcdserverpb::RangeRequest {
            key: vec![0],
            count_only: true,
            serializable: true,
            ..Default::default()
        };
        match self.node.reads().query(prost::Message::encode_to_vec(&probe)).await {
            Ok(answer) => {
                match <wasmraft_proto::etcdserverpb::RangeResponse as prost::Message>::decode(answer.as_slice()) {
                    Ok(resp) => resp.header.map_or(0, |h| h.revision),
                    Err(e) => {
                        tracing::debug!(error = %e, "the guest's answer to the revision probe is not a RangeResponse");
                        0
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "the guest did not answer the revision probe");
                0
            }
        }
    }
    /// The checks etcd's unary interceptor makes before any handler runs
    /// (v3rpc/interceptor.go): a learner serves only serializable reads and Status, and a client
    /// that asked for a leader (metadata `hasleader: true`, clientv3's `WithRequireLeader`) gets
    /// "no leader" when there is none.
    fn check_member<T>(&self, request: &tonic::Request<T>, learner_may_serve: bool) -> Result<(), tonic::Status> {
        let require_leader =
            request.metadata().get(METADATA_REQUIRE_LEADER_KEY).is_some_and(|v| v.as_bytes() == b"true");
        if learner_may_serve && !require_leader {
            return Ok(());
        }
        if !learner_may_serve && self.node.cluster().is_learner() {
            return Err(errors::NOT_SUPPORTED_FOR_LEARNER.into());
        }
        if require_leader && self.node.status().leader() == 0 {
            return Err(errors::NO_LEADER.into());
        }
        Ok(())
    }

    /// Refuses the call when the active guest does not speak etcd's KV encodings: its commands
    /// and queries would be meaningless to it.
    fn require_kv_guest(&self) -> Result<(), tonic::Status> {
        if self.node.guests().guest_serves(ETCD_KV_API) {
            Ok(())
        } else {
            Err(match self.node.guests().active_guest() {
                Some(guest) => tonic::Status::failed_precondition(format!(
                    "wasmraft: the active guest {} {} does not serve the etcd KV API",
                    guest.name, guest.version
                )),
                None => errors::node_error(wasmraft_node::NodeError::NoGuest),
            })
        }
    }

    /// Proposes `request` through the log as etcd does (with a request header carrying a fresh
    /// request id, refused when larger than --max-request-bytes) and decodes the guest's answer.
    /// `caller`'s permissions for what the request touches are checked first, and the entry
    /// carries the auth revision they were checked at (see `authz.rs`).
    async fn propose<R: prost::Message + Default>(
        &self,
        caller: &Caller,
        mut request: wasmraft_proto::etcdserverpb::InternalRaftRequest,
        response_name: &str,
    ) -> Result<R, tonic::Status> {
        let stamp = self.check_write(caller, &request).await?;
        request.header = Some(caller.header(self.request_ids.next()));
        let command = prost::Message::encode_to_vec(&request);
        if command.len() > self.limits.max_request_bytes {
            return Err(errors::REQUEST_TOO_LARGE.into());
        }
        // etcd's quota interceptors (puts, txns, lease grants): see `wasmraft_node::alarms`.
        self.node.proposals().check_quota(&command).await.or_status()?;
        let answer = self.node.proposals().propose_checked(command, stamp).await.or_status()?;
        R::decode(answer.as_slice()).map_err(|e| errors::bad_guest_response(response_name, e))
    }
}

/// etcd's metadata key for "answer only if there is a leader" (rpctypes.MetadataRequireLeaderKey).
const METADATA_REQUIRE_LEADER_KEY: &str = "hasleader";
