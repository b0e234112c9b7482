//! Reading certificates and keys from PEM files, with the error texts etcd (Go's `crypto/tls`
//! and `os`) gives for the same mistakes, so operators see what they would see from etcd.

use std::io;
use std::path::Path;

use anyhow::bail;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where Linux distributions keep the system's CA bundle (the files Go's `crypto/x509` tries).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The whole file, or Go's `open <path>: <reason>`.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("open {}: {}", path.display(), go_reason(&e)))
}

/// The reason as Go's syscall errors spell it (lower case, no "os error N").
fn go_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

/// The certificate chain in `path` (leaf first).
pub(super) fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let mut chain = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        match cert {
            Ok(c) => chain.push(c),
            Err(e) => bail!("tls: failed to parse certificate PEM data in {}: {e}", path.display()),
        }
    }
    if chain.is_empty() {
        bail!("tls: failed to find any PEM data in certificate input ({})", path.display());
    }
    Ok(chain)
}

/// The private key in `path`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), as Go accepts.
pub(super) fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            bail!("tls: failed to find any PEM data in key input ({})", path.display())
        }
        Err(e) => bail!("tls: failed to parse private key PEM data in {}: {e}", path.display()),
    }
}

/// The CA certificates in `path` (etcd's `tlsutil.NewCertPool`).
pub(super) fn ca_pool(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        if let Err(e) = roots.add(cert) {
            bail!("x509: {e} (in {})", path.display());
        }
    }
    Ok(roots)
}

/// The system's CA bundle: what Go verifies client certificates against when --client-cert-auth
/// is on without --trusted-ca-file. Certificates in it that do not parse are skipped, as Go does.
pub(super) fn system_roots() -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for bundle in SYSTEM_CA_BUNDLES {
        let Ok(pem) = std::fs::read(bundle) else { continue };
        let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
        roots.add_parsable_certificates(certs);
        if !roots.is_empty() {
            return Ok(roots);
        }
    }
    bail!(
        "--client-cert-auth without --trusted-ca-file needs the system's CA bundle, and none was found in {SYSTEM_CA_BUNDLES:?}"
    )
}
