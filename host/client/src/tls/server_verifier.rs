//! How a dialer (a member dialing its peers or the leader's client URL, or a client command)
//! verifies the server it reached: webpki's verdict against the trusted CA file or the
//! system's roots, with a trusted CA presented as its own leaf accepted as Go accepts it
//! (`anchor_leaf.rs`), then the allowed common name or host name (`allowed.rs`), which etcd's
//! `TLSInfo.ClientConfig` checks on the server's certificate too.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::allowed::{AllowedName, REFUSED};
use super::anchor_leaf::{Anchors, Role};
use super::policy::TlsPolicy;
use super::{TlsError, files};
use wasmraft_transport::CertRefused;

/// The verifier for dialing: against `trusted_ca_file`, or the system's roots without one (with
/// none found, no server verifies, as in Go).
pub fn server_cert_verifier(
    trusted_ca_file: Option<&Path>,
    policy: &TlsPolicy,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let (roots, anchors) = match trusted_ca_file {
        Some(ca) => {
            let (roots, certs) = files::ca_certificates(ca)?;
            (roots, Anchors::new(certs))
        }
        None => (files::system_roots().unwrap_or_else(|_| RootCertStore::empty()), Anchors::default()),
    };
    let inner = if roots.is_empty() {
        None
    } else {
        let built = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build();
        Some(built.map_err(|e| TlsError::Verifier(e.to_string()))?)
    };
    let allowed = AllowedName::from_flags(&policy.allowed_cn, &policy.allowed_hostname)?;
    Ok(Arc::new(ServerVerifier { inner, anchors, allowed, provider }))
}

#[derive(Debug)]
struct ServerVerifier {
    /// None: no roots at all.
    inner: Option<Arc<WebPkiServerVerifier>>,
    anchors: Anchors,
    allowed: Option<AllowedName>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Err(CertificateError::UnknownIssuer.into());
        };
        if let Err(refused) = inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            self.anchors.reconsider(refused, end_entity, now, Role::Server(server_name))?;
        }
        if let Some(allowed) = &self.allowed
            && !allowed.allows(end_entity)
        {
            return Err(CertRefused::new(REFUSED, end_entity.as_ref()).into_tls_error());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
