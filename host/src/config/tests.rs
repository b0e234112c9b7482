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
    assert_eq!(c.node_config().election_ticks(), 10);
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
