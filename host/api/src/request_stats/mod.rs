//! etcd's "request stats" debug line (v3rpc `newLogUnaryInterceptor`): at `--log-level=debug`
//! (or `--debug` with the capnslog logger) every unary gRPC call is logged once its handler has
//! answered, with the time it took, the client's address, the method, and for the KV calls the
//! request's operation count and size, the response's count and size, and the request in Go's
//! text form (values left out). Other calls carry -1 and no content, as in etcd.
//!
//! The KV handlers, which hold the decoded messages, log their own calls ([`logged`]); a tower
//! layer logs every other unary call. Below debug level nothing is measured and the layer passes
//! calls straight through.

mod text;

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::{BoxFuture, Either};
use prost::Message;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use wasmraft_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    TxnRequest, TxnResponse,
};

use crate::conn::ClientConnInfo;
use crate::grpc_metrics::{grpc_type, is_grpc};

/// Whether request stats are being logged (checked per call: cheap, a cached callsite interest).
fn enabled() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

/// The KV methods whose handlers log their own line; the layer logs every other unary call.
const KV_METHODS: [&str; 4] =
    ["/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Txn"];

/// A KV call being measured, with what is known of its request before the handler consumes it.
pub(crate) struct KvCall {
    started: Instant,
    method: &'static str,
    remote: Option<String>,
    request_count: i64,
    request_size: usize,
    content: String,
    /// A txn's count and size are those of the branch that ran: (success, failure).
    branches: Option<[(i64, usize); 2]>,
}

impl KvCall {
    /// None below debug level.
    fn start<R>(
        request: &tonic::Request<R>,
        method: &'static str,
        measure: impl FnOnce(&R) -> (i64, usize, String),
    ) -> Option<KvCall> {
        if !enabled() {
            return None;
        }
        let started = Instant::now();
        let (request_count, request_size, content) = measure(request.get_ref());
        Some(KvCall {
            started,
            method,
            remote: request.extensions().get::<ClientConnInfo>().map(|c| c.remote.clone()),
            request_count,
            request_size,
            content,
            branches: None,
        })
    }
}

pub(crate) fn range(r: &tonic::Request<RangeRequest>) -> Option<KvCall> {
    KvCall::start(r, KV_METHODS[0], |r| (0, r.encoded_len(), text::range(r)))
}

pub(crate) fn put(r: &tonic::Request<PutRequest>) -> Option<KvCall> {
    KvCall::start(r, KV_METHODS[1], |r| (1, r.encoded_len(), text::put(r)))
}

pub(crate) fn delete_range(r: &tonic::Request<DeleteRangeRequest>) -> Option<KvCall> {
    KvCall::start(r, KV_METHODS[2], |r| (0, r.encoded_len(), text::delete_range(r)))
}

pub(crate) fn txn(r: &tonic::Request<TxnRequest>) -> Option<KvCall> {
    let branch =
        |ops: &[RequestOp]| (i64::try_from(ops.len()).unwrap_or(i64::MAX), ops.iter().map(Message::encoded_len).sum());
    let mut branches = None;
    let call = KvCall::start(r, KV_METHODS[3], |r| {
        branches = Some([branch(&r.success), branch(&r.failure)]);
        (0, 0, text::txn(r))
    });
    call.map(|c| KvCall { branches, ..c })
}

/// What the line says of a KV response.
pub(crate) trait KvResponse: Message {
    fn count(&self) -> i64 {
        0
    }

    fn succeeded(&self) -> Option<bool> {
        None
    }
}

impl KvResponse for RangeResponse {
    fn count(&self) -> i64 {
        self.count
    }
}

impl KvResponse for PutResponse {}

impl KvResponse for DeleteRangeResponse {
    fn count(&self) -> i64 {
        self.deleted
    }
}

impl KvResponse for TxnResponse {
    fn succeeded(&self) -> Option<bool> {
        Some(self.succeeded)
    }
}

/// Runs a KV handler and logs its line. A failed call has no response to measure (0 and 0); a
/// failed txn not even its request, whose count and size depend on the branch that ran (etcd
/// logs 0 and no content then).
pub(crate) async fn logged<T: KvResponse>(
    call: Option<KvCall>,
    handler: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    let result = handler.await;
    if let Some(mut call) = call {
        let (response_count, response_size) = match &result {
            Ok(resp) => {
                let resp = resp.get_ref();
                if let (Some(succeeded), Some(branches)) = (resp.succeeded(), call.branches) {
                    (call.request_count, call.request_size) = branches[usize::from(!succeeded)];
                }
                (resp.count(), size(resp.encoded_len()))
            }
            Err(_) => {
                if call.branches.is_some() {
                    call.content.clear();
                }
                (0, 0)
            }
        };
        let stats = Stats {
            request_count: call.request_count,
            request_size: size(call.request_size),
            response_count,
            response_size,
        };
        log(call.started, call.method, call.remote.as_deref(), stats, &call.content);
    }
    result
}

fn size(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The counts and sizes of one line; -1 where etcd knows nothing of the messages.
struct Stats {
    request_count: i64,
    request_size: i64,
    response_count: i64,
    response_size: i64,
}

/// The layer to put on the client API server.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RequestStatsLayer;

impl<S> tower_layer::Layer<S> for RequestStatsLayer {
    type Service = RequestStats<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestStats { inner }
    }
}

#[derive(Debug, Clone)]
pub(super) struct RequestStats<S> {
    inner: S,
}

impl<S, ResBody> Service<Request<Body>> for RequestStats<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let path = req.uri().path();
        if !enabled() || !is_grpc(req.headers()) || !is_unary(path) || KV_METHODS.contains(&path) {
            return Either::Left(self.inner.call(req));
        }
        let started = Instant::now();
        let method = req.uri().path().to_string();
        let remote = req.extensions().get::<ClientConnInfo>().map(|c| c.remote.clone());
        let fut = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let resp = fut.await?;
            let unknown = Stats { request_count: -1, request_size: -1, response_count: -1, response_size: -1 };
            log(started, &method, remote.as_deref(), unknown, "");
            Ok(resp)
        }))
    }
}

fn is_unary(path: &str) -> bool {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", path));
    grpc_type(service, method) == "unary"
}

fn log(started: Instant, method: &str, remote: Option<&str>, stats: Stats, content: &str) {
    tracing::debug!(
        "time spent" = %wasmraft_proto::go::format_duration(started.elapsed()),
        remote = %remote.unwrap_or("No remote client info."),
        "response type" = %method,
        "request count" = stats.request_count,
        "request size" = stats.request_size,
        "response count" = stats.response_count,
        "response size" = stats.response_size,
        "request content" = %content,
        "request stats"
    );
}
