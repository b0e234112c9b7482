//! `--quota-backend-bytes` as small as etcd's own tests set it (13 pages of 4 KiB, 53248 bytes),
//! etcd 3.4.23 and wasmraft side by side through etcdctl: a new member takes a small put, then
//! fills up under 1000-byte values until a put gets `etcdserver: mvcc: database space exceeded`
//! and `alarm list` shows NOSPACE; reads and deletes still work; compaction, (defrag) and
//! `alarm disarm` let writes through again. wasmraft counts the backend's size from the keyspace
//! (docs/decisions.md, "The quota counts the keyspace, not the file"), so the number of puts
//! that fit is close to etcd's but not the same.

use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl};
use wasmraft_tests::member::{Flavor, Member, MemberConfig};

/// etcd's integration tests' small quota: 13 pages of 4 KiB.
const QUOTA: u64 = 13 * 4096;

struct Filled {
    first_put: CmdOutput,
    fitted: usize,
    refused: CmdOutput,
    alarms: CmdOutput,
    after_disarm: CmdOutput,
}

/// An alarm line with its member id blanked.
fn blank_member(out: CmdOutput) -> CmdOutput {
    let stdout = out
        .stdout
        .lines()
        .map(|l| match l.split_once(" alarm:") {
            Some((_, alarm)) => format!("memberID:<id> alarm:{alarm}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    CmdOutput { stdout, ..out }
}

fn fill(flavor: Flavor) -> Filled {
    let member = Member::start_with(MemberConfig::new(flavor).arg(format!("--quota-backend-bytes={QUOTA}")));
    let ctl = Etcdctl::new(member.endpoint());
    let first_put = ctl.run(&["put", "foo", "bar"]);
    let value = "x".repeat(1000);
    let mut fitted = 0;
    let refused = loop {
        let out = ctl.run(&["put", &format!("key{fitted}"), &value]);
        if !out.success() {
            break out;
        }
        fitted += 1;
        assert!(fitted < 1000, "{flavor:?}: 1 MB of puts fitted a {QUOTA}-byte quota");
    };
    let alarms = blank_member(ctl.run(&["alarm", "list"]));
    let get = ctl.run(&["get", "foo", "--print-value-only"]);
    assert_eq!(get.stdout.trim(), "bar", "{flavor:?}: reads go on while capped: {}", get.render());
    let status = ctl.run(&["endpoint", "status", "-w", "json"]);
    assert!(status.stdout.contains("alarm:NOSPACE"), "{flavor:?}: {}", status.render());
    // etcd's way out: free space, compact, defragment, disarm.
    let del = ctl.run(&["del", "--prefix", "key"]);
    assert!(del.success(), "{flavor:?}: deletes go on while capped: {}", del.render());
    let rev = serde_json::from_str::<serde_json::Value>(&ctl.run(&["get", "foo", "-w", "json"]).stdout)
        .ok()
        .and_then(|v| v["header"]["revision"].as_i64())
        .unwrap_or_else(|| panic!("{flavor:?}: no revision"));
    for step in
        [vec!["compact".to_string(), rev.to_string()], vec!["defrag".into()], vec!["alarm".into(), "disarm".into()]]
    {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        let out = ctl.run(&args);
        assert!(out.success(), "{flavor:?}: {step:?}: {}", out.render());
    }
    let after_disarm = ctl.run(&["put", "foo", "again"]);
    Filled { first_put, fitted, refused, alarms, after_disarm }
}

#[test]
fn a_small_quota_takes_a_put_then_raises_nospace_as_etcds_does() {
    let etcd = fill(Flavor::Etcd);
    let ours = fill(Flavor::subject());
    for (what, e, o) in [
        ("first small put", &etcd.first_put, &ours.first_put),
        ("the put past the quota", &etcd.refused, &ours.refused),
        ("alarm list", &etcd.alarms, &ours.alarms),
        ("put after compact, defrag and disarm", &etcd.after_disarm, &ours.after_disarm),
    ] {
        assert_eq!(o.normalized(), e.normalized(), "{what}: wasmraft (left) vs etcd (right)");
    }
    assert!(etcd.first_put.success());
    assert!(etcd.refused.stderr.contains("etcdserver: mvcc: database space exceeded"), "{}", etcd.refused.render());
    assert!(etcd.alarms.stdout.contains("alarm:NOSPACE"));
    // About as much fits: etcd's bbolt pages against the counted keyspace.
    eprintln!("1000-byte puts that fit a {QUOTA}-byte quota: etcd {}, wasmraft {}", etcd.fitted, ours.fitted);
    assert!(
        ours.fitted * 2 >= etcd.fitted && ours.fitted <= etcd.fitted * 2,
        "etcd fitted {} puts, wasmraft {}",
        etcd.fitted,
        ours.fitted
    );
}
