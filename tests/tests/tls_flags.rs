//! The TLS flags beyond certificates and CAs, against wasmraft and etcd 3.4.23 given the same
//! files: --cipher-suites, --client-crl-file, --peer-crl-file, --peer-cert-allowed-cn,
//! --peer-cert-allowed-hostname, --client-cert-allowed-hostname; and a self-signed CA used as
//! its own leaf (etcd's `CommonName-root.crt` fixture), which Go accepts and etcd users rely on.
//! Real etcdctl on the client port; on the peer port (and for TLS 1.2 with one chosen suite,
//! which etcdctl cannot offer) the test's own TLS client, `wasmraft_tests::Probe`.

use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose as Eku;
use wasmraft_tests::{ClusterConfig, CmdOutput, Etcdctl, Flavor, Member, MemberConfig, Pki, Probe};

const DIAL: &str = "--dial-timeout=2s";
const COMMAND: &str = "--command-timeout=3s";

const AES128: &str = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
const AES256: &str = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";

fn both() -> [Flavor; 2] {
    [Flavor::subject(), Flavor::Etcd]
}

fn member(flavor: Flavor, https_client: bool, https_peer: bool, flags: &[String]) -> Member {
    let mut config = MemberConfig::new(flavor);
    if https_client {
        config = config.https_client();
    }
    if https_peer {
        config = config.https_peer();
    }
    for f in flags {
        config = config.arg(f.clone());
    }
    Member::start_with(config)
}

fn etcdctl(member: &Member, tls: &[String], args: &[&str]) -> CmdOutput {
    let mut all: Vec<&str> = vec![DIAL, COMMAND];
    all.extend(tls.iter().map(String::as_str));
    all.extend_from_slice(args);
    Etcdctl::new(member.endpoint()).run(&all)
}

/// The peer port's TLS flags: `cert`'s certificate, the CA verifying connecting members.
fn peer_flags(pki: &Pki, cert: &str) -> Vec<String> {
    let mut flags = pki.peer_flags(cert).to_vec();
    flags.push(format!("--peer-trusted-ca-file={}", pki.path("ca.pem")));
    flags.push("--peer-client-cert-auth".into());
    flags
}

/// The member's log has `text` within a few seconds (refusals are logged as they happen).
fn assert_logged(member: &Member, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !member.log().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}: no {text:?} in the log:\n{}",
            member.flavor(),
            member.log_excerpt(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Both flavors (or only `flavors`), started with `flags`, exit non-zero logging `text`.
fn assert_refused(flavors: &[Flavor], flags: &[String], text: &str) {
    for &flavor in flavors {
        let mut config = MemberConfig::new(flavor).https_peer();
        for f in flags {
            config = config.arg(f.clone());
        }
        let mut m = Member::spawn(config);
        let status = m.wait_exit(Duration::from_secs(20));
        assert!(status.is_some_and(|s| !s.success()), "{flavor} with {flags:?} should not start:\n{}", m.log());
        assert!(m.log().contains(text), "{flavor} with {flags:?}: no {text:?} in\n{}", m.log());
    }
}

/// --cipher-suites restricts TLS 1.2 on the client and the peer port alike: a client offering
/// only another suite fails the handshake, one offering the listed suite gets it. TLS 1.3's
/// suites are not configurable in Go, so a TLS 1.3 client (etcdctl) still connects, on both.
#[test]
fn cipher_suites_restrict_tls12_like_etcd() {
    let pki = Pki::new();
    let mut outcomes = Vec::new();
    for flavor in both() {
        let mut flags = vec![
            format!("--cert-file={}", pki.path("server.pem")),
            format!("--key-file={}", pki.path("server-key.pem")),
            format!("--cipher-suites={AES128}"),
        ];
        flags.extend(pki.peer_flags("peer"));
        let m = member(flavor, true, true, &flags);
        let mut seen = Vec::new();
        for url in [m.endpoint(), m.peer_url()] {
            let refused = Probe::tls12(AES256).handshake(&url);
            assert!(refused.is_err(), "{flavor} {url}: a client offering only {AES256}: {refused:?}");
            let agreed = Probe::tls12(AES128).handshake(&url);
            assert_eq!(agreed.as_deref(), Ok(AES128), "{flavor} {url}");
            let tls13 = Probe::default().handshake(&url);
            assert!(tls13.as_deref().is_ok_and(|s| s.starts_with("TLS13_")), "{flavor} {url}: {tls13:?}");
            seen.push((refused.is_ok(), agreed, tls13.is_ok()));
        }
        let cacert = [format!("--cacert={}", pki.path("ca.pem"))];
        let put = etcdctl(&m, &cacert, &["put", "k", "v"]);
        assert!(put.success(), "{flavor}: {}", put.render());
        assert_eq!(etcdctl(&m, &cacert, &["get", "k"]).stdout, "k\nv\n", "{flavor}");
        outcomes.push(seen);
    }
    assert_eq!(outcomes[0], outcomes[1], "wasmraft and etcd differ");
}

/// A name Go does not know stops the member with etcd's text; one Go knows and rustls lacks
/// (CBC, RC4, 3DES, RSA key exchange), which etcd would serve, stops wasmraft with its name.
#[test]
fn bad_cipher_suites_are_refused() {
    let pki = Pki::new();
    let with = |suites: &str| {
        let mut flags = pki.peer_flags("peer").to_vec();
        flags.push(format!("--cipher-suites={suites}"));
        flags
    };
    let unknown = with(&format!("{AES128},TLS_NO_SUCH_SUITE"));
    assert_refused(&both(), &unknown, "unexpected TLS cipher suite \"TLS_NO_SUCH_SUITE\"");
    if Flavor::subject() == Flavor::Wasmraft {
        for name in
            ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_AES_128_GCM_SHA256"]
        {
            let text = format!("TLS cipher suite \"{name}\" is not supported by wasmraft");
            assert_refused(&[Flavor::Wasmraft], &with(name), &text);
        }
    }
}

/// etcd's TestCtlV3GetRevokedCRL: with --client-crl-file, etcdctl presenting a revoked
/// certificate fails, a good one works. The list is read again for each connection, so a new
/// one revoking the good certificate too applies without a restart.
#[test]
fn client_crl_file_refuses_revoked_certificates() {
    let pki = Pki::new();
    pki.client("revoked", "revoked-user");
    for flavor in both() {
        let crl = pki.revoke("revoke.crl", &["revoked"]);
        let mut flags = pki.server_flags().to_vec();
        flags.push(format!("--client-crl-file={crl}"));
        let m = member(flavor, true, false, &flags);
        let revoked = etcdctl(&m, &pki.etcdctl_flags("revoked"), &["put", "k", "v"]);
        assert!(!revoked.success() && revoked.stderr.contains("Error:"), "{flavor}: {}", revoked.render());
        let line =
            "(error \"transport: certificate serial 9a0401 revoked\", ServerName \"\", IPAddresses [], DNSNames [])";
        assert_logged(&m, line);
        let good = etcdctl(&m, &pki.etcdctl_flags("client"), &["put", "k", "v"]);
        assert!(good.success(), "{flavor}: {}", good.render());

        pki.revoke("revoke.crl", &["revoked", "client"]);
        let now_revoked = etcdctl(&m, &pki.etcdctl_flags("client"), &["get", "k"]);
        assert!(!now_revoked.success(), "{flavor}: the new list is not read: {}", now_revoked.render());
        assert_logged(
            &m,
            "(error \"transport: certificate serial 9a0101 revoked\", ServerName \"\", IPAddresses [], DNSNames [])",
        );
    }
    // A list that cannot be read stops wasmraft at start (etcd would start and refuse every
    // client).
    if Flavor::subject() == Flavor::Wasmraft {
        let missing = pki.dir().join("missing.crl");
        let mut config = MemberConfig::new(Flavor::Wasmraft).https_client();
        for f in pki.server_flags() {
            config = config.arg(f);
        }
        let mut m = Member::spawn(config.arg(format!("--client-crl-file={}", missing.display())));
        assert!(m.wait_exit(Duration::from_secs(20)).is_some_and(|s| !s.success()), "{}", m.log());
        assert!(m.log().contains(&format!("open {}: no such file or directory", missing.display())), "{}", m.log());
    }
}

/// --peer-crl-file: a member presenting a revoked peer certificate gets nothing from the peer
/// port; a good one gets `GET /members`.
#[test]
fn peer_crl_file_refuses_revoked_members() {
    let pki = Pki::new();
    pki.sign("revoked-peer", "peer", &["127.0.0.1", "localhost"], &[Eku::ServerAuth, Eku::ClientAuth]);
    let crl = pki.revoke("revoke.crl", &["revoked-peer"]);
    for flavor in both() {
        let mut flags = peer_flags(&pki, "peer");
        flags.push(format!("--peer-crl-file={crl}"));
        let m = member(flavor, false, true, &flags);
        let good = Probe::default().with_cert(&pki, "peer").get_members(&m.peer_url());
        assert_eq!(good.as_deref(), Ok("HTTP/1.1 200 OK"), "{flavor}");
        let revoked = Probe::default().with_cert(&pki, "revoked-peer").get_members(&m.peer_url());
        assert!(revoked.is_err(), "{flavor}: {revoked:?}");
        let sans = "IPAddresses [\"127.0.0.1\"], DNSNames [\"localhost\"])";
        assert_logged(&m, &format!("(error \"transport: certificate serial 9a0401 revoked\", ServerName \"\", {sans}"));
    }
}

/// --peer-cert-allowed-cn and --peer-cert-allowed-hostname: a member whose (verified)
/// certificate has another common name, or is not valid for the host name, is refused with
/// etcd's text; setting both stops the member.
#[test]
fn peer_cert_allowed_cn_and_hostname() {
    let pki = Pki::new();
    let (server, client) = (Eku::ServerAuth, Eku::ClientAuth);
    pki.sign("other-cn", "other", &["127.0.0.1", "localhost"], &[server.clone(), client.clone()]);
    pki.sign("ip-only", "peer", &["127.0.0.1"], &[server, client]);
    let refused = "(error \"client certificate authentication failed\"";
    for flavor in both() {
        let cases = [
            (
                "--peer-cert-allowed-cn=peer",
                "peer",
                "other-cn",
                "IPAddresses [\"127.0.0.1\"], DNSNames [\"localhost\"])",
            ),
            ("--peer-cert-allowed-hostname=localhost", "peer", "ip-only", "IPAddresses [\"127.0.0.1\"], DNSNames [])"),
        ];
        for (flag, good, bad, sans) in cases {
            let mut flags = peer_flags(&pki, "peer");
            flags.push(flag.into());
            let m = member(flavor, false, true, &flags);
            let ok = Probe::default().with_cert(&pki, good).get_members(&m.peer_url());
            assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"), "{flavor} {flag} {good}");
            let no = Probe::default().with_cert(&pki, bad).get_members(&m.peer_url());
            assert!(no.is_err(), "{flavor} {flag} {bad}: {no:?}");
            assert_logged(&m, &format!("{refused}, ServerName \"\", {sans}"));
        }
    }
    let mut both_flags = peer_flags(&pki, "peer");
    both_flags.extend(["--peer-cert-allowed-cn=peer".into(), "--peer-cert-allowed-hostname=localhost".into()]);
    assert_refused(
        &both(),
        &both_flags,
        "AllowedCN and AllowedHostname are mutually exclusive (cn=\"peer\", hostname=\"localhost\")",
    );
}

/// --experimental-peer-skip-client-san-verification: a member whose certificate (signed by the
/// trusted CA) names 10.9.9.9 but connects from 127.0.0.1 is refused by default, with etcd's
/// text, and let in with the flag; a certificate from another CA stays refused either way.
#[test]
fn peer_skip_client_san_verification() {
    let pki = Pki::new();
    let far = "(error \"x509: certificate is valid for 10.9.9.9, not 127.0.0.1\", ServerName \"\", IPAddresses [\"10.9.9.9\"], DNSNames [])";
    for flavor in both() {
        for skip in [false, true] {
            let mut flags = peer_flags(&pki, "peer");
            if skip {
                flags.push("--experimental-peer-skip-client-san-verification".into());
            }
            let m = member(flavor, false, true, &flags);
            let from_far = Probe::default().with_cert(&pki, "far-peer").get_members(&m.peer_url());
            if skip {
                assert_eq!(from_far.as_deref(), Ok("HTTP/1.1 200 OK"), "{flavor} skipping the SAN check");
                assert!(!m.log().contains(far), "{flavor}:\n{}", m.log_excerpt(30));
            } else {
                assert!(from_far.is_err(), "{flavor}: {from_far:?}");
                assert_logged(&m, far);
            }
            let stranger = Probe::default().with_cert(&pki, "stranger-peer").get_members(&m.peer_url());
            assert!(stranger.is_err(), "{flavor} skip={skip}: another CA's certificate: {stranger:?}");
        }
    }
}

/// --client-cert-allowed-hostname: etcdctl's certificate must be valid for the host name.
#[test]
fn client_cert_allowed_hostname() {
    let pki = Pki::new();
    pki.sign("allowed-client", "root", &["client.example.com"], &[Eku::ClientAuth]);
    pki.sign("other-client", "root", &["other.example.com"], &[Eku::ClientAuth]);
    for flavor in both() {
        let mut flags = pki.server_flags().to_vec();
        flags.push("--client-cert-allowed-hostname=client.example.com".into());
        let m = member(flavor, true, false, &flags);
        let ok = etcdctl(&m, &pki.etcdctl_flags("allowed-client"), &["put", "k", "v"]);
        assert!(ok.success(), "{flavor}: {}", ok.render());
        for bad in ["other-client", "client"] {
            let no = etcdctl(&m, &pki.etcdctl_flags(bad), &["get", "k"]);
            assert!(!no.success(), "{flavor}: {bad}: {}", no.render());
        }
        let line = "(error \"client certificate authentication failed\", ServerName \"\", IPAddresses [], DNSNames [\"other.example.com\"])";
        assert_logged(&m, line);
    }
}

/// etcd's `CommonName-root.crt`: a self-signed CA certificate that is the server certificate,
/// the client certificate and the trusted CA file at once. etcdctl with it works (put, get,
/// user add; then with auth on, its CN `root` is the user) as against etcd; another
/// self-signed CA certificate, not in the CA file, is still refused.
#[test]
fn self_signed_ca_as_leaf_works_like_etcd() {
    let pki = Pki::new();
    pki.self_signed_ca_leaf("cn-root", "root");
    pki.self_signed_ca_leaf("other-root", "root");
    let tls = |name: &str| {
        vec![
            format!("--cacert={}", pki.path("cn-root.pem")),
            format!("--cert={}", pki.path(&format!("{name}.pem"))),
            format!("--key={}", pki.path(&format!("{name}-key.pem"))),
        ]
    };
    let mut transcripts = Vec::new();
    for flavor in both() {
        let flags = [
            format!("--cert-file={}", pki.path("cn-root.pem")),
            format!("--key-file={}", pki.path("cn-root-key.pem")),
            format!("--trusted-ca-file={}", pki.path("cn-root.pem")),
            "--client-cert-auth".into(),
        ];
        let m = member(flavor, true, false, &flags);
        let mut out = Vec::new();
        let steps: &[&[&str]] = &[
            &["put", "k", "v"],
            &["get", "k"],
            &["user", "add", "root", "--new-user-password=rootpw"],
            &["user", "grant-role", "root", "root"],
            &["auth", "enable"],
            &["put", "k2", "v2"],
            &["user", "add", "u1", "--new-user-password=u1pw"],
            &["get", "k2"],
        ];
        for step in steps {
            let o = etcdctl(&m, &tls("cn-root"), step);
            assert!(o.success(), "{flavor}: {step:?}: {}", o.render());
            out.push(o.normalized().stdout);
        }
        let stranger = etcdctl(&m, &tls("other-root"), &["get", "k"]);
        assert!(!stranger.success(), "{flavor}: a self-signed CA not in the CA file: {}", stranger.render());
        transcripts.push(out);
    }
    assert_eq!(transcripts[0], transcripts[1], "wasmraft and etcd differ");
}

/// The same certificate on the peer port of a 3-member cluster, with --peer-cert-allowed-cn
/// and --cipher-suites: members dial each other verifying it as a server certificate and accept
/// it as a client certificate, with its CN checked both ways and the suites applied to dialing.
#[test]
fn peer_cluster_with_self_signed_ca_allowed_cn_and_cipher_suites() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let pki = Pki::new();
    pki.self_signed_ca_leaf("cn-root", "root");
    for flavor in both() {
        let cluster = ClusterConfig::new(flavor, 3)
            .https_peer()
            .arg(format!("--peer-cert-file={}", pki.path("cn-root.pem")))
            .arg(format!("--peer-key-file={}", pki.path("cn-root-key.pem")))
            .arg(format!("--peer-trusted-ca-file={}", pki.path("cn-root.pem")))
            .arg("--peer-client-cert-auth")
            .arg("--peer-cert-allowed-cn=root")
            .arg(format!("--cipher-suites={AES128},{AES256}"))
            .start();
        let put = cluster.etcdctl(0).run(&[DIAL, COMMAND, "put", "k", "v"]);
        assert!(put.success(), "{flavor}: {}", put.render());
        let get = cluster.etcdctl(2).run(&[DIAL, COMMAND, "get", "k"]);
        assert_eq!(get.stdout, "k\nv\n", "{flavor}: {}", get.render());
    }
}
