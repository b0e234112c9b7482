//! # wasmraft-transport
//!
//! etcd 3.4's peer transport (rafthttp), rebuilt on hyper 1 and tokio: the pipeline, stream and
//! snapshot roles, their codecs, headers and status codes, byte-compatible with etcd 3.4.23.
//! One file per role, as etcd has them:
//!
//! | file | role |
//! |---|---|
//! | `transport.rs` | [`Transport`]: the host-facing API, serving the peer port |
//! | `http.rs` | the peer port's router and handlers: routes, header checks, etcd's status codes and bodies |
//! | `shared.rs` | the peer set and the remotes, which the API changes and the handlers read |
//! | `peer.rs` | one member: picks a channel per message, bounded queues, receive queues |
//! | `stream.rs` | stream writer / reader (`/raft/stream/{msgapp,message}/<id>`), link heartbeats |
//! | `pipeline.rs` | `POST /raft`, four workers |
//! | `snapshot_sender.rs` | `POST /raft/snapshot` with streamed state data |
//! | `msg_codec.rs`, `msgappv2_codec.rs` | the two stream framings |
//! | `pb.rs` | the raft protobuf, hand-written: etcd's exact bytes, and a decoder safe on hostile input |
//! | `members.rs` | the peer port's `GET /members` and its client, for joining members |
//! | `hashkv.rs` | the peer port's `GET /members/hashkv` and its client, for the corruption checks |
//! | `dial.rs` | dialing http and https peer URLs (TLS configured by the host) |
//! | `socket.rs` | TCP and Unix sockets behind one type (etcd's `unix://` and `unixs://` URLs) |
//! | `cork.rs` | write coalescing for HTTP/2 connections (the host's client API, the CLI's dials) |
//! | `listener_tls.rs`, `san.rs` | TLS on https peer listeners; the client certificate's SAN check |
//! | `status.rs`, `urlpick.rs` | peer status / active-since, URL picking |
//! | `probing.rs` | the peer prober (`GET /raft/probing`): RTT, health, clock drift warnings |
//! | `fault.rs` | tests only: partitions cut in the transport, switched on the peer URL |
//! | `ctx.rs` | what every role's tasks share: configuration, the host's raft, the HTTP client, faults |
//! | `util.rs` | what both ends share (`util.go`): routes, ids, Go's error bodies, version headers, POST checks |
//! | `host.rs` | the seam to the host: [`Raft`] and the values that cross it |
//! | `config.rs`, `error.rs` | [`TransportConfig`], [`TransportError`] |
//! | `body.rs` | HTTP body plumbing (bounded channels, timed reads) |
//!
//! Modules depend only downward, from the API to the leaves (no module reaches one above it):
//!
//! - `transport` (the API) → `http` (the router) → `shared` (the peer set) → `peer`;
//! - `peer` → the roles `pipeline`, `stream`, `snapshot_sender`, `probing` (and `members` and
//!   `hashkv`, whose handlers only the router calls);
//! - the roles → `ctx` → `fault` → `util` → `config`;
//! - below them: `dial` → `socket`, `host`, `urlpick`, `status`, `listener_tls`, the codecs
//!   (`msgappv2_codec` → `msg_codec` → `pb`), `error`, `body`, `cork`, `san`.
//!
//! Peer bytes never reach protobuf 2's parser (RUSTSEC-2024-0437): see `pb.rs`.

pub mod body;
mod config;
pub mod cork;
mod ctx;
pub mod dial;
mod error;
pub mod fault;
pub mod hashkv;
mod host;
pub mod http;
mod listener_tls;
pub mod members;
pub mod msg_codec;
pub mod msgappv2_codec;
pub mod pb;
mod peer;
mod pipeline;
pub mod probing;
mod san;
mod shared;
mod snapshot_sender;
pub mod socket;
mod status;
pub mod stream;
mod transport;
mod urlpick;
mod util;

pub use config::TransportConfig;
pub use error::TransportError;
pub use host::{
    CriticalError, HashKv, HashKvFuture, OutgoingSnapshot, PeerHashKv, ProcessError, PromoteFuture, Raft, SnapshotData,
};
pub use listener_tls::{CertRefused, PeerListenerTls, log_rejected_handshake};
pub use peer::Picked;
pub use probing::ProbeStatus;
pub use raft::SnapshotStatus;
pub use transport::{PeerTraffic, Transport};
