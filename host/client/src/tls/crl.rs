//! --client-crl-file / --peer-crl-file: a connecting client (member) whose certificate is in the
//! certificate revocation list is refused, as etcd's `checkCRL` (`pkg/transport/listener_tls.go`)
//! refuses it:
//!
//! - the file is read again for every connection, so a new list takes effect without a restart;
//! - a certificate is revoked when its serial number is among the list's, whichever CA issued
//!   the list, and the list's signature is not checked: the file is the operator's own
//!   configuration, and it can only refuse certificates, never admit one;
//! - every certificate the client presents is looked up, its chain's too;
//! - PEM (`X509 CRL`) or DER, version 1 or 2 lists, as Go's `x509.ParseCRL` reads them.
//!
//! rustls's own CRL support (webpki) was not used for this: it wants version 2 lists (openssl's
//! `ca -gencrl` writes version 1 unless told otherwise), it reads the lists once, and it ignores
//! a list another CA signed, where etcd refuses the serial. See docs/decisions.md.
//!
//! The check runs in the handshake (the client verifier), after the chain verified; etcd runs it
//! right after the handshake. Either way the connection is closed before a request is read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use super::{TlsError, files};

/// A CRL file, read at every check.
#[derive(Debug, Clone)]
pub struct CrlFile {
    path: PathBuf,
}

impl CrlFile {
    /// Checks that `path` holds a readable list now, so a member with a bad file does not start
    /// (etcd would start and then refuse every connection).
    pub fn open(path: &Path) -> Result<CrlFile, TlsError> {
        revoked_serials(path)?;
        Ok(CrlFile { path: path.to_path_buf() })
    }

    /// Ok when no certificate of `chain` is revoked; otherwise etcd's text for the first that is
    /// (or why the list could not be read: the connection is refused then too, as in etcd).
    pub fn check<'a>(&self, chain: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> Result<(), String> {
        let revoked = revoked_serials(&self.path).map_err(|e| e.to_string())?;
        for cert in chain {
            let serial = match x509_parser::parse_x509_certificate(cert.as_ref()) {
                Ok((_, c)) => significant(c.raw_serial()).to_vec(),
                Err(e) => return Err(format!("transport: cannot read a presented certificate's serial: {e}")),
            };
            if revoked.contains(&serial) {
                return Err(format!("transport: certificate serial {} revoked", hex::encode(&serial)));
            }
        }
        Ok(())
    }
}

/// The serial numbers the list at `path` revokes, as Go's `big.Int.Bytes` gives them.
fn revoked_serials(path: &Path) -> Result<HashSet<Vec<u8>>, TlsError> {
    let bytes = files::read(path)?;
    let bad = |reason: String| TlsError::Crl { path: path.display().to_string(), reason };
    let der = if bytes.starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::from_pem_slice(&bytes).map_err(|e| bad(e.to_string()))?
    } else {
        CertificateRevocationListDer::from(bytes)
    };
    let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    Ok(crl.iter_revoked_certificates().map(|r| significant(r.raw_serial()).to_vec()).collect())
}

/// A DER INTEGER's content without its leading zero bytes (Go compares `big.Int.Bytes()`).
fn significant(serial: &[u8]) -> &[u8] {
    let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[first..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer, KeyIdMethod, KeyPair,
        RevokedCertParams, SerialNumber,
    };

    fn leaf(issuer: &Issuer<'_, KeyPair>, serial: &[u8]) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let key = KeyPair::generate().expect("key");
        params.signed_by(&key, issuer).expect("sign").der().clone()
    }

    #[test]
    fn refuses_listed_serials_and_rereads_the_file() {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ca key");
        params.self_signed(&key).expect("ca");
        let ca = Issuer::new(params, key);
        let revoked = leaf(&ca, &[0x00, 0x9a, 0x01]);
        let good = leaf(&ca, &[0x42]);
        let crl = |serials: &[&[u8]]| {
            let now = time::OffsetDateTime::now_utc();
            CertificateRevocationListParams {
                this_update: now,
                next_update: now + time::Duration::days(1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: serials
                    .iter()
                    .map(|s| RevokedCertParams {
                        serial_number: SerialNumber::from_slice(s),
                        revocation_time: now,
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&ca)
            .expect("crl")
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("revoke.crl");
        std::fs::write(&path, crl(&[&[0x9a, 0x01]]).pem().expect("pem")).expect("write");
        let file = CrlFile::open(&path).expect("a good list");
        assert_eq!(file.check([&revoked]).expect_err("revoked"), "transport: certificate serial 9a01 revoked");
        file.check([&good]).expect("not listed");
        // DER, replaced while in use: read again.
        std::fs::write(&path, crl(&[&[0x42]]).der().as_ref()).expect("write");
        assert_eq!(file.check([&revoked, &good]).expect_err("now revoked"), "transport: certificate serial 42 revoked");

        std::fs::write(&path, b"not a list").expect("write");
        let e = CrlFile::open(&path).expect_err("garbage");
        assert!(e.to_string().starts_with(&format!("x509: cannot parse the CRL in {}", path.display())), "{e}");
        let missing = dir.path().join("missing.crl");
        let e = CrlFile::open(&missing).expect_err("missing");
        assert_eq!(e.to_string(), format!("open {}: no such file or directory", missing.display()));
    }
}
