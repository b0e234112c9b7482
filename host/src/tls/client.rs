//! Dialing with a `TlsInfo` (etcd's `TLSInfo.ClientConfig`): the member presents its own
//! certificate (etcd dials peers with the peer cert/key, re-read at every handshake), verifies
//! the server against the trusted CA file or, without one, the system's roots, as Go does; and
//! for an auto-TLS member verifies nothing (etcd sets `InsecureSkipVerify` for self-signed
//! certificates: no CA could verify them, so auto-TLS buys encryption, not identity).

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{TlsInfo, files};

impl TlsInfo {
    /// The rustls configuration for dialing, offering `alpn` (empty: none, as etcd's peer
    /// round trippers offer none and speak HTTP/1.1).
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = if self.self_cert {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(SkipVerify(provider.clone())))
        } else {
            let roots = match &self.trusted_ca_file {
                Some(ca) => files::ca_pool(ca)?,
                // Go verifies against the system's roots; with none found, nothing verifies.
                None => files::system_roots().unwrap_or_else(|_| RootCertStore::empty()),
            };
            builder.with_root_certificates(roots)
        };
        let mut config = if self.is_empty() {
            builder.with_no_client_auth()
        } else {
            builder.with_client_cert_resolver(Arc::new(self.certificate(provider)?))
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
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
