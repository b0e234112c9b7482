//! Certificates for the TLS tests, made with rcgen for each run: a CA, server, client and peer
//! certificates it signed, and some it should refuse (another CA's, a peer certificate naming the
//! wrong address). PEM files in a temporary directory, passed to wasmraft and to etcd alike.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files in a temporary directory (removed on drop).
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// The path of one of the files, as a flag value.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// - `ca.pem`: the CA; `stranger-ca.pem`: another one.
    /// - `server.pem`/`server-key.pem`: 127.0.0.1 and localhost, server auth.
    /// - `client.pem`/`client-key.pem`: CN root, client auth. `stranger.pem`: the same from the
    ///   other CA.
    /// - `peer.pem`/`peer-key.pem`: 127.0.0.1 and localhost, server and client auth (members dial
    ///   each other with their peer certificate). `stranger-peer.pem`: the same from the other
    ///   CA. `far-peer.pem`: signed by the CA, but for 10.9.9.9 only.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("pki dir");
        let (ours, ca_pem) = ca("wasmraft test CA");
        let (stranger_ca, stranger_ca_pem) = ca("some other CA");
        write(dir.path(), "ca.pem", &ca_pem);
        write(dir.path(), "stranger-ca.pem", &stranger_ca_pem);
        let local = ["127.0.0.1", "localhost"];
        let (server, client) = (ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth);
        leaf(dir.path(), "server", &ours, &local, &[server.clone()]);
        leaf(dir.path(), "client", &ours, &[], &[client.clone()]);
        leaf(dir.path(), "stranger", &stranger_ca, &[], &[client.clone()]);
        leaf(dir.path(), "peer", &ours, &local, &[server.clone(), client.clone()]);
        leaf(dir.path(), "stranger-peer", &stranger_ca, &local, &[server.clone(), client.clone()]);
        leaf(dir.path(), "far-peer", &ours, &["10.9.9.9"], &[server, client]);
        Pki { dir }
    }

    /// `--peer-cert-file=<name>.pem --peer-key-file=<name>-key.pem`.
    pub fn peer_flags(&self, name: &str) -> [String; 2] {
        [format!("--peer-cert-file={}", self.path(&format!("{name}.pem"))), format!("--peer-key-file={}", self.path(&format!("{name}-key.pem")))]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

fn write(dir: &Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).expect("write pem");
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("ca cert");
    (Issuer::new(params, key), cert.pem())
}

fn leaf(dir: &Path, name: &str, issuer: &Issuer<'_, KeyPair>, sans: &[&str], usages: &[ExtendedKeyUsagePurpose]) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
    let cn = if sans.is_empty() { "root" } else { name };
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = usages.to_vec();
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    write(dir, &format!("{name}.pem"), &cert.pem());
    write(dir, &format!("{name}-key.pem"), &key.serialize_pem());
}
