//! Reading certificates and keys from PEM files, with the error texts etcd (Go's `crypto/tls`
//! and `os`) gives for the same mistakes, so operators see what they would see from etcd.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Where Linux distributions keep the system's CA bundle (the files Go's `crypto/x509` tries).
pub(super) const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The whole file, or Go's `open <path>: <reason>`.
pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Open {
        path: path.display().to_string(),
        reason: wasmraft_proto::go::os_error_reason(&e),
    })
}

/// The certificate chain in `path` (leaf first).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let mut chain = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        match cert {
            Ok(c) => chain.push(c),
            Err(e) => return Err(TlsError::CertificatePem { path: path.display().to_string(), reason: e.to_string() }),
        }
    }
    if chain.is_empty() {
        return Err(TlsError::NoCertificatePem { path: path.display().to_string() });
    }
    Ok(chain)
}

/// The private key in `path`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), as Go accepts.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKeyPem { path: path.display().to_string() }),
        Err(e) => Err(TlsError::KeyPem { path: path.display().to_string(), reason: e.to_string() }),
    }
}

/// The CA certificates in `path` (etcd's `tlsutil.NewCertPool`).
pub fn ca_pool(path: &Path) -> Result<RootCertStore, TlsError> {
    ca_certificates(path).map(|(roots, _)| roots)
}

/// The CA certificates in `path` as trust anchors, and as read (`anchor_leaf.rs` compares a
/// presented certificate with them).
pub fn ca_certificates(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = certificates(path)?;
    for cert in &certs {
        if let Err(e) = roots.add(cert.clone()) {
            return Err(TlsError::CaCertificate { path: path.display().to_string(), reason: e.to_string() });
        }
    }
    Ok((roots, certs))
}

/// The system's CA bundle: what Go verifies client certificates against when --client-cert-auth
/// is on without --trusted-ca-file. Certificates in it that do not parse are skipped, as Go does.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for bundle in SYSTEM_CA_BUNDLES {
        let Ok(pem) = std::fs::read(bundle) else { continue };
        let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
        roots.add_parsable_certificates(certs);
        if !roots.is_empty() {
            return Ok(roots);
        }
    }
    Err(TlsError::NoSystemRoots)
}
