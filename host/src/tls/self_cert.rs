//! --auto-tls / --peer-auto-tls: a self-signed certificate made at the first start and kept in the
//! data dir (`fixtures/client`, `fixtures/peer`), as etcd's `transport.SelfCert` does: subject
//! organisation "etcd", valid for a year, server-auth (and, for peers, client-auth) usage, and
//! the listen URLs' hosts as IP or DNS names. Clients of such a member skip verification
//! (`etcdctl --insecure-skip-tls-verify`); it buys encryption, not identity.
//!
//! etcd uses a P-521 key; ring cannot sign with one, so the key here is ECDSA P-256.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

/// How long the certificate is valid: etcd's one year.
const VALIDITY: time::Duration = time::Duration::days(365);

/// The paths of `cert.pem` and `key.pem` in `dir`, made now unless both already exist.
/// `client_auth` adds the client-auth usage peers need, since they dial each other with it.
pub fn self_cert(dir: &Path, hosts: &[String], client_auth: bool) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create cert directory {}", dir.display()))?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let names: Vec<String> =
        hosts.iter().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()).collect();
    let mut params = CertificateParams::new(names).context("cannot generate x509 certificate")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + VALIDITY;
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if client_auth {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let key = KeyPair::generate().context("cannot generate ECDSA key")?;
    let cert = params.self_signed(&key).context("cannot generate x509 certificate")?;

    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("cannot write cert file {}", cert_path.display()))?;
    tracing::info!("embed: created cert file {}", cert_path.display());
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot write key file {}", key_path.display()))?;
    out.write_all(key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write key file {}", key_path.display()))?;
    tracing::info!("embed: created key file {}", key_path.display());
    Ok((cert_path, key_path))
}
