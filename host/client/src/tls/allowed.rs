//! --peer-cert-allowed-cn, --peer-cert-allowed-hostname, --client-cert-allowed-hostname: beyond a
//! verified chain, the certificate must carry this common name, or be valid for this host name,
//! as etcd's `TLSInfo.AllowedCN` / `AllowedHostname` demand (`baseConfig`'s
//! `VerifyPeerCertificate`). Like there, the check applies to both ends of the settings it is
//! part of: the listener's view of a connecting member's (client's) certificate, and a dialing
//! member's view of the server it reached. The two are mutually exclusive.
//!
//! The host name is matched as Go's `Certificate.VerifyHostname` matches it (Go 1.19, which
//! etcd 3.4.23 is built with): against the subjectAltName DNS names (wildcards in the first
//! label) or IP addresses, never the common name. webpki implements the same rule.

use rustls::pki_types::{CertificateDer, ServerName};

use super::TlsError;

/// etcd's error for a certificate that fails the check.
pub const REFUSED: &str = "client certificate authentication failed";

/// The name a verified certificate must carry.
#[derive(Debug, Clone)]
pub enum AllowedName {
    Cn(String),
    Hostname(ServerName<'static>),
}

impl AllowedName {
    /// From the flags' values (empty: not set); etcd's error when both are set.
    pub fn from_flags(cn: &str, hostname: &str) -> Result<Option<AllowedName>, TlsError> {
        match (cn.is_empty(), hostname.is_empty()) {
            (true, true) => Ok(None),
            (false, true) => Ok(Some(AllowedName::Cn(cn.to_string()))),
            (true, false) => match ServerName::try_from(hostname.trim_end_matches('.')) {
                Ok(name) => Ok(Some(AllowedName::Hostname(name.to_owned()))),
                Err(e) => Err(TlsError::AllowedHostname { hostname: hostname.to_string(), reason: e.to_string() }),
            },
            (false, false) => Err(TlsError::AllowedExclusive { cn: cn.to_string(), hostname: hostname.to_string() }),
        }
    }

    /// Whether the (verified) leaf certificate carries the name.
    pub fn allows(&self, leaf: &CertificateDer<'_>) -> bool {
        match self {
            AllowedName::Cn(cn) => common_name(leaf).as_deref() == Some(cn.as_str()),
            AllowedName::Hostname(name) => webpki::EndEntityCert::try_from(leaf)
                .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok()),
        }
    }
}

/// The subject's common name; the last one when there are several, as Go's `pkix.Name` keeps.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().last()?.as_str().ok()?.to_string();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().clone()
    }

    #[test]
    fn cn_and_hostname() {
        let cn = AllowedName::from_flags("peer", "").expect("ok").expect("set");
        assert!(cn.allows(&cert("peer", &[])));
        assert!(!cn.allows(&cert("other", &["peer"])));

        let host = AllowedName::from_flags("", "m1.example.com").expect("ok").expect("set");
        assert!(host.allows(&cert("x", &["m1.example.com"])));
        assert!(host.allows(&cert("x", &["*.example.com"])));
        // Go 1.19 no longer falls back to the common name.
        assert!(!host.allows(&cert("m1.example.com", &["m2.example.com"])));
        let ip = AllowedName::from_flags("", "127.0.0.1").expect("ok").expect("set");
        assert!(ip.allows(&cert("x", &["127.0.0.1"])));
        assert!(!ip.allows(&cert("x", &["localhost"])));

        assert!(AllowedName::from_flags("", "").expect("ok").is_none());
        let e = AllowedName::from_flags("a", "b").expect_err("both");
        assert_eq!(e.to_string(), "AllowedCN and AllowedHostname are mutually exclusive (cn=\"a\", hostname=\"b\")");
        assert!(AllowedName::from_flags("", "bad host!").is_err());
    }
}
