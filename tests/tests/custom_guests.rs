//! Custom guests as Wasm components in real 3-member clusters, driven with the `wasmraft`
//! client subcommands: the example guests answer through the generic API, and a hostile guest's
//! bad entries fail, change nothing, and leave every member with the same state.

use std::process::Command;
use std::time::Duration;

use wasmraft_tests::binaries::wasmraft_bin;
use wasmraft_tests::cluster::{Cluster, ClusterConfig};
use wasmraft_tests::member::Flavor;

fn cluster_with(guest: &str) -> Cluster {
    ClusterConfig::new(Flavor::Wasmraft, 3).arg(format!("--guest={guest}")).arg("--guest-fuel=200000000").start()
}

/// Runs `wasmraft <cmd> --endpoints <endpoint> [<data>]`; returns (exit code, stdout, stderr).
fn cli(cmd: &str, endpoint: &str, extra: &[&str], data: &str) -> (i32, String, String) {
    let mut c = Command::new(wasmraft_bin());
    c.arg(cmd).arg(format!("--endpoints={endpoint}")).args(extra);
    if !data.is_empty() {
        c.arg(data);
    }
    let out = c.output().expect("run the wasmraft client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn ok(cmd: &str, endpoint: &str, extra: &[&str], data: &str) -> String {
    let (code, out, err) = cli(cmd, endpoint, extra, data);
    assert_eq!(code, 0, "wasmraft {cmd} {data:?} against {endpoint}: {err}");
    out
}

#[test]
fn counter_and_ledger_answer_through_every_member() {
    let counter = cluster_with(env!("WASMRAFT_TEST_COUNTER_GUEST"));
    let e: Vec<String> = (0..3).map(|i| counter.endpoint(i)).collect();
    assert_eq!(ok("propose", &e[0], &[], "add 5"), "5");
    assert_eq!(ok("propose", &e[1], &[], "sub 2"), "3");
    assert_eq!(ok("propose", &e[2], &[], "add 10"), "13");
    for endpoint in &e {
        assert_eq!(ok("query", endpoint, &[], "get"), "13", "linearizable read on {endpoint}");
    }
    let info = ok("info", &e[0], &[], "");
    assert!(info.contains("counter"), "{info}");
    drop(counter);

    let ledger = cluster_with(env!("WASMRAFT_TEST_LEDGER_GUEST"));
    let e: Vec<String> = (0..3).map(|i| ledger.endpoint(i)).collect();
    ok("propose", &e[0], &[], "open alice 100");
    ok("propose", &e[1], &[], "open bob 50");
    ok("propose", &e[2], &[], "transfer alice bob 30");
    let (code, _, err) = cli("propose", &e[0], &[], "transfer bob alice 1000");
    assert_eq!(code, 1, "an overdraft is refused");
    assert!(err.contains("ledger"), "{err}");
    for endpoint in &e {
        assert_eq!(ok("query", endpoint, &[], "total"), "150");
        assert_eq!(ok("query", endpoint, &[], "balance bob"), "80");
    }
}

#[test]
fn hostile_entries_fail_change_nothing_and_members_agree() {
    let mut cluster = cluster_with(env!("WASMRAFT_TEST_HOSTILE_GUEST"));
    let e: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    ok("propose", &e[0], &[], "ok:a=1");
    let scan = "script:scan - - 0 fwd";
    let before = ok("query", &e[0], &[], scan);
    assert_eq!(before, "a=1");
    for (bad, expect) in [
        ("put-then-trap:b=2", "trapped"),
        ("put-then-panic", "trapped"),
        ("put-then-err", "refused"),
        ("loop", "fuel"),
        ("alloc:1000000000", "memory"),
    ] {
        let (code, _, err) = cli("propose", &e[1], &[], bad);
        assert_eq!(code, 1, "{bad} must fail");
        assert!(err.contains(expect), "{bad}: {err}");
    }
    // Every entry runs in a fresh instance: a global never counts past 1, on any member.
    for endpoint in &e {
        assert_eq!(ok("propose", endpoint, &[], "global-inc"), "1");
    }
    ok("propose", &e[2], &[], "ok:c=3");
    // The cluster kept serving, nothing of the bad entries is anywhere, and members agree.
    cluster.wait_converged(Duration::from_secs(20));
    for endpoint in &e {
        assert_eq!(ok("query", endpoint, &["--consistency=s"], scan), "a=1,c=3", "state on {endpoint}");
    }
}
