//! The test-only partition hook (`fault.rs`) on two real transports over loopback: a cut stops
//! traffic both ways at the member that made it (its sends are dropped and reported unreachable,
//! the other side's pipeline posts and streams are refused, open streams close), healing brings
//! the streams back; a drop rule is a silent one-way blackhole, a delay rule holds messages in
//! order; and the admin endpoint is on the peer URL only when the flag is on.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use raft::eraftpb::{Message, MessageType};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wasmraft_transport::*;

const CID: u64 = 0xfa17;

struct FakeRaft {
    tx: mpsc::UnboundedSender<Message>,
    unreachable: Mutex<Vec<u64>>,
}

impl Raft for FakeRaft {
    fn process(&self, m: Message) -> Result<(), ProcessError> {
        let _ = self.tx.send(m);
        Ok(())
    }
    fn is_id_removed(&self, _id: u64) -> bool {
        false
    }
    fn report_unreachable(&self, id: u64) {
        if let Ok(mut g) = self.unreachable.lock() {
            g.push(id);
        }
    }
    fn report_snapshot(&self, _id: u64, _status: SnapshotStatus) {}
    fn save_snapshot<'a>(
        &'a self,
        _m: &'a Message,
        _data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async { Err("no snapshots here".to_string()) })
    }
}

struct Node {
    tr: Transport,
    url: String,
    raft: Arc<FakeRaft>,
    rx: mpsc::UnboundedReceiver<Message>,
}

impl Node {
    fn unreachable_reports(&self, id: u64) -> usize {
        self.raft.unreachable.lock().map(|g| g.iter().filter(|&&i| i == id).count()).unwrap_or(0)
    }

    /// Drains what arrived so far; returns how many messages of type `t` from `from`.
    fn drain(&mut self, from: u64, t: MessageType) -> usize {
        let mut n = 0;
        while let Ok(m) = self.rx.try_recv() {
            n += usize::from(m.from == from && m.msg_type == t);
        }
        n
    }
}

async fn node(id: u64, faults: bool) -> Node {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    let raft = Arc::new(FakeRaft { tx, unreachable: Mutex::default() });
    let mut cfg = TransportConfig::new(id, CID, vec![url.clone()]);
    cfg.conn_read_timeout = Duration::from_secs(3);
    cfg.fault_injection = faults;
    let tr = Transport::new(cfg, raft.clone()).expect("transport");
    let t2 = tr.clone();
    tokio::spawn(async move { t2.serve(l, std::future::pending()).await });
    Node { tr, url, raft, rx }
}

fn heartbeat(from: u64, to: u64) -> Message {
    Message { msg_type: MessageType::MsgHeartbeat, from, to, term: 2, ..Default::default() }
}

/// Sends heartbeats from `a` to `b` until one arrives on the stream (bounded).
async fn wait_stream(from: &Node, to: &mut Node) {
    for _ in 0..400 {
        if from.tr.send_one(heartbeat(from.tr.id(), to.tr.id())) == Some(Picked::StreamMsg) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the message stream {:x} -> {:x} never came up", from.tr.id(), to.tr.id());
}

/// Sends `n` heartbeats from `from` to `to` over 0.5 s, then counts what arrived.
async fn heartbeats_through(from: &Node, to: &mut Node, n: usize) -> usize {
    to.drain(from.tr.id(), MessageType::MsgHeartbeat);
    for _ in 0..n {
        from.tr.send_one(heartbeat(from.tr.id(), to.tr.id()));
        tokio::time::sleep(Duration::from_millis(500 / n as u64)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    to.drain(from.tr.id(), MessageType::MsgHeartbeat)
}

async fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = ::http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = client.request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stops_traffic_both_ways_and_heals() {
    let (mut a, mut b) = (node(1, true).await, node(2, false).await);
    a.tr.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    b.tr.add_peer(1, std::slice::from_ref(&a.url)).expect("add");
    wait_stream(&a, &mut b).await;
    wait_stream(&b, &mut a).await;
    assert!(heartbeats_through(&a, &mut b, 10).await >= 9);
    assert!(heartbeats_through(&b, &mut a, 10).await >= 9);

    // A cuts B (one side only: B has no hook at all).
    let (code, body) = http("PUT", &format!("{}/wasmraft/faults", a.url), "2").await;
    assert_eq!((code, body.as_str()), (200, "2\n"));
    assert_eq!(a.tr.cut(), vec![2]);

    // A's sends are dropped at once and raft hears the peer is unreachable.
    let before = a.unreachable_reports(2);
    assert_eq!(a.tr.send_one(heartbeat(1, 2)), None);
    assert!(a.unreachable_reports(2) > before);
    assert_eq!(heartbeats_through(&a, &mut b, 10).await, 0);
    // B's messages do not get in: A closed the streams B read from and wrote to, and refuses
    // B's redials and pipeline posts. B's sends may be queued (it still tries) but never arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(heartbeats_through(&b, &mut a, 20).await, 0);
    assert_eq!(a.tr.active_since(2), None, "A's peer status of B");
    // B saw its streams to A end: it falls back to the pipeline (which A refuses).
    let mut fell_back = false;
    for _ in 0..200 {
        if b.tr.send_one(heartbeat(2, 1)) == Some(Picked::Pipeline) {
            fell_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(fell_back, "B's streams to A stayed up");
    assert_eq!(a.drain(2, MessageType::MsgHeartbeat), 0);
    // A direct pipeline post from B is refused with the cut's answer.
    let pipeline = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = ::http::Request::builder()
        .method("POST")
        .uri(format!("{}/raft", a.url))
        .header("X-Server-From", "2")
        .header("X-Server-Version", "3.4.23")
        .header("X-Min-Cluster-Version", "3.0.0")
        .header("X-Etcd-Cluster-ID", format!("{CID:x}"))
        .body(Full::new(Bytes::from(pb::encode_message(&heartbeat(2, 1)))))
        .expect("request");
    let resp = pipeline.request(req).await.expect("answer");
    assert_eq!(resp.status().as_u16(), 503);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"cut off by fault injection\n");

    // Healing: the streams come back and traffic flows both ways again.
    let (code, body) = http("PUT", &format!("{}/wasmraft/faults", a.url), "").await;
    assert_eq!((code, body.as_str()), (200, "\n"));
    wait_stream(&a, &mut b).await;
    wait_stream(&b, &mut a).await;
    assert!(heartbeats_through(&a, &mut b, 10).await >= 9);
    assert!(heartbeats_through(&b, &mut a, 10).await >= 9);
    a.tr.stop();
    b.tr.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_is_a_silent_one_way_blackhole() {
    let (mut a, mut b) = (node(1, true).await, node(2, false).await);
    a.tr.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    b.tr.add_peer(1, std::slice::from_ref(&a.url)).expect("add");
    wait_stream(&a, &mut b).await;
    wait_stream(&b, &mut a).await;

    let (code, body) = http("PUT", &format!("{}/wasmraft/faults", a.url), "2:drop").await;
    assert_eq!((code, body.as_str()), (200, "2:drop\n"));
    assert!(a.tr.cut().is_empty(), "a drop is not a cut");
    let before = a.unreachable_reports(2);
    assert_eq!(heartbeats_through(&a, &mut b, 10).await, 0, "A's messages vanish");
    assert_eq!(a.unreachable_reports(2), before, "and nobody is told");
    // The other way still works, over the same streams (nothing was closed).
    assert!(heartbeats_through(&b, &mut a, 10).await >= 9);
    assert_eq!(b.tr.send_one(heartbeat(2, 1)), Some(Picked::StreamMsg));
    assert!(a.tr.active_since(2).is_some());

    http("PUT", &format!("{}/wasmraft/faults", a.url), "").await;
    assert!(heartbeats_through(&a, &mut b, 10).await >= 9);
    a.tr.stop();
    b.tr.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_holds_messages_and_keeps_their_order() {
    let (a, mut b) = (node(1, true).await, node(2, false).await);
    a.tr.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    b.tr.add_peer(1, std::slice::from_ref(&a.url)).expect("add");
    wait_stream(&a, &mut b).await;
    b.drain(1, MessageType::MsgHeartbeat);

    let (code, body) = http("PUT", &format!("{}/wasmraft/faults", a.url), "2:delay=400").await;
    assert_eq!((code, body.as_str()), (200, "2:delay=400\n"));
    let sent = std::time::Instant::now();
    for commit in 1..=20u64 {
        let mut m = heartbeat(1, 2);
        m.commit = commit;
        assert_eq!(a.tr.send_one(m), None, "held, not sent");
    }
    // All twenty, none before its delay, in the order sent (the heartbeats `wait_stream` sent
    // have commit 0 and may still trickle in through the pipeline).
    let mut got = Vec::new();
    while got.len() < 20 {
        match tokio::time::timeout(Duration::from_secs(5), b.rx.recv()).await {
            Ok(Some(m)) if m.from == 1 && m.commit > 0 => {
                assert!(sent.elapsed() >= Duration::from_millis(400), "message {} arrived early", m.commit);
                got.push(m.commit);
            }
            Ok(Some(_)) => {}
            _ => panic!("only {} of 20 delayed messages arrived", got.len()),
        }
    }
    assert_eq!(got, (1..=20).collect::<Vec<u64>>());
    a.tr.stop();
    b.tr.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_exists_only_with_the_flag() {
    let (on, off) = (node(1, true).await, node(2, false).await);
    let faults_on = format!("{}/wasmraft/faults", on.url);
    assert_eq!(http("GET", &faults_on, "").await, (200, "\n".to_string()));
    assert_eq!(http("PUT", &faults_on, "a, 1f\n3").await, (200, "3,a,1f\n".to_string()));
    assert_eq!(http("GET", &faults_on, "").await, (200, "3,a,1f\n".to_string()));
    let (code, body) = http("PUT", &faults_on, "a,nope").await;
    assert_eq!((code, body.as_str()), (400, "not a member id: \"nope\"\n"));
    assert_eq!(on.tr.cut(), vec![3, 0xa, 0x1f], "a bad request changes nothing");
    let (code, body) = http("PUT", &faults_on, "a:slow").await;
    assert_eq!((code, body.as_str()), (400, "not a rule (cut, drop or delay=<ms>): \"slow\"\n"));
    assert_eq!(http("PUT", &faults_on, "3:drop 1f:delay=20, a").await, (200, "3:drop,a,1f:delay=20\n".to_string()));
    assert_eq!(on.tr.cut(), vec![0xa]);
    assert_eq!(http("DELETE", &faults_on, "").await.0, 405);

    // Without the flag: etcd's 404 for an unknown path, and the API cannot cut either.
    let faults_off = format!("{}/wasmraft/faults", off.url);
    assert_eq!(http("GET", &faults_off, "").await, (404, "404 page not found\n".to_string()));
    assert_eq!(http("PUT", &faults_off, "1").await.0, 404);
    assert!(!off.tr.set_cut(&[1]));
    assert!(off.tr.cut().is_empty());
}
