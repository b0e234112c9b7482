//! Dialing members: plain TCP for `http://` URLs, TLS over TCP for `https://` ones, as etcd's
//! peer round trippers do (`NewTimeoutTransport` with `PeerTLSInfo.ClientConfig()`); and, as
//! etcd's `unixTransport` does, a Unix socket for `unix://` URLs (TLS over it for `unixs://`),
//! the socket file named by the URL's authority (see `socket.rs`). One
//! connector for every client this crate makes — pipeline, streams, snapshots, the prober,
//! `/members` and promotions — so they all dial the same way.
//!
//! The TLS configuration comes ready from the host, which knows the certificate files, the
//! trusted CAs and whether verification is skipped (etcd skips it for auto-TLS certificates);
//! this crate only uses it. The server name checked is the URL's host, as Go's `http.Transport`
//! takes it: an IP address against the certificate's IP SANs, a name against its DNS SANs.
//!
//! The connector is a plain `tower` service over URIs, so hyper's pooled client and tonic's
//! channels (the host forwards lease calls to https client URLs with it) can both use it.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::body::ChannelBody;
use crate::cork::Corked;
use crate::socket::{Socket, is_tls_scheme, is_unix_scheme, unix_socket_path};

/// Go's `http.Transport.TLSHandshakeTimeout` in etcd's transports.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn StdError + Send + Sync>;

/// How a member dials TLS: other members' https peer URLs, and (to forward lease calls to
/// the leader) https client URLs. None: not set up (a member assembled in a test harness without
/// a transport), and https URLs are not dialed. The host builds both configurations (files,
/// trusted CAs, whether to verify); here so that the member core can hold them without
/// depending on the client crate.
#[derive(Debug, Clone, Default)]
pub struct DialTls {
    pub peers: Option<Arc<ClientConfig>>,
    pub clients: Option<Arc<ClientConfig>>,
}

/// Dials `http://` and `https://` URIs. Cheap to clone.
#[derive(Clone)]
pub struct Dialer {
    tcp: HttpConnector,
    connect_timeout: Duration,
    tls: Option<TlsConnector>,
    coalesce: bool,
}

impl Dialer {
    /// A dialer giving up on a TCP connect after `connect_timeout`. Without `tls`, https URLs
    /// fail to dial (no TLS configured); with it, they are dialed with that configuration.
    pub fn new(tls: Option<Arc<ClientConfig>>, connect_timeout: Duration) -> Dialer {
        let mut tcp = HttpConnector::new();
        // The scheme is this connector's business: https is allowed and wrapped below.
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_nodelay(true);
        Dialer { tcp, connect_timeout, tls: tls.map(TlsConnector::from), coalesce: false }
    }

    /// Coalesces each connection's socket writes ([`Corked`]): for a client with many
    /// requests in flight on one HTTP/2 connection (the CLI, `wasmraft bench`). The peer
    /// transport does not ask for it: it was not measured there.
    pub fn coalescing(mut self) -> Dialer {
        self.coalesce = true;
        self
    }

    /// TCP keep-alive on dialed connections (etcd's transports use 30 s).
    pub fn with_keepalive(mut self, interval: Option<Duration>) -> Dialer {
        self.tcp.set_keepalive(interval);
        self
    }

    /// A pooled HTTP/1 client over this dialer.
    pub fn client(self) -> Client<Dialer, ChannelBody> {
        Client::builder(TokioExecutor::new()).build(self)
    }
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<DialedConn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let scheme = uri.scheme_str().unwrap_or_default().to_string();
        let tls_wanted = is_tls_scheme(&scheme);
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let tls = self.tls.clone();
        let coalesce = self.coalesce;
        let connecting: Pin<Box<dyn Future<Output = Result<Socket, BoxError>> + Send>> = if is_unix_scheme(&scheme) {
            let path = unix_socket_path(uri.authority().map(|a| a.as_str()).unwrap_or_default());
            let timeout = self.connect_timeout;
            Box::pin(async move {
                match tokio::time::timeout(timeout, UnixStream::connect(&path)).await {
                    Ok(Ok(s)) => Ok(Socket::Unix(s)),
                    Ok(Err(e)) => Err(format!("dial unix {}: {e}", path.display()).into()),
                    Err(_) => Err(format!("dial unix {}: i/o timeout", path.display()).into()),
                }
            })
        } else {
            let connecting = self.tcp.call(uri);
            Box::pin(async move { Ok(Socket::Tcp(connecting.await?.into_inner())) })
        };
        Box::pin(async move {
            let socket = connecting.await?;
            let socket = if coalesce { Corked::new(socket) } else { Corked::passthrough(socket) };
            if !tls_wanted {
                return Ok(TokioIo::new(DialedConn::Plain(socket)));
            }
            let Some(tls) = tls else {
                return Err(format!("cannot dial {scheme}://{host}: no TLS configuration for this connection").into());
            };
            let name = ServerName::try_from(host.clone()).map_err(|e| format!("invalid server name {host:?}: {e}"))?;
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.connect(name, socket)).await {
                Ok(Ok(stream)) => Ok(TokioIo::new(DialedConn::Tls(Box::new(stream)))),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err("net/http: TLS handshake timeout".into()),
            }
        })
    }
}

/// A dialed connection, plain or TLS.
pub enum DialedConn {
    Plain(Corked<Socket>),
    Tls(Box<TlsStream<Corked<Socket>>>),
}

/// What hyper's pool learns of a socket: TCP's details, nothing for a Unix socket.
fn connected(socket: &Socket) -> Connected {
    match socket {
        Socket::Tcp(tcp) => tcp.connected(),
        Socket::Unix(_) => Connected::new(),
    }
}

impl Connection for DialedConn {
    fn connected(&self) -> Connected {
        match self {
            DialedConn::Plain(socket) => connected(socket.get_ref()),
            DialedConn::Tls(tls) => {
                let (socket, session) = tls.get_ref();
                let c = connected(socket.get_ref());
                if session.alpn_protocol() == Some(b"h2") { c.negotiated_h2() } else { c }
            }
        }
    }
}

impl AsyncRead for DialedConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DialedConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            DialedConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DialedConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DialedConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            DialedConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DialedConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            DialedConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DialedConn::Plain(s) => s.is_write_vectored(),
            DialedConn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DialedConn::Plain(s) => Pin::new(s).poll_flush(cx),
            DialedConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DialedConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            DialedConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
