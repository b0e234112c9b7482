//! Real transports on loopback exchanging messages over HTTP, and etcd's answers to bad requests.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use protobuf::RepeatedField;
use raft::eraftpb::{Entry, Message, MessageType};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wasmraft_transport::*;

const CID: u64 = 0xc1a5;

struct FakeRaft {
    tx: mpsc::UnboundedSender<Message>,
    removed: Mutex<HashSet<u64>>,
    unreachable: Mutex<Vec<u64>>,
    snap_reports: mpsc::UnboundedSender<(u64, SnapshotStatus)>,
    saved: mpsc::UnboundedSender<(u64, u64)>, // (bytes, checksum)
}

impl Raft for FakeRaft {
    fn process(&self, m: Message) -> Result<(), ProcessError> {
        let _ = self.tx.send(m);
        Ok(())
    }
    fn is_id_removed(&self, id: u64) -> bool {
        self.removed.lock().map(|g| g.contains(&id)).unwrap_or(false)
    }
    fn report_unreachable(&self, id: u64) {
        if let Ok(mut g) = self.unreachable.lock() {
            g.push(id);
        }
    }
    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        let _ = self.snap_reports.send((id, status));
    }
    fn save_snapshot<'a>(
        &'a self,
        _m: &'a Message,
        mut data: SnapshotData,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            let (mut n, mut sum) = (0u64, 0u64);
            while let Some(c) = data.chunk().await.map_err(|e| e.to_string())? {
                n += c.len() as u64;
                sum = c.iter().fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
            }
            let _ = self.saved.send((n, sum));
            Ok(n)
        })
    }
}

struct Node {
    tr: Transport,
    url: String,
    raft: Arc<FakeRaft>,
    rx: mpsc::UnboundedReceiver<Message>,
    snap_reports: mpsc::UnboundedReceiver<(u64, SnapshotStatus)>,
    saved: mpsc::UnboundedReceiver<(u64, u64)>,
}

async fn node(id: u64) -> Node {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    let (stx, snap_reports) = mpsc::unbounded_channel();
    let (svtx, saved) = mpsc::unbounded_channel();
    let raft = Arc::new(FakeRaft {
        tx,
        removed: Mutex::default(),
        unreachable: Mutex::default(),
        snap_reports: stx,
        saved: svtx,
    });
    let mut cfg = TransportConfig::new(id, CID, vec![url.clone()]);
    cfg.conn_read_timeout = Duration::from_secs(3);
    let tr = Transport::new(cfg, raft.clone()).expect("transport");
    let t2 = tr.clone();
    tokio::spawn(async move { t2.serve(l, std::future::pending()).await });
    Node { tr, url, raft, rx, snap_reports, saved }
}

fn msg(t: MessageType, from: u64, to: u64) -> Message {
    let mut m = Message::default();
    m.msg_type = t;
    m.from = from;
    m.to = to;
    m
}

fn entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
    let mut e = Entry::default();
    e.term = term;
    e.index = index;
    e.data = Bytes::from_static(data);
    e
}

/// Waits (bounded) until `from` routes `t` to `want`; sends heartbeats while probing.
async fn wait_picked(from: &Node, to: u64, t: MessageType, want: Picked) {
    for _ in 0..400 {
        let w = match t {
            MessageType::MsgAppend => from.tr.send_one(msg(MessageType::MsgHeartbeat, from.tr.id(), to)),
            _ => from.tr.send_one(msg(t, from.tr.id(), to)),
        };
        if w == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("stream never came up");
}

async fn recv_type(n: &mut Node, t: MessageType) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), n.rx.recv())
            .await
            .expect("timed out waiting for a message")
            .expect("channel");
        if m.msg_type == t {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_messages_and_msgapp_tracks_index_and_term() {
    let (mut a, mut b) = (node(1).await, node(2).await);
    a.tr.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    b.tr.add_peer(1, std::slice::from_ref(&a.url)).expect("add");
    wait_picked(&a, 2, MessageType::MsgHeartbeat, Picked::StreamMsg).await;
    assert!(a.tr.active_since(2).is_some());
    assert_eq!(a.tr.active_peers(), 1);

    // The msgapp stream comes up too (its writer is attached when B's reader dials).
    let mut app = msg(MessageType::MsgAppend, 1, 2);
    app.term = 3;
    app.log_term = 3;
    app.index = 10;
    app.commit = 9;
    app.entries = RepeatedField::from_vec(vec![entry(3, 11, b"x")]);
    let mut picked = None;
    for _ in 0..400 {
        // Probe with a heartbeat until the msgapp writer is working, then send the real ones.
        let mut probe = msg(MessageType::MsgHeartbeat, 1, 2);
        probe.term = 3;
        a.tr.send_one(probe);
        if a.tr.send_one(app.clone()) == Some(Picked::StreamMsgAppV2) {
            picked = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(picked.is_some(), "msgapp stream never came up");
    // Continuation: AppEntries on the wire, rebuilt from the tracked index/term on B.
    let mut next = msg(MessageType::MsgAppend, 1, 2);
    next.term = 3;
    next.log_term = 3;
    next.index = 11;
    next.commit = 11;
    next.entries = RepeatedField::from_vec(vec![entry(3, 12, b"y"), entry(3, 13, b"z")]);
    assert_eq!(a.tr.send_one(next.clone()), Some(Picked::StreamMsgAppV2));
    // Earlier MsgApps that went by pipeline while the stream came up may arrive too; find ours.
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = recv_type(&mut b, MessageType::MsgAppend).await;
        if m.index == 10 && got.is_empty() || m.index == 11 {
            got.push(m);
        }
    }
    assert_eq!(got[0], app);
    assert_eq!(got[1], next);

    // The other direction works as well (B's writers, A's readers).
    wait_picked(&b, 1, MessageType::MsgHeartbeat, Picked::StreamMsg).await;
    let mut v = msg(MessageType::MsgRequestVote, 2, 1);
    v.term = 4;
    b.tr.send(vec![v.clone()]);
    loop {
        let m = recv_type(&mut a, MessageType::MsgRequestVote).await;
        if m == v {
            break;
        }
    }
    a.tr.stop();
    b.tr.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_carries_messages_when_streams_are_down() {
    let (a, mut b) = (node(1).await, node(2).await);
    // B does not know A as a peer: A's streams never come up (B never dials them), so A posts.
    a.tr.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    let mut m = msg(MessageType::MsgHeartbeat, 1, 2);
    m.term = 7;
    m.commit = 5;
    assert_eq!(a.tr.send_one(m.clone()), Some(Picked::Pipeline));
    assert_eq!(recv_type(&mut b, MessageType::MsgHeartbeat).await, m);
    // A MsgApp with entries by pipeline as well.
    let mut app = msg(MessageType::MsgAppend, 1, 2);
    app.entries = RepeatedField::from_vec(vec![entry(1, 1, b"hello")]);
    assert_eq!(a.tr.send_one(app.clone()), Some(Picked::Pipeline));
    assert_eq!(recv_type(&mut b, MessageType::MsgAppend).await, app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_with_multi_megabyte_data_streams_through() {
    let (mut a, mut b) = (node(1).await, node(2).await);
    a.tr.add_peer(2, std::slice::from_ref(&b.url)).expect("add");
    let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let want_sum = data.iter().fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut m = msg(MessageType::MsgSnapshot, 1, 2);
    m.term = 2;
    let md = m.mut_snapshot().mut_metadata();
    md.index = 100;
    md.term = 2;
    md.mut_conf_state().voters = vec![1, 2];
    let size = data.len() as u64;
    a.tr.send_snapshot(OutgoingSnapshot { message: m.clone(), data: Box::new(std::io::Cursor::new(data)), size });
    let saved = tokio::time::timeout(Duration::from_secs(60), b.saved.recv()).await.expect("saved").expect("chan");
    assert_eq!(saved, (size, want_sum));
    assert_eq!(recv_type(&mut b, MessageType::MsgSnapshot).await, m);
    let report =
        tokio::time::timeout(Duration::from_secs(30), a.snap_reports.recv()).await.expect("report").expect("chan");
    assert_eq!(report, (2, SnapshotStatus::Finish));

    // A reader shorter than its announced size aborts the upload: failure, nothing processed.
    let mut m2 = m.clone();
    m2.mut_snapshot().mut_metadata().index = 200;
    a.tr.send_snapshot(OutgoingSnapshot {
        message: m2,
        data: Box::new(std::io::Cursor::new(vec![1u8; 1000])),
        size: 5000,
    });
    let report =
        tokio::time::timeout(Duration::from_secs(30), a.snap_reports.recv()).await.expect("report").expect("chan");
    assert_eq!(report, (2, SnapshotStatus::Failure));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_never_blocks_send() {
    let a = node(1).await;
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    a.tr.add_peer(9, &[dead]).expect("add");
    let msgs: Vec<Message> = (0..20_000)
        .map(|i| {
            let mut m = msg(MessageType::MsgAppend, 1, 9);
            m.index = i;
            m
        })
        .collect();
    a.tr.send(msgs); // returns: the queues are bounded and full ones drop
    let dropped = a.raft.unreachable.lock().map(|g| g.iter().filter(|&&id| id == 9).count()).unwrap_or(0);
    assert!(dropped >= 20_000 - 64 - 4, "only {dropped} reported unreachable");
    // A snapshot to it fails and says so.
    assert_eq!(a.tr.send_one(msg(MessageType::MsgHeartbeat, 1, 0)), None);
    assert_eq!(a.tr.send_one(msg(MessageType::MsgHeartbeat, 1, 77)), None);
}

type RawClient = Client<HttpConnector, Full<Bytes>>;

async fn raw(
    c: &RawClient,
    method: &str,
    url: String,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, String, ::http::HeaderMap) {
    let mut req = ::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = c.request(req.body(Full::new(Bytes::from(body))).expect("req")).await.expect("response");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let b = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    (status, String::from_utf8_lossy(&b).into_owned(), h)
}

fn good_headers(from: u64) -> Vec<(&'static str, String)> {
    vec![
        ("X-Server-From", format!("{from:x}")),
        ("X-Server-Version", "3.4.23".into()),
        ("X-Min-Cluster-Version", "3.0.0".into()),
        ("X-Etcd-Cluster-ID", format!("{CID:x}")),
        ("X-Raft-To", "2".into()),
    ]
}

fn with(mut h: Vec<(&'static str, String)>, k: &'static str, v: &str) -> Vec<(&'static str, String)> {
    h.retain(|(n, _)| *n != k);
    h.push((k, v.to_string()));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_etcds_status_codes_and_bodies() {
    let mut b = node(2).await;
    b.tr.add_peer(1, &["http://127.0.0.1:1".to_string()]).expect("add");
    if let Ok(mut g) = b.raft.removed.lock() {
        g.insert(5);
    }
    let c: RawClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let base = b.url.clone();
    let u = |p: &str| format!("{base}{p}");
    let good = good_headers(1);
    let hb = wasmraft_transport::pb::encode_message(&msg(MessageType::MsgHeartbeat, 1, 2));

    // Pipeline.
    let (s, body, h) = raw(&c, "POST", u("/raft"), &good, hb.clone()).await;
    assert_eq!((s, body.as_str()), (204, ""));
    assert_eq!(h.get("X-Etcd-Cluster-ID").and_then(|v| v.to_str().ok()), Some("c1a5"));
    assert_eq!(recv_type(&mut b, MessageType::MsgHeartbeat).await.from, 1);
    let (s, body, h) = raw(&c, "GET", u("/raft"), &good, vec![]).await;
    assert_eq!((s, body.as_str()), (405, "Method Not Allowed\n"));
    assert_eq!(h.get("Allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let (s, body, _) = raw(&c, "POST", u("/raft"), &with(good.clone(), "X-Etcd-Cluster-ID", "beef"), hb.clone()).await;
    assert_eq!((s, body.as_str()), (412, "cluster ID mismatch\n"));
    let (s, body, _) = raw(&c, "POST", u("/raft"), &with(good.clone(), "X-Server-Version", "2.3.0"), hb.clone()).await;
    assert_eq!((s, body.as_str()), (412, "incompatible version\n"));
    let (s, body, _) =
        raw(&c, "POST", u("/raft"), &with(good.clone(), "X-Min-Cluster-Version", "3.5.0"), hb.clone()).await;
    assert_eq!((s, body.as_str()), (412, "incompatible version\n"));
    let (s, body, _) =
        raw(&c, "POST", u("/raft"), &with(good.clone(), "X-Server-Version", "garbage"), hb.clone()).await;
    assert_eq!((s, body.as_str()), (412, "incompatible version\n"));
    let (s, _, _) = raw(&c, "POST", u("/raft"), &[], hb.clone()).await; // no headers: etcd 2.0
    assert_eq!(s, 412);
    for hostile in [vec![0x0bu8; 10_000], vec![0x62, 0xff, 0xff, 0xff, 0xff, 0x0f], vec![0x10], vec![0x08, 99]] {
        let (s, body, _) = raw(&c, "POST", u("/raft"), &good, hostile).await;
        assert_eq!((s, body.as_str()), (400, "error unmarshalling raft message\n"));
    }
    let removed = wasmraft_transport::pb::encode_message(&msg(MessageType::MsgHeartbeat, 5, 2));
    let (s, body, h) = raw(&c, "POST", u("/raft"), &good_headers(5), removed).await;
    assert_eq!((s, body.as_str()), (403, "{\"message\":\"cannot process message from removed member\"}"));
    assert_eq!(h.get("Content-Type").and_then(|v| v.to_str().ok()), Some("application/json"));

    // Streams.
    let (s, body, h) = raw(&c, "POST", u("/raft/stream/message/1"), &good, vec![]).await;
    assert_eq!((s, body.as_str()), (405, "Method Not Allowed\n"));
    assert_eq!(h.get("Allow").and_then(|v| v.to_str().ok()), Some("GET"));
    let (s, body, h) =
        raw(&c, "GET", u("/raft/stream/message/1"), &with(good.clone(), "X-Etcd-Cluster-ID", "1"), vec![]).await;
    assert_eq!((s, body.as_str()), (412, "cluster ID mismatch\n"));
    assert_eq!(h.get("X-Server-Version").and_then(|v| v.to_str().ok()), Some("3.4.23"));
    let (s, body, _) = raw(&c, "GET", u("/raft/stream/bogus/1"), &good, vec![]).await;
    assert_eq!((s, body.as_str()), (404, "invalid path\n"));
    let (s, body, _) = raw(&c, "GET", u("/raft/stream/msgapp/xyz"), &good, vec![]).await;
    assert_eq!((s, body.as_str()), (404, "invalid from\n"));
    let (s, body, _) = raw(&c, "GET", u("/raft/stream/message/5"), &good_headers(5), vec![]).await;
    assert_eq!((s, body.as_str()), (410, "removed member\n"));
    let (s, body, _) = raw(&c, "GET", u("/raft/stream/message/6"), &good_headers(6), vec![]).await;
    assert_eq!((s, body.as_str()), (404, "error sender not found\n"));
    let (s, body, _) = raw(&c, "GET", u("/raft/stream/msgapp/1"), &with(good.clone(), "X-Raft-To", "3"), vec![]).await;
    assert_eq!((s, body.as_str()), (412, "to field mismatch\n"));

    // Snapshot.
    let (s, body, _) = raw(&c, "GET", u("/raft/snapshot"), &good, vec![]).await;
    assert_eq!((s, body.as_str()), (405, "Method Not Allowed\n"));
    let (s, body, _) =
        raw(&c, "POST", u("/raft/snapshot"), &with(good.clone(), "X-Etcd-Cluster-ID", "2"), vec![]).await;
    assert_eq!((s, body.as_str()), (412, "cluster ID mismatch\n"));
    let mut frame = Vec::new();
    wasmraft_transport::msg_codec::encode_frame(&msg(MessageType::MsgHeartbeat, 1, 2), &mut frame);
    let (s, body, _) = raw(&c, "POST", u("/raft/snapshot"), &good, frame).await;
    assert_eq!((s, body.as_str()), (400, "wrong raft message type\n"));
    let (s, body, _) = raw(&c, "POST", u("/raft/snapshot"), &good, u64::MAX.to_be_bytes().to_vec()).await;
    assert_eq!((s, body.as_str()), (400, "failed to decode raft message (rafthttp: error limit exceeded)\n"));
    let mut lying = (100u64 << 20).to_be_bytes().to_vec();
    lying.extend_from_slice(&[1, 2, 3]);
    let (s, body, _) = raw(&c, "POST", u("/raft/snapshot"), &good, lying).await;
    assert_eq!(s, 400);
    assert!(body.starts_with("failed to decode raft message ("), "{body}");
    let mut groups = 4096u64.to_be_bytes().to_vec();
    groups.extend(std::iter::repeat_n(0x0bu8, 4096));
    let (s, body, _) = raw(&c, "POST", u("/raft/snapshot"), &good, groups).await;
    assert_eq!((s, body.as_str()), (400, "failed to decode raft message (group wire types are not accepted)\n"));

    // Probing and unknown routes.
    let (s, body, _) = raw(&c, "GET", u("/raft/probing"), &[], vec![]).await;
    assert_eq!(s, 200);
    assert!(body.starts_with("{\"OK\":true,\"Now\":\"") && body.ends_with("\"}\n"), "{body}");
    let (s, body, _) = raw(&c, "GET", u("/nope"), &[], vec![]).await;
    assert_eq!((s, body.as_str()), (404, "404 page not found\n"));

    // Still serving after all that.
    let (s, _, _) = raw(&c, "POST", u("/raft"), &good, hb).await;
    assert_eq!(s, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_refused() {
    let a = node(1).await;
    // A transport configured with another cluster ID.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stx, _s) = mpsc::unbounded_channel();
    let (svtx, _v) = mpsc::unbounded_channel();
    let other_raft = Arc::new(FakeRaft {
        tx,
        removed: Mutex::default(),
        unreachable: Mutex::default(),
        snap_reports: stx,
        saved: svtx,
    });
    let other = Transport::new(TransportConfig::new(2, CID + 1, vec![url.clone()]), other_raft).expect("t");
    let o2 = other.clone();
    tokio::spawn(async move { o2.serve(l, std::future::pending()).await });
    a.tr.add_peer(2, &[url]).expect("add");
    other.add_peer(1, std::slice::from_ref(&a.url)).expect("add");
    // A's pipeline post is refused (412): reported unreachable, never processed by the other.
    a.tr.send_one(msg(MessageType::MsgHeartbeat, 1, 2));
    for _ in 0..400 {
        if a.raft.unreachable.lock().map(|g| g.contains(&2)).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(a.raft.unreachable.lock().map(|g| g.contains(&2)).unwrap_or(false));
    assert!(rx.try_recv().is_err());
    assert!(a.tr.active_since(2).is_none());
}
