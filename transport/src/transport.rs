//! Transport (`transport.go`): the peers and remotes, the HTTP handler, and the API the host
//! drives — add/remove/update peers, `send`, `send_snapshot`, `active_since`, `stop`.
//!
//! All of `send`/`add_peer`/... are plain (non-async) calls that never wait on the network, so
//! the raft loop can call them directly; they must be called from within a tokio runtime
//! (starting a peer spawns its tasks). Peers are torn down by dropping them: every task a peer
//! owns is aborted, which drops its connections.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::body::ChannelBody;
use crate::config::TransportConfig;
use crate::ctx::Ctx;
use crate::dial::Dialer;
use crate::error::TransportError;
use crate::fault::{FaultRule, Faults, Outgoing};
use crate::host::{OutgoingSnapshot, Raft};
use crate::listener_tls::PeerListenerTls;
use crate::peer::{Peer, Picked};
use crate::probing::ProbeStatus;
use crate::shared::Shared;
use crate::socket::Listener;
use crate::urlpick::parse_urls;
use crate::util::{Version, id_str};

/// What the transport carried to and from one peer ([`Transport::traffic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTraffic {
    pub id: u64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

/// Serves the peer routes on one accepted connection (HTTP/1.1, as etcd's peers speak).
async fn serve_connection<S>(shared: Arc<Shared>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = shared.ctx.cfg.conn_read_timeout;
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(crate::http::handle(shared, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!("peer connection: {e}");
    }
}

/// etcd's rafthttp `Transport`. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

impl Transport {
    /// Builds the transport. No network activity happens until peers are added or `serve` runs.
    pub fn new(cfg: TransportConfig, raft: Arc<dyn Raft>) -> Result<Transport, TransportError> {
        let mut cfg = cfg;
        if !cfg.peer_urls.is_empty() {
            cfg.peer_urls = parse_urls(&cfg.peer_urls)?;
        }
        if Version::parse(&cfg.server_version).is_none() || Version::parse(&cfg.min_cluster_version).is_none() {
            return Err(TransportError::InvalidVersion);
        }
        let dialer = Dialer::new(cfg.client_tls.clone(), cfg.dial_timeout)
            .with_keepalive(Some(std::time::Duration::from_secs(30)));
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(dialer);
        let faults = Faults::new(cfg.fault_injection);
        let ctx = Arc::new(Ctx { cfg, raft, client, faults, hash_kv: std::sync::OnceLock::new() });
        Ok(Transport {
            shared: Arc::new(Shared {
                ctx,
                peers: RwLock::default(),
                remotes: RwLock::default(),
                stopped: AtomicBool::new(false),
                delays: Default::default(),
            }),
        })
    }

    /// Serves `/members/hashkv` with the host's keyspace hash (etcd's corruption checks ask it).
    /// Only the first call counts.
    pub fn set_hash_kv(&self, source: Arc<dyn crate::host::PeerHashKv>) {
        let _ = self.shared.ctx.hash_kv.set(source);
    }

    /// Serves the peer routes on `listener` until `shutdown` completes. Connections already
    /// accepted keep running until they end.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        self.serve_listener(listener.into(), None, shutdown).await
    }

    /// Like [`Transport::serve`], with TLS on every connection (an https peer URL).
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: PeerListenerTls,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_listener(listener.into(), Some(tls), shutdown).await
    }

    /// Serves the peer routes on a TCP or Unix socket listener (etcd's `unix://` and `unixs://`
    /// peer URLs), with TLS on every connection when `tls` is given.
    pub async fn serve_listener(
        &self,
        listener: Listener,
        tls: Option<PeerListenerTls>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        let read_timeout = self.shared.ctx.cfg.conn_read_timeout;
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("peer listener accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if let Some(tcp) = stream.tcp() {
                let _ = tcp.set_nodelay(true);
            }
            let shared = self.shared.clone();
            let tls = tls.clone();
            // The handshake runs here, not in the accept loop: a peer that connects and then
            // says nothing must not hold up the others.
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(shared, stream).await,
                    Some(tls) => {
                        if let Some(stream) = tls.accept(stream, read_timeout).await {
                            serve_connection(shared, stream).await;
                        }
                    }
                }
            });
        }
    }

    /// Answers one request, for a host that mounts the peer routes in its own server.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<ChannelBody> {
        crate::http::handle(self.shared.clone(), req).await
    }

    /// Starts talking to member `id` at `urls` (ignored if already a peer). Drops any remote.
    pub fn add_peer(&self, id: u64, urls: &[String]) -> Result<(), TransportError> {
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Err(TransportError::Stopped);
        }
        let urls = parse_urls(urls)?;
        let mut g = self.shared.peers.write().unwrap_or_else(|p| p.into_inner());
        if g.contains_key(&id) {
            return Ok(());
        }
        g.insert(id, Arc::new(Peer::start(self.shared.ctx.clone(), id, urls)));
        drop(g);
        self.shared.remotes.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        tracing::info!(peer = %id_str(id), "added remote peer");
        Ok(())
    }

    /// Like etcd's `AddRemote`: a pipeline-only channel to a member not (yet) in our peer set.
    pub fn add_remote(&self, id: u64, urls: &[String]) {
        self.shared.add_remote(id, urls);
    }

    pub fn remove_peer(&self, id: u64) {
        self.shared.peers.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    pub fn remove_all_peers(&self) {
        self.shared.peers.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn update_peer(&self, id: u64, urls: &[String]) -> Result<(), TransportError> {
        let urls = parse_urls(urls)?;
        if let Some(p) = self.shared.peer(id) {
            p.update(urls);
        }
        Ok(())
    }

    /// Queues messages for their targets; never blocks. Messages to 0 or to unknown members are
    /// dropped (as etcd does); a full queue drops and reports unreachable.
    pub fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            self.send_one(m);
        }
    }

    /// `send` for one message, returning which channel took it (`None`: dropped, or held back by
    /// a delay fault rule).
    pub fn send_one(&self, m: Message) -> Option<Picked> {
        if m.to == 0 {
            return None;
        }
        match self.shared.ctx.faults.outgoing(m.to) {
            Outgoing::Send => self.shared.deliver(m),
            Outgoing::Cut => {
                // As a dead link would: raft hears the peer is unreachable, a snapshot failed.
                let raft = &self.shared.ctx.raft;
                raft.report_unreachable(m.to);
                if m.msg_type == raft::eraftpb::MessageType::MsgSnapshot {
                    raft.report_snapshot(m.to, raft::SnapshotStatus::Failure);
                }
                None
            }
            Outgoing::Drop => {
                // A blackhole tells nobody; a snapshot's sender would time out, though.
                if m.msg_type == raft::eraftpb::MessageType::MsgSnapshot {
                    self.shared.ctx.raft.report_snapshot(m.to, raft::SnapshotStatus::Failure);
                }
                None
            }
            Outgoing::Delay(by) => {
                self.shared.delays.hold(&self.shared, m, by);
                None
            }
        }
    }

    /// Sends a MsgSnap with its state data over `/raft/snapshot`, in the background; the outcome
    /// is reported through `Raft::report_snapshot`. An unknown target reports failure at once.
    pub fn send_snapshot(&self, snap: OutgoingSnapshot) {
        let cut = matches!(self.shared.ctx.faults.outgoing(snap.message.to), Outgoing::Cut | Outgoing::Drop);
        match self.shared.peer(snap.message.to).filter(|_| !cut) {
            Some(p) => p.send_snapshot(snap),
            None => self.shared.ctx.raft.report_snapshot(snap.message.to, raft::SnapshotStatus::Failure),
        }
    }

    /// Since when the peer has been reachable (`None`: not active, or not a peer).
    pub fn active_since(&self, id: u64) -> Option<SystemTime> {
        self.shared.peer(id).and_then(|p| p.active_since())
    }

    /// What the prober last saw of peer `id` (`None`: not a peer). Remotes are not probed.
    pub fn probe_status(&self, id: u64) -> Option<ProbeStatus> {
        self.shared.peer(id).map(|p| p.probe_status())
    }

    /// Bytes carried to and from each peer by the streams and the pipeline (snapshots not
    /// included), for etcd's `etcd_network_peer_{sent,received}_bytes_total`.
    pub fn traffic(&self) -> Vec<PeerTraffic> {
        let peers = self.shared.peers.read().unwrap_or_else(|p| p.into_inner());
        peers
            .iter()
            .map(|(id, p)| {
                let (sent_bytes, received_bytes) = p.status.traffic();
                PeerTraffic { id: *id, sent_bytes, received_bytes }
            })
            .collect()
    }

    /// How many peers are active.
    pub fn active_peers(&self) -> usize {
        self.shared
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|p| p.active_since().is_some())
            .count()
    }

    /// Stops every peer and remote. Later `add_peer` calls fail; `send` drops.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.peers.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.shared.remotes.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Tests only: cuts this member off from `ids` (replacing any earlier cut; empty heals).
    /// `false` if the transport was built without `fault_injection` (nothing is cut then).
    pub fn set_cut(&self, ids: &[u64]) -> bool {
        self.shared.ctx.faults.set_cut(ids.iter().copied())
    }

    /// Tests only: replaces every fault rule of this member (see `fault.rs`); `false` if the
    /// transport was built without `fault_injection`.
    pub fn set_fault_rules(&self, rules: std::collections::BTreeMap<u64, FaultRule>) -> bool {
        self.shared.ctx.faults.set_rules(rules)
    }

    /// The members this member is cut off from ([`Transport::set_cut`]).
    pub fn cut(&self) -> Vec<u64> {
        self.shared.ctx.faults.cut_ids()
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.shared.ctx.cfg.member_id
    }
}
