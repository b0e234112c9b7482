//! Streaming calls through the gateway, as grpc-gateway v1 forwards them over HTTP/1.1 chunked
//! encoding (or HTTP/2 data frames): each response is `{"result":…}` and a newline, written as
//! its own chunk the moment the service yields it (APISIX, for one, decodes one object per
//! chunk); an error ends the stream as one `{"error":…}` object. The HTTP status waits for the
//! first message: an error before any is answered with its code's status, as grpc-gateway does.
//!
//! Client-streaming calls (Watch, LeaseKeepAlive) take a body of JSON values, each passed to
//! the service as it arrives; the body's end half-closes the gRPC stream. A body whose first
//! value does not decode is refused (500, Unknown, grpc-gateway's answer); a later bad value
//! ends the sending side, as it does there.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut as _, Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Gateway, auth, body, codec, errors, unary};

/// How many decoded requests wait for the service to take them.
const INBOUND_BUFFER: usize = 16;

/// A server-streaming call (Snapshot, Observe): one request message, a stream of responses.
pub(super) async fn server<Req, Resp, S, F, Fut>(gw: &Gateway, req: Request, call: F) -> Response
where
    Req: DeserializeOwned + Default + prost::Message,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, tonic::Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, tonic::Status>>,
{
    let (parts, body) = req.into_parts();
    let message = match unary::decode::<Req>(gw, body).await {
        Ok(m) => m,
        Err(status) => return errors::unary(&status),
    };
    forward(call(auth::grpc_request(&parts, message)).await.map(tonic::Response::into_inner)).await
}

/// A client- and server-streaming call (Watch, LeaseKeepAlive).
pub(super) async fn bidi<Req, Resp, S, F, Fut>(gw: &Gateway, req: Request, call: F) -> Response
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, tonic::Status>> + Send + 'static,
    F: FnOnce(tonic::Request<tonic::Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, tonic::Status>>,
{
    let (parts, mut body) = req.into_parts();
    let mut values = codec::Values::default();
    // grpc-gateway decodes the first message before it opens the stream.
    let first = match body::read_value::<Req>(&gw.limits(), &mut body, &mut values).await {
        Ok(first) => first,
        Err(status) => return errors::unary(&tonic::Status::unknown(status.message())),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(INBOUND_BUFFER);
    if let Some(first) = first {
        // The channel is new and empty: this cannot wait.
        let _ = tx.try_send(grpc_frame(&first));
        let limits = gw.limits();
        tokio::spawn(async move {
            while let Ok(Some(next)) = body::read_value::<Req>(&limits, &mut body, &mut values).await {
                if tx.send(grpc_frame(&next)).await.is_err() {
                    return;
                }
            }
        });
    }
    let inbound = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let streaming =
        tonic::Streaming::new_request(tonic_prost::ProstDecoder::<Req>::default(), inbound, None, Some(gw.max_message));
    forward(call(auth::grpc_request(&parts, streaming)).await.map(tonic::Response::into_inner)).await
}

/// A message in gRPC's length-prefixed framing, for `tonic::Streaming` to decode.
fn grpc_frame<M: prost::Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    // Within the receive limit, checked when decoded, so it fits in a u32.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut buf);
    buf.freeze()
}

/// The HTTP answer of a started (or refused) stream; see the module doc.
async fn forward<Resp, S>(stream: Result<S, tonic::Status>) -> Response
where
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, tonic::Status>> + Send + 'static,
{
    let mut stream = match stream {
        Ok(s) => Box::pin(s),
        Err(status) => return error_response(&status),
    };
    let first = match stream.next().await {
        None => return (axum::http::StatusCode::OK, codec::ok_headers()).into_response(),
        Some(Err(status)) => return error_response(&status),
        Some(Ok(first)) => first,
    };
    let chunks = futures::stream::once(async move { Ok(first) }).chain(stream);
    // Each item is one chunk; the first error is the last chunk.
    let body = futures::stream::unfold((Box::pin(chunks), false), |(mut chunks, done)| async move {
        if done {
            return None;
        }
        let item = chunks.next().await?;
        let (bytes, done) = match item.and_then(|m| codec::encode_chunk(&m)) {
            Ok(bytes) => (Bytes::from(bytes), false),
            Err(status) => (errors::stream_chunk(&status), true),
        };
        Some((Ok::<_, Infallible>(bytes), (chunks, done)))
    });
    (codec::ok_headers(), Body::from_stream(body)).into_response()
}

/// A stream that failed before its first message: the code's status, the error object alone
/// (still chunked, as grpc-gateway had already chosen that encoding).
fn error_response(status: &tonic::Status) -> Response {
    let chunk = errors::stream_chunk(status);
    (
        errors::http_status(status.code()),
        [(header::CONTENT_TYPE, codec::CONTENT_TYPE)],
        Body::from_stream(futures::stream::once(async move { Ok::<_, Infallible>(chunk) })),
    )
        .into_response()
}
