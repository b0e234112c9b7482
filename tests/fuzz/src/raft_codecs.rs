//! The peer codecs (transport crate): the raft protobuf (`pb.rs`), the message stream framing
//! (`msg_codec.rs`), msgappv2 (`msgappv2_codec.rs`), and the snapshot upload body (one message
//! frame, then the state data, as `POST /raft/snapshot` reads it in `http.rs`).
//!
//! Every decode that succeeds is re-encoded and decoded again: the result must be the same
//! message (the encoders are etcd's layout, so this also checks that they accept whatever the
//! decoders produce).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use raft::eraftpb::{Message, MessageType};
use wasmraft_transport::body::BodyReader;
use wasmraft_transport::msg_codec::{self, CodecError};
use wasmraft_transport::msgappv2_codec::{self, MsgAppV2Decoder, MsgAppV2Encoder};
use wasmraft_transport::pb;

use crate::{Chunked, split_shape};

/// The size limit the codec targets decode with: small, so the fuzzer reaches the
/// "limit exceeded" paths with short inputs (the transport's real one is 512 MB).
pub const LIMIT: u64 = 64 << 10;

/// The stream the msgappv2 target decodes: from member 1 (remote) to member 2 (local).
const LOCAL: u64 = 2;
const REMOTE: u64 = 1;

/// Polls a future that must never wait: the bodies here never return `Pending`, so a codec
/// that does is stuck (it would hang a peer connection until the read timeout).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a codec waited on a body that had everything ready"),
    }
}

fn reader(data: &[u8], shape: u8) -> BodyReader<Chunked> {
    BodyReader::new(Chunked::new(data, shape), None)
}

/// `pb.rs`: `decode_message` and `decode_entry` on the raw input; round trips where they
/// succeed. The decoder's depth is fixed by the schema, so nested groups or messages in the
/// input must come back as errors, never as a stack overflow (RUSTSEC-2024-0437 is why this
/// decoder exists).
pub fn raft_pb(data: &[u8]) {
    if let Ok(m) = pb::decode_message(data) {
        check_message_round_trip(&m);
    }
    if let Ok(e) = pb::decode_entry(data) {
        let mut b = Vec::new();
        pb::encode_entry(&e, &mut b);
        let back = pb::decode_entry(&b);
        assert_eq!(back.as_ref(), Ok(&e), "entry round trip");
        let mut again = Vec::new();
        pb::encode_entry(&e, &mut again);
        assert_eq!(b, again, "entry encoding is deterministic");
    }
}

fn check_message_round_trip(m: &Message) {
    let b = pb::encode_message(m);
    let back = pb::decode_message(&b);
    assert_eq!(back.as_ref(), Ok(m), "message round trip");
    // Canonical: what we encode from a decoded message encodes the same once more.
    if let Ok(back) = back {
        assert_eq!(pb::encode_message(&back), b, "message re-encoding is stable");
    }
}

/// `msg_codec.rs`: frames decoded one after another from a body cut into fuzz-chosen chunks,
/// each frame's message re-framed and decoded again.
pub fn msg_codec(data: &[u8]) {
    let Some((shape, body)) = split_shape(data) else { return };
    let mut r = reader(body, shape);
    // Every successful frame consumes at least its 8 length bytes, so this bounds the loop.
    for _ in 0..=body.len() / 8 {
        let m = match ready(msg_codec::decode_frame(&mut r, LIMIT)) {
            Ok(m) => m,
            Err(CodecError::UnknownType(t)) => panic!("msg_codec has no type bytes, got {t}"),
            Err(_) => break,
        };
        check_message_round_trip(&m);
        let mut framed = Vec::new();
        msg_codec::encode_frame(&m, &mut framed);
        let mut again = reader(&framed, shape);
        let back = ready(msg_codec::decode_frame(&mut again, LIMIT));
        assert_eq!(back.ok().as_ref(), Some(&m), "frame round trip");
        assert!(ready(again.at_eof()).unwrap_or(false), "frame fully consumed");
    }
    assert!(r.bytes_read() <= body.len() as u64);
}

/// What a msgappv2 stream legitimately carries: link heartbeats, and MsgApp from the remote to
/// us. Other messages can be *decoded* (a full-message frame holds any message), but the
/// encoder is never given them (peer.rs picks the msgapp stream for MsgApp only), and its
/// compact form would not preserve their type or addresses.
fn stream_message(m: &Message) -> bool {
    msgappv2_codec::is_link_heartbeat(m) || (m.msg_type == MessageType::MsgAppend && m.from == REMOTE && m.to == LOCAL)
}

/// `msgappv2_codec.rs`: decodes a stream (its state carried from frame to frame), then encodes
/// the stream messages among the results with a fresh encoder and decodes that with a fresh
/// decoder: the same messages must come out, in order, and nothing else.
pub fn msgappv2(data: &[u8]) {
    let Some((shape, body)) = split_shape(data) else { return };
    let mut r = reader(body, shape);
    let mut dec = MsgAppV2Decoder::new(LOCAL, REMOTE, LIMIT);
    let mut msgs = Vec::new();
    // Every frame consumes at least its type byte.
    for _ in 0..=body.len() {
        match ready(dec.decode(&mut r)) {
            Ok(m) => msgs.push(m),
            Err(_) => break,
        }
    }
    let msgs: Vec<Message> = msgs.into_iter().filter(stream_message).collect();
    let mut enc = MsgAppV2Encoder::new();
    let mut out = Vec::new();
    for m in &msgs {
        enc.encode(m, &mut out);
    }
    let mut r = reader(&out, shape);
    let mut dec = MsgAppV2Decoder::new(LOCAL, REMOTE, u64::MAX);
    for (i, want) in msgs.iter().enumerate() {
        let got = ready(dec.decode(&mut r))
            .unwrap_or_else(|e| panic!("message {i} of our own encoding does not decode: {e}"));
        if msgappv2_codec::is_link_heartbeat(want) {
            assert!(msgappv2_codec::is_link_heartbeat(&got), "message {i}: heartbeat");
        } else {
            assert_eq!(&got, want, "message {i} round trip");
        }
    }
    assert!(ready(r.at_eof()).unwrap_or(false), "our encoding has no trailing bytes");
}

/// The snapshot upload body: one message frame (the MsgSnap) and then the state data, read as
/// `snapshot_inner` reads it. When the head decodes, the data the host would be handed must be
/// exactly the bytes after the frame, however the body was cut into chunks.
pub fn snapshot_body(data: &[u8]) {
    let Some((shape, body)) = split_shape(data) else { return };
    let mut r = reader(body, shape);
    let Ok(m) = ready(msg_codec::decode_frame(&mut r, LIMIT)) else { return };
    check_message_round_trip(&m);
    // The frame was 8 length bytes and the message; everything else is state data.
    let head: [u8; 8] = body[..8].try_into().expect("a decoded frame has its length");
    let head = 8 + u64::from_be_bytes(head) as usize;
    let mut data_bytes = Vec::new();
    while let Some(c) = ready(r.chunk()).expect("a chunked body never fails") {
        data_bytes.extend_from_slice(&c);
    }
    assert_eq!(data_bytes.as_slice(), &body[head..], "the state data after the frame");
}
