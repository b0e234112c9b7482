//! `etcdctl move-leader` against a 3-member etcd 3.4 cluster and a 3-member wasmraft cluster:
//! the same outputs (member ids and ports blanked) for a transfer through the leader, a
//! transferee that is not a member, an endpoint list without the leader, and (through the
//! etcd-client crate) a follower asked directly; and leadership really moves.

use std::time::Duration;

use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl};
use wasmraft_tests::member::Flavor;

/// What one flavor printed for each step, with its member ids and URLs replaced by names.
fn script(flavor: Flavor) -> Vec<(String, CmdOutput)> {
    let mut c = ClusterConfig::new(flavor, 3).start();
    let leader = c.wait_leader(Duration::from_secs(30));
    let ids: Vec<u64> = (0..3).map(|i| c.status(i).expect("status").member_id).collect();
    let follower = (leader + 1) % 3;
    let mut names: Vec<(String, String)> = Vec::new();
    for i in 0..3 {
        let role = if i == leader {
            "LEADER"
        } else if i == follower {
            "TARGET"
        } else {
            "OTHER"
        };
        names.push((format!("{:x}", ids[i]), format!("<{role}-id>")));
        names.push((c.endpoint(i), format!("<{role}-url>")));
        names.push((c.endpoint(i).trim_start_matches("http://").to_string(), format!("<{role}-addr>")));
    }
    let blank = |o: CmdOutput| {
        let mut o = o.normalized();
        for (from, to) in &names {
            o.stdout = o.stdout.replace(from, to);
            o.stderr = o.stderr.replace(from, to);
        }
        o
    };
    let all = c.endpoints().join(",");
    let mut out = Vec::new();
    let target = format!("{:x}", ids[follower]);
    // Only the follower's endpoint: etcdctl finds no leader among the endpoints it was given.
    out.push((
        "follower endpoint only".to_string(),
        blank(Etcdctl::new(c.endpoint(follower)).run(&["move-leader", &target])),
    ));
    out.push(("not a member".to_string(), blank(Etcdctl::new(all.clone()).run(&["move-leader", "1234abcd"]))));
    out.push(("to the follower".to_string(), blank(Etcdctl::new(all.clone()).run(&["move-leader", &target]))));
    let new_leader = c.wait_leader(Duration::from_secs(30));
    assert_eq!(new_leader, follower, "{flavor:?}: leadership moved to the transferee");
    // The old leader is now a follower; etcdctl would not even ask it, a client can: the server
    // refuses with etcd's "not leader".
    let direct = wasmraft_tests::runtime().block_on(async {
        let mut client = etcd_client::Client::connect([c.endpoint(leader)], None).await.expect("connect");
        client.move_leader(ids[leader]).await.map(|_| ()).map_err(|e| e.to_string())
    });
    let direct = CmdOutput {
        code: Some(i32::from(direct.is_err())),
        stdout: String::new(),
        stderr: direct.err().unwrap_or_default(),
    };
    out.push(("a follower asked directly".to_string(), blank(direct)));
    out
}

#[test]
fn move_leader_matches_etcd() {
    let etcd = script(Flavor::Etcd);
    let ours = script(Flavor::Wasmraft);
    let mut diffs = Vec::new();
    for ((step, e), (_, w)) in etcd.iter().zip(&ours) {
        if e != w {
            diffs.push(format!("== {step}\n-- etcd\n{}\n-- wasmraft\n{}", e.render(), w.render()));
        }
    }
    assert!(diffs.is_empty(), "outputs differ:\n{}", diffs.join("\n"));
    assert!(etcd[1].1.stderr.contains("etcdserver: bad leader transferee"), "{}", etcd[1].1.render());
    assert!(
        etcd[2].1.stdout.contains("Leadership transferred from <LEADER-id> to <TARGET-id>"),
        "{}",
        etcd[2].1.render()
    );
    assert!(etcd[3].1.stderr.contains("etcdserver: not leader"), "{}", etcd[3].1.render());
}
