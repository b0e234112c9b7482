//! A certificate read from its files at every handshake (a member's --cert-file/--key-file or
//! the peer ones; a client command's --cert/--key), as etcd's `GetCertificate` and `GetClientCertificate` do: rotated files (renewed
//! by cert-manager, say) take effect for new connections without a restart. A handshake while
//! the files are unreadable or do not match fails and is logged, as in etcd; connections already
//! open are unaffected.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{TlsError, files};

#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
}

impl ReloadingCert {
    /// Checks the files once now, so that a member with bad files does not start.
    pub fn new(cert_file: PathBuf, key_file: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let this = Self { cert_file, key_file, provider };
        this.load()?;
        Ok(this)
    }

    fn load(&self) -> Result<CertifiedKey, TlsError> {
        let chain = files::certificates(&self.cert_file)?;
        let key = files::private_key(&self.key_file)?;
        let signing = self.provider.key_provider.load_private_key(key).map_err(|e| TlsError::UnsupportedKey {
            path: self.key_file.display().to_string(),
            reason: e.to_string(),
        })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) => Ok(certified),
            Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch),
            Err(e) => Err(TlsError::Keys {
                reason: e.to_string(),
                cert: self.cert_file.display().to_string(),
                key: self.key_file.display().to_string(),
            }),
        }
    }
}

impl ReloadingCert {
    /// The files' certificate now; None (logged with etcd's words for `what`) when they cannot
    /// be read or do not match.
    fn current(&self, what: &str) -> Option<Arc<CertifiedKey>> {
        match self.load() {
            Ok(certified) => Some(Arc::new(certified)),
            Err(e) => {
                tracing::warn!(
                    cert_file = %self.cert_file.display(),
                    key_file = %self.key_file.display(),
                    "failed to create {what}: {e:#}"
                );
                None
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current("certificate")
    }
}

/// Dialing presents the same files, re-read at every handshake as etcd's `GetClientCertificate`
/// does.
impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current("client certificate")
    }

    fn has_certs(&self) -> bool {
        true
    }
}
