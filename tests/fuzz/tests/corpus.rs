//! Replays the committed seed corpus (`corpus/<target>/*`) through every target, on stable and
//! without libFuzzer: CI's check that the seeds (real encodings, edge cases, and the inputs of
//! past findings) still run clean, and that the generated seeds are committed as generated.

use std::path::{Path, PathBuf};

use wasmraft_fuzz::{HOST_TARGETS, TARGETS};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_seed_runs_clean() {
    let root = corpus_dir();
    let mut ran = 0;
    for t in TARGETS {
        let dir = root.join(t.name);
        let seeds = files(&dir);
        assert!(!seeds.is_empty(), "no seeds for {}", t.name);
        for f in seeds {
            let data = std::fs::read(&f).expect("read seed");
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            assert!(r.is_ok(), "{} fails on {}", t.name, f.display());
            ran += 1;
        }
    }
    // Every corpus directory belongs to a target (a renamed target must take its corpus along).
    for d in std::fs::read_dir(&root).expect("corpus dir") {
        let name = d.expect("dir entry").file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.iter().any(|t| t.name == name) || HOST_TARGETS.contains(&name.as_str()),
            "corpus/{name} has no target"
        );
    }
    eprintln!("{ran} seeds ran clean");
}

/// The seeds made from the real encoders are committed as they are made now, so a codec change
/// that alters an encoding shows here. `WASMRAFT_FUZZ_WRITE_SEEDS=1` (re)writes them instead
/// (the client_h2 seeds need feature "host", the default).
#[test]
fn generated_seeds_are_committed() {
    let root = corpus_dir();
    let write = std::env::var_os("WASMRAFT_FUZZ_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (target, name, bytes) in seeds::all() {
        let dir = root.join(target);
        let path = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&path, bytes).expect("write seed");
        } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "generated seeds missing or different from the committed ones (WASMRAFT_FUZZ_WRITE_SEEDS=1 rewrites them):\n{}",
        stale.join("\n")
    );
}

mod seeds {
    use bytes::Bytes;
    use prost::Message as _;
    use protobuf::RepeatedField;
    use raft::eraftpb::{Entry, EntryType, Message, MessageType};
    use wasmraft_proto::etcdserverpb as pb;
    use wasmraft_transport::msgappv2_codec::{MsgAppV2Encoder, link_heartbeat};
    use wasmraft_transport::{msg_codec, pb as rpb};

    type Seed = (&'static str, &'static str, Vec<u8>);

    fn entry(t: u64, i: u64, data: &'static [u8]) -> Entry {
        Entry { term: t, index: i, data: Bytes::from_static(data), ..Default::default() }
    }

    fn msg(t: MessageType, from: u64, to: u64) -> Message {
        Message { msg_type: t, from, to, ..Default::default() }
    }

    fn heartbeat() -> Message {
        let mut m = msg(MessageType::MsgHeartbeat, 1, 2);
        m.term = 3;
        m.commit = 4;
        m
    }

    fn app(term: u64, index: u64, entries: Vec<Entry>, commit: u64) -> Message {
        let mut m = msg(MessageType::MsgAppend, 1, 2);
        m.term = term;
        m.log_term = term;
        m.index = index;
        m.entries = RepeatedField::from_vec(entries);
        m.commit = commit;
        m
    }

    fn everything() -> Message {
        let mut m = msg(MessageType::MsgSnapshot, 7, u64::MAX);
        m.term = 300;
        m.reject = true;
        m.reject_hint = 9;
        m.context = Bytes::from_static(b"ctx");
        m.commit_term = 5;
        m.request_snapshot = 6;
        m.priority = -3;
        let mut e = entry(2, 1, b"hello");
        e.entry_type = EntryType::EntryConfChange;
        e.context = Bytes::from_static(b"c");
        e.sync_log = true;
        m.entries = RepeatedField::from_vec(vec![e, Entry::default()]);
        let s = m.mut_snapshot();
        s.data = Bytes::from_static(b"snapdata");
        let md = s.mut_metadata();
        md.index = 10;
        md.term = 11;
        md.mut_conf_state().voters = vec![1, 2, 3];
        md.mut_conf_state().learners = vec![4];
        md.mut_conf_state().auto_leave = true;
        m
    }

    fn snap() -> Message {
        let mut m = msg(MessageType::MsgSnapshot, 2, 1);
        m.term = 5;
        let md = m.mut_snapshot().mut_metadata();
        md.index = 100;
        md.term = 5;
        md.mut_conf_state().voters = vec![1, 2];
        m
    }

    fn frame(m: &Message) -> Vec<u8> {
        let mut v = Vec::new();
        msg_codec::encode_frame(m, &mut v);
        v
    }

    fn shaped(shape: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![shape];
        v.extend_from_slice(body);
        v
    }

    fn nested_unknown(levels: usize) -> Vec<u8> {
        let mut nested = Vec::new();
        for _ in 0..levels {
            let mut outer = vec![0xa2, 0x06]; // field 100, length-delimited
            let mut n = nested.len();
            while n >= 0x80 {
                outer.push((n as u8) | 0x80);
                n >>= 7;
            }
            outer.push(n as u8);
            outer.extend_from_slice(&nested);
            nested = outer;
        }
        nested
    }

    fn raft_pb() -> Vec<Seed> {
        let packed = vec![0x08, 7, 0x4a, 10, 0x12, 8, 0x0a, 6, 0x0a, 4, 1, 2, 0xac, 0x02];
        vec![
            ("raft_pb", "heartbeat", rpb::encode_message(&heartbeat())),
            ("raft_pb", "everything", rpb::encode_message(&everything())),
            ("raft_pb", "msgapp", rpb::encode_message(&app(2, 1, vec![entry(2, 2, b"x"), entry(2, 3, b"")], 1))),
            ("raft_pb", "snap", rpb::encode_message(&snap())),
            ("raft_pb", "packed-voters", packed),
            ("raft_pb", "entry", {
                let mut b = Vec::new();
                rpb::encode_entry(&entry(1, 2, b"data"), &mut b);
                b
            }),
            ("raft_pb", "nested-groups", vec![0x0b; 4096]),
            ("raft_pb", "nested-unknown", nested_unknown(500)),
            ("raft_pb", "huge-length", vec![0x62, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            ("raft_pb", "varint-overflow", vec![0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            ("raft_pb", "empty", Vec::new()),
        ]
    }

    fn msg_codec() -> Vec<Seed> {
        let mut two = frame(&heartbeat());
        two.extend(frame(&everything()));
        let mut lie = (500u64 << 20).to_be_bytes().to_vec();
        lie.extend_from_slice(&[1, 2, 3]);
        let mut groups = 64u64.to_be_bytes().to_vec();
        groups.extend(std::iter::repeat_n(0x0b, 64));
        vec![
            ("msg_codec", "two-frames", shaped(0, &two)),
            ("msg_codec", "two-frames-chunked", shaped(0x83, &two)),
            ("msg_codec", "truncated", shaped(5, &two[..two.len() - 3])),
            ("msg_codec", "over-limit", shaped(0, &u64::MAX.to_be_bytes())),
            ("msg_codec", "length-lie", shaped(1, &lie)),
            ("msg_codec", "nested-groups", shaped(0, &groups)),
        ]
    }

    fn msgappv2() -> Vec<Seed> {
        let mut enc = MsgAppV2Encoder::new();
        let mut out = Vec::new();
        enc.encode(&app(1, 0, vec![entry(1, 1, b"a")], 0), &mut out);
        enc.encode(&app(1, 1, vec![entry(1, 2, b"bc"), entry(1, 3, b"")], 2), &mut out);
        enc.encode(&link_heartbeat(), &mut out);
        enc.encode(&app(2, 3, vec![entry(2, 4, b"d")], 3), &mut out);
        let mut count_lie = vec![1u8];
        count_lie.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut entry_over = vec![1u8];
        entry_over.extend_from_slice(&1u64.to_be_bytes());
        entry_over.extend_from_slice(&(2u64 << 20).to_be_bytes());
        vec![
            ("msgappv2", "stream", shaped(0, &out)),
            ("msgappv2", "stream-chunked", shaped(0x87, &out)),
            ("msgappv2", "unknown-type", shaped(0, &[7])),
            ("msgappv2", "count-lie", shaped(0, &count_lie)),
            ("msgappv2", "entry-over-limit", shaped(0, &entry_over)),
        ]
    }

    fn snapshot_body() -> Vec<Seed> {
        let mut body = frame(&snap());
        body.extend_from_slice(b"the state data of the snapshot");
        vec![
            ("snapshot_body", "snap-and-data", shaped(0, &body)),
            ("snapshot_body", "snap-and-data-chunked", shaped(0x8b, &body)),
            ("snapshot_body", "head-only", shaped(3, &frame(&snap()))),
            ("snapshot_body", "wrong-type", shaped(0, &frame(&heartbeat()))),
        ]
    }

    const GOOD: &str =
        "X-Server-From: 2\nX-Server-Version: 3.4.23\nX-Min-Cluster-Version: 3.0.0\nX-Etcd-Cluster-ID: c1a5\n";

    fn http(flags: u8, head: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut v = vec![flags];
        v.extend_from_slice(head.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(headers.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(body);
        v
    }

    fn peer_http() -> Vec<Seed> {
        let hb = rpb::encode_message(&heartbeat());
        let mut removed = heartbeat();
        removed.from = 3;
        let removed = rpb::encode_message(&removed);
        let mut snap_body = frame(&snap());
        snap_body.extend_from_slice(b"state data");
        let remote = format!("{GOOD}X-PeerURLs: http://127.0.0.1:9,http://[::1]:9\n");
        vec![
            ("peer_http", "pipeline", http(0, "POST /raft", GOOD, &hb)),
            ("peer_http", "pipeline-remote", http(0, "POST /raft", &remote, &hb)),
            ("peer_http", "pipeline-http-error", http(0x22, "POST /raft", GOOD, &hb)),
            ("peer_http", "pipeline-other-error", http(3, "POST /raft", GOOD, &hb)),
            ("peer_http", "pipeline-removed", http(0, "POST /raft", GOOD, &removed)),
            ("peer_http", "pipeline-garbage", http(0, "POST /raft", GOOD, &[0x0b; 64])),
            ("peer_http", "pipeline-too-big", http(0x40, "POST /raft", GOOD, &vec![0x62; 5000])),
            ("peer_http", "pipeline-get", http(0, "GET /raft", GOOD, b"")),
            (
                "peer_http",
                "old-version",
                http(0, "POST /raft", "X-Server-Version: 2.3.0\nX-Etcd-Cluster-ID: c1a5\n", &hb),
            ),
            (
                "peer_http",
                "bad-version",
                http(0, "POST /raft", "X-Server-Version: 3.x\nX-Etcd-Cluster-ID: c1a5\n", &hb),
            ),
            (
                "peer_http",
                "wrong-cluster",
                http(0, "POST /raft", "X-Server-Version: 3.4.23\nX-Etcd-Cluster-ID: 1\n", &hb),
            ),
            ("peer_http", "snapshot", http(0, "POST /raft/snapshot", GOOD, &snap_body)),
            ("peer_http", "snapshot-chunked", http(0x81 << 3, "POST /raft/snapshot", GOOD, &snap_body)),
            ("peer_http", "snapshot-save-fails", http(4, "POST /raft/snapshot", GOOD, &snap_body)),
            ("peer_http", "snapshot-wrong-type", http(0, "POST /raft/snapshot", GOOD, &frame(&heartbeat()))),
            (
                "peer_http",
                "stream-message",
                http(0, "GET /raft/stream/message/2", &format!("{GOOD}X-Raft-To: 1\n"), b""),
            ),
            (
                "peer_http",
                "stream-msgapp-wrong-to",
                http(0, "GET /raft/stream/msgapp/2", &format!("{GOOD}X-Raft-To: 5\n"), b""),
            ),
            ("peer_http", "stream-removed", http(0, "GET /raft/stream/message/3", GOOD, b"")),
            ("peer_http", "stream-unknown", http(0, "GET /raft/stream/message/ff", &remote, b"")),
            ("peer_http", "stream-bad-path", http(0, "GET /raft/stream/other/2", GOOD, b"")),
            ("peer_http", "stream-redirect", http(0, "GET /raft/stream?x=1", GOOD, b"")),
            ("peer_http", "unclean-path", http(0, "POST //raft/./snapshot/../", GOOD, b"")),
            ("peer_http", "probing", http(0, "GET /raft/probing", "", b"")),
            ("peer_http", "members", http(8, "GET /members", "", b"")),
            ("peer_http", "members-post", http(8, "POST /members", "", b"")),
            ("peer_http", "promote", http(16, "POST /members/promote/5", GOOD, b"")),
            ("peer_http", "promote-fails", http(0xe0, "POST /members/promote/x", GOOD, b"")),
            ("peer_http", "not-found", http(0, "DELETE /v2/keys", "", b"")),
        ]
    }

    fn op_put(k: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: k.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }
    }
    fn op_del(k: &str, end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(pb::request_op::Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn op_txn(t: pb::TxnRequest) -> pb::RequestOp {
        pb::RequestOp { request: Some(pb::request_op::Request::RequestTxn(t)) }
    }

    fn deep_txn(levels: usize) -> pb::TxnRequest {
        let mut t = pb::TxnRequest { success: vec![op_put("leaf")], ..Default::default() };
        for _ in 1..levels {
            t = pb::TxnRequest { success: vec![op_txn(t)], ..Default::default() };
        }
        t
    }

    fn grpc(kind: u8, m: &impl prost::Message) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend(m.encode_to_vec());
        v
    }

    fn grpc_requests() -> Vec<Seed> {
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare { key: b"a".to_vec(), target: 1, result: 2, ..Default::default() }],
            success: vec![
                op_put("a"),
                op_del("b", "d"),
                op_txn(pb::TxnRequest { success: vec![op_put("x")], failure: vec![op_put("x")], ..Default::default() }),
            ],
            failure: vec![op_put("c"), op_put("c")],
        };
        // etcd 3.4's quirk: a later sibling's delete does not conflict with an earlier put.
        let quirk = pb::TxnRequest {
            success: vec![
                op_txn(pb::TxnRequest { success: vec![op_put("m")], ..Default::default() }),
                op_txn(pb::TxnRequest { success: vec![op_del("a", "z")], ..Default::default() }),
            ],
            ..Default::default()
        };
        let mut deep_bad = deep_txn(60).encode_to_vec();
        deep_bad.insert(0, 3);
        vec![
            (
                "grpc_requests",
                "range",
                grpc(
                    0,
                    &pb::RangeRequest {
                        key: b"a".to_vec(),
                        range_end: b"\0".to_vec(),
                        limit: 10,
                        sort_target: 2,
                        ..Default::default()
                    },
                ),
            ),
            (
                "grpc_requests",
                "put",
                grpc(
                    1,
                    &pb::PutRequest {
                        key: b"k".to_vec(),
                        value: b"v".to_vec(),
                        lease: 5,
                        prev_kv: true,
                        ..Default::default()
                    },
                ),
            ),
            (
                "grpc_requests",
                "delete",
                grpc(2, &pb::DeleteRangeRequest { key: b"a".to_vec(), range_end: b"b".to_vec(), prev_kv: true }),
            ),
            ("grpc_requests", "txn", grpc(3, &txn)),
            ("grpc_requests", "txn-quirk", grpc(3, &quirk)),
            ("grpc_requests", "txn-deep-50", grpc(3, &deep_txn(50))),
            ("grpc_requests", "txn-deep-60", deep_bad),
            ("grpc_requests", "compaction", grpc(4, &pb::CompactionRequest { revision: 7, physical: true })),
            ("grpc_requests", "lease-grant", grpc(5, &pb::LeaseGrantRequest { ttl: 60, id: 0 })),
            ("grpc_requests", "lease-keepalive", grpc(7, &pb::LeaseKeepAliveRequest { id: 1 })),
            (
                "grpc_requests",
                "watch-create",
                grpc(
                    9,
                    &pb::WatchRequest {
                        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(pb::WatchCreateRequest {
                            key: b"a".to_vec(),
                            range_end: b"b".to_vec(),
                            start_revision: 3,
                            progress_notify: true,
                            filters: vec![0, 1, 7],
                            prev_kv: true,
                            watch_id: 4,
                            fragment: true,
                        })),
                    },
                ),
            ),
            (
                "grpc_requests",
                "watch-cancel",
                grpc(
                    9,
                    &pb::WatchRequest {
                        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(pb::WatchCancelRequest {
                            watch_id: 4,
                        })),
                    },
                ),
            ),
            (
                "grpc_requests",
                "authenticate",
                grpc(10, &pb::AuthenticateRequest { name: "root".into(), password: "pw".into() }),
            ),
            (
                "grpc_requests",
                "member-add",
                grpc(14, &pb::MemberAddRequest { peer_ur_ls: vec!["http://a:2380".into()], is_learner: true }),
            ),
            (
                "grpc_requests",
                "internal-put",
                grpc(
                    22,
                    &pb::InternalRaftRequest {
                        put: Some(pb::PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() }),
                        ..Default::default()
                    },
                ),
            ),
        ]
    }

    #[cfg(feature = "host")]
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[cfg(feature = "host")]
    fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[cfg(feature = "host")]
    fn client_h2() -> Vec<Seed> {
        let mut enc = fluke_hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ];
        let block = enc.encode(headers.iter().copied());
        // The same request again: now from the client's dynamic table.
        let block2 = enc.encode(headers.iter().copied());
        let settings = h2_frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        let mut simple = settings.clone();
        simple.extend(h2_frame(0x1, 0x4, 1, &block));
        simple.extend(h2_frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
        simple.extend(h2_frame(0x1, 0x5, 3, &block2));
        let mut split = h2_frame(0x1, 0x20, 1, &[&[0, 0, 0, 0, 16][..], &block[..5]].concat());
        split.extend(h2_frame(0x9, 0, 1, &block[5..10]));
        split.extend(h2_frame(0x9, 0x4, 1, &block[10..]));
        let mut padded = vec![3u8];
        padded.extend_from_slice(&block);
        padded.extend_from_slice(&[0, 0, 0]);
        let padded = h2_frame(0x1, 0x0c, 1, &padded);
        vec![
            ("client_h2", "request", shaped(0, &simple)),
            ("client_h2", "request-bytewise", shaped(1, &simple)),
            ("client_h2", "continuation-priority", shaped(7, &split)),
            ("client_h2", "padded", shaped(0, &padded)),
            (
                "client_h2",
                "data-inside-block",
                shaped(0, &[h2_frame(0x1, 0, 1, &block[..3]), h2_frame(0, 0, 1, b"x")].concat()),
            ),
            ("client_h2", "not-http2", shaped(0x80, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
            ("client_h2", "preface-only", shaped(0x80, PREFACE)),
        ]
    }

    fn guest_abi() -> Vec<Seed> {
        // See guest_abi.rs's parse: op byte, then two argument bytes.
        vec![
            // put a=1, put b=22, get a, scan all fwd, scan all rev, end; query: get b, scan a..z limit 1
            (
                "guest_abi",
                "script",
                vec![0, 1, 1, 0, 2, 2, 2, 1, 0, 3, 0, 0, 3, 0, 8, 8, 0, 0, 2, 2, 0, 3, 1 | (6 << 3), 1],
            ),
            // put, del, emit, pad, scan with limit u32::MAX, commit, then raw commands
            (
                "guest_abi",
                "writes-events",
                vec![0, 3, 3, 1, 3, 0, 4, 3, 0, 6, 2, 0, 3, 0, 7, 7, 0, 0, 9, 2, 2, 9, 4, 0, 9, 5, 0],
            ),
            ("guest_abi", "misbehave", vec![9, 0, 0, 9, 6, 0, 9, 7, 0, 9, 8, 0, 9, 1, 3, 9, 9, 0, 9, 10, 0]),
            // a key over the limit, then big values up to the pending cap
            ("guest_abi", "limits", vec![5, 7, 0, 7, 0, 0, 5, 6, 5, 5, 6, 5, 3, 0, 0, 7, 0, 0, 9, 3, 3, 9, 1, 2]),
            // writes in a query script
            ("guest_abi", "query-writes", vec![8, 0, 0, 2, 1, 0, 0, 1, 1]),
        ]
    }

    /// Writer scripts (written-mode inputs without the mode byte): appends synced and not,
    /// compaction, an installed snapshot, conf states, bootstrap, `--max-wals`, segment rolls.
    fn wal_scripts() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("bootstrap-append", vec![6, 1, 0x08, 2, 0, 1, 5, 0x18, 1, 0, 1, 0x45]),
            ("unsynced-tail", vec![6, 1, 0x18, 3, 0, 1, 0x10, 0x00, 1, 0, 1, 0x3f, 0x00, 2, 1, 1, 0x20]),
            (
                "rolls-compacts",
                [vec![6, 9], [0x18u8, 3, 0, 2, 0x3f].repeat(6), vec![3, 10, 0x0f, 0, 0, 0x3f, 5, 0x93, 7, 1]].concat(),
            ),
            ("snapshot-installed", vec![6, 2, 0x08, 3, 0, 1, 0x44, 4, 2, 5, 0x18, 0, 0, 6, 0x01]),
            ("truncating-append", vec![0x18, 3, 0, 1, 0x05, 0x18, 1, 1, 2, 0x46, 0x08, 0, 9, 3, 0x81]),
        ]
    }

    fn wal_replay() -> Vec<Seed> {
        let mut v = Vec::new();
        for (name, script) in wal_scripts() {
            v.push(("wal_replay", leak(format!("written-{name}")), [vec![1], script.clone()].concat()));
            v.push(("wal_replay", leak(format!("raw-{name}")), wasmraft_fuzz::wal_replay::raw_seed(&script)));
        }
        // Damage after a real script: a flipped bit in the first segment's first batch, a
        // zeroed sector at the end of the last one, a truncation, the oldest segment deleted.
        let (_, script) = wal_scripts().swap_remove(2);
        let script = [script, vec![0xff]].concat();
        for (name, damage) in [
            ("damage-flip", vec![0x20, 0, 40, 0]),
            ("damage-zero-sector", vec![0x01, 0xff, 0x00, 0x02]),
            ("damage-truncate", vec![0x02, 0xff, 0x10, 0x01]),
            ("damage-delete-oldest", vec![0x03, 0, 0, 0]),
        ] {
            v.push(("wal_replay", name, [vec![1], script.clone(), damage].concat()));
        }
        v.push(("wal_replay", "empty-segment", vec![0]));
        v.push(("wal_replay", "huge-record-length", [vec![0], b"wrwal\0v2".to_vec(), vec![0xff; 56]].concat()));
        v
    }

    fn snapshot_file() -> Vec<Seed> {
        use redb::{Database, ReadableDatabase};
        use wasmraft_storage::snapshot;
        use wasmraft_storage::tables::{ALARMS, AUTH, DEPLOYMENTS, GUEST_KV, MEMBERS, META, META_APPLIED_INDEX};
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database");
        let txn = db.begin_write().expect("write txn");
        {
            let mut kv = txn.open_table(GUEST_KV).expect("table");
            kv.insert(b"k1".as_slice(), b"v1".as_slice()).expect("insert");
            kv.insert(b"\x00\xff".as_slice(), [7u8; 600].as_slice()).expect("insert");
            txn.open_table(MEMBERS).expect("table").insert(1, b"member one".as_slice()).expect("insert");
            txn.open_table(DEPLOYMENTS).expect("table").insert(5, b"deployment".as_slice()).expect("insert");
            txn.open_table(ALARMS).expect("table").insert(b"nospace".as_slice(), b"".as_slice()).expect("insert");
            txn.open_table(AUTH).expect("table").insert(b"enabled".as_slice(), b"\x01".as_slice()).expect("insert");
            txn.open_table(META)
                .expect("table")
                .insert(META_APPLIED_INDEX, 42u64.to_be_bytes().as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
        let path = dir.path().join("s.snap");
        snapshot::write(&db.begin_read().expect("read txn"), &path).expect("write snapshot");
        let file = std::fs::read(&path).expect("read snapshot");
        let unpadded = {
            // A file from before the padding: the records, the end mark, the digest.
            let end = file.iter().rposition(|&b| b == 0xff).expect("end mark") + 1;
            let body = &file[..end];
            let mut f = body.to_vec();
            f.extend_from_slice(&[0u8; 32]);
            f
        };
        vec![
            ("snapshot_file", "real", [vec![0], file.clone()].concat()),
            ("snapshot_file", "real-redigested", [vec![1], file.clone()].concat()),
            ("snapshot_file", "unpadded-redigested", [vec![1], unpadded].concat()),
            ("snapshot_file", "magic-only", [vec![1], b"WRSNAP01".to_vec(), vec![0xff], vec![0; 32]].concat()),
            ("snapshot_file", "huge-field", [vec![1], b"WRSNAP01\x00\xff\xff\xff\xff".to_vec(), vec![0; 32]].concat()),
            ("snapshot_file", "state-db-garbage", [vec![2], b"redb".to_vec(), vec![0x5a; 600]].concat()),
        ]
    }

    #[cfg(feature = "host")]
    fn guest_load() -> Vec<Seed> {
        fn leb(mut n: usize, out: &mut Vec<u8>) {
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(b);
                    return;
                }
                out.push(b | 0x80);
            }
        }
        fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
            out.push(id);
            leb(body.len(), out);
            out.extend_from_slice(body);
        }
        // A component of one core module with one function of type [] -> [], `body`.
        fn component(body: &[u8]) -> Vec<u8> {
            let mut m = b"\0asm\x01\0\0\0".to_vec();
            section(&mut m, 1, &[0x01, 0x60, 0x00, 0x00]);
            section(&mut m, 3, &[0x01, 0x00]);
            let mut code = vec![0x01];
            leb(body.len(), &mut code);
            code.extend_from_slice(body);
            section(&mut m, 10, &code);
            let mut c = b"\0asm\x0d\0\x01\0".to_vec();
            section(&mut c, 1, &m);
            c
        }
        let mut deep = vec![0x00];
        deep.extend([0x02u8, 0x40].repeat(5001));
        deep.extend(vec![0x0b; 5002]);
        let locals = vec![0x01, 0x91, 0x4e, 0x7e, 0x0b]; // 10,001 i64 locals
        vec![
            ("guest_load", "hostile", vec![1]),
            ("guest_load", "hostile-edited", vec![1, 0x00, 0x80, 0x00, 0x10, 0x40, 0xfe, 0x00, 0xc0, 0xfd]),
            ("guest_load", "trivial-component", [vec![0], component(&[0x00, 0x0b])].concat()),
            ("guest_load", "bomb-nesting", [vec![0], component(&deep)].concat()),
            ("guest_load", "bomb-locals", [vec![0], component(&locals)].concat()),
            ("guest_load", "core-module", [vec![0], b"\0asm\x01\0\0\0".to_vec()].concat()),
        ]
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    pub fn all() -> Vec<Seed> {
        let all = [
            raft_pb(),
            msg_codec(),
            msgappv2(),
            snapshot_body(),
            peer_http(),
            grpc_requests(),
            guest_abi(),
            wal_replay(),
            snapshot_file(),
        ]
        .concat();
        #[cfg(feature = "host")]
        let all = [all, client_h2(), guest_load()].concat();
        all
    }
}
