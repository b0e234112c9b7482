//! TLS for the member's listeners and dialers, as etcd's `pkg/transport` sets it up: a
//! certificate and key from files (--cert-file/--key-file, --peer-*) or generated at start
//! (--auto-tls, --peer-auto-tls), client certificates verified against --trusted-ca-file, and
//! required when that file is given or --client-cert-auth is on (etcd's `TLSInfo.ServerConfig`);
//! dialing with the same certificate, verifying servers against the same CA file, or not at all
//! for an auto-TLS member (etcd's `TLSInfo.ClientConfig`, in `wasmraft_client::tls`, which the
//! client commands dial with too). `peer.rs` puts them together for the peer port.
//!
//! The certificate and key are read again at every handshake (`wasmraft_client::tls`'s
//! `ReloadingCert`), as etcd does; the CA file only at start, as in etcd.
//!
//! etcd's other `TLSInfo` settings (`TlsPolicy`: --cipher-suites, the CRL file, the allowed
//! CN or host name) and the certificate verifiers that apply them are in `wasmraft_client::tls`,
//! shared by both ends.
//!
//! Files are read and checked when the member starts, so a missing, unreadable or mismatched file
//! stops it with etcd's text (`open <path>: no such file or directory`, `tls: private key does
//! not match public key`) instead of failing every handshake later. etcd reports the same texts,
//! though only once the server is otherwise up.

mod peer;
mod self_cert;

use wasmraft_client::tls::{DialFiles, ReloadingCert, TlsPolicy, cipher_suites};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use url::Url;

pub use peer::{PeerTls, peer_tls};
pub use self_cert::self_cert;

/// Says once at start what --cipher-suites does: it limits TLS 1.2 only, as in etcd, where Go
/// does not let TLS 1.3's suites be configured; an operator reading the flag may expect more.
pub fn log_cipher_suites(names: &[String]) {
    if !names.is_empty() {
        tracing::info!(
            "embed: cipher suites {}: TLS 1.2 connections use only these; TLS 1.3 connections use TLS 1.3's own suites, which are not configurable (as in etcd)",
            names.join(",")
        );
    }
}

/// One listener kind's TLS settings (client or peer), etcd's `TLSInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    /// --auto-tls: use a self-signed certificate when no cert/key files are given.
    pub auto_tls: bool,
    /// The certificate is auto-TLS's self-signed one (etcd's `selfCert`): dialing with this info
    /// skips verifying the server, as no CA could verify it.
    pub self_cert: bool,
    /// --experimental-peer-skip-client-san-verification: peer listeners do not check a
    /// connecting member's certificate SANs against its address.
    pub skip_client_san_verify: bool,
    /// --cipher-suites, the CRL file, the allowed CN or host name (etcd's `TLSInfo.CipherSuites`,
    /// `CRLFile`, `AllowedCN`, `AllowedHostname`).
    pub policy: TlsPolicy,
}

impl TlsInfo {
    /// etcd's `TLSInfo.Empty`: no certificate configured (auto-TLS not applied yet).
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }

    /// etcd's `TLSInfo.String`, which it logs at start ("ClientTLS: ...").
    pub fn describe(&self) -> String {
        let p = |f: &Option<PathBuf>| f.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default();
        format!(
            "cert = {}, key = {}, trusted-ca = {}, client-cert-auth = {}, crl-file = {}",
            p(&self.cert_file),
            p(&self.key_file),
            p(&self.trusted_ca_file),
            self.client_cert_auth,
            p(&self.policy.crl_file)
        )
    }

    /// Fills in a self-signed certificate for --auto-tls (etcd's `ClientSelfCert`): kept in `dir`
    /// and reused on later starts, for the hosts of `urls`. Explicit cert/key files win, as in etcd.
    /// `client_auth`: the certificate is also used to dial (peers).
    pub fn apply_auto_tls(&mut self, dir: &Path, urls: &[Url], what: &str, client_auth: bool) -> anyhow::Result<()> {
        if !self.auto_tls {
            return Ok(());
        }
        if !self.is_empty() {
            tracing::warn!("embed: ignoring {what} auto TLS since certs given");
            return Ok(());
        }
        let hosts: Vec<String> = urls.iter().filter_map(|u| u.host_str().map(str::to_string)).collect();
        let (cert, key) =
            self_cert(dir, &hosts, client_auth).with_context(|| format!("could not get certs for {what} auto TLS"))?;
        self.cert_file = Some(cert);
        self.key_file = Some(key);
        self.self_cert = true;
        Ok(())
    }

    /// The certificate and key files, checked now and read again at every handshake.
    fn certificate(&self, provider: Arc<rustls::crypto::CryptoProvider>) -> anyhow::Result<ReloadingCert> {
        Ok(wasmraft_client::tls::certificate(self.cert_file.as_deref(), self.key_file.as_deref(), provider)?)
    }

    /// The rustls configuration for dialing with this info (etcd's `TLSInfo.ClientConfig`),
    /// offering `alpn`: an auto-TLS certificate (`self_cert`) skips verifying the server.
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let files = DialFiles {
            cert_file: self.cert_file.as_deref(),
            key_file: self.key_file.as_deref(),
            trusted_ca_file: self.trusted_ca_file.as_deref(),
            skip_verify: self.self_cert,
            policy: Some(&self.policy),
        };
        Ok(wasmraft_client::tls::client_config(files, alpn)?)
    }

    /// The rustls configuration for a listener: etcd's `TLSInfo.ServerConfig` (TLS 1.2 at least,
    /// the --cipher-suites, ALPN h2 (and http/1.1), client certificates required and verified when a CA file is
    /// given or client-cert auth is on, with the allowed name and the CRL checked then).
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let provider = cipher_suites::provider(&self.policy.cipher_suites)?;
        let cert = self.certificate(provider.clone())?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = if self.trusted_ca_file.is_some() || self.client_cert_auth {
            let verifier =
                wasmraft_client::tls::client_cert_verifier(self.trusted_ca_file.as_deref(), &self.policy, provider)?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(Arc::new(cert));
        // etcd offers only h2, but Go's TLS still accepts a client offering only http/1.1
        // (its "http11fallback"), which HTTP/1.1 clients of /health and the JSON gateway
        // (Python's requests, curl --http1.1) are; rustls would refuse them, so offer it second.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
