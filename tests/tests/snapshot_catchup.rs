//! A member that was down while the others compacted their logs past what it has catches up by
//! snapshot over `/raft/snapshot` (not from the log), and ends with the same data and revision.

use std::time::Duration;

use etcd_client::{Client, GetOptions};
use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::member::Flavor;

const KEYS: usize = 400;

#[test]
fn a_member_behind_the_compacted_log_catches_up_by_snapshot() {
    // Compact every 100 entries, keeping 10 behind: 400 writes leave the log far past the
    // stopped member.
    let mut cluster = ClusterConfig::new(Flavor::Wasmraft, 3)
        .arg("--snapshot-count=100")
        .arg("--snapshot-catchup-entries=10")
        .start();
    let leader = cluster.wait_leader(Duration::from_secs(20));
    let behind = (leader + 1) % 3;
    cluster.kill9(behind);
    let live: Vec<String> = cluster.running_endpoints();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut client = Client::connect(live, None).await.expect("connect");
        for i in 0..KEYS {
            client.put(format!("k{i:04}"), format!("v{i}"), None).await.expect("put acknowledged");
        }
    });
    // The survivors compacted (and made durable) well past the stopped member's log.
    std::thread::sleep(Duration::from_millis(1500));

    cluster.restart(behind);
    let statuses = cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(statuses.len(), 3);
    let log = cluster.member(behind).log();
    assert!(
        log.contains("installing snapshot at index"),
        "the restarted member did not install a snapshot; its log:\n{log}"
    );

    // Every member, read locally (serializable), has every key with its value.
    for i in 0..3 {
        let endpoint = cluster.endpoint(i);
        let kvs = rt.block_on(async {
            let mut c = Client::connect([endpoint.clone()], None).await.expect("connect");
            let resp = c.get("k", Some(GetOptions::new().with_prefix().with_serializable())).await.expect("get");
            resp.kvs()
                .iter()
                .map(|kv| {
                    (kv.key_str().unwrap_or_default().to_string(), kv.value_str().unwrap_or_default().to_string())
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(kvs.len(), KEYS, "member {i} ({endpoint}) has {} keys", kvs.len());
        for (n, (k, v)) in kvs.iter().enumerate() {
            assert_eq!((k.as_str(), v.as_str()), (format!("k{n:04}").as_str(), format!("v{n}").as_str()), "member {i}");
        }
    }
    // And it keeps following the log after the snapshot.
    rt.block_on(async {
        let mut c = Client::connect([cluster.endpoint(behind)], None).await.expect("connect");
        c.put("after", "snapshot", None).await.expect("put through the caught-up member");
    });
    cluster.wait_converged(Duration::from_secs(30));
}

/// The `<index>.snap` files in a member's snapshot directory, oldest first.
fn snapshot_files(data_dir: &std::path::Path) -> Vec<String> {
    let dir = data_dir.join("member").join("snap");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    names.sort();
    names
}

/// --max-snapshots: a follower that catches up by snapshot again and again keeps the newest N
/// received snapshot files and removes the older ones; restarted with 0 it keeps them all.
/// (wasmraft's own snapshots are its state database, not files; etcd's purge counts the `.snap`
/// files each etcd member writes at every --snapshot-count and runs every 30 s.)
#[test]
fn max_snapshots_keeps_the_newest_received_snapshot_files() {
    let mut cluster = ClusterConfig::new(Flavor::Wasmraft, 3)
        .arg("--snapshot-count=20")
        .arg("--snapshot-catchup-entries=5")
        .arg("--max-snapshots=2")
        .start();
    let leader = cluster.wait_leader(Duration::from_secs(20));
    let behind = (leader + 1) % 3;
    let rt = wasmraft_tests::runtime();
    let round = |cluster: &mut wasmraft_tests::Cluster, n: usize| {
        cluster.kill9(behind);
        let live = cluster.running_endpoints();
        rt.block_on(async {
            let mut client = Client::connect(live, None).await.expect("connect");
            for i in 0..60 {
                client.put(format!("r{n}-{i:02}"), "v", None).await.expect("put acknowledged");
            }
        });
        // The survivors make their state durable and compact their logs about once a second.
        std::thread::sleep(Duration::from_millis(1500));
        cluster.restart(behind);
        cluster.wait_converged(Duration::from_secs(30));
        let log = cluster.member(behind).current_log();
        assert!(log.contains("installing snapshot at index"), "round {n}: no snapshot installed:\n{log}");
        snapshot_files(cluster.member(behind).data_dir())
    };
    let mut seen = Vec::new();
    for n in 0..4 {
        let files = round(&mut cluster, n);
        assert!(files.len() <= 2, "round {n}: {files:?}");
        seen.extend(files);
    }
    seen.sort();
    seen.dedup();
    let kept = snapshot_files(cluster.member(behind).data_dir());
    assert!(seen.len() >= 4, "four snapshots received: {seen:?}");
    assert_eq!(kept, seen[seen.len() - 2..], "the newest two are kept");

    for arg in &mut cluster.member_mut(behind).config_mut().extra_args {
        if arg == "--max-snapshots=2" {
            *arg = "--max-snapshots=0".into();
        }
    }
    for n in 4..6 {
        round(&mut cluster, n);
    }
    let all = snapshot_files(cluster.member(behind).data_dir());
    assert_eq!(all.len(), 4, "with --max-snapshots=0 every file stays: {all:?}");
    assert_eq!(all[..2], kept[..], "{all:?}");
}
