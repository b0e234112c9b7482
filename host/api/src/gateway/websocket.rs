//! The gateway's routes over WebSocket, as etcd 3.4 serves them through tmc/grpc-websocket-proxy
//! (`wsproxy`) in front of its gateway: an upgrade request to a `/v3/` path becomes a POST to
//! that path whose body is the client's messages, each followed by a newline; every non-empty
//! line of the answer goes back as one text message (a stream's `{"result":…}` objects, or a
//! unary answer or error), and the connection closes when the answer ends. The token comes from the `Authorization` header, or, as wsproxy
//! takes it, from `Sec-WebSocket-Protocol: Bearer, <token>` (which etcd then sees as
//! "Bearer <token>"). Either side ending ends both: a client that goes away cancels its
//! watch.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Gateway, routes};
use crate::conn::ClientConnInfo;

/// How many client messages wait for the gateway to read them.
const INBOUND_BUFFER: usize = 16;

/// The router of a connection that asked for a WebSocket (see `upgrade.rs`).
pub(super) fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route("/v3/{*path}", axum::routing::any(upgrade))
        .route("/v3beta/{*path}", axum::routing::any(upgrade))
        .fallback(crate::http::fallback)
        .with_state(gw)
}

async fn upgrade(State(gw): State<Arc<Gateway>>, ws: WebSocketUpgrade, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let conn = parts.extensions.get::<ClientConnInfo>().cloned();
    let (uri, headers) = (parts.uri, parts.headers);
    ws.protocols(["Bearer"]).on_upgrade(move |socket| proxy(gw, uri, headers, conn, socket))
}

/// The headers the inner request carries: the token, and `Grpc-Metadata-*`.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if name == header::AUTHORIZATION || name.as_str().starts_with("grpc-metadata-") {
            out.append(name, value.clone());
        }
    }
    if let Some(token) = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|p| p.to_str().ok())
        .and_then(|p| p.split_once("Bearer,"))
        .and_then(|(_, t)| HeaderValue::try_from(format!("Bearer {}", t.trim())).ok())
    {
        out.insert(header::AUTHORIZATION, token);
    }
    out
}

async fn proxy(gw: Arc<Gateway>, uri: Uri, headers: HeaderMap, conn: Option<ClientConnInfo>, socket: WebSocket) {
    let (mut sink, mut source) = socket.split();
    let (tx, rx) = mpsc::channel::<Bytes>(INBOUND_BUFFER);
    let mut req = Request::new(Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    *req.headers_mut() = forwarded(&headers);
    if let Some(conn) = conn {
        req.extensions_mut().insert(conn);
    }

    let inbound = async move {
        while let Some(Ok(message)) = source.next().await {
            let mut payload = match message {
                Message::Text(t) => BytesMut::from(t.as_str()),
                Message::Binary(b) => BytesMut::from(&b[..]),
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            payload.extend_from_slice(b"\n");
            if tx.send(payload.freeze()).await.is_err() {
                return;
            }
        }
    };
    let outbound = async move {
        let mut body = routes::serve(gw, req).await.into_body();
        let mut pending = BytesMut::new();
        loop {
            let piece = match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Some(Err(_)) | None => break,
            };
            pending.extend_from_slice(&piece);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line = pending.split_to(end + 1);
                if send_line(&mut sink, &line[..end]).await.is_err() {
                    return;
                }
            }
        }
        // The answer's last line need not end with a newline (a unary answer does not). Then
        // the connection is closed without a close frame, as wsproxy's is.
        let _ = send_line(&mut sink, &pending).await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}

async fn send_line(sink: &mut futures::stream::SplitSink<WebSocket, Message>, line: &[u8]) -> Result<(), axum::Error> {
    if line.is_empty() {
        return Ok(());
    }
    sink.send(Message::Text(String::from_utf8_lossy(line).into_owned().into())).await
}
