//! The client-side prober on loopback: a live peer is healthy with an RTT, a dead one turns
//! unhealthy, and probing stops when the peer is removed or the transport stops.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use raft::eraftpb::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wasmraft_transport::*;

const CID: u64 = 0xc1a5;

struct NullRaft;

impl Raft for NullRaft {
    fn process(&self, _m: Message) -> Result<(), ProcessError> {
        Ok(())
    }
    fn is_id_removed(&self, _id: u64) -> bool {
        false
    }
    fn report_unreachable(&self, _id: u64) {}
    fn report_snapshot(&self, _id: u64, _status: SnapshotStatus) {}
    fn save_snapshot<'a>(
        &'a self,
        _m: &'a Message,
        _data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async { Err("no snapshots here".to_string()) })
    }
}

fn transport(id: u64, url: &str) -> Transport {
    let mut cfg = TransportConfig::new(id, CID, vec![url.to_string()]);
    cfg.probe_interval = Duration::from_millis(100);
    Transport::new(cfg, Arc::new(NullRaft)).expect("transport")
}

/// A peer whose server (listener and every connection) can be killed, counting probes.
struct KillablePeer {
    url: String,
    probes: Arc<AtomicU64>,
    accept: JoinHandle<()>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl KillablePeer {
    async fn start(id: u64) -> KillablePeer {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let tr = transport(id, &url);
        let probes = Arc::new(AtomicU64::new(0));
        let conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (p2, c2) = (probes.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (tr, probes) = (tr.clone(), p2.clone());
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req: ::http::Request<hyper::body::Incoming>| {
                        if req.uri().path() == "/raft/probing" {
                            probes.fetch_add(1, Ordering::SeqCst);
                        }
                        let tr = tr.clone();
                        async move { Ok::<_, Infallible>(tr.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
                });
                if let Ok(mut g) = c2.lock() {
                    g.push(conn);
                }
            }
        });
        KillablePeer { url, probes, accept, conns }
    }

    fn kill(&self) {
        self.accept.abort();
        if let Ok(g) = self.conns.lock() {
            for c in g.iter() {
                c.abort();
            }
        }
    }
}

impl Drop for KillablePeer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 50 ms for up to 20 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_peer_is_healthy_with_an_rtt_and_a_killed_one_turns_unhealthy() {
    let b = KillablePeer::start(2).await;
    let a = transport(1, "http://127.0.0.1:9");
    assert_eq!(a.probe_status(2), None, "not a peer yet");
    a.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    // Before the first probe: unhealthy, nothing measured (etcd's initial status).
    let s0 = a.probe_status(2).expect("status");
    assert!(!s0.healthy && s0.srtt.is_zero() && s0.last_rtt.is_none());

    eventually("the live peer is probed healthy", || a.probe_status(2).is_some_and(|s| s.healthy && s.total >= 2))
        .await;
    let s = a.probe_status(2).expect("status");
    assert!(s.last_rtt.is_some() && !s.srtt.is_zero(), "{s:?}");
    assert!(s.srtt < Duration::from_secs(5), "{s:?}");
    assert_eq!(s.last_error, None);
    assert_eq!(s.last_url.as_deref(), Some(format!("{}/raft/probing", b.url).as_str()));
    // Same clock on both ends: a small clock difference.
    assert!(s.clock_diff_secs.is_some_and(|d| d.abs() < 1.0), "{s:?}");
    assert!(b.probes.load(Ordering::SeqCst) >= 2);

    b.kill();
    eventually("the killed peer is probed unhealthy", || a.probe_status(2).is_some_and(|s| !s.healthy && s.loss >= 1))
        .await;
    let s = a.probe_status(2).expect("status");
    assert!(s.last_error.is_some(), "{s:?}");
    // The SRTT of the past successes is kept (as etcd's status does).
    assert!(!s.srtt.is_zero());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_is_unhealthy_and_every_url_is_tried() {
    // Two URLs where nothing listens: failures move the probe to the next URL.
    let dead = |_| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let urls: Vec<String> = (0..2).map(dead).collect();
    let a = transport(1, "http://127.0.0.1:9");
    a.add_peer(3, &urls).expect("add");
    let mut seen = std::collections::HashSet::new();
    eventually("both URLs were probed and failed", || {
        if let Some(s) = a.probe_status(3) {
            assert!(!s.healthy && s.last_rtt.is_none(), "{s:?}");
            if let Some(u) = s.last_url {
                seen.insert(u);
            }
        }
        seen.len() == 2
    })
    .await;
    let s = a.probe_status(3).expect("status");
    assert_eq!(s.total, s.loss);
    assert!(s.last_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_stops_when_the_peer_is_removed_or_the_transport_stops() {
    let b = KillablePeer::start(2).await;
    let c = KillablePeer::start(3).await;
    let a = transport(1, "http://127.0.0.1:9");
    a.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    a.add_peer(3, std::slice::from_ref(&c.url)).expect("add");
    eventually("both peers are probed", || {
        b.probes.load(Ordering::SeqCst) >= 2 && c.probes.load(Ordering::SeqCst) >= 2
    })
    .await;

    a.remove_peer(2);
    assert_eq!(a.probe_status(2), None);
    // A probe in flight may still land; after that, none (10+ intervals of quiet).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = b.probes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(b.probes.load(Ordering::SeqCst), n, "probed after removal");
    assert!(c.probes.load(Ordering::SeqCst) >= 4, "the other peer is still probed");

    a.stop();
    assert_eq!(a.probe_status(3), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = c.probes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(c.probes.load(Ordering::SeqCst), n, "probed after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_peer_restarts_the_prober_on_the_new_urls() {
    let b = KillablePeer::start(2).await;
    let a = transport(1, "http://127.0.0.1:9");
    a.add_peer(2, &["http://127.0.0.1:1".to_string()]).expect("add");
    eventually("the bad URL fails", || a.probe_status(2).is_some_and(|s| s.loss >= 1)).await;
    a.update_peer(2, std::slice::from_ref(&b.url)).expect("update");
    eventually("the new URL is probed healthy", || a.probe_status(2).is_some_and(|s| s.healthy)).await;
    // A fresh status: the old failures are gone.
    assert_eq!(a.probe_status(2).map(|s| s.loss), Some(0));
}
