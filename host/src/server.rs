//! Starting and stopping a member: bind the client ports, load the guest, start the node, wait
//! until it can serve linearizably, then serve the client API until a signal or a fatal error.
//!
//! The guest a member runs is the cluster's, from the replicated deployment record. `--guest`
//! (or the bundled KV guest) and `--guest-fuel`/`--guest-memory-bytes`/`--guest-stack-bytes`
//! only propose the first guest of a new cluster; the module is validated before anything
//! starts, so a bad one is a clear startup error on the member that names it.
//!
//! The log lines etcd tooling waits for are printed at etcd's moments: "published" once the
//! member has caught up with the cluster's log, "ready to serve client requests" right before
//! the client listeners start answering.

use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use wasmraft_runtime::{GuestEngine, GuestLimits, GuestRegistry};

use crate::config::Config;
use wasmraft_api::{self as api, ApiLimits};
use wasmraft_node::peers::{RaftInbox, TransportSender};
use wasmraft_node::{Node, NodeError, NodeHandle};
use wasmraft_transport::socket::{Listener, is_tls_scheme, is_unix_scheme, unix_socket_path};
use wasmraft_transport::{Transport, TransportConfig};

/// The etcd KV guest, compiled from examples/kv by build.rs and embedded so a bare `wasmraft`
/// serves etcd's API.
pub const BUNDLED_KV_GUEST: &[u8] = include_bytes!(env!("WASMRAFT_KV_GUEST"));

/// Runs a member until SIGINT/SIGTERM (Ok) or a fatal error (Err).
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    run_until(cfg, shutdown_signal()).await
}

/// Runs a member until `shutdown` resolves (Ok) or a fatal error (Err).
pub async fn run_until(mut cfg: Config, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    if cfg.enable_pprof {
        tracing::info!("embed: pprof is enabled under /debug/pprof");
    }
    tracing::info!("etcdserver: name = {}", cfg.name);
    tracing::info!("etcdserver: data dir = {}", cfg.data_dir.display());
    tracing::info!(
        "etcdserver: heartbeat = {}ms, election = {}ms, snapshot count = {}",
        cfg.heartbeat_interval.as_millis(),
        cfg.election_timeout.as_millis(),
        cfg.snapshot_count
    );
    tracing::info!("etcdserver: advertise client URLs = {}", join_urls(&cfg.advertise_client_urls));

    // Bind before anything slow, so a port conflict is reported at once.
    let peer_tls = crate::tls::peer_tls(&cfg.peer_tls, &cfg.data_dir, &cfg.listen_peer_urls)?;
    crate::tls::log_cipher_suites(&cfg.peer_tls.policy.cipher_suites);
    let (client_tls, client_dial) = client_tls(&cfg)?;
    let mut listeners = Vec::new();
    for url in &cfg.listen_client_urls {
        let tls = is_tls_scheme(url.scheme()).then(|| client_tls.clone()).flatten();
        listeners.push(api::ClientListener { listener: bind(url).await?, tls });
    }
    let mut peer_listeners = Vec::new();
    for url in &cfg.listen_peer_urls {
        peer_listeners.push((bind(url).await?, is_tls_scheme(url.scheme())));
    }
    let mut metrics_listeners = Vec::new();
    for url in &cfg.listen_metrics_urls {
        match bind(url).await? {
            Listener::Tcp(l) => metrics_listeners.push(l),
            Listener::Unix { .. } => {
                anyhow::bail!("--listen-metrics-urls: {url}: wasmraft serves metrics over TCP only")
            }
        }
    }

    let engine = GuestEngine::new(Default::default()).context("configuring the Wasm engine")?;
    let registry = Arc::new(GuestRegistry::new(engine, cfg.data_dir.join("member").join("guest-cache")));
    let initial = InitialGuest::load(&cfg, &registry)?;

    // Built once: it loads the --auth-token keys (and logs about them).
    let mut node_cfg = cfg.node_config()?;
    let initialized = Node::is_bootstrapped(&node_cfg)?;
    // --discovery-srv: DNS names the initial cluster, for a member that has no data yet.
    if let Some(srv) = &cfg.discovery_srv
        && !initialized
    {
        cfg.initial_cluster = srv.initial_cluster(&cfg.name, &cfg.initial_advertise_peer_urls).await?;
        node_cfg.initial_cluster = cfg.node_initial_cluster();
    }
    let join = if node_cfg.join_existing && !initialized {
        Some(crate::join::discover(&cfg, peer_tls.dial.clone()).await?)
    } else {
        None
    };
    let node = Node::start_joining(&node_cfg, registry, join)?;
    node.set_dial_tls(wasmraft_transport::dial::DialTls {
        peers: Some(peer_tls.dial.clone()),
        clients: Some(client_dial),
    });
    let handle = node.handle();
    // etcd checks before it serves peers or clients, a member that has state only (a new one
    // has nothing to compare); a mismatch refuses the start.
    let checks =
        api::corrupt::CheckConfig { request_timeout: cfg.request_timeout(), native_guest: Some(bundled_guest_hash()) };
    if cfg.experimental_initial_corrupt_check
        && initialized
        && let Err(e) = api::corrupt::initial::check(&handle, &checks).await
    {
        node.stop();
        return Err(e.into());
    }
    let (peers_stop, peers_stopped) = tokio::sync::watch::channel(false);
    let transport = start_transport(&cfg, &node, peer_listeners, peer_tls, peers_stopped)?;
    if cfg.metrics == crate::config::Metrics::Extensive {
        api::enable_extensive_metrics();
    }
    serve_metrics(&handle, metrics_listeners, cfg.request_timeout(), &peers_stop);
    // etcd starts its compactor with the server, on every member; only the leader compacts.
    let compactor = cfg.auto_compaction.map(|p| api::compactor::Compactor::start(handle.clone(), api_limits(&cfg), p));
    // etcd's --experimental-corrupt-check-time: 0s (its default) means no periodic check.
    let every = cfg.experimental_corrupt_check_time;
    let corrupt_monitor = (!every.is_zero()).then(|| api::corrupt::monitor::start(handle.clone(), checks, every));
    let result = serve(&cfg, handle, listeners, initial, shutdown).await;
    drop((compactor, corrupt_monitor));
    let _ = peers_stop.send(true);
    transport.stop();
    node.stop();
    tracing::info!("etcdserver: stopped");
    result
}

async fn serve(
    cfg: &Config,
    handle: NodeHandle,
    listeners: Vec<api::ClientListener>,
    initial: InitialGuest,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client_urls: Vec<String> = cfg.advertise_client_urls.iter().map(crate::config::trim_url).collect();
    tokio::pin!(shutdown);
    tokio::select! {
        r = publish(&handle, &cfg.name, &client_urls) => r?,
        e = handle.status().fatal() => return stopped_by(&handle, e),
        _ = &mut shutdown => return Ok(()),
    }
    tracing::info!(
        "etcdserver: published {{Name:{} ClientURLs:[{}]}} to cluster {:x}",
        cfg.name,
        client_urls.join(" "),
        handle.cluster_id()
    );
    tokio::select! {
        r = initial.deploy(&handle) => r?,
        e = handle.status().fatal() => return stopped_by(&handle, e),
        _ = &mut shutdown => return Ok(()),
    }
    tracing::info!("etcdserver/api: enabled capabilities for version 3.4");
    tracing::info!("embed: ready to serve client requests");
    for l in &listeners {
        let addr = l.listener.local_name();
        if l.tls.is_some() {
            tracing::info!("embed: serving client requests on {addr}");
        } else {
            tracing::info!("embed: serving insecure client requests on {addr}, this is strongly discouraged!");
        }
    }

    let limits = api_limits(cfg);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_rx2 = stop_rx.clone();
    let api_stop = async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
    };
    let mut lessor_config =
        wasmraft_api::lessor::LessorConfig::new(cfg.heartbeat_interval, cfg.election_timeout, cfg.request_timeout());
    if cfg.experimental_enable_lease_checkpoint {
        lessor_config = lessor_config.with_checkpoints(cfg.lease_checkpoint_interval);
    }
    let lessor = wasmraft_api::lessor::Lessor::start(&handle, lessor_config);
    let server = tokio::spawn(api::serve(handle.clone(), limits, cfg.client_conn.clone(), lessor, listeners, api_stop));
    let outcome = tokio::select! {
        _ = &mut shutdown => {
            tracing::info!("etcdserver: received signal, shutting down");
            Ok(())
        }
        e = handle.status().fatal() => stopped_by(&handle, e),
    };
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!("client API stopped with an error: {e:#}"),
        Ok(Err(e)) => tracing::warn!("client API task failed: {e}"),
        _ => {}
    }
    drop(stop_rx);
    outcome
}

/// The bundled KV guest's sha256 (what a deployment of it records): hashed once, though the
/// API, the corruption checks and the peer hash source all ask.
pub(crate) fn bundled_guest_hash() -> [u8; 32] {
    static HASH: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| Sha256::digest(BUNDLED_KV_GUEST).into())
}

/// The client API's settings from the flags.
fn api_limits(cfg: &Config) -> ApiLimits {
    ApiLimits {
        bcrypt_cost: cfg.bcrypt_cost,
        client_cert_auth: cfg.client_tls.client_cert_auth,
        max_request_bytes: cfg.max_request_bytes,
        max_txn_ops: cfg.max_txn_ops,
        watch_progress_notify_interval: cfg.watch_progress_notify_interval,
        election_timeout: cfg.election_timeout,
        warning_apply_duration: cfg.experimental_warning_apply_duration,
        etcd_version: cfg.emulated_etcd_version.to_string().into(),
        etcd_backend_guest: Some(bundled_guest_hash()),
    }
}

/// What the member's end means: a member the cluster removed stops cleanly (etcd exits 0 and
/// says the data dir must go), anything else is a failure.
fn stopped_by(handle: &NodeHandle, err: String) -> anyhow::Result<()> {
    if handle.cluster().was_removed() {
        tracing::info!("etcdserver: the data-dir used by this member must be removed.");
        return Ok(());
    }
    Err(anyhow::anyhow!(err))
}

/// The TLS acceptor for the https client URLs (None when there are none), with --auto-tls's
/// certificate made first, as etcd's `configureClientListeners` does; and etcd's warnings for
/// TLS settings that http URLs ignore. Also how this member dials other members' https client
/// URLs (lease forwarding): with its client certificate, trusting its --trusted-ca-file, or
/// trusting anything when it runs on --auto-tls (as etcd's gateway dials its own member).
fn client_tls(cfg: &Config) -> anyhow::Result<(Option<tokio_rustls::TlsAcceptor>, Arc<rustls::ClientConfig>)> {
    let mut info = cfg.client_tls.clone();
    let dir = cfg.data_dir.join("fixtures").join("client");
    info.apply_auto_tls(&dir, &cfg.listen_client_urls, "client", false)?;
    for u in cfg.listen_client_urls.iter().filter(|u| !is_tls_scheme(u.scheme())) {
        if !info.is_empty() {
            tracing::warn!(
                "embed: The scheme of client url {} is HTTP while peer key/cert files are presented. Ignored key/cert files.",
                crate::config::trim_url(u)
            );
        }
        if info.client_cert_auth {
            tracing::warn!(
                "embed: The scheme of client url {} is HTTP while client cert auth (--client-cert-auth) is enabled. Ignored client cert auth for this url.",
                crate::config::trim_url(u)
            );
        }
    }
    if !cfg.listen_client_urls.iter().any(|u| is_tls_scheme(u.scheme())) {
        // etcd ignores the files then (even bad ones): dial with no certificate of our own.
        return Ok((None, crate::tls::TlsInfo::default().client_config(&[b"h2"])?));
    }
    let dial = info.client_config(&[b"h2"])?;
    tracing::info!("embed: ClientTLS: {}", info.describe());
    let config = info.server_config()?;
    Ok((Some(tokio_rustls::TlsAcceptor::from(config)), dial))
}

/// Starts the peer transport (etcd's rafthttp) on the peer listeners (each with TLS if its URL
/// is https), connects it to every other member and lets the raft thread send through it.
fn start_transport(
    cfg: &Config,
    node: &Node,
    listeners: Vec<(Listener, bool)>,
    tls: crate::tls::PeerTls,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Transport> {
    let handle = node.handle();
    let own_urls: Vec<String> = cfg.initial_advertise_peer_urls.iter().map(crate::config::trim_url).collect();
    let mut tcfg = TransportConfig::new(handle.member_id(), handle.cluster_id(), own_urls);
    // etcd's peerDialTimeout: a second plus an election timeout.
    tcfg.dial_timeout = Duration::from_secs(1) + cfg.election_timeout;
    tcfg.client_tls = Some(tls.dial);
    tcfg.fault_injection = cfg.fault_injection;
    if cfg.fault_injection {
        tracing::warn!("--wasmraft-fault-injection: the peer URL serves /wasmraft/faults (tests only)");
    }
    let transport = Transport::new(tcfg, RaftInbox::new(&handle)).context("starting the peer transport")?;
    // The peer port's /members/hashkv, which other members' corruption checks ask.
    transport.set_hash_kv(Arc::new(api::corrupt::peer::PeerHashSource::new(&handle, Some(bundled_guest_hash()))));
    for m in handle.cluster().members() {
        if m.id != handle.member_id() {
            transport.add_peer(m.id, &m.peer_urls).with_context(|| format!("adding peer {:x}", m.id))?;
        }
    }
    for (l, https) in listeners {
        let addr = l.local_name();
        tracing::info!("embed: listening for peers on {addr}");
        let t = transport.clone();
        let mut stopped = stopped.clone();
        let listener_tls = if https {
            Some(tls.listener.clone().context("an https peer URL without peer TLS settings")?)
        } else {
            None
        };
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let served = t.serve_listener(l, listener_tls, stop).await;
            if let Err(e) = served {
                tracing::error!("peer listener {addr} stopped: {e}");
            }
        });
    }
    node.set_peers(TransportSender::new(transport.clone(), tokio::runtime::Handle::current(), &handle));
    Ok(transport)
}

/// Serves `/metrics` and the health probes on the --listen-metrics-urls listeners from now until
/// the member stops (etcd starts them with the member too, before it is ready, so a scraper sees a
/// member that cannot elect a leader). `request_timeout` bounds the probes' reads.
fn serve_metrics(
    handle: &NodeHandle,
    listeners: Vec<TcpListener>,
    request_timeout: Duration,
    stop: &tokio::sync::watch::Sender<bool>,
) {
    for l in listeners {
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!("embed: listening for metrics on http://{addr}");
        let router = api::metrics_router(handle.clone(), request_timeout);
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(l, router).with_graceful_shutdown(stop).await {
                tracing::error!("metrics listener {addr} stopped: {e}");
            }
        });
    }
}

/// Publishes this member's attributes through the log, retrying until it succeeds: once it
/// does, there is a leader and this member has applied everything committed before it came up.
async fn publish(handle: &NodeHandle, name: &str, client_urls: &[String]) -> anyhow::Result<()> {
    loop {
        match handle.proposals().publish(name.to_string(), client_urls.to_vec()).await {
            Ok(()) => return Ok(()),
            Err(NodeError::Stopped) => anyhow::bail!("the member stopped before it was ready"),
            Err(e) => {
                tracing::debug!("publish failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The guest this member proposes for a new cluster, validated at startup.
struct InitialGuest {
    wasm: Vec<u8>,
    hash: String,
    limits: GuestLimits,
}

impl InitialGuest {
    fn load(cfg: &Config, registry: &GuestRegistry) -> anyhow::Result<InitialGuest> {
        let mut limits = GuestLimits::default();
        if let Some(f) = cfg.guest_fuel {
            limits.fuel_per_entry = f;
        }
        if let Some(m) = cfg.guest_memory_bytes {
            limits.memory_bytes = m;
        }
        if let Some(s) = cfg.guest_stack_bytes {
            limits.stack_bytes = s;
        }
        let wasm = match &cfg.guest {
            Some(path) => std::fs::read(path).with_context(|| format!("reading guest {}", path.display()))?,
            None => BUNDLED_KV_GUEST.to_vec(),
        };
        let what = cfg.guest.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the bundled KV guest".into());
        let guest = registry.load(&wasm, limits).with_context(|| format!("loading {what}"))?;
        let info = guest.info();
        tracing::info!(
            "wasmraft: initial guest {} {} (sha256 {}) serves {:?}",
            info.name,
            info.version,
            guest.hash_hex(),
            info.apis
        );
        Ok(InitialGuest { wasm, hash: guest.hash_hex(), limits })
    }

    /// Proposes this guest as the cluster's first, unless one is active, and waits until a
    /// guest is active here. Retries while there is no leader; a refused deploy is fatal.
    async fn deploy(self, handle: &NodeHandle) -> anyhow::Result<()> {
        let record = loop {
            match handle.guests().deploy_initial(self.wasm.clone(), self.limits).await {
                Ok(record) => break record,
                Err(NodeError::Stopped) => anyhow::bail!("the member stopped before it was ready"),
                Err(e @ NodeError::DeployRefused(_)) => anyhow::bail!("the initial guest was refused: {e}"),
                Err(e) => {
                    tracing::debug!("initial guest deploy failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let hash = hex::encode(&record.sha256);
        if hash != self.hash {
            tracing::info!(
                "wasmraft: the cluster runs guest {} {} (sha256 {hash}), not this member's initial guest (sha256 {}); `wasmraft guest deploy` swaps guests",
                record.name,
                record.version,
                self.hash
            );
        }
        tracing::info!(
            "wasmraft: serving guest {} {} (sha256 {hash}), active since index {}, fuel {}, memory {} bytes and stack {} bytes per entry",
            record.name,
            record.version,
            record.since_index,
            record.fuel_per_entry,
            record.memory_bytes,
            wasmraft_runtime::deployment::limits_of(&record).stack_bytes
        );
        Ok(())
    }
}

/// Binds a listen URL: a Unix socket for unix:// and unixs:// (the file its authority names),
/// TCP otherwise.
async fn bind(url: &url::Url) -> anyhow::Result<Listener> {
    if is_unix_scheme(url.scheme()) {
        let path = unix_socket_path(&crate::config::trim_url(url)[url.scheme().len() + 3..]);
        return Listener::bind_unix(path.clone())
            .with_context(|| format!("listen unix {}: bind: cannot listen on {url}", path.display()));
    }
    bind_tcp(url).await.map(Listener::Tcp)
}

async fn bind_tcp(url: &url::Url) -> anyhow::Result<TcpListener> {
    let host = url.host_str().context("listen URL has no host")?;
    let port = url.port().context("listen URL has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.with_context(|| format!("resolving {url}"))?.collect();
    // Like Go's net.Listen on "localhost:port": one socket, IPv4 preferred.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .with_context(|| format!("{url} resolves to no address"))?;
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        // As Go's net.Listen: SO_REUSEADDR, and the kernel's largest accept queue.
        socket.set_reuseaddr(true)?;
        socket.bind(*addr)?;
        socket.listen(listen_backlog())
    };
    listen().with_context(|| format!("listen tcp {addr}: bind: cannot listen on {url}"))
}

/// The accept queue's length: the kernel's `somaxconn`, as Go (and so etcd) asks for. The
/// standard library's 128 let a burst of connections (clients reconnecting after a restart)
/// overflow the queue, and each overflowing connection waited a full second for its SYN to be
/// sent again.
fn listen_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .map_or(4096, |n| n.min(65535))
}

fn join_urls(urls: &[url::Url]) -> String {
    urls.iter().map(crate::config::trim_url).collect::<Vec<_>>().join(",")
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
