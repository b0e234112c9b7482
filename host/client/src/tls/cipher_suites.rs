//! --cipher-suites: Go's names for TLS cipher suites (etcd's `tlsutil.GetCipherSuite`: every
//! name in Go's `tls.CipherSuites()` and `tls.InsecureCipherSuites()`, and two aliases) turned
//! into the rustls suites a listener accepts and a dialer offers.
//!
//! As in etcd (Go's `tls.Config.CipherSuites`), the list restricts TLS 1.2 only: TLS 1.3's suites
//! are not configurable in Go, so a TLS 1.3 connection uses any of them whatever the flag says,
//! and TLS 1.3 names in the list are accepted and change nothing. A list with no TLS 1.2 suite
//! leaves TLS 1.3 only.
//!
//! rustls implements the ECDHE suites with AES-GCM or ChaCha20-Poly1305; Go also knows CBC, RC4,
//! 3DES and RSA-key-exchange suites, which rustls leaves out as unsafe. Naming one of those
//! stops the member at start with its name, rather than quietly serving other suites than asked.

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{self, cipher_suite as rs};

use super::TlsError;

/// What one of Go's names stands for here.
enum GoSuite {
    /// A TLS 1.2 suite rustls implements.
    Tls12(SupportedCipherSuite),
    /// A TLS 1.3 suite: accepted, not configurable (as in Go).
    Tls13,
    /// A suite Go has and rustls does not.
    Missing,
}

/// Go 1.19's suite names (the Go etcd 3.4.23 is built with) and etcd's two aliases.
fn go_suite(name: &str) -> Option<GoSuite> {
    use GoSuite::{Missing, Tls12, Tls13};
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => Tls12(rs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => Tls12(rs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => Tls12(rs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => Tls12(rs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            Tls12(rs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            Tls12(rs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => Tls13,
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_RC4_128_SHA"
        | "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_CBC_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_RSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256" => Missing,
        _ => return None,
    })
}

/// The ring provider with the TLS 1.2 suites `names` (Go's names, in the order given) and all
/// of TLS 1.3's; ring's defaults when `names` is empty. The first name that is unknown, or that
/// rustls lacks, is the error.
pub fn provider(names: &[String]) -> Result<Arc<CryptoProvider>, TlsError> {
    let base = ring::default_provider();
    if names.is_empty() {
        return Ok(Arc::new(base));
    }
    let mut tls12: Vec<SupportedCipherSuite> = Vec::new();
    for name in names {
        match go_suite(name) {
            None => return Err(TlsError::UnknownCipherSuite(name.clone())),
            Some(GoSuite::Missing) => return Err(TlsError::UnsupportedCipherSuite(name.clone())),
            Some(GoSuite::Tls13) => {}
            Some(GoSuite::Tls12(suite)) => {
                if !tls12.iter().any(|s| s.suite() == suite.suite()) {
                    tls12.push(suite);
                }
            }
        }
    }
    let tls13 = base.cipher_suites.iter().copied().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
    let cipher_suites = tls13.chain(tls12).collect();
    Ok(Arc::new(CryptoProvider { cipher_suites, ..base }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn tls12_suites(p: &CryptoProvider) -> Vec<String> {
        p.cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn restricts_tls12_and_keeps_tls13() {
        let p = provider(&names(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ]))
        .expect("known suites");
        assert_eq!(
            tls12_suites(&p),
            ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"]
        );
        let tls13 = p.cipher_suites.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).count();
        assert_eq!(tls13, 3);
        assert_eq!(provider(&[]).expect("defaults").cipher_suites.len(), ring::default_provider().cipher_suites.len());
        assert!(tls12_suites(&provider(&names(&["TLS_CHACHA20_POLY1305_SHA256"])).expect("1.3 only")).is_empty());
    }

    #[test]
    fn refuses_unknown_and_missing_names() {
        let e = provider(&names(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "FOO"])).expect_err("unknown");
        assert_eq!(e.to_string(), "unexpected TLS cipher suite \"FOO\"");
        let e = provider(&names(&["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"])).expect_err("CBC");
        assert!(e.to_string().starts_with("TLS cipher suite \"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\" is not supported"));
        assert!(matches!(provider(&names(&["TLS_RSA_WITH_RC4_128_SHA"])), Err(TlsError::UnsupportedCipherSuite(_))));
        assert!(matches!(provider(&names(&[""])), Err(TlsError::UnknownCipherSuite(_))));
    }
}
