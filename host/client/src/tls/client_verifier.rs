//! How a listener verifies the certificates clients (or connecting members) present: webpki's
//! verdict against the trusted CA file (or the system's roots), with a trusted CA presented as
//! its own leaf accepted as Go accepts it (`anchor_leaf.rs`), then etcd's further checks in
//! its order: the allowed common name or host name (`allowed.rs`), then the CRL (`crl.rs`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::allowed::{AllowedName, REFUSED};
use super::anchor_leaf::{Anchors, Role};
use super::crl::CrlFile;
use super::policy::TlsPolicy;
use super::{TlsError, files};
use wasmraft_transport::CertRefused;

/// The verifier for a listener that requires client certificates (etcd's
/// `RequireAndVerifyClientCert`): against `trusted_ca_file`, or the system's roots without one,
/// as Go does. Reads the CA and CRL files now, so bad ones stop the member at start.
pub fn client_cert_verifier(
    trusted_ca_file: Option<&Path>,
    policy: &TlsPolicy,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let (roots, anchors) = match trusted_ca_file {
        Some(ca) => {
            let (roots, certs) = files::ca_certificates(ca)?;
            (roots, Anchors::new(certs))
        }
        None => (files::system_roots()?, Anchors::default()),
    };
    let inner =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|e| match e {
            VerifierBuilderError::NoRootAnchors => TlsError::NoRootAnchors {
                path: trusted_ca_file.map_or_else(|| "(system roots)".into(), |p| p.display().to_string()),
            },
            other => TlsError::Verifier(other.to_string()),
        })?;
    let allowed = AllowedName::from_flags(&policy.allowed_cn, &policy.allowed_hostname)?;
    let crl = policy.crl_file.as_deref().map(CrlFile::open).transpose()?;
    Ok(Arc::new(ClientVerifier { inner, anchors, allowed, crl }))
}

#[derive(Debug)]
struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    anchors: Anchors,
    allowed: Option<AllowedName>,
    crl: Option<CrlFile>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(refused) = self.inner.verify_client_cert(end_entity, intermediates, now) {
            self.anchors.reconsider(refused, end_entity, now, Role::Client)?;
        }
        if let Some(allowed) = &self.allowed
            && !allowed.allows(end_entity)
        {
            return Err(CertRefused::new(REFUSED, end_entity.as_ref()).into_tls_error());
        }
        if let Some(crl) = &self.crl {
            crl.check(std::iter::once(end_entity).chain(intermediates))
                .map_err(|text| CertRefused::new(text, end_entity.as_ref()).into_tls_error())?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
