//! The client listener's connections: plain for http:// (and unix://) listen URLs, TLS for
//! https:// (and unixs://) ones, over TCP or a Unix socket, behind one type so a single gRPC
//! server serves them all (etcd serves each client URL with its own scheme).
//!
//! TLS handshakes run in their own tasks, not in the accept loop: a client that connects and
//! then sends nothing must not hold up the clients behind it. A handshake that fails is logged
//! as etcd logs it ("rejected connection from ...") and the connection dropped; one that does not
//! finish within [`HANDSHAKE_TIMEOUT`] is dropped too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use wasmraft_transport::cork::Corked;
use wasmraft_transport::socket::Socket;

/// How long a client has to complete the TLS handshake after connecting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// One accepted client connection. Its socket writes are coalesced ([`Corked`]): many
/// responses (or, under TLS, their records) leave in one write.
pub(super) enum ClientConn {
    Plain(Corked<Socket>),
    Tls(Box<TlsStream<Corked<Socket>>>),
}

/// The TLS connections made from `accepted` TCP connections. Ends when the server stops taking
/// connections (drops the stream) or the listener's stream ends.
pub(super) fn handshakes(
    mut accepted: BoxStream<'static, Socket>,
    acceptor: TlsAcceptor,
) -> BoxStream<'static, ClientConn> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                s = accepted.next() => s,
                () = tx.closed() => return,
            };
            let Some(stream) = stream else { return };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let remote = stream.peer_name();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(Corked::new(stream))).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(ClientConn::Tls(Box::new(tls))).await;
                    }
                    Ok(Err(e)) => wasmraft_transport::log_rejected_handshake(&remote, &e),
                    Err(_) => {
                        tracing::info!(
                            "embed: rejected connection from {remote:?} (error \"TLS handshake timeout\", ServerName \"\")"
                        );
                    }
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed()
}

/// What the API learns about a connection: whether it is TLS, and for TLS with a verified
/// client certificate, the certificate's common name (the user, with `--client-cert-auth` and
/// auth on: etcd's `AuthInfoFromTLS`); the client's address, for the debug log.
#[derive(Debug, Clone)]
pub struct ClientConnInfo {
    pub secure: bool,
    pub common_name: Option<String>,
    pub remote: String,
}

impl Connected for ClientConn {
    type ConnectInfo = ClientConnInfo;

    fn connect_info(&self) -> ClientConnInfo {
        match self {
            ClientConn::Plain(s) => {
                ClientConnInfo { secure: false, common_name: None, remote: s.get_ref().peer_name() }
            }
            ClientConn::Tls(s) => {
                let (_, session) = s.get_ref();
                // rustls only completes a handshake whose client certificate verified, so a
                // leaf here is a verified one.
                let common_name = session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| common_name(leaf.as_ref()));
                ClientConnInfo { secure: true, common_name, remote: s.get_ref().0.get_ref().peer_name() }
            }
        }
    }
}

/// The subject's CN of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

impl AsyncRead for ClientConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientConn::Plain(s) => s.is_write_vectored(),
            ClientConn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientConn::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
