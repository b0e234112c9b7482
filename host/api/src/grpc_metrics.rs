//! go-grpc-prometheus's server metrics, which etcd serves and dashboards read
//! (`grpc_server_started_total`, `grpc_server_handled_total`, `grpc_server_msg_received_total`,
//! `grpc_server_msg_sent_total`), and etcd's client byte counters
//! (`etcd_network_client_grpc_{received,sent}_bytes_total`), as one tower layer around every
//! gRPC service of the client listener; with `--metrics=extensive`, also the handling-time
//! histogram `grpc_server_handling_seconds` (from the request's arrival to its status, the
//! whole stream for a streaming call, as go-grpc-prometheus measures it).
//!
//! A call is started when its request reaches the server and handled when its status is known:
//! from the response headers (a "trailers-only" error) or from the trailers that end the
//! response body; a response body dropped before its trailers (the client went away) is counted
//! `Canceled`, as grpc-go reports a handler whose context was cancelled. Bytes are the sizes of
//! the gRPC messages (the 5-byte length prefix of each is not counted), which is what etcd
//! counts (`proto.Size` of each request and response). Plain HTTP requests on the same port
//! (`/health`, `/metrics`, `/version`) pass through uncounted.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{HeaderMap, Request, Response};

use wasmraft_metrics::{Histogram, IntCounter, metrics};

/// The layer to put on the client API server.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GrpcMetricsLayer;

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub(super) struct GrpcMetrics<S> {
    inner: S,
}

impl<S, ResBody> Service<Request<Body>> for GrpcMetrics<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + Unpin + 'static,
{
    type Response = Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let call = is_grpc(req.headers()).then(|| Call::start(req.uri().path()));
        let req = match &call {
            Some(c) => {
                let received =
                    Tally { bytes: metrics().grpc_received_bytes.clone(), messages: c.series.received.clone() };
                req.map(|b| Body::new(Counted::new(b, received, None)))
            }
            None => req,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(match call {
                None => resp.map(Counted::plain),
                Some(call) => {
                    let sent = Tally { bytes: metrics().grpc_sent_bytes.clone(), messages: call.series.sent.clone() };
                    let call = match status_code(resp.headers()) {
                        Some(code) => {
                            call.handled(code);
                            None
                        }
                        None => Some(call),
                    };
                    resp.map(|b| Counted::new(b, sent, call))
                }
            })
        })
    }
}

pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(tonic::codegen::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// `grpc-status` as go-grpc-prometheus names it (`codes.Code.String()`).
fn status_code(headers: &HeaderMap) -> Option<&'static str> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(code_name(code))
}

fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The streaming kind of a method, as go-grpc-prometheus labels it. The client API's streaming
/// methods are few and fixed (etcd's and wasmraft's protos); everything else is unary.
pub(crate) fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => "server_stream",
        _ => "unary",
    }
}

/// One method's series, looked up once: `with_label_values` hashes the labels and takes a lock
/// per call, four times per request, which showed in read profiles.
struct MethodSeries {
    labels: [String; 3],
    started: IntCounter,
    received: IntCounter,
    sent: IntCounter,
    handled_ok: IntCounter,
    /// `--metrics=extensive` only.
    handling: Option<Histogram>,
}

/// Methods whose series are kept; past this (a client making up paths), series are looked up
/// per call, as before, rather than growing the cache without bound.
const MAX_CACHED_METHODS: usize = 256;

impl MethodSeries {
    fn new(path: &str) -> MethodSeries {
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("unknown", path));
        let labels = [grpc_type(service, method).to_string(), service.to_string(), method.to_string()];
        let m = metrics();
        let l = [labels[0].as_str(), labels[1].as_str(), labels[2].as_str()];
        MethodSeries {
            started: m.grpc_started.with_label_values(&l),
            received: m.grpc_msg_received.with_label_values(&l),
            sent: m.grpc_msg_sent.with_label_values(&l),
            handled_ok: m.grpc_handled.with_label_values(&[l[0], l[1], l[2], "OK"]),
            handling: m.grpc_handling().map(|h| h.with_label_values(&l)),
            labels,
        }
    }

    fn of(path: &str) -> Arc<MethodSeries> {
        static CACHE: OnceLock<RwLock<HashMap<String, Arc<MethodSeries>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(s) = cache.read().unwrap_or_else(|p| p.into_inner()).get(path) {
            return s.clone();
        }
        let series = Arc::new(MethodSeries::new(path));
        let mut cache = cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() < MAX_CACHED_METHODS {
            cache.entry(path.to_string()).or_insert_with(|| series.clone());
        }
        series
    }
}

/// A started call whose status is not known yet.
struct Call {
    series: Arc<MethodSeries>,
    started: Instant,
    done: bool,
}

impl Call {
    fn start(path: &str) -> Call {
        let series = MethodSeries::of(path);
        series.started.inc();
        Call { series, started: Instant::now(), done: false }
    }

    fn handled(mut self, code: &str) {
        self.count(code);
    }

    fn count(&mut self, code: &str) {
        if !self.done {
            self.done = true;
            if let Some(h) = &self.series.handling {
                h.observe(self.started.elapsed().as_secs_f64());
            }
            if code == "OK" {
                self.series.handled_ok.inc();
            } else {
                let [t, s, m] = &self.series.labels;
                metrics().grpc_handled.with_label_values(&[t, s, m, code]).inc();
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The response ended without a status: the client cancelled or went away.
        self.count("Canceled");
    }
}

/// Where a body's gRPC message bytes and messages are counted.
struct Tally {
    bytes: IntCounter,
    messages: IntCounter,
}

/// A body whose gRPC messages (and their bytes) are counted, and (for a response) whose
/// trailers complete the call.
pub(super) struct Counted<B> {
    inner: B,
    bytes: Option<(Tally, MessageSizes)>,
    call: Option<Call>,
}

impl<B> Counted<B> {
    fn new(inner: B, tally: Tally, call: Option<Call>) -> Self {
        Counted { inner, bytes: Some((tally, MessageSizes::default())), call }
    }

    fn plain(inner: B) -> Self {
        Counted { inner, bytes: None, call: None }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some((tally, sizes))) = (frame.data_ref(), this.bytes.as_mut()) {
                let (bytes, messages) = sizes.feed(data.chunk());
                tally.bytes.inc_by(bytes);
                if messages > 0 {
                    tally.messages.inc_by(messages);
                }
            }
            if let Some(trailers) = frame.trailers_ref()
                && let Some(code) = status_code(trailers)
                && let Some(mut call) = this.call.take()
            {
                call.count(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Follows the gRPC length-prefixed framing (a flag byte, a 4-byte big-endian length, the
/// message) across body chunks and counts messages and their bytes.
#[derive(Debug, Default)]
struct MessageSizes {
    /// Prefix bytes still to read of the current message (0: in its payload).
    prefix_left: u8,
    prefix: u32,
    /// Payload bytes of the current message still to come.
    payload_left: u64,
}

impl MessageSizes {
    const PREFIX: u8 = 5;

    /// Consumes one chunk; returns the message bytes in it and how many messages it completed.
    fn feed(&mut self, mut chunk: &[u8]) -> (u64, u64) {
        let (mut counted, mut completed) = (0, 0);
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(chunk.len() as u64);
                counted += n;
                self.payload_left -= n;
                chunk = &chunk[n as usize..];
                if self.payload_left == 0 {
                    completed += 1;
                }
                continue;
            }
            if self.prefix_left == 0 {
                self.prefix_left = Self::PREFIX;
                self.prefix = 0;
            }
            // The flag byte is read and ignored; the next four are the length.
            if self.prefix_left < Self::PREFIX {
                self.prefix = (self.prefix << 8) | u32::from(chunk[0]);
            }
            self.prefix_left -= 1;
            chunk = &chunk[1..];
            if self.prefix_left == 0 {
                self.payload_left = u64::from(self.prefix);
                if self.payload_left == 0 {
                    completed += 1;
                }
            }
        }
        (counted, completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            out.push(0);
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    #[test]
    fn message_bytes_across_any_chunking() {
        let body = framed(&[b"abcdef", b"", &[7u8; 300], b"xy"]);
        for chunk in [1, 2, 3, 5, 7, 64, body.len()] {
            let mut sizes = MessageSizes::default();
            let (bytes, messages) =
                body.chunks(chunk).map(|c| sizes.feed(c)).fold((0, 0), |(b, m), (cb, cm)| (b + cb, m + cm));
            assert_eq!((bytes, messages), (308, 4), "chunks of {chunk}");
        }
    }

    #[test]
    fn types_and_codes_as_go_grpc_prometheus_names_them() {
        assert_eq!(grpc_type("etcdserverpb.Watch", "Watch"), "bidi_stream");
        assert_eq!(grpc_type("etcdserverpb.Maintenance", "Snapshot"), "server_stream");
        assert_eq!(grpc_type("etcdserverpb.KV", "Put"), "unary");
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(1), "Canceled");
        assert_eq!(code_name(16), "Unauthenticated");
        let mut h = HeaderMap::new();
        h.insert("grpc-status", "9".parse().unwrap());
        assert_eq!(status_code(&h), Some("FailedPrecondition"));
    }
}
