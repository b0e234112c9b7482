//! Runtime membership changes with `etcdctl member ...` on a 3-member etcd 3.4 cluster and a
//! 3-member wasmraft cluster, side by side: the same script, the same outputs once member ids,
//! URLs and ports are replaced by names (and lines whose order follows the random ids are
//! sorted). Real members join with `--initial-cluster-state existing` (a voter, and a learner
//! that is then promoted); etcd's refusals (too many learners, a learner not in sync, promoting
//! a voter, a peer URL in use, an unknown id, an unhealthy cluster, not enough started
//! members, a learner serving what it must not); a removed member says why and exits.
//!
//! Also here, wasmraft only: a member joining after the log was compacted catches up by
//! snapshot, the same operations through the etcd-client crate, and a removed member's data
//! dir refusing to start again.

use std::time::Duration;

use wasmraft_tests::cluster::{Cluster, ClusterConfig};
use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl};
use wasmraft_tests::member::{Flavor, MemberConfig};

const REMOVED_LINE: &str = "the member has been permanently removed from the cluster";

/// Names for what differs between two runs: ids, URLs, ports.
#[derive(Default)]
struct Names(Vec<(String, String)>);

impl Names {
    fn member(&mut self, name: &str, id: u64, cfg: &MemberConfig) {
        self.0.push((format!("{id:x}"), format!("<{name}-id>")));
        self.url(name, cfg);
    }

    fn url(&mut self, name: &str, cfg: &MemberConfig) {
        self.0.push((cfg.peer_url(), format!("<{name}-peer>")));
        self.0.push((cfg.client_url(), format!("<{name}-client>")));
    }

    fn blank(&self, o: CmdOutput) -> CmdOutput {
        let mut o = o.normalized();
        for (from, to) in &self.0 {
            o.stdout = o.stdout.replace(from, to);
            o.stderr = o.stderr.replace(from, to);
        }
        o.stdout = sort_id_ordered(&o.stdout);
        o
    }
}

/// `member list` rows and `ETCD_INITIAL_CLUSTER` entries come in member id order, and the ids
/// differ between the two runs: sort them.
fn sort_id_ordered(s: &str) -> String {
    let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
    for l in &mut lines {
        if let Some(v) = l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
            let mut entries: Vec<&str> = v.trim_end_matches('"').split(',').collect();
            entries.sort();
            *l = format!("ETCD_INITIAL_CLUSTER=\"{}\"", entries.join(","));
        }
    }
    if lines.iter().all(|l| l.matches(", ").count() == 5) {
        lines.sort();
    }
    lines.into_iter().map(|l| l + "\n").collect()
}

/// The id etcdctl printed in "Member <id> added to cluster <cluster>".
fn added_id(o: &CmdOutput) -> u64 {
    let id = o.stdout.split_whitespace().nth(1).unwrap_or_default();
    u64::from_str_radix(id, 16).unwrap_or_else(|_| panic!("member add printed no id: {}", o.render()))
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

/// Runs the script against one flavor; returns (step, what etcdctl printed, blanked).
fn script(flavor: Flavor) -> Vec<(String, CmdOutput)> {
    let mut c = ClusterConfig::new(flavor, 3).start();
    c.wait_leader(Duration::from_secs(30));
    let mut names = Names::default();
    let ids: Vec<u64> = (0..3).map(|i| c.status(i).expect("status").member_id).collect();
    for i in 0..3 {
        names.member(&format!("m{i}"), ids[i], c.member(i).config());
    }
    let cluster_id = c.status(0).expect("status").cluster_id;
    names.0.push((hex(cluster_id), "<cluster-id>".into()));
    let m3 = c.joiner_config("m3", &[0, 1, 2]);
    let m5 = MemberConfig::new(flavor).name("m5");
    names.url("m3", &m3);
    names.url("m5", &m5);
    let ctl = Etcdctl::new(c.endpoint(0));
    let mut out: Vec<(String, CmdOutput)> = Vec::new();
    macro_rules! step {
        ($name:expr, $o:expr) => {{
            let o: CmdOutput = $o;
            out.push(($name.to_string(), names.blank(o.clone())));
            o
        }};
    }
    // etcd refuses to add members until every voter has been connected for 5 s.
    let settle = || std::thread::sleep(Duration::from_millis(5500));
    settle();
    step!("list", ctl.run(&["member", "list"]));

    // A voter, added then started with --initial-cluster-state existing.
    let o = step!("add m3", ctl.run(&["member", "add", "m3", &format!("--peer-urls={}", m3.peer_url())]));
    let id3 = added_id(&o);
    names.0.push((hex(id3), "<m3-id>".into()));
    out.last_mut().expect("a step").1 = names.blank(o);
    let i3 = c.join(m3);
    step!("list with m3", ctl.run(&["member", "list"]));
    let m4 = c.joiner_config("m4", &[0, 1, 2, i3]);
    names.url("m4", &m4);
    settle();

    // A learner: added, refused while it is not in sync, started, then promoted.
    let o = step!("add m4 learner", ctl.run(&["member", "add", "m4", "--learner", &format!("--peer-urls={}", m4.peer_url())]));
    let id4 = added_id(&o);
    names.0.push((hex(id4), "<m4-id>".into()));
    out.last_mut().expect("a step").1 = names.blank(o);
    step!("second learner", ctl.run(&["member", "add", "m5", "--learner", &format!("--peer-urls={}", m5.peer_url())]));
    step!("promote unstarted learner", ctl.run(&["member", "promote", &hex(id4)]));
    step!("promote a voter", ctl.run(&["member", "promote", &hex(ids[0])]));
    let i4 = c.join(m4);
    step!("list with learner", ctl.run(&["member", "list"]));
    let learner = Etcdctl::new(c.endpoint(i4));
    step!("learner put", learner.run(&["put", "k", "v"]));
    step!("learner serializable get", learner.run(&["get", "k", "--consistency=s"]));
    step!("learner member list", learner.run(&["member", "list"]));
    // Catching up takes a moment after it is ready.
    let mut promoted = ctl.run(&["member", "promote", &hex(id4)]);
    for _ in 0..50 {
        if promoted.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        promoted = ctl.run(&["member", "promote", &hex(id4)]);
    }
    step!("promote learner", promoted);
    step!("list promoted", ctl.run(&["member", "list"]));

    step!("update m3 same url", ctl.run(&["member", "update", &hex(id3), &format!("--peer-urls={}", c.member(i3).peer_url())]));
    step!("update m3 to m1's url", ctl.run(&["member", "update", &hex(id3), &format!("--peer-urls={}", c.member(1).peer_url())]));
    settle();
    step!("add with m1's url", ctl.run(&["member", "add", "m5", &format!("--peer-urls={}", c.member(1).peer_url())]));
    step!("remove unknown", ctl.run(&["member", "remove", "1234abcd"]));
    step!("update unknown", ctl.run(&["member", "update", "1234abcd", "--peer-urls=http://127.0.0.1:1"]));

    // Removing a running member: it says why and exits.
    step!("remove m4", ctl.run(&["member", "remove", &hex(id4)]));
    let status = c.member_mut(i4).wait_exit(Duration::from_secs(15));
    assert!(status.is_some(), "{flavor:?}: the removed member m4 is still running\n{}", c.member(i4).log_excerpt(30));
    assert!(c.member(i4).log().contains(REMOVED_LINE), "{flavor:?}: m4 did not say why it stopped\n{}", c.member(i4).log_excerpt(30));
    out.push(("m4 exit".into(), CmdOutput { code: status.and_then(|s| s.code()), stdout: String::new(), stderr: String::new() }));

    // A voter down: adding is unsafe ("unhealthy"), removing the dead one is fine.
    c.kill9(i3);
    std::thread::sleep(Duration::from_millis(500));
    step!("add while m3 is down", ctl.run(&["member", "add", "m5", &format!("--peer-urls={}", m5.peer_url())]));
    step!("remove down m3", ctl.run(&["member", "remove", &hex(id3)]));
    step!("remove removed m3", ctl.run(&["member", "remove", &hex(id3)]));

    // Two voters and an unstarted one: removing a started voter would leave no started quorum.
    step!("remove m2", ctl.run(&["member", "remove", &hex(ids[2])]));
    assert!(c.member_mut(2).wait_exit(Duration::from_secs(15)).is_some(), "{flavor:?}: removed m2 still runs");
    c.wait_leader(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let o = step!("add unstarted m5", ctl.run(&["member", "add", "m5", &format!("--peer-urls={}", m5.peer_url())]));
    let id5 = added_id(&o);
    names.0.push((hex(id5), "<m5-id>".into()));
    out.last_mut().expect("a step").1 = names.blank(o);
    step!("remove m1 with m5 unstarted", ctl.run(&["member", "remove", &hex(ids[1])]));
    step!("remove unstarted m5", ctl.run(&["member", "remove", &hex(id5)]));
    step!("final list", ctl.run(&["member", "list"]));
    out
}

#[test]
fn membership_changes_match_etcd() {
    let etcd = script(Flavor::Etcd);
    let ours = script(Flavor::subject());
    let mut diffs = Vec::new();
    for ((step, e), (_, w)) in etcd.iter().zip(&ours) {
        if e != w {
            diffs.push(format!("== {step}\n-- etcd\n{}\n-- wasmraft\n{}", e.render(), w.render()));
        }
    }
    assert_eq!(etcd.len(), ours.len());
    assert!(diffs.is_empty(), "{} of {} steps differ:\n{}", diffs.len(), etcd.len(), diffs.join("\n"));
}
