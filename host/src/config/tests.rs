//! The flags resolved as etcd resolves them.

use std::ffi::OsString;

use super::*;

/// Loads `args` with the environment `env` as a start would.
fn load_with(args: &[&str], env: &[(&str, &str)]) -> Result<(Config, Vec<Note>), String> {
    let args = std::iter::once("wasmraft").chain(args.iter().copied()).map(OsString::from).collect();
    let env: Vec<(OsString, OsString)> = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    match load(args, &env) {
        Ok(Invocation::Run { config, notes }) => Ok((*config, notes)),
        Ok(other) => Err(format!("not a start: {other:?}")),
        Err(LoadError::Usage(e)) => Err(load::clap_reason(&e)),
        Err(LoadError::Invalid(e)) => Err(format!("{e:#}")),
    }
}

fn parse(args: &[&str]) -> Result<Config, String> {
    load_with(args, &[]).map(|(c, _)| c)
}

#[test]
fn etcd_defaults() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(c.listen_client_urls[0].as_str(), "http://localhost:2379/");
    assert_eq!(c.initial_cluster.len(), 1);
    assert_eq!(c.node_config().expect("node config").election_ticks(), 10);
    assert_eq!(c.request_timeout(), Duration::from_secs(7));
}

#[test]
fn guest_limits_flags_for_the_first_deployment() {
    let c = parse(&["--guest-fuel", "1000", "--guest-memory", "65536"]).unwrap();
    assert_eq!((c.guest_fuel, c.guest_memory_bytes), (Some(1000), Some(65536)));
    let c = parse(&["--guest-memory-bytes", "131072"]).unwrap();
    assert_eq!(c.guest_memory_bytes, Some(131072));
    assert_eq!(parse(&["--guest-stack-bytes", "1048576"]).unwrap().guest_stack_bytes, Some(1 << 20));
    let e = parse(&["--guest-stack-bytes", "1000000"]).unwrap_err().to_string();
    assert!(e.contains("--guest-stack-bytes 1000000: must be a power of two"), "{e}");
}

#[test]
fn name_without_initial_cluster_forms_own_cluster() {
    let c = parse(&["--name", "n1", "--initial-advertise-peer-urls", "http://127.0.0.1:9000"]).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("n1.etcd"));
    assert_eq!(c.initial_cluster["n1"][0].as_str(), "http://127.0.0.1:9000/");
}

#[test]
fn bad_flags_are_clear() {
    let e = parse(&["--name", "x", "--initial-cluster", "y=http://localhost:2380"]).unwrap_err();
    assert!(e.to_string().contains("couldn't find local name \"x\""), "{e}");
    let e = parse(&["--election-timeout", "200"]).unwrap_err();
    assert!(e.to_string().contains("at least as 5 times"), "{e}");
    let e = parse(&["--listen-client-urls", "localhost:2379"]).unwrap_err();
    assert!(format!("{e:#}").contains("--listen-client-urls"), "{e:#}");
    assert!(parse(&["--no-such-flag"]).is_err());
}

#[test]
fn metrics_urls() {
    assert!(parse(&[]).unwrap().listen_metrics_urls.is_empty(), "etcd's default is none");
    let c = parse(&["--listen-metrics-urls", "http://127.0.0.1:9100,http://localhost:9101"]).unwrap();
    assert_eq!(c.listen_metrics_urls.len(), 2);
    let e = parse(&["--listen-metrics-urls", "https://127.0.0.1:9100"]).unwrap_err();
    assert!(e.to_string().contains("http only"), "{e}");
    assert!(parse(&["--listen-metrics-urls", "127.0.0.1:9100"]).is_err());
}

#[test]
fn client_tls_flags() {
    let https = ["--listen-client-urls", "https://127.0.0.1:2379"];
    let e = parse(&https).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
    );
    let c = parse(&[https[0], https[1], "--auto-tls"]).unwrap();
    assert!(c.client_tls.auto_tls && c.client_tls.is_empty());
    let c =
        parse(&[https[0], https[1], "--cert-file", "c.pem", "--key-file", "k.pem", "--client-cert-auth=true"]).unwrap();
    assert!(c.client_tls.client_cert_auth);
    assert_eq!(c.client_tls.cert_file.as_deref(), Some(std::path::Path::new("c.pem")));
    // Go's boolean flags: bare, =true and =false.
    assert!(parse(&["--client-cert-auth"]).unwrap().client_tls.client_cert_auth);
    assert!(!parse(&["--client-cert-auth=false"]).unwrap().client_tls.client_cert_auth);
}

#[test]
fn peer_tls_flags() {
    let https = ["--listen-peer-urls", "https://127.0.0.1:2380"];
    let e = parse(&https).unwrap_err();
    assert_eq!(format!("{e:#}"), "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented");
    let c = parse(&[https[0], https[1], "--peer-auto-tls"]).unwrap();
    assert!(c.peer_tls.auto_tls && c.peer_tls.is_empty() && !c.peer_tls.skip_client_san_verify);
    let c = parse(&[
        https[0],
        https[1],
        "--initial-advertise-peer-urls",
        "https://127.0.0.1:2380",
        "--initial-cluster",
        "default=https://127.0.0.1:2380",
        "--peer-cert-file=p.pem",
        "--peer-key-file=pk.pem",
        "--peer-trusted-ca-file=ca.pem",
        "--peer-client-cert-auth",
        "--experimental-peer-skip-client-san-verification",
    ])
    .unwrap();
    assert_eq!(c.peer_tls.cert_file.as_deref(), Some(std::path::Path::new("p.pem")));
    assert!(c.peer_tls.client_cert_auth && c.peer_tls.skip_client_san_verify);
    assert_eq!(c.initial_cluster["default"][0].scheme(), "https");
    // https URLs of other members need no certificate here (they are only dialed).
    assert!(parse(&["--initial-cluster", "default=http://localhost:2380,other=https://127.0.0.1:2390"]).is_ok());
}

#[test]
fn every_new_flag_has_etcds_default() {
    let c = parse(&[]).unwrap();
    assert_eq!((c.max_snapshots, c.max_wals), (5, 5));
    assert!(c.initial_election_tick_advance && c.strict_reconfig_check && !c.pre_vote && !c.force_new_cluster);
    assert_eq!(c.client_conn.max_concurrent_streams, u32::MAX);
    assert_eq!(c.client_conn.keepalive_min_time, Duration::from_secs(5));
    assert_eq!(c.client_conn.keepalive_interval, Duration::from_secs(7200));
    assert_eq!(c.client_conn.keepalive_timeout, Duration::from_secs(20));
    assert_eq!(c.experimental_warning_apply_duration, Duration::from_millis(100));
    assert_eq!(c.experimental_corrupt_check_time, Duration::ZERO);
    assert_eq!(c.auto_compaction, None);
    assert_eq!(c.client_conn.access.cors, ["*".to_string()].into());
    assert_eq!(c.client_conn.access.host_whitelist, ["*".to_string()].into());
    assert_eq!(c.log_outputs, vec![LogOutput::Default]);
    assert_eq!(c.metrics, Metrics::Basic);
    assert!(c.client_tls.policy.cipher_suites.is_empty() && c.wal_dir.is_none() && c.discovery_srv.is_none());
    assert!(c.enable_grpc_gateway && !c.unsafe_no_fsync);
}

#[test]
fn go_flag_syntax() {
    // Repeated: the last one counts. Single dash. Go's booleans and integers.
    let c = parse(&["-name", "a", "--name=b", "-pre-vote", "--strict-reconfig-check=0", "--max-wals=0x10"]).unwrap();
    assert_eq!(c.name, "b");
    assert!(c.pre_vote && !c.strict_reconfig_check);
    assert_eq!(c.max_wals, 16);
    assert!(parse(&["--debug", "false"]).is_err(), "Go's bools never take the next word");
    assert!(parse(&["--debug=F"]).is_ok());
    // Go's string flags take empty values: unset.
    let c = parse(&["--cert-file=", "--wal-dir=", "--data-dir=", "--peer-cert-allowed-cn=", "--config-file="]).unwrap();
    assert!(c.client_tls.cert_file.is_none() && c.wal_dir.is_none() && c.peer_tls.policy.allowed_cn.is_empty());
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    member_command().debug_assert();
}

#[test]
fn v2_and_proxy_are_refused_in_one_line_and_their_off_values_accepted() {
    for args in [
        &["--enable-v2"][..],
        &["--enable-v2=true"],
        &["--experimental-enable-v2v3=/v2"],
        &["--proxy=on"],
        &["--proxy=readonly"],
        &["--discovery=https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de"],
    ] {
        let e = parse(args).unwrap_err();
        assert!(e.contains("wasmraft serves the etcd v3 API only") && !e.contains('\n'), "{args:?}: {e}");
    }
    assert!(
        parse(&["--enable-v2=false", "--proxy=off", "--discovery-fallback=exit", "--proxy-read-timeout=5"]).is_ok()
    );
}

#[test]
fn environment_as_etcd_applies_it() {
    let (c, notes) = load_with(&[], &[("ETCD_NAME", "n1"), ("ETCD_MAX_WALS", "7"), ("ETCD_NO_SUCH", "1")]).unwrap();
    assert_eq!((c.name.as_str(), c.max_wals), ("n1", 7));
    let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
    assert!(texts.contains(&"pkg/flags: recognized and used environment variable ETCD_NAME=n1"), "{texts:?}");
    assert!(texts.contains(&"pkg/flags: unrecognized environment variable ETCD_NO_SUCH=1"), "{texts:?}");
    // An empty variable is unset.
    assert_eq!(load_with(&[], &[("ETCD_NAME", "")]).unwrap().0.name, "default");
    let e = load_with(&["--name=x"], &[("ETCD_NAME", "y")]).unwrap_err();
    assert_eq!(
        e,
        "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
    );
    let e = load_with(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]).unwrap_err();
    assert!(e.starts_with("invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL"), "{e}");
}

#[test]
fn auto_compaction_flags() {
    use wasmraft_api::compactor::Policy;
    assert_eq!(parse(&[]).unwrap().auto_compaction, None, "etcd's default: off");
    let c = parse(&["--auto-compaction-retention", "2s"]).unwrap();
    assert_eq!(c.auto_compaction, Some(Policy::Periodic(Duration::from_secs(2))));
    let c = parse(&["--auto-compaction-retention=1"]).unwrap();
    assert_eq!(c.auto_compaction, Some(Policy::Periodic(Duration::from_secs(3600))));
    let c = parse(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=10",
        "--wasmraft-test-revision-compaction-interval=1s",
    ])
    .unwrap();
    assert_eq!(c.auto_compaction, Some(Policy::Revision { retention: 10, interval: Duration::from_secs(1) }));
    let e = parse(&["--auto-compaction-mode", "bogus"]).unwrap_err();
    assert_eq!(format!("{e:#}"), "unknown auto-compaction-mode \"bogus\"");
    let e = parse(&["--auto-compaction-retention", "abc"]).unwrap_err();
    assert_eq!(format!("{e:#}"), "error parsing CompactionRetention: time: invalid duration \"abc\"");
}

#[test]
fn quota_flag_takes_etcds_negative_to_disable() {
    assert_eq!(parse(&[]).unwrap().quota_backend_bytes, 0);
    assert_eq!(parse(&["--quota-backend-bytes", "-1"]).unwrap().quota_backend_bytes, -1);
    assert_eq!(parse(&["--quota-backend-bytes=53248"]).unwrap().quota_backend_bytes, 53248);
}

#[test]
fn log_outputs_as_etcd_checks_them() {
    assert_eq!(parse(&["--log-outputs=stdout"]).unwrap().log_outputs, vec![LogOutput::Stdout]);
    assert!(parse(&["--log-outputs=stderr,stdout"]).unwrap_err().contains("supports only 1 value"));
    assert!(parse(&["--log-outputs=/tmp/x.log"]).unwrap_err().contains("unknown log-output"));
    let c = parse(&["--logger=zap", "--log-outputs=stderr,/tmp/x.log"]).unwrap();
    assert_eq!(c.log_outputs, vec![LogOutput::Stderr, LogOutput::File("/tmp/x.log".into())]);
    assert_eq!(parse(&["--log-output=stdout"]).unwrap().log_outputs, vec![LogOutput::Stdout]);
    assert_eq!(parse(&["--debug"]).unwrap().log_level, LogLevel::Debug);
    assert_eq!(parse(&["--debug", "--log-level=error"]).unwrap().log_level, LogLevel::Debug);
    assert_eq!(parse(&["--debug", "--logger=zap"]).unwrap().log_level, LogLevel::Info);
    assert_eq!(parse(&["--log-level=debug", "--logger=zap"]).unwrap().log_level, LogLevel::Debug);
}

#[test]
fn a_config_file_replaces_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.yml");
    std::fs::write(&path, "name: from-file\ninitial-cluster: from-file=http://localhost:2380\nmax-wals: 3\n").unwrap();
    let p = path.to_str().unwrap();
    let (c, notes) = load_with(&["--config-file", p, "--name=from-flag"], &[("ETCD_MAX_WALS", "9")]).unwrap();
    assert_eq!((c.name.as_str(), c.max_wals), ("from-file", 3));
    assert!(notes[0].text.contains("Other configuration command line flags and environment variables will be ignored"));
    assert!(notes.iter().any(|n| n.text == "etcdmain: ignoring --name: a configuration file is given"));
    // ETCD_CONFIG_FILE names it too; then the other variables are ignored as well.
    let (c, _) = load_with(&[], &[("ETCD_CONFIG_FILE", p), ("ETCD_NAME", "from-env")]).unwrap();
    assert_eq!(c.name, "from-file");
}

#[test]
fn config_file_values_as_etcd_reads_them() {
    let cmd = member_command();
    let yaml = "\
name: m1
Data-Dir: /d
heartbeat-interval:
grpc-keepalive-interval: 7200000000000
grpc-keepalive-timeout: 3s
cipher-suites: [A, B]
cors: http://a:1,http://b:2
enable-pprof: yes
peer-transport-security:
  cert-file: /p.pem
  client-cert-auth: on
  allowed-cn: [etcd]
cert-file: /ignored.pem
";
    let (values, notes) = file::parse(yaml, "c.yml", &cmd).unwrap();
    let got: Vec<(String, usize)> = values.iter().map(|v| (v.arg(), v.line)).collect();
    let want = [
        ("--name=m1", 1),
        ("--data-dir=/d", 2),
        ("--grpc-keepalive-interval=7200000000000ns", 4),
        ("--grpc-keepalive-timeout=3s", 5),
        ("--cipher-suites=A,B", 6),
        ("--cors=http://a:1,http://b:2", 7),
        ("--enable-pprof=true", 8),
        ("--peer-cert-file=/p.pem", 10),
        ("--peer-client-cert-auth=true", 11),
        ("--peer-cert-allowed-cn=etcd", 12),
    ];
    assert_eq!(got, want.iter().map(|(a, l)| (a.to_string(), *l)).collect::<Vec<_>>());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].text.contains("line 13: unknown key \"cert-file\""), "{notes:?}");
    let e = file::parse("name: a\nmax-wals: [1]\n", "c.yml", &cmd).unwrap_err().to_string();
    assert_eq!(e, "c.yml: line 2: max-wals: expected a single value, found a list");
    assert!(file::parse("", "c.yml", &cmd).unwrap().0.is_empty());
}
