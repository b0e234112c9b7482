//! A TLS client with exactly the knobs the TLS flag tests turn, which etcdctl does not have:
//! the protocol version and the one cipher suite it offers (--cipher-suites restricts TLS 1.2
//! only, and etcdctl speaks TLS 1.3), and a client certificate presented to a peer port, where
//! it then asks for `GET /members` as a member joining would. The server's certificate is not
//! verified: these tests judge what the server accepts, not the other way round.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What the probe offers.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Offer TLS 1.2 only, with only the suite of this (Go's = rustls's) name; None: rustls's
    /// defaults (TLS 1.3 first).
    pub tls12_suite: Option<&'static str>,
    /// The client certificate and key files to present.
    pub cert: Option<(PathBuf, PathBuf)>,
}

impl Probe {
    pub fn tls12(suite: &'static str) -> Probe {
        Probe { tls12_suite: Some(suite), cert: None }
    }

    /// Presents `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (a [`crate::Pki`] pair).
    pub fn with_cert(mut self, pki: &crate::Pki, name: &str) -> Probe {
        self.cert = Some((pki.dir().join(format!("{name}.pem")), pki.dir().join(format!("{name}-key.pem"))));
        self
    }

    /// Handshakes with `url`'s host and port (http(s)://ip:port) and returns the suite agreed
    /// on, or why the handshake failed.
    pub fn handshake(&self, url: &str) -> Result<String, String> {
        let (conn, _) = self.connect(url)?;
        Ok(conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default())
    }

    /// Handshakes, sends `GET /members` over HTTP/1.1 and returns the response's status line
    /// (a peer port refusing the certificate after the handshake shows as an error here).
    pub fn get_members(&self, url: &str) -> Result<String, String> {
        let (mut conn, mut sock) = self.connect(url)?;
        let host = host_port(url);
        let request = format!("GET /members HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        match tls.read_to_end(&mut response) {
            Ok(_) => {}
            // Go's server closes without close_notify; what came before still counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
            Err(e) => return Err(e.to_string()),
        }
        let text = String::from_utf8_lossy(&response);
        text.lines().next().filter(|l| !l.is_empty()).map(str::to_string).ok_or_else(|| "no response".to_string())
    }

    fn connect(&self, url: &str) -> Result<(rustls::ClientConnection, TcpStream), String> {
        let base = ring::default_provider();
        let (provider, versions): (CryptoProvider, &[&rustls::SupportedProtocolVersion]) = match self.tls12_suite {
            Some(name) => {
                let suite = base
                    .cipher_suites
                    .iter()
                    .find(|s| format!("{:?}", s.suite()) == name)
                    .copied()
                    .unwrap_or_else(|| panic!("rustls has no suite {name}"));
                (CryptoProvider { cipher_suites: vec![suite], ..base }, &[&rustls::version::TLS12])
            }
            None => (base, rustls::DEFAULT_VERSIONS),
        };
        let provider = Arc::new(provider);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
        let config = match &self.cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        let host = host_port(url);
        let mut sock = TcpStream::connect(&host).map_err(|e| format!("connect {host}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        Ok((conn, sock))
    }
}

fn host_port(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).trim_end_matches('/').to_string()
}

/// Accepts any server certificate (the handshake signature is still checked).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
