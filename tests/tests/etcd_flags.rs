//! etcd 3.4's command line, config file and environment (issue 23): what starts etcd starts
//! wasmraft, with the same meaning.
//!
//! - The flag table is generated from the real `etcd --help` at run time (never a copy): every
//!   flag listed is accepted by wasmraft with etcd's default and read from its `ETCD_*`
//!   variable, or is one of the v2 settings wasmraft refuses in one line ([`REFUSED`]).
//!   wasmraft's hidden `--wasmraft-print-flags` shows the resolved values after the same checks a
//!   start makes.
//! - [`EFFECT_TESTS`]: every flag → the test that shows what it does (not only that it parses).
//! - The same config file given to etcd 3.4.23 and to wasmraft starts the same member (the same
//!   member and cluster IDs, URLs, name and data dir in the startup lines); a file with every key
//!   etcd 3.4 reads starts both; the file wins over flags and environment on both; a bad value
//!   is reported with its key and line.
//! - Unknown `ETCD_*` variables and a variable shadowed by a flag get etcd's texts on both;
//!   `--version` prints etcd's lines and then wasmraft's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wasmraft_tests::etcdctl::{CmdOutput, run_captured};
use wasmraft_tests::{Flavor, Member, MemberConfig, Pki, etcd_bin, free_port, wasmraft_bin};

/// The settings wasmraft refuses (etcd's v2 API, v2 proxy and v2 discovery): flag, a refused
/// value. Their disabled values — etcd's defaults — are accepted.
const REFUSED: &[(&str, &str)] = &[
    ("enable-v2", "true"),
    ("experimental-enable-v2v3", "/v2/"),
    ("proxy", "on"),
    ("proxy", "readonly"),
    ("discovery", "https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de"),
];

/// The text of every refusal.
const V3_ONLY: &str = "wasmraft serves the etcd v3 API only";

/// Flags accepted without effect, logged once at start (README, "Flags"; docs/decisions.md).
const NO_EFFECT: &[&str] =
    &["experimental-backend-bbolt-freelist-type", "experimental-compaction-batch-limit", "log-package-levels"];

/// Every flag of `etcd --help` → the test that shows its effect (`file::test`, the file one of
/// tests/tests or a unit test's module path from the workspace root), or "none yet"
/// while the operation behind it is being built. A row is needed for every flag (checked by
/// `every_flag_has_an_effect_row`), and a named test must exist.
const EFFECT_TESTS: &[(&str, &str)] = &[
    // Member
    ("name", "member_list::member_list_shows_the_published_member_like_etcd"),
    ("data-dir", "durability::graceful_restart_keeps_everything_default_flags"),
    ("wal-dir", "raft_flags::wal_dir_holds_the_log_outside_the_data_dir"),
    ("snapshot-count", "snapshot_catchup::a_member_behind_the_compacted_log_catches_up_by_snapshot"),
    ("heartbeat-interval", "raft_flags::heartbeat_interval_sets_how_often_the_leader_heartbeats"),
    ("election-timeout", "lease::lease_api_matches_etcd"),
    ("initial-election-tick-advance", "raft_flags::initial_election_tick_advance_speeds_up_the_first_election"),
    ("listen-peer-urls", "cluster::three_members_replicate_writes_and_agree_on_membership_and_status"),
    ("listen-client-urls", "cluster::three_members_replicate_writes_and_agree_on_membership_and_status"),
    ("max-snapshots", "snapshot_catchup::max_snapshots_keeps_the_newest_received_snapshot_files"),
    ("max-wals", "host/storage/src/raft_log::max_wals_keeps_released_segments_up_to_the_limit"),
    ("quota-backend-bytes", "quota::a_small_quota_takes_a_put_then_raises_nospace_as_etcds_does"),
    ("backend-batch-interval", "ops_flags::backend_batch_interval_and_limit_pace_durable_commits_as_etcds_backend"),
    ("backend-batch-limit", "ops_flags::backend_batch_interval_and_limit_pace_durable_commits_as_etcds_backend"),
    ("max-txn-ops", "request_limits::max_txn_ops_limits_each_list_of_a_txn_as_etcd"),
    ("max-request-bytes", "generic_api::errors_have_clear_messages_and_exit_codes"),
    ("max-concurrent-streams", "net_flags::max_concurrent_streams_limits_streams_per_connection_as_etcd"),
    ("grpc-keepalive-min-time", "net_flags::pinging_too_often_gets_goaway_too_many_pings_as_etcd"),
    ("grpc-keepalive-interval", "net_flags::idle_clients_are_pinged_and_silent_ones_dropped_as_etcd"),
    ("grpc-keepalive-timeout", "net_flags::idle_clients_are_pinged_and_silent_ones_dropped_as_etcd"),
    // Clustering
    ("initial-advertise-peer-urls", "member_list::member_list_shows_the_published_member_like_etcd"),
    ("initial-cluster", "cluster::three_members_replicate_writes_and_agree_on_membership_and_status"),
    ("initial-cluster-state", "membership::membership_changes_match_etcd"),
    ("initial-cluster-token", "etcd_flags::the_same_config_file_starts_the_same_member_on_etcd_and_wasmraft"),
    ("advertise-client-urls", "member_list::member_list_shows_the_published_member_like_etcd"),
    ("discovery", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("discovery-fallback", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("discovery-proxy", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("discovery-srv", "net_flags::discovery_srv_bootstraps_three_members_from_srv_records"),
    ("discovery-srv-name", "net_flags::discovery_srv_bootstraps_three_members_from_srv_records"),
    ("strict-reconfig-check", "raft_flags::strict_reconfig_check_guards_the_quorum_and_can_be_turned_off"),
    ("pre-vote", "raft_flags::pre_vote_keeps_an_isolated_member_from_raising_its_term"),
    ("auto-compaction-retention", "auto_compaction::periodic_retention_compacts_behind_a_window_on_etcd_and_wasmraft"),
    ("auto-compaction-mode", "auto_compaction::revision_mode_keeps_the_last_revisions"),
    ("enable-v2", "etcd_flags::v2_settings_are_refused_in_one_line"),
    // Security
    ("cert-file", "tls::client_cert_auth_matches_etcd"),
    ("key-file", "tls::client_cert_auth_matches_etcd"),
    ("client-cert-auth", "tls::client_cert_auth_matches_etcd"),
    ("client-crl-file", "tls_flags::client_crl_file_refuses_revoked_certificates"),
    ("client-cert-allowed-hostname", "tls_flags::client_cert_allowed_hostname"),
    ("trusted-ca-file", "tls::client_cert_auth_matches_etcd"),
    ("auto-tls", "tls::auto_tls_serves_https"),
    ("peer-cert-file", "tls::peer_tls_cluster_matches_etcd"),
    ("peer-key-file", "tls::peer_tls_cluster_matches_etcd"),
    ("peer-client-cert-auth", "tls::peer_tls_cluster_matches_etcd"),
    ("peer-trusted-ca-file", "tls::peer_tls_cluster_matches_etcd"),
    ("peer-cert-allowed-cn", "tls_flags::peer_cert_allowed_cn_and_hostname"),
    ("peer-cert-allowed-hostname", "tls_flags::peer_cert_allowed_cn_and_hostname"),
    ("peer-auto-tls", "tls::auto_tls_on_both_ports"),
    ("peer-crl-file", "tls_flags::peer_crl_file_refuses_revoked_members"),
    ("cipher-suites", "tls_flags::cipher_suites_restrict_tls12_like_etcd"),
    ("cors", "net_flags::cors_and_host_whitelist_answer_as_etcd"),
    ("host-whitelist", "net_flags::cors_and_host_whitelist_answer_as_etcd"),
    // Auth
    ("auth-token", "auth_jwt::jwt_script_matches_etcd"),
    ("bcrypt-cost", "auth_flags::bcrypt_cost_is_the_cost_of_stored_password_hashes"),
    ("auth-token-ttl", "auth_flags::auth_token_ttl_expires_unused_simple_tokens"),
    // Profiling and monitoring
    ("enable-pprof", "ops_flags::enable_pprof_serves_a_cpu_profile_as_etcd"),
    ("metrics", "ops_flags::metrics_extensive_adds_grpc_handling_histograms_as_etcd"),
    ("listen-metrics-urls", "metrics::etcd_names_and_types_and_they_move_as_etcds_do"),
    // Logging
    ("logger", "etcd_flags::log_outputs_write_where_etcd_writes"),
    ("log-outputs", "etcd_flags::log_outputs_write_where_etcd_writes"),
    ("log-level", "log_level::log_level_and_debug_choose_what_is_logged_as_on_etcd"),
    // v2 proxy
    ("proxy", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("proxy-failure-wait", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("proxy-refresh-interval", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("proxy-dial-timeout", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("proxy-write-timeout", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("proxy-read-timeout", "etcd_flags::v2_settings_are_refused_in_one_line"),
    // Experimental
    (
        "experimental-initial-corrupt-check",
        "corrupt_check::altered_state_is_refused_at_start_and_raises_corrupt_on_etcd_and_wasmraft",
    ),
    (
        "experimental-corrupt-check-time",
        "corrupt_check::altered_state_is_refused_at_start_and_raises_corrupt_on_etcd_and_wasmraft",
    ),
    ("experimental-enable-v2v3", "etcd_flags::v2_settings_are_refused_in_one_line"),
    ("experimental-backend-bbolt-freelist-type", "etcd_flags::flags_without_effect_say_so_once"),
    ("experimental-enable-lease-checkpoint", "ops_flags::lease_checkpoints_keep_a_new_leader_from_resetting_ttls"),
    ("experimental-compaction-batch-limit", "etcd_flags::flags_without_effect_say_so_once"),
    ("experimental-peer-skip-client-san-verification", "tls_flags::peer_skip_client_san_verification"),
    ("experimental-watch-progress-notify-interval", "watch::etcd_client_watch_matches_etcd"),
    ("experimental-warning-apply-duration", "ops_flags::warning_apply_duration_logs_slow_requests_as_etcd"),
    // Unsafe
    ("force-new-cluster", "raft_flags::force_new_cluster_restarts_one_member_alone_with_its_data"),
    // To be deprecated
    ("debug", "log_level::log_level_and_debug_choose_what_is_logged_as_on_etcd"),
    ("log-package-levels", "etcd_flags::flags_without_effect_say_so_once"),
];

/// A flag as `etcd --help` lists it.
#[derive(Debug, Clone)]
struct HelpFlag {
    name: String,
    /// The default as printed (`'5s'` → `5s`, `10` → `10`).
    default: String,
}

/// Runs the real `etcd --help` and reads its flag lines (`  --name 'default'`).
fn etcd_help_flags() -> Vec<HelpFlag> {
    let out = run(clean(etcd_bin()).arg("--help"));
    assert!(out.success(), "etcd --help failed:\n{}", out.render());
    let flags: Vec<HelpFlag> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("  --")?;
            let (name, default) = rest.split_once(' ')?;
            let default = default.trim();
            let default = default.strip_prefix('\'').and_then(|d| d.strip_suffix('\'')).unwrap_or(default);
            Some(HelpFlag { name: name.to_string(), default: default.to_string() })
        })
        .collect();
    // etcd 3.4.23 lists 80; fewer means the help format changed and the table is not honest.
    assert_eq!(flags.len(), 80, "etcd --help flag lines: {flags:?}\n{}", out.stdout);
    flags
}

/// A concrete value that means etcd's printed default.
fn concrete(f: &HelpFlag) -> String {
    match f.default.as_str() {
        "${name}.etcd" => "default.etcd".into(),
        "math.MaxUint32" => u32::MAX.to_string(),
        d => d.to_string(),
    }
}

/// A command with an empty environment (only `PATH`), so a developer's `ETCD_*` variables
/// cannot change what runs; the test adds the variables it means.
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn run(cmd: &mut Command) -> CmdOutput {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let owned = std::mem::replace(cmd, Command::new(&program));
    run_captured(owned, None, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `wasmraft <args> --wasmraft-print-flags` with exactly `env`: the JSON and the run.
fn print_flags(args: &[String], env: &[(&str, &str)]) -> (Value, CmdOutput) {
    let out = run(clean(wasmraft_bin()).args(args).arg("--wasmraft-print-flags").envs(env.iter().copied()));
    assert!(out.success(), "wasmraft {args:?} --wasmraft-print-flags with {env:?}:\n{}", out.render());
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.stdout));
    (json, out)
}

fn flag<'j>(json: &'j Value, name: &str) -> &'j Value {
    &json["flags"][name]
}

/// etcd's printed default and wasmraft's resolved one mean the same.
fn same_default(help: &HelpFlag, json: &Value) -> bool {
    let ours = flag(json, &help.name)["value"].as_str();
    match (help.name.as_str(), help.default.as_str()) {
        ("data-dir", _) => json["resolved"]["data-dir"] == "default.etcd",
        ("initial-cluster", d) => json["resolved"]["initial-cluster"] == d,
        (_, "math.MaxUint32") => ours == Some("4294967295"),
        // An unset string, an empty list, a zero duration.
        (_, "") => matches!(ours, None | Some("") | Some("0s")),
        (_, d) => ours == Some(d),
    }
}

#[test]
fn every_etcd_flag_is_accepted_with_etcds_default_and_variable() {
    let help = etcd_help_flags();
    let (defaults, _) = print_flags(&[], &[]);
    let mut wrong = Vec::new();
    for f in &help {
        if flag(&defaults, &f.name).is_null() {
            wrong.push(format!("--{}: not a wasmraft flag", f.name));
        } else if !same_default(f, &defaults) {
            wrong.push(format!(
                "--{}: etcd's default {:?}, wasmraft's {}",
                f.name,
                f.default,
                flag(&defaults, &f.name)
            ));
        }
    }
    assert!(wrong.is_empty(), "flags that differ from etcd 3.4.23's:\n{}", wrong.join("\n"));

    // Every flag given explicitly at once, with etcd's default: etcd parses the line (then
    // prints its version), wasmraft accepts it and says each value came from the command line.
    // An empty default is given only where etcd takes an empty value (not for URL lists and
    // durations).
    let etcd_takes = |arg: &str| run(clean(etcd_bin()).arg(arg).arg("--version")).success();
    let given_flags: Vec<&HelpFlag> =
        help.iter().filter(|f| !concrete(f).is_empty() || etcd_takes(&format!("--{}=", f.name))).collect();
    assert!(given_flags.len() > 70, "{given_flags:?}");
    let args: Vec<String> = given_flags.iter().map(|f| format!("--{}={}", f.name, concrete(f))).collect();
    let etcd = run(clean(etcd_bin()).args(&args).arg("--version"));
    assert!(etcd.success(), "etcd refuses the test's own command line:\n{}", etcd.render());
    let (given, _) = print_flags(&args, &[]);
    for f in &given_flags {
        assert_eq!(flag(&given, &f.name)["source"], "command-line", "--{}: {}", f.name, flag(&given, &f.name));
    }

    // Every flag from its ETCD_* variable (an empty value is unset, as in etcd).
    let vars: Vec<(String, String)> = help
        .iter()
        .filter(|f| !concrete(f).is_empty())
        .map(|f| (format!("ETCD_{}", f.name.to_uppercase().replace('-', "_")), concrete(f)))
        .collect();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (from_env, out) = print_flags(&[], &env);
    for (f, (var, _)) in help.iter().filter(|f| !concrete(f).is_empty()).zip(&vars) {
        assert_eq!(flag(&from_env, &f.name)["source"], "env", "{var}: {}", flag(&from_env, &f.name));
    }
    assert!(!out.stderr.contains("unrecognized environment variable"), "{}", out.stderr);
}

#[test]
fn v2_settings_are_refused_in_one_line() {
    for (name, value) in REFUSED {
        let arg = format!("--{name}={value}");
        let out = run(clean(wasmraft_bin()).arg(&arg));
        assert_eq!(out.code, Some(1), "{arg}:\n{}", out.render());
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{arg}: one line:\n{}", out.stderr);
        assert!(lines[0].contains(V3_ONLY) && lines[0].contains(&format!("--{name}")), "{arg}: {}", lines[0]);
    }
    // The same from the environment and from a config file.
    let out = run(clean(wasmraft_bin()).env("ETCD_ENABLE_V2", "true"));
    assert!(out.code == Some(1) && out.stderr.contains(V3_ONLY), "ETCD_ENABLE_V2=true:\n{}", out.render());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcd.yml");
    std::fs::write(&file, "name: m1\nproxy: \"on\"\n").expect("write config");
    let out = run(clean(wasmraft_bin()).arg(format!("--config-file={}", file.display())));
    assert!(
        out.code == Some(1) && out.stderr.contains(V3_ONLY) && out.stderr.contains("line 2: proxy"),
        "proxy: on in a file:\n{}",
        out.render()
    );
    // The disabled values, and the flags that only matter with a refused one, are accepted.
    let accepted: Vec<String> = [
        "--enable-v2=false",
        "--proxy=off",
        "--discovery=",
        "--experimental-enable-v2v3=",
        "--discovery-fallback=exit",
        "--discovery-proxy=http://127.0.0.1:3128",
        "--proxy-failure-wait=1",
        "--proxy-refresh-interval=1",
        "--proxy-dial-timeout=1",
        "--proxy-write-timeout=1",
        "--proxy-read-timeout=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    print_flags(&accepted, &[]);
}

#[test]
fn flags_without_effect_say_so_once() {
    let args: Vec<String> = [
        "--experimental-backend-bbolt-freelist-type=map",
        "--experimental-compaction-batch-limit=10",
        "--log-package-levels=etcdserver=DEBUG",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (_, out) = print_flags(&args, &[]);
    for name in NO_EFFECT {
        let said = out.stderr.lines().filter(|l| l.contains(&format!("--{name} has no effect on wasmraft"))).count();
        assert_eq!(said, 1, "--{name}:\n{}", out.stderr);
    }
    // At etcd's defaults nothing is said.
    let (_, out) = print_flags(&[], &[]);
    assert!(!out.stderr.contains("no effect"), "{}", out.stderr);
}

#[test]
fn every_flag_has_an_effect_row() {
    let table: BTreeMap<&str, &str> = EFFECT_TESTS.iter().copied().collect();
    assert_eq!(table.len(), EFFECT_TESTS.len(), "a flag listed twice");
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    for f in etcd_help_flags() {
        match table.get(f.name.as_str()) {
            None => missing.push(format!("--{}: no row", f.name)),
            Some(&"none yet") => {}
            Some(test) => {
                let (file, func) = test.split_once("::").expect("file::test");
                // A test file of this crate, or a unit test's module by its path in the workspace.
                let path = if file.contains('/') {
                    tests_dir.join("..").join("..").join(format!("{file}.rs"))
                } else {
                    tests_dir.join(format!("{file}.rs"))
                };
                let source = std::fs::read_to_string(path).unwrap_or_default();
                if !source.contains(&format!("fn {func}(")) {
                    missing.push(format!("--{}: {test} does not exist", f.name));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// A config file for one member on `config`'s ports, `data_dir` and cluster token `token`.
fn member_file(config: &MemberConfig, data_dir: &Path, token: &str) -> String {
    format!(
        "name: {name}\n\
         data-dir: {data}\n\
         listen-client-urls: {client}\n\
         advertise-client-urls: {client}\n\
         listen-peer-urls: {peer}\n\
         initial-advertise-peer-urls: {peer}\n\
         initial-cluster: {name}={peer}\n\
         initial-cluster-state: new\n\
         initial-cluster-token: {token}\n",
        name = config.name,
        data = data_dir.display(),
        client = config.client_url(),
        peer = config.peer_url(),
    )
}

/// The startup lines both servers print, from the text each is known by to the line's end.
fn startup_lines(log: &str) -> Vec<String> {
    const NEEDLES: &[&str] = &[
        "Loading server configuration from ",
        "name = ",
        "data dir = ",
        "advertise client URLs = ",
        "added member ",
        "listening for peers on ",
        "published {",
        "serving insecure client requests on ",
    ];
    NEEDLES
        .iter()
        .map(|n| {
            log.lines()
                .find_map(|l| l.find(n).map(|i| l[i..].trim_end().to_string()))
                .unwrap_or_else(|| format!("(no {n:?} line)"))
        })
        .collect()
}

/// Starts `config` (its own flags are ignored: `--config-file` replaces them) and waits until
/// it serves.
fn start_with_file(config: MemberConfig, file: &Path, env: &[(&str, &str)]) -> Member {
    let mut config = config.arg(format!("--config-file={}", file.display()));
    for (k, v) in env {
        config = config.env(*k, *v);
    }
    Member::start_with(config)
}

#[test]
fn the_same_config_file_starts_the_same_member_on_etcd_and_wasmraft() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("etcd.conf.yml");
    let etcd_config = MemberConfig::new(Flavor::Etcd).name("m1");
    std::fs::write(&file, member_file(&etcd_config, &data, "flags-test-token")).expect("write config");
    let mut lines = Vec::new();
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let _ = std::fs::remove_dir_all(&data);
        let mut config = etcd_config.clone();
        config.flavor = flavor;
        let mut member = start_with_file(config, &file, &[]);
        lines.push(startup_lines(&member.current_log()));
        member.kill9();
    }
    assert_eq!(lines[0], lines[1], "etcd's startup lines (left) and wasmraft's (right)");
    assert!(lines[0][4].contains(" to cluster "), "{:?}", lines[0]);
}

#[test]
fn a_config_file_wins_over_flags_and_environment_on_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcd.yml");
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let config = MemberConfig::new(flavor).name("from-file");
        std::fs::write(&file, member_file(&config, &dir.path().join(flavor.to_string()), "t")).expect("write");
        // The command line (the harness's flags, then these) and the environment say otherwise;
        // a bad value in the environment is not even read.
        let config = config.arg("--name=from-flag").arg("--initial-cluster=from-flag=http://127.0.0.1:1");
        let member = start_with_file(config, &file, &[("ETCD_NAME", "from-env"), ("ETCD_SNAPSHOT_COUNT", "x")]);
        let log = member.current_log();
        assert!(log.contains("name = from-file"), "{flavor}:\n{}", member.log_excerpt(60));
        assert!(log.contains("published {Name:from-file "), "{flavor}:\n{}", member.log_excerpt(60));
        assert!(log.contains("Other configuration command line flags and environment variables will be ignored"));
    }
}

#[test]
fn a_config_file_with_every_key_starts_both() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("every-key.yml");
    let metrics_port = free_port();
    let base = MemberConfig::new(Flavor::Etcd).name("every");
    let keys = |data: &Path| {
        let mut y = member_file(&base, data, "every-key");
        y += &format!(
            "wal-dir: {wal}\n\
             snapshot-count: 10000\n\
             max-snapshots: 3\n\
             max-wals: 3\n\
             heartbeat-interval: 100\n\
             election-timeout: 1000\n\
             initial-election-tick-advance: false\n\
             backend-batch-interval: 10000000\n\
             backend-batch-limit: 100\n\
             quota-backend-bytes: 4294967296\n\
             max-txn-ops: 256\n\
             max-request-bytes: 2097152\n\
             max-concurrent-streams: 1000\n\
             cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n\
             discovery-srv: \"\"\n\
             discovery-srv-name: \"\"\n\
             discovery-proxy: \"\"\n\
             discovery: \"\"\n\
             discovery-fallback: exit\n\
             strict-reconfig-check: true\n\
             enable-v2: false\n\
             auto-compaction-mode: periodic\n\
             auto-compaction-retention: \"1h\"\n\
             grpc-keepalive-min-time: 5000000000\n\
             grpc-keepalive-interval: 7200000000000\n\
             grpc-keepalive-timeout: 20000000000\n\
             pre-vote: true\n\
             cors: \"*\"\n\
             host-whitelist: \"127.0.0.1,localhost\"\n\
             auth-token: simple\n\
             bcrypt-cost: 10\n\
             auth-token-ttl: 300\n\
             experimental-initial-corrupt-check: true\n\
             experimental-corrupt-check-time: 60000000000\n\
             experimental-enable-v2v3: \"\"\n\
             experimental-backend-bbolt-freelist-type: map\n\
             experimental-enable-lease-checkpoint: true\n\
             experimental-enable-lease-checkpoint-persist: true\n\
             experimental-compaction-batch-limit: 500\n\
             experimental-watch-progress-notify-interval: 600000000000\n\
             experimental-warning-apply-duration: 200000000\n\
             force-new-cluster: false\n\
             unsafe-no-fsync: false\n\
             enable-pprof: true\n\
             metrics: extensive\n\
             listen-metrics-urls: http://127.0.0.1:{metrics_port}\n\
             logger: capnslog\n\
             log-level: info\n\
             log-outputs: [stderr]\n\
             log-output: [default]\n\
             debug: false\n\
             log-package-levels: \"\"\n\
             enable-grpc-gateway: true\n\
             proxy: \"off\"\n\
             proxy-failure-wait: 5000\n\
             proxy-refresh-interval: 30000\n\
             proxy-dial-timeout: 1000\n\
             proxy-write-timeout: 5000\n\
             proxy-read-timeout: 0\n\
             client-transport-security:\n\
             \x20 cert-file: {server}\n\
             \x20 key-file: {server_key}\n\
             \x20 client-cert-auth: true\n\
             \x20 trusted-ca-file: {ca}\n\
             \x20 auto-tls: false\n\
             peer-transport-security:\n\
             \x20 cert-file: {peer}\n\
             \x20 key-file: {peer_key}\n\
             \x20 client-cert-auth: false\n\
             \x20 trusted-ca-file: {ca}\n\
             \x20 auto-tls: false\n",
            wal = data.join("wal").display(),
            server = pki.path("server.pem"),
            server_key = pki.path("server-key.pem"),
            peer = pki.path("peer.pem"),
            peer_key = pki.path("peer-key.pem"),
            ca = pki.path("ca.pem"),
        );
        y
    };
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let data = dir.path().join(format!("{flavor}-data"));
        std::fs::write(&file, keys(&data)).expect("write config");
        let mut config = base.clone();
        config.flavor = flavor;
        let mut member = start_with_file(config, &file, &[]);
        let log = member.current_log();
        assert!(!log.contains("unknown key"), "{flavor}:\n{}", member.log_excerpt(80));
        member.kill9();
        if flavor == Flavor::Wasmraft {
            let (json, _) = print_flags(&[format!("--config-file={}", file.display())], &[]);
            let flags = json["flags"].as_object().expect("flags");
            let from_file = flags.values().filter(|f| f["source"] == "config-file").count();
            // Each top-level key sets one flag, but the two TLS blocks set five each.
            let text = std::fs::read_to_string(&file).expect("read config");
            let top = text.lines().filter(|l| !l.starts_with(' ') && l.contains(':')).count();
            assert_eq!(from_file, top - 2 + 10, "{json:#}");
        }
    }
}

#[test]
fn a_bad_value_in_the_config_file_names_its_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yml");
    std::fs::write(&file, "name: m1\n# a comment\nheartbeat-interval: abc\n").expect("write");
    let out = run(clean(wasmraft_bin()).arg(format!("--config-file={}", file.display())));
    assert_eq!(out.code, Some(1), "{}", out.render());
    assert!(out.stderr.contains("line 3: heartbeat-interval: invalid value 'abc'"), "{}", out.stderr);
    // etcd refuses the same file (without saying where).
    let etcd = run(clean(etcd_bin()).arg(format!("--config-file={}", file.display())));
    assert_eq!(etcd.code, Some(1), "{}", etcd.render());
    // A syntax error names the line too.
    std::fs::write(&file, "name: m1\nlisten-client-urls: [x\n").expect("write");
    let out = run(clean(wasmraft_bin()).arg(format!("--config-file={}", file.display())));
    assert!(out.code == Some(1) && out.stderr.contains("line 3"), "{}", out.render());
}

#[test]
fn environment_variables_get_etcds_warnings_and_errors() {
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        // An unknown ETCD_* variable: a warning, and the member starts.
        let member = Member::start_with(MemberConfig::new(flavor).env("ETCD_WASMRAFT_TEST_UNKNOWN", "1"));
        let log = member.current_log();
        assert!(
            log.contains("unrecognized environment variable ETCD_WASMRAFT_TEST_UNKNOWN=1"),
            "{flavor}:\n{}",
            member.log_excerpt(60)
        );
        drop(member);
        // A variable shadowed by its flag: the member does not start.
        let bin = flavor.binary();
        let out = run(clean(&bin).arg("--name=a").env("ETCD_NAME", "b"));
        assert_ne!(out.code, Some(0), "{flavor}: {}", out.render());
        assert!(
            out.stderr.contains(
                "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            ),
            "{flavor}: {}",
            out.render()
        );
    }
}

#[test]
fn log_outputs_write_where_etcd_writes() {
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_file = dir.path().join("member.log");
        let config =
            MemberConfig::new(flavor).arg("--logger=zap").arg(format!("--log-outputs=stderr,{}", log_file.display()));
        // etcd 3.4's zap logger has no "ready to serve" line: wait for the member's publication
        // (both log it) in the file.
        let member = Member::spawn(config);
        let deadline = std::time::Instant::now() + wasmraft_tests::member::default_ready_timeout();
        let published = loop {
            let written = std::fs::read_to_string(&log_file).unwrap_or_default();
            if let Some(line) = written.lines().find(|l| l.contains("published")) {
                break line.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{flavor}: nothing published in {}:\n{written}\n{}",
                log_file.display(),
                member.log_excerpt(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let json: Value =
            serde_json::from_str(&published).unwrap_or_else(|e| panic!("{flavor}: zap writes JSON ({e}): {published}"));
        assert!(json.is_object(), "{flavor}: {published}");
        // The same line went to stderr (the harness's log) too.
        assert!(member.current_log().contains(&published), "{flavor}:\n{}", member.log_excerpt(40));
    }
}

#[test]
fn version_prints_etcds_lines_then_wasmrafts() {
    let etcd = run(clean(etcd_bin()).arg("--version"));
    let ours = run(clean(wasmraft_bin()).arg("--version"));
    assert!(etcd.success() && ours.success(), "{}\n{}", etcd.render(), ours.render());
    let prefixes =
        |out: &str| out.lines().map(|l| l.split(':').next().unwrap_or_default().to_string()).collect::<Vec<_>>();
    let (e, w) = (prefixes(&etcd.stdout), prefixes(&ours.stdout));
    assert_eq!(w[..4], e[..], "etcd's lines first:\n{}\n{}", etcd.stdout, ours.stdout);
    // Each prints the etcd version whose behaviour it has: etcd its own, wasmraft the one it
    // reports (tests/tests/reported_version.rs).
    for (flavor, out) in [(Flavor::Etcd, &etcd), (Flavor::Wasmraft, &ours)] {
        let expected = format!("etcd Version: {}", flavor.reported_version());
        assert_eq!(out.stdout.lines().next(), Some(expected.as_str()), "{flavor}");
    }
    assert_eq!(w.get(4).map(String::as_str), Some("wasmraft Version"), "{}", ours.stdout);
    assert_eq!(w.len(), 5, "{}", ours.stdout);
}
