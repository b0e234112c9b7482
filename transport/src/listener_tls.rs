//! TLS on a peer listener (etcd's `newTLSListener` for https peer URLs): each connection's
//! handshake runs in its own task, bounded by the read timeout as etcd's timeout listener bounds
//! it, then the connecting member's certificate SANs are checked against its address (see
//! `san.rs`) unless the host turned that off. A connection that fails either is logged as etcd
//! logs it ("rejected connection from ...") and closed.
//!
//! The rustls configuration comes ready from the host: the certificate (re-read at every
//! handshake), and whether a client certificate is required and which CAs verify it
//! (--peer-client-cert-auth, --peer-trusted-ca-file).

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::san::{self, go_quoted};
use crate::socket::Socket;

/// How a peer listener does TLS.
#[derive(Clone)]
pub struct PeerListenerTls {
    acceptor: TlsAcceptor,
    check_client_san: bool,
}

impl PeerListenerTls {
    /// `check_client_san`: etcd's default (true); false for
    /// --experimental-peer-skip-client-san-verification.
    pub fn new(config: Arc<ServerConfig>, check_client_san: bool) -> PeerListenerTls {
        PeerListenerTls { acceptor: TlsAcceptor::from(config), check_client_san }
    }

    /// The handshake and the SAN check; None (logged) when the connection is refused.
    pub(crate) async fn accept(&self, socket: Socket, timeout: Duration) -> Option<TlsStream<Socket>> {
        let remote = socket.peer_name();
        let remote_ip = socket.peer_addr().map(|a| a.ip());
        let tls = match tokio::time::timeout(timeout, self.acceptor.accept(socket)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                log_rejected_handshake(&remote, &e);
                return None;
            }
            Err(_) => {
                reject(&remote, "TLS handshake timeout", None);
                return None;
            }
        };
        if !self.check_client_san {
            return Some(tls);
        }
        let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| san::sans(c));
        if let Some(sans) = leaf {
            // A peer on a Unix socket has no address to hold the SANs against; etcd's check
            // fails there too (Go cannot split its empty remote address into host and port).
            let checked = match remote_ip {
                Some(ip) => san::check_cert_san(&sans, ip).await,
                None => Err(format!("address {remote}: missing port in address")),
            };
            if let Err(e) = checked {
                reject(&remote, &e, Some(&sans));
                return None;
            }
        }
        Some(tls)
    }
}

/// A certificate that verified but that one of etcd's further checks refused (the allowed CN
/// or host name, the CRL), as a certificate verifier returns it through rustls
/// (`CertificateError::Other`): etcd's text, and the certificate's SANs, which etcd's "rejected
/// connection" line shows whenever the certificate got that far.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct CertRefused {
    text: String,
    sans: san::Sans,
}

impl CertRefused {
    /// `text` for the (DER) certificate `leaf`.
    pub fn new(text: impl Into<String>, leaf: &[u8]) -> CertRefused {
        CertRefused { text: text.into(), sans: san::sans(leaf) }
    }

    /// As the rustls error a verifier returns.
    pub fn into_tls_error(self) -> rustls::Error {
        rustls::CertificateError::Other(rustls::OtherError(Arc::new(self))).into()
    }
}

/// Logs a failed TLS handshake on a listener (client or peer) as etcd does: a [`CertRefused`]
/// with its own text and the certificate's SANs, any other failure as rustls describes it.
pub fn log_rejected_handshake(remote: &str, e: &std::io::Error) {
    let other = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(|tls| match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => Some(other),
        _ => None,
    });
    match other {
        Some(other) => match other.0.downcast_ref::<CertRefused>() {
            Some(refused) => reject(remote, &refused.text, Some(&refused.sans)),
            None => reject(remote, &other.0.to_string(), None),
        },
        None => reject(remote, &e.to_string(), None),
    }
}

/// etcd's `logTLSHandshakeFailure` (its capnslog form, at info level as there).
fn reject(remote: &str, error: &str, sans: Option<&san::Sans>) {
    match sans {
        Some(s) => tracing::info!(
            "embed: rejected connection from {remote:?} (error {error:?}, ServerName \"\", IPAddresses {}, DNSNames {})",
            go_quoted(&s.ips),
            go_quoted(&s.dns)
        ),
        None => tracing::info!("embed: rejected connection from {remote:?} (error {error:?}, ServerName \"\")"),
    }
}
