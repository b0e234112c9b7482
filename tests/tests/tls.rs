//! TLS on the client port (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth,
//! --auto-tls), checked with etcdctl 3.4's --cacert/--cert/--key against wasmraft and against
//! etcd 3.4.23 given the same certificates, which rcgen makes for each run: a CA, a server
//! certificate for 127.0.0.1, a client certificate the CA signed and one a stranger CA signed.
//!
//! Peer TLS is not implemented yet (docs/tls-progress.md).

use std::time::Duration;

use wasmraft_tests::{CmdOutput, Etcdctl, Flavor, Member, MemberConfig, Pki};

/// Short timeouts: the refused cases wait for these.
const DIAL: &str = "--dial-timeout=2s";
const COMMAND: &str = "--command-timeout=3s";

/// One member serving clients on https with `flags`.
fn start(flavor: Flavor, flags: &[String]) -> Member {
    let mut config = MemberConfig::new(flavor).https_client();
    for f in flags {
        config = config.arg(f.clone());
    }
    Member::start_with(config)
}

fn run(member: &Member, args: &[&str]) -> CmdOutput {
    let mut all = vec![DIAL, COMMAND];
    all.extend_from_slice(args);
    Etcdctl::new(member.endpoint()).run(&all)
}

/// The outputs of the checks below for one flavor, for comparing etcd and wasmraft.
fn client_cert_auth_transcript(flavor: Flavor, pki: &Pki) -> Vec<(String, CmdOutput)> {
    let member = start(flavor, &pki.server_flags());
    let cacert = format!("--cacert={}", pki.path("ca.pem"));
    let (cert, key) = (format!("--cert={}", pki.path("client.pem")), format!("--key={}", pki.path("client-key.pem")));
    let (scert, skey) = (format!("--cert={}", pki.path("stranger.pem")), format!("--key={}", pki.path("stranger-key.pem")));
    let mut out = Vec::new();
    let mut check = |what: &str, args: &[&str]| out.push((what.to_string(), run(&member, args)));
    check("put with the client certificate", &[&cacert, &cert, &key, "put", "foo", "bar"]);
    check("get with the client certificate", &[&cacert, &cert, &key, "get", "foo"]);
    check("endpoint health over TLS", &[&cacert, &cert, &key, "endpoint", "health"]);
    check("no client certificate", &[&cacert, "get", "foo"]);
    check("a certificate another CA signed", &[&cacert, &scert, &skey, "get", "foo"]);
    check("server certificate not trusted", &[&cert, &key, "get", "foo"]);
    out
}

#[test]
fn client_cert_auth_matches_etcd() {
    let pki = Pki::new();
    let subject = client_cert_auth_transcript(Flavor::subject(), &pki);
    let etcd = client_cert_auth_transcript(Flavor::Etcd, &pki);

    let ok = |t: &[(String, CmdOutput)], i: usize| t[i].1.success();
    for t in [&subject, &etcd] {
        assert!(ok(t, 0) && ok(t, 1) && ok(t, 2), "{}", render(t));
        assert_eq!(t[1].1.stdout, "foo\nbar\n", "{}", render(t));
        for i in 3..t.len() {
            assert!(!ok(t, i), "{} should be refused:\n{}", t[i].0, render(t));
            assert!(t[i].1.stderr.contains("context deadline exceeded"), "{}", render(t));
        }
    }
    // The successful commands print the same; the refused ones fail the same way (the TLS alert
    // in etcdctl's log line may name the reason differently).
    for i in 0..2 {
        assert_eq!(subject[i].1.normalized().stdout, etcd[i].1.normalized().stdout, "{}", subject[i].0);
    }
    for i in 3..subject.len() {
        assert_eq!(subject[i].1.code, etcd[i].1.code, "{}:\n{}\n{}", subject[i].0, render(&subject), render(&etcd));
    }
}

/// --auto-tls: a self-signed certificate in the data dir, which etcdctl accepts only with
/// --insecure-skip-tls-verify (and --insecure-transport=false, without which etcdctl 3.4 sets up
/// no TLS configuration to skip verification in). Same checks against etcd.
#[test]
fn auto_tls_serves_https() {
    for flavor in [Flavor::subject(), Flavor::Etcd] {
        let member = start(flavor, &["--auto-tls".into()]);
        let fixtures = member.data_dir().join("fixtures").join("client");
        for f in ["cert.pem", "key.pem"] {
            assert!(fixtures.join(f).exists(), "{flavor}: {f} in {}", fixtures.display());
        }
        let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
        let put = run(&member, &[skip[0], skip[1], "put", "k", "v"]);
        assert!(put.success(), "{flavor}: {}", put.render());
        let get = run(&member, &[skip[0], skip[1], "get", "k"]);
        assert_eq!(get.stdout, "k\nv\n", "{flavor}: {}", get.render());
        // A self-signed certificate verifies for nobody.
        let verified = run(&member, &["--insecure-transport=false", "get", "k"]);
        assert!(!verified.success(), "{flavor}: {}", verified.render());
        // Plain HTTP/2 on the TLS port gets nowhere either.
        let plain = Etcdctl::new(member.endpoint().replace("https://", "http://")).run(&[DIAL, COMMAND, "get", "k"]);
        assert!(!plain.success(), "{flavor}: {}", plain.render());
    }
}

/// The server certificate files are read at every handshake (etcd's GetCertificate): replaced
/// files take effect for new connections without a restart.
#[test]
fn rotated_server_certificate_applies_without_restart() {
    for flavor in [Flavor::subject(), Flavor::Etcd] {
        let (old, new) = (Pki::new(), Pki::new());
        let member = start(
            flavor,
            &[format!("--cert-file={}", old.path("server.pem")), format!("--key-file={}", old.path("server-key.pem"))],
        );
        let get = |ca: &Pki| run(&member, &[&format!("--cacert={}", ca.path("ca.pem")), "get", "k"]);
        let before = get(&old);
        assert!(before.success(), "{flavor}: {}", before.render());
        for f in ["server.pem", "server-key.pem"] {
            std::fs::copy(new.path(f), old.path(f)).expect("replace the server's files");
        }
        let after = get(&new);
        assert!(after.success(), "{flavor}: the new certificate: {}", after.render());
        let stale = get(&old);
        assert!(!stale.success(), "{flavor}: the old CA still verifies: {}", stale.render());
    }
}

/// The member refuses to start, with etcd's text, when the files are wrong.
#[test]
fn bad_cert_files_are_reported() {
    let pki = Pki::new();
    let missing = pki.dir().join("missing.pem");
    let cases: [(Vec<String>, String); 3] = [
        (
            vec![format!("--cert-file={}", pki.path("server.pem")), format!("--key-file={}", pki.path("client-key.pem"))],
            "tls: private key does not match public key".into(),
        ),
        (
            vec![format!("--cert-file={}", missing.display()), format!("--key-file={}", pki.path("server-key.pem"))],
            format!("open {}: no such file or directory", missing.display()),
        ),
        (
            vec![],
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:".into(),
        ),
    ];
    for (flags, text) in cases {
        for flavor in [Flavor::subject(), Flavor::Etcd] {
            let mut config = MemberConfig::new(flavor).https_client();
            for f in &flags {
                config = config.arg(f.clone());
            }
            let mut member = Member::spawn(config);
            let status = member.wait_exit(Duration::from_secs(20));
            assert!(status.is_some_and(|s| !s.success()), "{flavor} with {flags:?} should exit with an error:\n{}", member.log());
            assert!(member.log().contains(&text), "{flavor} with {flags:?}: no {text:?} in\n{}", member.log());
        }
    }
}

fn render(t: &[(String, CmdOutput)]) -> String {
    t.iter().map(|(what, o)| format!("== {what}\n{}", o.render())).collect()
}
