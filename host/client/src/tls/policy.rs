//! What a TLS endpoint checks beyond the certificate chain, and which suites it speaks: the part
//! of etcd's `TLSInfo` that --cipher-suites, --client-crl-file/--peer-crl-file,
//! --peer-cert-allowed-cn, --peer-cert-allowed-hostname and --client-cert-allowed-hostname fill
//! in (`CipherSuites`, `CRLFile`, `AllowedCN`, `AllowedHostname`). Empty: etcd's defaults.

use std::path::PathBuf;

/// One listener kind's (client or peer) extra TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// Go's names of the TLS 1.2 suites to allow (`cipher_suites.rs`); empty: rustls's defaults.
    pub cipher_suites: Vec<String>,
    /// Certificates whose serial is in this list are refused by the listener (`crl.rs`).
    pub crl_file: Option<PathBuf>,
    /// The common name the other end's certificate must carry (`allowed.rs`); empty: any.
    pub allowed_cn: String,
    /// The host name the other end's certificate must be valid for; empty: any.
    pub allowed_hostname: String,
}
