//! etcd's JSON gateway (grpc-gateway, as etcd 3.4 mounts it in `embed/serve.go`): etcd's v3 API
//! as JSON over HTTP POST at `/v3/…` (and `/v3beta/…`), on every client URL next to gRPC,
//! HTTP/1.1 or h2c, and over WebSocket, behind the same TLS. Patroni, APISIX, OpenStack's etcd3gw and curl scripts
//! speak only this.
//!
//! Why in-process: etcd's gateway dials its own gRPC port; here each request calls the gRPC
//! service's implementation directly through its tonic trait, with the metadata and connection
//! facts a gRPC call would carry (`auth.rs`). So auth, permissions, validation, quotas and error
//! texts are exactly the gRPC path's, with no second connection or protobuf round trip.
//!
//! Why pbjson: grpc-gateway's JSON is the protobuf JSON mapping with etcd's options (proto
//! field names, defaults omitted, 64-bit integers as strings, enums as names, bytes as base64),
//! which pbjson generates for prost's types (wasmraft-proto's `json` feature); `codec.rs` adds
//! Go's decoding rules.
//!
//! One file per concept: `routes.rs` (paths, methods, 404/405), `codec.rs` (JSON), `body.rs`
//! (bounded reads), `auth.rs` (what a request carries into the service), `unary.rs`,
//! `stream.rs` (chunked streams), `websocket.rs` (the same routes over WebSocket, as etcd's
//! wsproxy serves them), `upgrade.rs` (which connections ask for a WebSocket, and serving
//! them), `errors.rs` (grpc-gateway's error bodies and statuses).

mod auth;
mod body;
mod codec;
mod errors;
mod routes;
mod stream;
mod unary;
mod upgrade;
mod websocket;

use std::sync::Arc;

pub(crate) use routes::router;
pub(crate) use upgrade::divert_websockets;

use crate::auth::AuthService;
use crate::cluster::ClusterService;
use crate::election::ElectionService;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::lock::LockService;
use crate::maintenance::MaintenanceService;
use crate::watch::WatchService;

/// The services the gateway calls (the gRPC servers' own instances) and the receive limit.
pub(crate) struct Gateway {
    pub(crate) kv: Arc<KvService>,
    pub(crate) lease: Arc<LeaseService>,
    pub(crate) cluster: Arc<ClusterService>,
    pub(crate) maintenance: Arc<MaintenanceService>,
    pub(crate) auth: Arc<AuthService>,
    pub(crate) watch: Arc<WatchService>,
    pub(crate) lock: Arc<LockService>,
    pub(crate) election: Arc<ElectionService>,
    /// The gRPC server's receive limit (--max-request-bytes plus etcd's gRPC overhead): a
    /// decoded request larger than this is refused as the gRPC server would refuse it.
    pub(crate) max_message: usize,
}

impl Gateway {
    /// How much JSON the gateway reads for one message: base64 makes bytes a third larger,
    /// and JSON's names and quotes add some, so twice the protobuf limit bounds every request
    /// the gRPC server would take, while still bounding memory.
    fn limits(&self) -> body::Limits {
        body::Limits { max_message: self.max_message, json: self.max_message.saturating_mul(2) }
    }
}
