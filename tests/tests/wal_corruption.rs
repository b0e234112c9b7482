//! A member whose WAL is damaged refuses to start, and the operator's remedy brings it back.
//!
//! A 3-member cluster takes writes; one member is stopped and one byte of an early record of
//! its current WAL segment is flipped (a record fsynced long ago, followed by many more). On
//! restart it must not cut the log there and go on as if the later records never existed: it
//! exits non-zero, naming the segment file, the offset and what to do, and leaves its files as
//! they were. The other two go on serving writes. Then the remedy as an operator runs it with
//! etcdctl: `member remove`, an empty data dir, `member add`, a start with
//! `--initial-cluster-state existing` — and all three members converge on the same HashKV.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmraft_tests::convergence::check_convergence;
use wasmraft_tests::{ClusterConfig, Etcdctl, Flavor, one_cluster_at_a_time, runtime};

/// The newest segment of a member's WAL.
fn current_segment(data_dir: &Path) -> PathBuf {
    let wal = data_dir.join("member/wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap_or_else(|e| panic!("{}: {e}", wal.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment")
}

/// Every file under `dir` with its bytes.
fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot_tree(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Puts `n` keys; a put that times out (an election under way on a loaded machine) is sent
/// again, which writes the same value.
fn put_all(ctl: &Etcdctl, prefix: &str, n: usize) {
    for i in 0..n {
        let put = || ctl.run(&["put", &format!("{prefix}{i:03}"), &format!("value {i} of {prefix}")]);
        let mut o = put();
        for _ in 0..3 {
            if o.success() {
                break;
            }
            o = put();
        }
        assert!(o.success(), "{}", o.render());
    }
}

#[test]
fn a_corrupt_wal_stops_the_member_and_remove_add_brings_it_back() {
    let _one = one_cluster_at_a_time();
    let mut c = ClusterConfig::new(Flavor::Wasmraft, 3).start();
    c.wait_leader(Duration::from_secs(30));
    put_all(&Etcdctl::new(c.endpoints().join(",")), "before/", 60);
    c.wait_converged(Duration::from_secs(20));
    let victim = 2;
    let id = c.status(victim).expect("status of the victim").member_id;

    // Stopped; then one byte flipped in an early batch of its current segment (past the
    // header and the member's bootstrap records): a record synced before every later write.
    c.kill9(victim);
    let seg = current_segment(c.member(victim).data_dir());
    let mut bytes = std::fs::read(&seg).unwrap();
    // v2 segments: a 32-byte file header, then batches whose BEGIN record gives their length.
    let mut at = 32;
    for _ in 0..3 {
        at += u64::from_le_bytes(bytes[at + 17..at + 25].try_into().unwrap()) as usize;
    }
    at += 40;
    assert!(bytes[at + 1000..at + 2000].iter().any(|&b| b != 0), "records follow the damaged one");
    bytes[at] ^= 0x04;
    std::fs::write(&seg, &bytes).unwrap();
    let before = snapshot_tree(c.member(victim).data_dir());

    c.restart_no_wait(victim);
    let exit = c.member_mut(victim).wait_exit(Duration::from_secs(30)).expect("a member with a corrupt WAL stops");
    assert!(!exit.success(), "it must exit non-zero: {exit:?}");
    let log = c.member(victim).current_log();
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(log.contains(&name) && log.contains("is corrupt at offset"), "names the segment and the offset:\n{log}");
    assert!(
        log.contains("etcdctl member remove") && log.contains("--initial-cluster-state existing"),
        "says what to do:\n{log}"
    );
    assert!(log.contains(&format!("member {id:x} of cluster")), "says which member:\n{log}");
    assert!(snapshot_tree(c.member(victim).data_dir()) == before, "the refused start changed the data dir");
    println!("the refusal: {}", log.lines().rev().find(|l| l.contains("is corrupt at offset")).unwrap_or_default());

    // The other two are a quorum and serve writes.
    c.wait_leader(Duration::from_secs(30));
    let two = Etcdctl::new([c.endpoint(0), c.endpoint(1)].join(","));
    put_all(&two, "during/", 20);

    // The remedy: remove it, empty its data dir, add it back, start it as a joining member.
    let o = two.run(&["member", "remove", &format!("{id:x}")]);
    assert!(o.success(), "{}", o.render());
    std::fs::remove_dir_all(c.member(victim).data_dir()).unwrap();
    let peer_url = c.member(victim).config().peer_url();
    let name = c.member(victim).config().name.clone();
    // etcd adds a voter only once the members have been connected for a while (its health
    // interval, 5 s): in a cluster this young, `member add` says "unhealthy cluster" first.
    let add = || two.run(&["member", "add", &name, &format!("--peer-urls={peer_url}")]);
    let mut o = add();
    for _ in 0..40 {
        if o.success() || !o.stderr.contains("unhealthy cluster") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        o = add();
    }
    assert!(o.success(), "{}", o.render());
    let initial = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("member add printed no ETCD_INITIAL_CLUSTER: {}", o.render()))
        .to_string();
    {
        let cfg = c.member_mut(victim).config_mut();
        cfg.initial_cluster = Some(initial);
        cfg.extra_args.retain(|a| !a.starts_with("--initial-cluster-state"));
        cfg.extra_args.push("--initial-cluster-state=existing".into());
    }
    c.restart(victim);
    put_all(&two, "after/", 20);

    let rt = runtime();
    let converged = check_convergence(&mut c, &rt, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(converged.members, 3);
    let got = Etcdctl::new(c.endpoint(victim)).run(&["get", "", "--prefix", "--keys-only", "--consistency=s"]);
    assert_eq!(got.stdout.lines().filter(|l| !l.is_empty()).count(), 100, "{}", got.render());
}
