//! Certificates for the TLS and auth tests, made fresh for each run with rcgen: a CA, server,
//! client and peer certificates it signed, and some it should refuse (another CA's, a peer
//! certificate naming the wrong address), as PEM files in a temporary directory that both etcd
//! and wasmraft are given.
//!
//! A client certificate's common name matters beyond TLS: with authentication enabled, etcd takes
//! the CN of a verified client certificate as the user name (`AuthInfoFromTLS`), so tests need
//! certificates for chosen names ([`Pki::client`]).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// PEM files in a temporary directory (removed on drop), and the CA that signed them, to sign
/// more.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    /// - `ca.pem`: the CA; `stranger-ca.pem`: another one.
    /// - `server.pem`/`server-key.pem`: 127.0.0.1 and localhost, server auth.
    /// - `client.pem`/`client-key.pem`: CN root, client auth. `stranger.pem`: the same from the
    ///   other CA.
    /// - `peer.pem`/`peer-key.pem`: 127.0.0.1 and localhost, server and client auth (members dial
    ///   each other with their peer certificate). `stranger-peer.pem`: the same from the other
    ///   CA. `far-peer.pem`: signed by the CA, but for 10.9.9.9 only.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("pki dir");
        let (ca, ca_pem) = new_ca("wasmraft test CA");
        let (stranger_ca, stranger_ca_pem) = new_ca("some other CA");
        write(dir.path(), "ca.pem", &ca_pem);
        write(dir.path(), "stranger-ca.pem", &stranger_ca_pem);
        let local = ["127.0.0.1", "localhost"];
        let (server, client) = (ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth);
        leaf(dir.path(), "server", "server", &ca, &local, &[server.clone()]);
        leaf(dir.path(), "client", "root", &ca, &[], &[client.clone()]);
        leaf(dir.path(), "stranger", "root", &stranger_ca, &[], &[client.clone()]);
        leaf(dir.path(), "peer", "peer", &ca, &local, &[server.clone(), client.clone()]);
        leaf(dir.path(), "stranger-peer", "stranger-peer", &stranger_ca, &local, &[server.clone(), client.clone()]);
        leaf(dir.path(), "far-peer", "far-peer", &ca, &["10.9.9.9"], &[server, client]);
        Pki { dir, ca }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of one of the files, as a flag value.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Writes `<name>.pem`/`<name>-key.pem`: a client certificate with common name `cn`, signed by
    /// the CA.
    pub fn client(&self, name: &str, cn: &str) {
        leaf(self.dir.path(), name, cn, &self.ca, &[], &[ExtendedKeyUsagePurpose::ClientAuth]);
    }

    /// etcdctl's `--cacert`, `--cert` and `--key` flags for the client certificate `name`.
    pub fn etcdctl_flags(&self, name: &str) -> [String; 3] {
        [
            format!("--cacert={}", self.path("ca.pem")),
            format!("--cert={}", self.path(&format!("{name}.pem"))),
            format!("--key={}", self.path(&format!("{name}-key.pem"))),
        ]
    }

    /// The server flags: `--cert-file`, `--key-file` (server.pem), `--trusted-ca-file` (ca.pem)
    /// and `--client-cert-auth`.
    pub fn server_flags(&self) -> [String; 4] {
        [
            format!("--cert-file={}", self.path("server.pem")),
            format!("--key-file={}", self.path("server-key.pem")),
            format!("--trusted-ca-file={}", self.path("ca.pem")),
            "--client-cert-auth".into(),
        ]
    }

    /// `--peer-cert-file=<name>.pem --peer-key-file=<name>-key.pem`.
    pub fn peer_flags(&self, name: &str) -> [String; 2] {
        [
            format!("--peer-cert-file={}", self.path(&format!("{name}.pem"))),
            format!("--peer-key-file={}", self.path(&format!("{name}-key.pem"))),
        ]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

fn write(dir: &Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).expect("write pem");
}

fn new_ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("ca cert");
    (Issuer::new(params, key), cert.pem())
}

fn leaf(
    dir: &Path,
    name: &str,
    cn: &str,
    issuer: &Issuer<'_, KeyPair>,
    sans: &[&str],
    usages: &[ExtendedKeyUsagePurpose],
) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = usages.to_vec();
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    write(dir, &format!("{name}.pem"), &cert.pem());
    write(dir, &format!("{name}-key.pem"), &key.serialize_pem());
}
