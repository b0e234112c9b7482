//! A trusted CA certificate presented as the peer's own certificate: etcd's `CommonName-root.crt`
//! test fixture (self-signed, `CA:TRUE`) is the server certificate, the client certificate and the
//! trusted CA file at once. Go's `x509.Certificate.Verify` accepts a certificate that is itself in
//! the root pool as a chain of one, without asking whether it is a CA; webpki refuses any CA
//! certificate as an end entity (`CaUsedAsEndEntity`), so etcdctl and members using such files
//! with etcd could not use them with wasmraft.
//!
//! This accepts exactly that case, after webpki has judged: webpki refused the certificate only
//! because it is a CA, and the certificate is byte for byte one of the CA file's. Webpki had
//! already checked its encoding, critical extensions and validity period when it stopped at the
//! CA flag (the order of its checks); the period is checked again here, then what webpki would
//! have checked next: the extended key usage for this end's role and, for a server, its names.
//! The handshake signature (the peer holds the certificate's key) is checked by rustls as for
//! any certificate. Nothing else is relaxed: a CA certificate signed by a trusted CA, or a
//! self-signed one that is not in the CA file, is still refused. See docs/decisions.md.

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, Error};

/// Which end of the connection presented the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// A client (or dialing member), verified by a listener.
    Client,
    /// A server, verified by a dialer that asked for `name`.
    Server(&'a ServerName<'a>),
}

/// The CA file's certificates, as read.
#[derive(Debug, Clone, Default)]
pub struct Anchors(Vec<CertificateDer<'static>>);

impl Anchors {
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Anchors {
        Anchors(certs)
    }

    /// webpki's verdict `refused` on `end_entity`, overturned when it is the case above.
    pub fn reconsider(
        &self,
        refused: Error,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
        role: Role<'_>,
    ) -> Result<(), Error> {
        if !is_ca_used_as_end_entity(&refused) || !self.0.iter().any(|a| a.as_ref() == end_entity.as_ref()) {
            return Err(refused);
        }
        let (_, cert) =
            x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| CertificateError::BadEncoding)?;
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = cert.validity();
        if secs < validity.not_before.timestamp() {
            return Err(CertificateError::NotValidYet.into());
        }
        if secs > validity.not_after.timestamp() {
            return Err(CertificateError::Expired.into());
        }
        if let Some(eku) = cert.extended_key_usage().map_err(|_| CertificateError::BadEncoding)? {
            let eku = eku.value;
            let allowed = match role {
                Role::Client => eku.client_auth,
                Role::Server(_) => eku.server_auth,
            };
            if !allowed && !eku.any {
                return Err(CertificateError::InvalidPurpose.into());
            }
        }
        if let Role::Server(name) = role {
            let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|_| CertificateError::BadEncoding)?;
            if ee.verify_is_valid_for_subject_name(name).is_err() {
                return Err(CertificateError::NotValidForName.into());
            }
        }
        Ok(())
    }
}

/// webpki's `CaUsedAsEndEntity`, which rustls passes on as an opaque "other" error.
fn is_ca_used_as_end_entity(e: &Error) -> bool {
    match e {
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    use rustls::server::WebPkiClientVerifier;

    use super::*;
    use crate::tls::TlsPolicy;
    use crate::tls::client_verifier::client_cert_verifier;
    use crate::tls::server_verifier::server_cert_verifier;

    /// A self-signed CA certificate for 127.0.0.1 and localhost, as etcd's `CommonName-root.crt`:
    /// its DER, PEM, and the issuer to sign others with.
    fn ca_leaf(
        eku: &[ExtendedKeyUsagePurpose],
        expired: bool,
    ) -> (CertificateDer<'static>, String, Issuer<'static, KeyPair>) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, "root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = eku.to_vec();
        if expired {
            params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(10);
            params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        (cert.der().clone(), cert.pem(), Issuer::new(params, key))
    }

    #[test]
    fn accepts_a_trusted_ca_as_its_own_leaf_and_nothing_more() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (root, root_pem, root_issuer) = ca_leaf(&[], false);
        let (server_only, server_only_pem, _) = ca_leaf(&[ExtendedKeyUsagePurpose::ServerAuth], false);
        let (expired, expired_pem, _) = ca_leaf(&[], true);
        let (stranger, _, _) = ca_leaf(&[], false);
        // A CA that root signed, presented as a leaf: Go accepts it, this does not.
        let mut sub = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        sub.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let sub = sub.signed_by(&KeyPair::generate().expect("key"), &root_issuer).expect("sub").der().clone();

        let dir = tempfile::tempdir().expect("dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, [root_pem, server_only_pem, expired_pem].concat()).expect("write");
        let now = UnixTime::now();

        // webpki alone refuses the fixture's case.
        let (roots, _) = crate::tls::files::ca_certificates(&ca_file).expect("roots");
        let webpki =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().expect("verifier");
        let e = webpki.verify_client_cert(&root, &[], now).expect_err("webpki refuses a CA as leaf");
        assert!(is_ca_used_as_end_entity(&e), "{e:?}");

        let clients = client_cert_verifier(Some(&ca_file), &TlsPolicy::default(), provider.clone()).expect("verifier");
        clients.verify_client_cert(&root, &[], now).expect("the trusted CA as its own client certificate");
        let refused = [("stranger", &stranger), ("sub-CA", &sub), ("expired", &expired), ("server-only", &server_only)];
        for (what, cert) in refused {
            assert!(clients.verify_client_cert(cert, &[], now).is_err(), "{what} accepted as a client");
        }

        let servers = server_cert_verifier(Some(&ca_file), &TlsPolicy::default(), provider).expect("verifier");
        let name = |s: &str| ServerName::try_from(s.to_string()).expect("name");
        servers.verify_server_cert(&root, &[], &name("127.0.0.1"), &[], now).expect("as a server, by IP");
        servers.verify_server_cert(&root, &[], &name("localhost"), &[], now).expect("as a server, by name");
        servers.verify_server_cert(&server_only, &[], &name("localhost"), &[], now).expect("server usage");
        let wrong = servers.verify_server_cert(&root, &[], &name("10.1.1.1"), &[], now).expect_err("another name");
        assert_eq!(wrong, Error::InvalidCertificate(CertificateError::NotValidForName));
        assert!(servers.verify_server_cert(&stranger, &[], &name("localhost"), &[], now).is_err());
        assert!(servers.verify_server_cert(&sub, &[], &name("127.0.0.1"), &[], now).is_err());
        assert!(servers.verify_server_cert(&expired, &[], &name("127.0.0.1"), &[], now).is_err());
    }
}
