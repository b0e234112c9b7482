//! TLS on the client port (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth,
//! --auto-tls) and on the peer port (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file,
//! --peer-client-cert-auth, --peer-auto-tls), checked with etcdctl 3.4's --cacert/--cert/--key
//! against wasmraft and against etcd 3.4.23 given the same certificates, which rcgen makes for
//! each run (`wasmraft_tests::Pki`).

use std::time::Duration;

use wasmraft_tests::{ClusterConfig, CmdOutput, Etcdctl, Flavor, Member, MemberConfig, Pki};

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
    let (scert, skey) =
        (format!("--cert={}", pki.path("stranger.pem")), format!("--key={}", pki.path("stranger-key.pem")));
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
            vec![
                format!("--cert-file={}", pki.path("server.pem")),
                format!("--key-file={}", pki.path("client-key.pem")),
            ],
            "tls: private key does not match public key".into(),
        ),
        (
            vec![format!("--cert-file={}", missing.display()), format!("--key-file={}", pki.path("server-key.pem"))],
            format!("open {}: no such file or directory", missing.display()),
        ),
        (vec![], "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:".into()),
    ];
    for (flags, text) in cases {
        assert_refused(MemberConfig::https_client, &flags, &text);
    }
}

/// The same for the peer files (etcd reads them first, before the client ones); and which files
/// http URLs ignore.
#[test]
fn bad_peer_cert_files_are_reported() {
    let pki = Pki::new();
    let missing = pki.dir().join("missing.pem");
    let [cert, _] = pki.peer_flags("peer");
    let [_, stranger_key] = pki.peer_flags("stranger-peer");
    let cases: [(Vec<String>, String); 4] = [
        (vec![cert.clone(), stranger_key], "tls: private key does not match public key".into()),
        (
            vec![format!("--peer-cert-file={}", missing.display()), pki.peer_flags("peer")[1].clone()],
            format!("open {}: no such file or directory", missing.display()),
        ),
        (vec![cert], "KeyFile and CertFile must both be present[key: , cert: ".into()),
        (vec![], "cannot listen on TLS for 127.0.0.1:".into()),
    ];
    for (flags, text) in cases {
        assert_refused(MemberConfig::https_peer, &flags, &text);
    }
    // etcd loads the peer files even when every peer URL is http (its peer dialer presents
    // them), but ignores the client files when every client URL is http.
    let missing_peer = [format!("--peer-cert-file={}", missing.display()), pki.peer_flags("peer")[1].clone()];
    assert_refused(|c| c, &missing_peer, &format!("open {}: no such file or directory", missing.display()));
    for flavor in [Flavor::subject(), Flavor::Etcd] {
        let config = MemberConfig::new(flavor)
            .arg(format!("--cert-file={}", missing.display()))
            .arg(format!("--key-file={}", pki.path("server-key.pem")));
        let member = Member::start_with(config);
        assert!(
            member.log().contains("is HTTP while peer key/cert files are presented. Ignored key/cert files."),
            "{flavor}"
        );
    }
}

/// Both flavors, started with `flags` on `https` URLs, exit non-zero and log `text`.
fn assert_refused(https: fn(MemberConfig) -> MemberConfig, flags: &[String], text: &str) {
    for flavor in [Flavor::subject(), Flavor::Etcd] {
        let mut config = https(MemberConfig::new(flavor));
        for f in flags {
            config = config.arg(f.clone());
        }
        let mut member = Member::spawn(config);
        let status = member.wait_exit(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| !s.success()),
            "{flavor} with {flags:?} should exit with an error:\n{}",
            member.log()
        );
        assert!(member.log().contains(text), "{flavor} with {flags:?}: no {text:?} in\n{}", member.log());
    }
}

/// The flags every member of a peer-TLS cluster gets: its peer certificate (one for all, valid
/// for 127.0.0.1), the CA that verifies the others', client certificates required.
fn peer_tls_flags(pki: &Pki) -> Vec<String> {
    let mut flags = pki.peer_flags("peer").to_vec();
    flags.push(format!("--peer-trusted-ca-file={}", pki.path("ca.pem")));
    flags.push("--peer-client-cert-auth".into());
    flags
}

/// What etcd logs when a member with `far-peer.pem` (10.9.9.9) connects from 127.0.0.1.
const FAR_PEER_REJECTED: &str = "(error \"x509: certificate is valid for 10.9.9.9, not 127.0.0.1\", ServerName \"\", IPAddresses [\"10.9.9.9\"], DNSNames [])";

/// A 3-member cluster talking TLS on the peer port, verifying each other's certificates: a put
/// on one member is read on another, the member list shows the https peer URLs; members whose
/// certificate another CA signed, or whose certificate names another address, cannot join (the
/// cluster refuses their connections); a learner with a good certificate joins and is promoted
/// through a follower; a follower killed and restarted rejoins. The outputs of the client
/// commands are compared with etcd's.
#[test]
fn peer_tls_cluster_matches_etcd() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let pki = Pki::new();
    let subject = peer_tls_transcript(Flavor::subject(), &pki);
    let etcd = peer_tls_transcript(Flavor::Etcd, &pki);
    for i in 0..subject.len() {
        assert_eq!(
            subject[i].1.normalized().stdout,
            etcd[i].1.normalized().stdout,
            "{}:\n{}\n{}",
            subject[i].0,
            render(&subject),
            render(&etcd)
        );
    }
}

fn peer_tls_transcript(flavor: Flavor, pki: &Pki) -> Vec<(String, CmdOutput)> {
    // A snapshot every 20 entries; wasmraft also keeps only 5 entries behind it (etcd keeps
    // 5000, a fixed number), so its restarted follower below catches up by snapshot, sent over
    // TLS.
    let mut config = ClusterConfig::new(flavor, 3).https_peer().arg("--snapshot-count=20");
    if flavor == Flavor::Wasmraft {
        config = config.arg("--snapshot-catchup-entries=5");
    }
    for f in peer_tls_flags(pki) {
        config = config.arg(f);
    }
    let mut cluster = config.start();
    let mut out: Vec<(String, CmdOutput)> = Vec::new();
    let mut check = |what: &str, o: CmdOutput| {
        assert!(o.success(), "{flavor}: {what}: {}", o.render());
        out.push((what.to_string(), o));
    };
    check("put on m0", cluster.etcdctl(0).run(&["put", "foo", "bar"]));
    check("get on m1", cluster.etcdctl(1).run(&["get", "foo"]));
    let list = cluster.etcdctl(2).run(&["member", "list"]);
    for m in cluster.members() {
        assert!(
            list.stdout.contains(&format!(", {}, ", m.peer_url())),
            "{flavor}: {} not listed: {}",
            m.peer_url(),
            list.render()
        );
    }
    assert!(m_count(&list.stdout, "https://127.0.0.1:") == 3, "{flavor}: {}", list.render());

    // Not from our CA; from our CA but for another address. Neither gets the member list.
    for (name, cert) in [("s3", "stranger-peer"), ("f3", "far-peer")] {
        let mut joiner = cluster.joiner_config(name, &[0, 1, 2]);
        joiner.extra_args.retain(|a| !a.starts_with("--peer-cert-file=") && !a.starts_with("--peer-key-file="));
        joiner.extra_args.extend(pki.peer_flags(cert));
        let i = cluster.spawn_join(joiner);
        let joiner = cluster.member_mut(i);
        let status = joiner.wait_exit(Duration::from_secs(30));
        assert!(status.is_some_and(|s| !s.success()), "{flavor}: {cert} should not join:\n{}", joiner.log());
        let log = joiner.log();
        assert!(log.contains("could not retrieve cluster information from the given URLs"), "{flavor}: {cert}:\n{log}");
    }
    let logs: String = (0..3).map(|i| cluster.member(i).log()).collect();
    assert!(logs.contains("rejected connection from \"127.0.0.1:"), "{flavor}: no rejected connection logged");
    assert!(logs.contains(FAR_PEER_REJECTED), "{flavor}: no {FAR_PEER_REJECTED} in the members' logs");
    let founders = (0..3).map(|i| cluster.endpoint(i)).collect::<Vec<_>>().join(",");
    // etcdctl 3.4 prints the health lines on stderr.
    let health = Etcdctl::new(founders).run(&[DIAL, COMMAND, "endpoint", "health"]);
    assert!(health.success() && m_count(&health.stderr, "is healthy") == 3, "{flavor}: {}", health.render());

    // A learner joins over TLS (its `GET /members` verified both ways) and is promoted through
    // a follower, which asks the leader over the peer port (`POST /members/promote/<id>`).
    let learner = cluster.joiner_config("l3", &[0, 1, 2]);
    // etcd's strict reconfiguration check wants every member connected for 5 s first.
    let added = retry(flavor, "member add", || {
        cluster.etcdctl(0).run(&["member", "add", "l3", "--learner", &format!("--peer-urls={}", learner.peer_url())])
    });
    let id = added.stdout.split_whitespace().nth(1).unwrap_or_default().to_string();
    cluster.join(learner);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (0..3).find(|&i| i != leader).unwrap_or_default();
    // Refused until the learner has caught up ("not in sync").
    let promoted =
        retry(flavor, "member promote", || cluster.etcdctl(follower).run(&[DIAL, COMMAND, "member", "promote", &id]));
    // etcdctl prints ids as `%16x`: one with a leading zero nibble is padded with a space.
    let words = promoted.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("Member {id} promoted in cluster")), "{flavor}: {}", promoted.render());

    // A follower down and back (a follower: a put racing the election after a leader's death
    // may time out on etcd, which does not retry a proposal lost with its leader).
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let victim = (0..3).find(|&i| i != leader).unwrap_or_default();
    cluster.kill9(victim);
    check("put while a follower is down", cluster.etcdctl(leader).run(&["put", "k2", "v2"]));
    // Enough writes for a snapshot, then one more after wasmraft's 1 s durability interval: the
    // leader compacts its log once the state is durable.
    let rt = wasmraft_tests::runtime();
    rt.block_on(async {
        let mut client = cluster.client(leader, Duration::from_secs(5)).await;
        for i in 0..50 {
            client.put(format!("more{i}"), "x", None).await.unwrap_or_else(|e| panic!("{flavor}: put more{i}: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        client.put("durable", "x", None).await.unwrap_or_else(|e| panic!("{flavor}: put durable: {e}"));
    });
    if flavor == Flavor::Wasmraft {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cluster.member(leader).current_log().contains("raft: compacted the log up to index") {
            assert!(std::time::Instant::now() < deadline, "{flavor}: the leader did not compact its log");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cluster.restart(victim);
    check("get on the follower after its restart", cluster.etcdctl(victim).run(&["get", "k2"]));
    check("and the later writes", cluster.etcdctl(victim).run(&["get", "more49"]));
    if flavor == Flavor::Wasmraft {
        let log = cluster.member(victim).current_log();
        assert!(
            log.contains("installing snapshot at index"),
            "{flavor}: the follower did not catch up by snapshot:\n{log}"
        );
    }
    out
}

/// Runs `command` until it succeeds (15 s at most).
fn retry(flavor: Flavor, what: &str, mut command: impl FnMut() -> CmdOutput) -> CmdOutput {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let o = command();
        if o.success() {
            return o;
        }
        assert!(std::time::Instant::now() < deadline, "{flavor}: {what}: {}", o.render());
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn m_count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// --auto-tls and --peer-auto-tls on a 3-member cluster: self-signed certificates on both ports,
/// which members accept from each other without verification (etcd's InsecureSkipVerify), as
/// etcdctl does with --insecure-skip-tls-verify. Leases are renewed through followers, which
/// reach the leader over TLS (etcd through its peer URL, wasmraft through its client URL).
#[test]
fn auto_tls_on_both_ports() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    for flavor in [Flavor::subject(), Flavor::Etcd] {
        let cluster =
            ClusterConfig::new(flavor, 3).https_client().https_peer().arg("--auto-tls").arg("--peer-auto-tls").start();
        let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify", DIAL, COMMAND];
        let run = |i: usize, args: &[&str]| {
            let mut all = skip.to_vec();
            all.extend_from_slice(args);
            let o = cluster.etcdctl(i).run(&all);
            assert!(o.success(), "{flavor}: m{i} {args:?}: {}", o.render());
            o
        };
        for m in cluster.members() {
            let fixtures = m.data_dir().join("fixtures");
            for f in ["client/cert.pem", "peer/cert.pem", "peer/key.pem"] {
                assert!(fixtures.join(f).exists(), "{flavor}: {f} in {}", fixtures.display());
            }
        }
        run(0, &["put", "k", "v"]);
        assert_eq!(run(1, &["get", "k"]).stdout, "k\nv\n", "{flavor}");
        let granted = run(2, &["lease", "grant", "60"]).stdout;
        let id = granted
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("{flavor}: lease id in {granted:?}"))
            .to_string();
        for i in 0..3 {
            let renewed = run(i, &["lease", "keep-alive", "--once", &id]).stdout;
            assert!(renewed.contains(&format!("lease {id} keepalived with TTL(60)")), "{flavor}: m{i}: {renewed}");
            let ttl = run(i, &["lease", "timetolive", &id]).stdout;
            assert!(ttl.contains(&format!("lease {id} granted with TTL(60s)")), "{flavor}: m{i}: {ttl}");
        }
    }
}

fn render(t: &[(String, CmdOutput)]) -> String {
    t.iter().map(|(what, o)| format!("== {what}\n{}", o.render())).collect()
}
