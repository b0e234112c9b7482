//! Certificates for the TLS and auth tests, made fresh for each run with rcgen: a CA, server,
//! client and peer certificates it signed, and some it should refuse (another CA's, a peer
//! certificate naming the wrong address), as PEM files in a temporary directory that both etcd
//! and wasmraft are given.
//!
//! Certificates can be revoked in a CRL ([`Pki::revoke`]), and a self-signed CA can be made to be
//! used as its own leaf ([`Pki::self_signed_ca_leaf`], like etcd's `CommonName-root.crt`).
//!
//! A client certificate's common name matters beyond TLS: with authentication enabled, etcd takes
//! the CN of a verified client certificate as the user name (`AuthInfoFromTLS`), so tests need
//! certificates for chosen names ([`Pki::client`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};

/// PEM files in a temporary directory (removed on drop), and the CA that signed them, to sign
/// more.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    /// The serial number of each certificate the CA signed, by file name (without `.pem`).
    serials: Mutex<HashMap<String, Vec<u8>>>,
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
        let pki = Pki { dir, ca, serials: Mutex::new(HashMap::new()) };
        let local = ["127.0.0.1", "localhost"];
        let (server, client) = (ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth);
        pki.sign("server", "server", &local, std::slice::from_ref(&server));
        pki.sign("client", "root", &[], std::slice::from_ref(&client));
        leaf(pki.dir(), "stranger", "root", &stranger_ca, &[], std::slice::from_ref(&client), &[0x01]);
        pki.sign("peer", "peer", &local, &[server.clone(), client.clone()]);
        let both = [server.clone(), client.clone()];
        leaf(pki.dir(), "stranger-peer", "stranger-peer", &stranger_ca, &local, &both, &[0x02]);
        pki.sign("far-peer", "far-peer", &["10.9.9.9"], &[server, client]);
        pki
    }

    /// Writes `<name>.pem`/`<name>-key.pem`, signed by the CA: common name `cn`, the IP or DNS
    /// `sans`, extended key usages `usages`. Each gets a serial number of its own, with its high
    /// bit set (so DER pads it with a zero byte, which CRL checks must see through).
    pub fn sign(&self, name: &str, cn: &str, sans: &[&str], usages: &[ExtendedKeyUsagePurpose]) {
        let mut serials = self.serials.lock().unwrap_or_else(|e| e.into_inner());
        let n = u8::try_from(serials.len()).expect("fewer than 256 certificates");
        let serial = vec![0x9a, n, 0x01];
        leaf(self.dir(), name, cn, &self.ca, sans, usages, &serial);
        serials.insert(name.to_string(), serial);
    }

    /// Writes `<crl>` (PEM), the CA's certificate revocation list revoking the certificates
    /// `names` (made by this CA); returns the path.
    pub fn revoke(&self, crl: &str, names: &[&str]) -> String {
        let serials = self.serials.lock().unwrap_or_else(|e| e.into_inner());
        let now = time::OffsetDateTime::now_utc();
        let revoked_certs = names
            .iter()
            .map(|n| RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    serials.get(*n).unwrap_or_else(|| panic!("no certificate {n}")),
                ),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let list = params.signed_by(&self.ca).expect("sign the CRL");
        write(self.dir(), crl, &list.pem().expect("CRL PEM"));
        self.path(crl)
    }

    /// Writes `<name>.pem`/`<name>-key.pem`: a self-signed CA certificate (`CA:TRUE`, may sign
    /// certificates) meant to be used as its own leaf, as etcd's `CommonName-root.crt` fixture is
    /// (server certificate, client certificate and trusted CA file at once): common name `cn`,
    /// valid for 127.0.0.1, localhost, example.com and *.example.com, no extended key usage.
    pub fn self_signed_ca_leaf(&self, name: &str, cn: &str) {
        let sans = ["example.com", "*.example.com", "localhost", "127.0.0.1"];
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, "Demo");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-sign");
        write(self.dir(), &format!("{name}.pem"), &cert.pem());
        write(self.dir(), &format!("{name}-key.pem"), &key.serialize_pem());
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
        self.sign(name, cn, &[], &[ExtendedKeyUsagePurpose::ClientAuth]);
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
    serial: &[u8],
) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = usages.to_vec();
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    write(dir, &format!("{name}.pem"), &cert.pem());
    write(dir, &format!("{name}-key.pem"), &key.serialize_pem());
}
