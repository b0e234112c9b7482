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
    for (i, id) in ids.iter().enumerate() {
        let role = if i == leader {
            "LEADER"
        } else if i == follower {
            "TARGET"
        } else {
            "OTHER"
        };
        names.push((format!("{id:x}"), format!("<{role}-id>")));
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

/// Writes keep succeeding while leadership moves: raft drops proposals on a leader that is
/// handing over, and the member holds them until the new leader is known instead of failing
/// them with "no leader" (issue 27, availability around faults). Writers on every member, five
/// transfers in a row; every put is acknowledged, and every acknowledged key is there.
#[test]
fn writes_during_leader_transfers_all_succeed() {
    let mut c = ClusterConfig::new(Flavor::Wasmraft, 3).start();
    let rt = wasmraft_tests::runtime();
    let ids: Vec<u64> = (0..3).map(|i| c.status(i).expect("status").member_id).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|m| {
            let (endpoint, stop) = (c.endpoint(m), stop.clone());
            rt.spawn(async move {
                let mut client = etcd_client::Client::connect([endpoint], None).await.expect("connect");
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("m{m}/{i:05}");
                    i += 1;
                    match client.put(key.clone(), "v", None).await {
                        Ok(_) => ok.push(key),
                        Err(e) => failed.push(format!("{key}: {e}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let leader = c.wait_leader(Duration::from_secs(30));
        let target = (leader + 1) % 3;
        let out = Etcdctl::new(c.endpoints().join(",")).run(&["move-leader", &format!("{:x}", ids[target])]);
        assert!(out.code == Some(0), "move-leader: {}", out.render());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        let (ok, failed) = rt.block_on(w).expect("writer");
        assert!(
            failed.is_empty(),
            "{} puts failed during leader transfers: {:?}",
            failed.len(),
            &failed[..failed.len().min(10)]
        );
        acked.extend(ok);
    }
    assert!(acked.len() > 30, "only {} puts in the run", acked.len());
    let present = rt.block_on(async {
        let mut client = etcd_client::Client::connect(c.endpoints(), None).await.expect("connect");
        let r =
            client.get("m", Some(etcd_client::GetOptions::new().with_prefix().with_keys_only())).await.expect("get");
        r.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect::<std::collections::BTreeSet<_>>()
    });
    let lost: Vec<&String> = acked.iter().filter(|k| !present.contains(*k)).collect();
    assert!(lost.is_empty(), "acknowledged puts missing: {lost:?}");
}
