//! Dialing a member over TLS as etcd's `TLSInfo.ClientConfig` does, for `wasmraft`'s client
//! commands (etcdctl's --cacert/--cert/--key/--insecure-skip-tls-verify) and for a member dialing
//! its peers and the leader (host/src/tls, which keeps the listener side): the dialer presents
//! its certificate, re-read at every handshake (`reload.rs`), verifies the server against the
//! trusted CA file or, without one, the system's roots, as Go does; and with `skip_verify` (an
//! auto-TLS member's self-signed certificate, or etcdctl's --insecure-skip-tls-verify) verifies
//! nothing (no CA could verify such certificates, so auto-TLS buys encryption, not identity).
//!
//! The PEM files are read with the error texts etcd gives (`files.rs`); the member's listeners
//! read theirs with the same code. The rest of etcd's `TLSInfo` (`policy.rs`) is here too, for
//! both ends: the cipher suites (`cipher_suites.rs`), how a listener verifies client certificates
//! (`client_verifier.rs`: the allowed name, the CRL) and how a dialer verifies servers
//! (`server_verifier.rs`), both accepting a trusted CA presented as its own leaf as Go does
//! (`anchor_leaf.rs`).

mod allowed;
mod anchor_leaf;
pub mod cipher_suites;
mod client_verifier;
mod crl;
pub mod files;
mod policy;
mod reload;
mod server_verifier;

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

pub use client_verifier::client_cert_verifier;
pub use policy::TlsPolicy;
pub use reload::ReloadingCert;

/// Kept where the transport's connector uses it; re-exported so the client side reads as before.
pub use wasmraft_transport::dial::DialTls;

/// Why a certificate, key or CA file could not be used, or a configuration not built: the
/// texts etcd (Go's `os` and `crypto/tls`) gives for the same mistakes. The causes are part of
/// each text (no `source`), so `{}` and anyhow's `{:#}` print the same line.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("tls: failed to parse certificate PEM data in {path}: {reason}")]
    CertificatePem { path: String, reason: String },
    #[error("tls: failed to find any PEM data in certificate input ({path})")]
    NoCertificatePem { path: String },
    #[error("tls: failed to find any PEM data in key input ({path})")]
    NoKeyPem { path: String },
    #[error("tls: failed to parse private key PEM data in {path}: {reason}")]
    KeyPem { path: String, reason: String },
    #[error("x509: {reason} (in {path})")]
    CaCertificate { path: String, reason: String },
    #[error(
        "--client-cert-auth without --trusted-ca-file needs the system's CA bundle, and none was found in {:?}",
        files::SYSTEM_CA_BUNDLES
    )]
    NoSystemRoots,
    #[error("tls: unsupported private key in {path}: {reason}")]
    UnsupportedKey { path: String, reason: String },
    #[error("tls: private key does not match public key")]
    KeyMismatch,
    #[error("tls: {reason} (cert {cert}, key {key})")]
    Keys { reason: String, cert: String, key: String },
    #[error("KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")]
    Incomplete { key: String, cert: String },
    #[error("TLS protocol versions: {0}")]
    ProtocolVersions(String),
    /// etcd's text (`tlsutil.GetCipherSuites`).
    #[error("unexpected TLS cipher suite {0:?}")]
    UnknownCipherSuite(String),
    #[error(
        "TLS cipher suite {0:?} is not supported by wasmraft: rustls implements TLS 1.3's suites and TLS 1.2's ECDHE suites with AES-GCM or ChaCha20-Poly1305, not CBC, RC4, 3DES or RSA key exchange"
    )]
    UnsupportedCipherSuite(String),
    #[error("x509: cannot parse the CRL in {path}: {reason}")]
    Crl { path: String, reason: String },
    /// etcd's text (`TLSInfo.baseConfig`).
    #[error("AllowedCN and AllowedHostname are mutually exclusive (cn={cn:?}, hostname={hostname:?})")]
    AllowedExclusive { cn: String, hostname: String },
    #[error("allowed hostname {hostname:?} is not a DNS name or an IP address: {reason}")]
    AllowedHostname { hostname: String, reason: String },
    #[error("--trusted-ca-file {path}: no CA certificates found, so no client certificate could verify")]
    NoRootAnchors { path: String },
    #[error("building the certificate verifier: {0}")]
    Verifier(String),
}

/// The files a dialer's TLS comes from (etcd's `TLSInfo`, its dialing half).
#[derive(Debug, Clone, Copy, Default)]
pub struct DialFiles<'a> {
    pub cert_file: Option<&'a Path>,
    pub key_file: Option<&'a Path>,
    pub trusted_ca_file: Option<&'a Path>,
    /// Accept any server certificate (Go's `InsecureSkipVerify`).
    pub skip_verify: bool,
    /// The cipher suites, and the name the server's certificate must carry (a member's
    /// --cipher-suites, --peer-cert-allowed-cn/-hostname); None: etcd's defaults.
    pub policy: Option<&'a TlsPolicy>,
}

/// The rustls configuration for dialing, offering `alpn` (empty: none, as etcd's peer round
/// trippers offer none and speak HTTP/1.1).
pub fn client_config(files: DialFiles<'_>, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let default_policy = TlsPolicy::default();
    let policy = files.policy.unwrap_or(&default_policy);
    let provider = cipher_suites::provider(&policy.cipher_suites)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::ProtocolVersions(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if files.skip_verify {
        Arc::new(SkipVerify(provider.clone()))
    } else {
        server_verifier::server_cert_verifier(files.trusted_ca_file, policy, provider.clone())?
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    // etcd's `TLSInfo.Empty`: no certificate configured.
    let mut config = if files.cert_file.is_none() && files.key_file.is_none() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(certificate(files.cert_file, files.key_file, provider)?))
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The certificate and key files, checked now and read again at every handshake (etcd's
/// `baseConfig`, which wants both files).
pub fn certificate(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    provider: Arc<CryptoProvider>,
) -> Result<ReloadingCert, TlsError> {
    let (Some(cert), Some(key)) = (cert_file, key_file) else {
        return Err(TlsError::Incomplete {
            key: key_file.map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
            cert: cert_file.map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
        });
    };
    ReloadingCert::new(cert.to_path_buf(), key.to_path_buf(), provider)
}

/// Go's `InsecureSkipVerify`: any certificate is accepted; the handshake signatures are still
/// checked (the server must hold the key of the certificate it sent).
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
