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

use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl};
use wasmraft_tests::member::{Flavor, MemberConfig};

const REMOVED_LINE: &str = "the member has been permanently removed from the cluster";

/// Names for what differs between two runs: ids, URLs, ports.
#[derive(Default)]
struct Names(Vec<(String, String)>);

impl Names {
    fn member(&mut self, name: &str, id: u64, cfg: &MemberConfig) {
        self.id(&format!("{name}-id"), id);
        self.url(name, cfg);
    }

    /// etcdctl prints ids with `%16x` in some places (space-padded) and `%x` in others.
    fn id(&mut self, name: &str, id: u64) {
        self.0.push((format!("{id:16x}"), format!("<{name}>")));
        self.0.push((format!("{id:x}"), format!("<{name}>")));
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
        o.stdout = wasmraft_tests::etcdctl::sort_member_order(&o.stdout);
        o
    }
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
    names.id("cluster-id", cluster_id);
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
    names.id("m3-id", id3);
    out.last_mut().expect("a step").1 = names.blank(o);
    let i3 = c.join(m3);
    step!("list with m3", ctl.run(&["member", "list"]));
    let m4 = c.joiner_config("m4", &[0, 1, 2, i3]);
    names.url("m4", &m4);
    settle();

    // A learner: added, refused while it is not in sync, started, then promoted.
    let o = step!(
        "add m4 learner",
        ctl.run(&["member", "add", "m4", "--learner", &format!("--peer-urls={}", m4.peer_url())])
    );
    let id4 = added_id(&o);
    names.id("m4-id", id4);
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

    step!(
        "update m3 same url",
        ctl.run(&["member", "update", &hex(id3), &format!("--peer-urls={}", c.member(i3).peer_url())])
    );
    step!(
        "update m3 to m1's url",
        ctl.run(&["member", "update", &hex(id3), &format!("--peer-urls={}", c.member(1).peer_url())])
    );
    settle();
    step!("add with m1's url", ctl.run(&["member", "add", "m5", &format!("--peer-urls={}", c.member(1).peer_url())]));
    step!("remove unknown", ctl.run(&["member", "remove", "1234abcd"]));
    step!("update unknown", ctl.run(&["member", "update", "1234abcd", "--peer-urls=http://127.0.0.1:1"]));

    // Removing a running member: it says why and exits.
    step!("remove m4", ctl.run(&["member", "remove", &hex(id4)]));
    let status = c.member_mut(i4).wait_exit(Duration::from_secs(15));
    assert!(status.is_some(), "{flavor:?}: the removed member m4 is still running\n{}", c.member(i4).log_excerpt(30));
    assert!(
        c.member(i4).log().contains(REMOVED_LINE),
        "{flavor:?}: m4 did not say why it stopped\n{}",
        c.member(i4).log_excerpt(30)
    );
    out.push((
        "m4 exit".into(),
        CmdOutput { code: status.and_then(|s| s.code()), stdout: String::new(), stderr: String::new() },
    ));

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
    names.id("m5-id", id5);
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

/// The etcd-client crate's view of one flavor: each call's outcome, members as
/// (name, peer URLs, learner) with ids and URLs blanked, sorted.
fn client_script(flavor: Flavor) -> Vec<String> {
    let c = ClusterConfig::new(flavor, 3).start();
    let spare = MemberConfig::new(flavor).name("spare");
    let moved = MemberConfig::new(flavor).name("moved");
    let mut names = Names::default();
    for i in 0..3 {
        names.url(&format!("m{i}"), c.member(i).config());
    }
    names.url("spare", &spare);
    names.url("moved", &moved);
    let show = |members: &[etcd_client::Member]| -> String {
        let mut rows: Vec<String> = members
            .iter()
            .map(|m| {
                names
                    .blank(CmdOutput {
                        code: None,
                        stdout: format!("{} {:?} {}", m.name(), m.peer_urls(), m.is_learner()),
                        stderr: String::new(),
                    })
                    .stdout
            })
            .collect();
        rows.sort();
        rows.concat()
    };
    std::thread::sleep(Duration::from_millis(5500));
    wasmraft_tests::runtime().block_on(async {
        let mut client = c.client(0, Duration::from_secs(5)).await;
        let mut out = Vec::new();
        let list = client.member_list().await.expect("member list");
        out.push(format!("list: {}", show(list.members())));
        let added = client
            .member_add([spare.peer_url()], Some(etcd_client::MemberAddOptions::new().with_is_learner()))
            .await
            .expect("member add");
        let new = added.member().expect("the added member");
        let id = new.id();
        out.push(format!("added learner {}, members {}", new.is_learner(), show(added.member_list())));
        let refused = client.member_promote(id).await.map(|_| ()).map_err(|e| e.to_string());
        out.push(format!("promote unstarted: {refused:?}"));
        let removed = client.member_remove(id).await.expect("member remove");
        out.push(format!("removed: {}", show(removed.members())));
        let again = client.member_remove(id).await.map(|_| ()).map_err(|e| e.to_string());
        out.push(format!("removed again: {again:?}"));
        // A voter moves to new peer URLs (it keeps listening on its old ones: nothing breaks).
        let voter =
            list.members().iter().find(|m| m.peer_urls() == [c.member(2).peer_url()]).expect("m2 in the list").id();
        let updated = client.member_update(voter, vec![moved.peer_url()]).await.expect("member update");
        out.push(format!("updated: {}", show(updated.members())));
        out
    })
}

#[test]
fn membership_through_etcd_client_matches_etcd() {
    let etcd = client_script(Flavor::Etcd);
    let ours = client_script(Flavor::subject());
    assert_eq!(etcd, ours);
}

/// A member not added first cannot join. A learner added after the log was compacted catches
/// up by snapshot (the leader has no entries old enough for it), serves serializable reads of
/// everything written before it joined, is promoted, and after its removal its data dir
/// refuses to start again.
#[test]
fn a_joining_member_catches_up_by_snapshot_and_a_removed_one_stays_out() {
    let mut c =
        ClusterConfig::new(Flavor::subject(), 3).arg("--snapshot-count=20").arg("--snapshot-catchup-entries=5").start();
    c.wait_leader(Duration::from_secs(30));
    let ctl = Etcdctl::new(c.endpoints().join(","));
    for i in 0..60 {
        let o = ctl.run(&["put", &format!("k{i:02}"), &format!("v{i}")]);
        assert!(o.success(), "{}", o.render());
    }
    // A member that was not added first is refused, with etcd's reason.
    let stray = c.spawn_join(c.joiner_config("stray", &[0, 1, 2]));
    let exit = c.member_mut(stray).wait_exit(Duration::from_secs(15)).expect("a member not added first stops");
    assert!(!exit.success());
    assert!(c.member(stray).log().contains("member count is unequal"), "{}", c.member(stray).log_excerpt(10));
    // The state is made durable (and the log compacted) about once a second.
    std::thread::sleep(Duration::from_millis(5500));
    let joiner = c.joiner_config("m3", &[0, 1, 2]);
    let o = ctl.run(&["member", "add", "m3", "--learner", &format!("--peer-urls={}", joiner.peer_url())]);
    assert!(o.success(), "{}", o.render());
    let id = added_id(&o);
    let i = c.join(joiner);
    let log = c.member(i).log();
    assert!(log.contains("installing snapshot"), "m3 did not catch up by snapshot:\n{}", c.member(i).log_excerpt(40));
    let learner = Etcdctl::new(c.endpoint(i));
    let got = learner.run(&["get", "k", "--prefix", "--keys-only", "--consistency=s"]);
    assert_eq!(got.stdout.lines().filter(|l| !l.is_empty()).count(), 60, "{}", got.render());
    let status = c.status(i).expect("status of the learner");
    assert!(status.leader != 0 && status.member_id == id);
    let mut promoted = ctl.run(&["member", "promote", &hex(id)]);
    for _ in 0..50 {
        if promoted.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        promoted = ctl.run(&["member", "promote", &hex(id)]);
    }
    assert!(promoted.success(), "{}", promoted.render());
    // A voter now: it serves linearizable requests.
    let o = Etcdctl::new(c.endpoint(i)).run(&["put", "after", "promote"]);
    assert!(o.success(), "{}", o.render());

    let o = Etcdctl::new(c.endpoint(0)).run(&["member", "remove", &hex(id)]);
    assert!(o.success(), "{}", o.render());
    let exit = c.member_mut(i).wait_exit(Duration::from_secs(15)).expect("the removed member exits");
    assert!(exit.success(), "a removed member exits cleanly, as etcd does: {exit:?}");
    c.member_mut(i).restart_no_wait();
    let exit = c.member_mut(i).wait_exit(Duration::from_secs(15)).expect("a removed member's data dir does not start");
    assert!(!exit.success());
    assert!(c.member(i).current_log().contains(REMOVED_LINE), "{}", c.member(i).log_excerpt(10));
}
