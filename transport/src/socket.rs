//! Stream sockets of both families etcd listens on and dials: TCP for `http://` and `https://`
//! URLs, Unix domain sockets for `unix://` and `unixs://` ones (etcd's `transport.NewListener`
//! and its `unixTransport`). One type for each side, so the peer port, the client port and the
//! dialer do not care which family a URL names.
//!
//! Where the socket file is: etcd takes a unix URL's host and port as a path, relative to the
//! working directory (`unix://etcd.unix:1` is the file `etcd.unix:1`), because its URL checks
//! want the `host:port` form for every scheme; [`unix_socket_path`] does the same.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Whether a URL scheme names a Unix domain socket (`unix`, or `unixs` with TLS).
pub fn is_unix_scheme(scheme: &str) -> bool {
    scheme == "unix" || scheme == "unixs"
}

/// Whether a URL scheme means TLS (`https`, or `unixs` over a Unix socket).
pub fn is_tls_scheme(scheme: &str) -> bool {
    scheme == "https" || scheme == "unixs"
}

/// The socket file of a unix URL's authority (`host:port`, or `host`), as etcd names it.
pub fn unix_socket_path(authority: &str) -> PathBuf {
    PathBuf::from(authority)
}

/// One connected socket.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    /// The remote IP address and port (None for a Unix socket, whose peers have none).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Socket::Tcp(s) => s.peer_addr().ok(),
            Socket::Unix(_) => None,
        }
    }

    /// The peer's address as etcd logs it: `ip:port`, or `@` for a Unix socket (Go's
    /// `UnixAddr.String()` of an unnamed peer is empty; `@` is what Linux shows).
    pub fn peer_name(&self) -> String {
        match self {
            Socket::Tcp(s) => s.peer_addr().map_or_else(|e| format!("<{e}>"), |a| a.to_string()),
            Socket::Unix(_) => "@".to_string(),
        }
    }

    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Socket::Tcp(s) => Some(s),
            Socket::Unix(_) => None,
        }
    }
}

/// A bound listener of either family.
pub enum Listener {
    Tcp(TcpListener),
    Unix { listener: UnixListener, path: PathBuf },
}

impl Listener {
    /// Binds a Unix socket at `path`, first removing a socket file left by an earlier run
    /// (etcd's `NewUnixListener` does the same).
    pub fn bind_unix(path: PathBuf) -> io::Result<Listener> {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        Ok(Listener::Unix { listener, path })
    }

    pub async fn accept(&self) -> io::Result<Socket> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Socket::Tcp(s)),
            Listener::Unix { listener, .. } => listener.accept().await.map(|(s, _)| Socket::Unix(s)),
        }
    }

    /// The address as logs show it: `ip:port`, or the socket file's path.
    pub fn local_name(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or_else(|e| format!("<{e}>"), |a| a.to_string()),
            Listener::Unix { path, .. } => path.display().to_string(),
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Listener::Unix { .. })
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Tcp(s) => s.is_write_vectored(),
            Socket::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
