//! `--log-level` and `--debug`, on etcd 3.4.23 and on wasmraft side by side: what a member logs
//! at each level. At debug every KV call gets etcd's "request stats" line (method, counts,
//! sizes, the request with values left out); at info the startup lines and no request lines;
//! at warn only warnings (etcd's "simple token is not cryptographically signed" at start); at
//! error nothing of either. `--debug` is debug level with the (default) capnslog logger and,
//! as in etcd 3.4, ignored by zap, which reads `--log-level` alone; both say it is deprecated.

use std::time::{Duration, Instant};

use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

/// Starts a member with `flags` and waits until it answers (at warn and error neither server
/// logs the ready line, and etcd's zap logger never does).
fn start(flavor: Flavor, flags: &[&str]) -> Member {
    let mut config = MemberConfig::new(flavor);
    for f in flags {
        config = config.arg(*f);
    }
    let m = Member::spawn(config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = Etcdctl::new(m.endpoint()).run(&["--dial-timeout=1s", "endpoint", "health"]);
        if health.success() {
            return m;
        }
        assert!(Instant::now() < deadline, "{flavor} {flags:?} never healthy:\n{}", m.log_excerpt(40));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The fields of the request stats lines for `method` in `log`, as `name=value` pairs (etcd's
/// capnslog writes `name = value, `, wasmraft's text log `name=value `). The response size is
/// left out: it counts the header's member and cluster ids, which differ between the runs.
fn request_stats(log: &str, method: &str) -> Vec<String> {
    const FIELDS: [&str; 4] = ["request count", "request size", "response count", "request content"];
    log.lines()
        .map(|l| l.replace(" = ", "="))
        // Not the gets of `endpoint health`, which waits for the member.
        .filter(|l| l.contains(&format!("response type={method}")) && l.contains("key:\"a\""))
        .map(|l| {
            FIELDS
                .iter()
                .map(|f| {
                    let Some(at) = l.find(&format!("{f}=")) else { return format!("{f}: missing") };
                    let value = &l[at + f.len() + 1..];
                    // The content is the last field; the others end at a comma or space.
                    let value = if *f == "request content" {
                        value.trim_end()
                    } else {
                        value.split([',', ' ']).next().unwrap_or("")
                    };
                    format!("{f}={value}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// What a member at `flags` logged: the stats lines of a put and a get it served, whether it
/// logged info lines (the ready line), and warnings (the simple token one).
fn observe(flavor: Flavor, flags: &[&str]) -> (Vec<String>, bool, bool, Member) {
    let m = start(flavor, flags);
    let ctl = Etcdctl::new(m.endpoint());
    for args in [&["put", "a", "b"][..], &["get", "a", "--prefix", "--limit=3"]] {
        let out = ctl.run(args);
        assert!(out.success(), "{flavor} {flags:?}: {args:?}: {}", out.render());
    }
    // The line follows the answer: give it a moment to reach the log.
    std::thread::sleep(Duration::from_millis(300));
    let log = m.log();
    let mut stats = request_stats(&log, "/etcdserverpb.KV/Put");
    stats.extend(request_stats(&log, "/etcdserverpb.KV/Range"));
    let info = log.contains("ready to serve client requests");
    let warn = log.contains("simple token is not cryptographically signed");
    (stats, info, warn, m)
}

#[test]
fn log_level_and_debug_choose_what_is_logged_as_on_etcd() {
    let debug_stats = vec![
        "request count=1 request size=6 response count=0 request content=key:\"a\" value_size:1".to_string(),
        "request count=0 request size=8 response count=1 request content=key:\"a\" range_end:\"b\" limit:3".to_string(),
    ];
    // (flags, request stats logged, info lines, warnings); etcd's zap logger has no ready line.
    let cases: [(&[&str], bool, bool, bool); 7] = [
        (&[], false, true, true),
        (&["--log-level=debug"], true, true, true),
        (&["--debug"], true, true, true),
        (&["--debug", "--log-level=error"], true, true, true),
        (&["--log-level=warn"], false, false, true),
        (&["--log-level=error"], false, false, false),
        (&["--logger=zap", "--debug"], false, false, true),
    ];
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        for (flags, stats, info, warn) in cases {
            let (seen, seen_info, seen_warn, m) = observe(flavor, flags);
            let expected = if stats { debug_stats.clone() } else { Vec::new() };
            assert_eq!(seen, expected, "{flavor} {flags:?}: request stats\n{}", m.log_excerpt(20));
            let zap = flags.contains(&"--logger=zap");
            if !(zap && flavor == Flavor::Etcd) {
                assert_eq!(seen_info, info || zap, "{flavor} {flags:?}: info lines\n{}", m.log_excerpt(20));
            }
            assert_eq!(seen_warn, warn, "{flavor} {flags:?}: warnings\n{}", m.log_excerpt(20));
            if flags.contains(&"--debug") {
                let log = m.log();
                let deprecated = "Deprecated '--debug' flag is set to true (use '--log-level=debug' instead";
                assert!(log.contains(deprecated), "{flavor} {flags:?}: no {deprecated:?}\n{}", m.log_excerpt(20));
                let level = if flags.contains(&"--log-level=error") { "error" } else { "info" };
                let inconsistent =
                    format!("Deprecated '--debug' flag is set to true with inconsistent '--log-level={level}' flag");
                assert!(log.contains(&inconsistent), "{flavor} {flags:?}: no {inconsistent:?}");
            }
        }
    }
}
