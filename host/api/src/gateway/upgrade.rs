//! Which client connections ask for a WebSocket, and serving those. tonic's server (HTTP/1.1 and
//! HTTP/2 on one port) never hands an HTTP/1.1 upgrade to its routes, so the listener looks at
//! the start of each connection first: one whose first request is a `GET` with
//! `Upgrade: websocket` is served by hyper's HTTP/1.1 server with upgrades, through the same
//! `--cors`/`--host-whitelist` layer, with the gateway's WebSocket routes (`websocket.rs`);
//! every other connection goes to the gRPC server with the bytes read so far replayed
//! ([`Replay`]). A gRPC connection is decided by its first read (HTTP/2's preface is not a
//! `GET`), so it waits for nothing more than it did.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;

use super::Gateway;
use crate::access::AccessLayer;
use crate::conn::ClientConn;

/// How much of a request head is read to find an `Upgrade` header; a longer head is passed on.
const MAX_HEAD: usize = 16 * 1024;

/// How long a request head that starts like a WebSocket upgrade may take to arrive before the
/// connection is passed on undecided (hyper's own header timeout then applies, as before).
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections decided and waiting for the gRPC server to take them.
const READY_QUEUE: usize = 64;

/// A connection with the bytes already read from it put back in front.
pub(crate) struct Replay<C> {
    prefix: Bytes,
    inner: C,
}

/// `conns` without those that ask for a WebSocket: those are served here, in their own tasks.
pub(crate) fn divert_websockets(
    mut conns: BoxStream<'static, ClientConn>,
    gw: Arc<Gateway>,
    access: AccessLayer,
) -> BoxStream<'static, Replay<ClientConn>> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = conns.next() => c,
                () = tx.closed() => return,
            };
            let Some(conn) = conn else { return };
            let (tx, gw, access) = (tx.clone(), gw.clone(), access.clone());
            tokio::spawn(async move {
                match sniff(conn).await {
                    Ok((conn, true)) => serve_websocket(conn, gw, access).await,
                    Ok((conn, false)) => {
                        let _ = tx.send(conn).await;
                    }
                    // Closed or failed before a request: there is nothing to serve.
                    Err(_) => {}
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed()
}

/// Reads enough of `conn` to tell whether its first request is a WebSocket upgrade.
async fn sniff(mut conn: ClientConn) -> io::Result<(Replay<ClientConn>, bool)> {
    let mut buf = BytesMut::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let upgrade = loop {
        let read = if buf.is_empty() {
            // A connection's first bytes are waited for as the gRPC server would wait for them.
            conn.read_buf(&mut buf).await?
        } else {
            match tokio::time::timeout_at(deadline, conn.read_buf(&mut buf)).await {
                Ok(read) => read?,
                Err(_) => break false,
            }
        };
        if read == 0 {
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            break false;
        }
        let n = buf.len().min(4);
        if buf[..n] != b"GET "[..n] {
            break false;
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break asks_websocket(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            break false;
        }
    };
    Ok((Replay { prefix: buf.freeze(), inner: conn }, upgrade))
}

/// Whether a request head has `Upgrade: websocket` (gorilla's `IsWebSocketUpgrade` also wants
/// `Connection: upgrade`, which the handshake itself checks).
fn asks_websocket(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        let line = String::from_utf8_lossy(line);
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("upgrade") && value.trim().eq_ignore_ascii_case("websocket")
        })
    })
}

async fn serve_websocket(conn: Replay<ClientConn>, gw: Arc<Gateway>, access: AccessLayer) {
    let info = conn.connect_info();
    // The access layer (and the gRPC server's routes) speak tonic's body type.
    let router = tower::ServiceExt::<axum::extract::Request>::map_response(
        super::websocket::router(gw),
        |r: axum::response::Response| r.map(tonic::body::Body::new),
    );
    let service = tower_layer::Layer::layer(&access, router);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        tower::ServiceExt::oneshot(service.clone(), req.map(axum::body::Body::new))
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "a WebSocket connection of the JSON gateway ended");
    }
}

impl<C: Connected> Connected for Replay<C> {
    type ConnectInfo = C::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Replay<C> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Replay<C> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::asks_websocket;

    #[test]
    fn finds_the_upgrade_header() {
        assert!(asks_websocket(b"GET /v3/watch HTTP/1.1\r\nHost: x\r\nUPGRADE: WebSocket\r\nConnection: Upgrade"));
        assert!(!asks_websocket(b"GET /health HTTP/1.1\r\nHost: x"));
        assert!(!asks_websocket(b"GET /upgrade: websocket HTTP/1.1\r\nHost: x"));
    }
}
