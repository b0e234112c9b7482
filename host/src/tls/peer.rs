//! TLS on the peer port (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file,
//! --peer-client-cert-auth, --peer-auto-tls, --experimental-peer-skip-client-san-verification),
//! as etcd's `configurePeerListeners` and rafthttp's round trippers set it up: the https peer
//! listeners' configuration and how this member dials other members, handed ready to the
//! transport crate.
//!
//! The peer listeners speak HTTP/1.1 only (rafthttp; etcd's peer port also carries gRPC, which
//! wasmraft's does not), so they offer ALPN `http/1.1` rather than the client port's `h2`, and
//! the dialer offers none, as Go's peer transport does.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use url::Url;
use wasmraft_transport::PeerListenerTls;

use super::TlsInfo;

/// The peer port's TLS, from the flags.
pub struct PeerTls {
    /// For the https peer listeners (None when every listen peer URL is http).
    pub listener: Option<PeerListenerTls>,
    /// How this member dials other members' peer URLs (https ones with TLS).
    pub dial: Arc<ClientConfig>,
}

/// Builds the peer TLS settings, making --peer-auto-tls's certificate first
/// (`<data-dir>/fixtures/peer`), with etcd's log lines and warnings. Bad files stop the member
/// with etcd's texts. Takes the flags' values rather than the config, which is built from this
/// module's types.
pub fn peer_tls(flags: &TlsInfo, data_dir: &Path, listen_peer_urls: &[Url]) -> anyhow::Result<PeerTls> {
    let mut info = flags.clone();
    let dir = data_dir.join("fixtures").join("peer");
    // Client-auth usage too: a member dials its peers with this certificate.
    info.apply_auto_tls(&dir, listen_peer_urls, "peer", true)?;
    if !info.is_empty() {
        tracing::info!("embed: peerTLS: {}", info.describe());
    }
    for u in listen_peer_urls.iter().filter(|u| !wasmraft_transport::socket::is_tls_scheme(u.scheme())) {
        if !info.is_empty() {
            tracing::warn!(
                "embed: The scheme of peer url {} is HTTP while peer key/cert files are presented. Ignored peer key/cert files.",
                u.as_str().trim_end_matches('/')
            );
        }
        if info.client_cert_auth {
            tracing::warn!(
                "embed: The scheme of peer url {} is HTTP while client cert auth (--peer-client-cert-auth) is enabled. Ignored client cert auth for this url.",
                u.as_str().trim_end_matches('/')
            );
        }
    }
    let listener = if listen_peer_urls.iter().any(|u| wasmraft_transport::socket::is_tls_scheme(u.scheme())) {
        let mut server = Arc::unwrap_or_clone(info.server_config()?);
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Some(PeerListenerTls::new(Arc::new(server), !info.skip_client_san_verify))
    } else {
        None
    };
    Ok(PeerTls { listener, dial: info.client_config(&[])? })
}
