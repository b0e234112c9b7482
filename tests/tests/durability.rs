//! Durability of one member across restarts.
//!
//! - A graceful stop (SIGTERM) and restart on the same data dir keeps everything: every key with
//!   its value, create/mod revision and version, the store revision, history below it, and the
//!   compaction point. Run twice: with default flags, and with `--snapshot-count=50` so that the
//!   restart recovers from a raft snapshot plus a log tail rather than from the log alone.
//! - `kill -9` loses no acknowledged write: concurrent clients put keys and record each
//!   acknowledged one; the member is SIGKILLed while they are mid-stream; after restart every
//!   acknowledged key is there with its value and the revision the ack reported.
//!
//! Note what kill -9 does *not* test: the OS survives, so its page cache does too. These tests
//! catch a member that acknowledges before writing (in-process buffering, lazy commit of the log),
//! not a missing fsync; that needs a power cut, which loopback tests cannot give.
//!
//! The subject is wasmraft; `WASMRAFT_TEST_SUBJECT=etcd` runs the same tests against real etcd.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, DeleteOptions, GetOptions, GetResponse, PutOptions, Txn, TxnOp};
use wasmraft_tests::{Flavor, Member, MemberConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn connect(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(5)).with_connect_timeout(Duration::from_secs(5));
    Client::connect([endpoint], Some(opts)).await.unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"))
}

/// key → (value, create_revision, mod_revision, version, lease).
type KvMap = BTreeMap<Vec<u8>, (Vec<u8>, i64, i64, i64, i64)>;

/// The [`KvMap`] of a whole range response.
fn kv_map(r: &GetResponse) -> KvMap {
    r.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                (kv.value().to_vec(), kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()),
            )
        })
        .collect()
}

fn all() -> Option<GetOptions> {
    Some(GetOptions::new().with_all_keys())
}

/// Everything observable about the store that must survive a restart.
#[derive(Debug, PartialEq)]
struct Observed {
    revision: i64,
    now: KvMap,
    /// Full key space at a few historical revisions (all above the compaction point).
    history: Vec<(i64, KvMap)>,
    /// The error text for a read below the compaction point.
    compacted_read: String,
}

async fn observe(c: &mut Client, compacted_at: i64, history_revs: &[i64]) -> Observed {
    let now = c.get("", all()).await.expect("get all");
    let revision = now.header().expect("header").revision();
    let mut history = Vec::new();
    for &rev in history_revs {
        let r = c
            .get("", Some(GetOptions::new().with_all_keys().with_revision(rev)))
            .await
            .unwrap_or_else(|e| panic!("get all at rev {rev}: {e}"));
        history.push((rev, kv_map(&r)));
    }
    let compacted_read = match c.get("", Some(GetOptions::new().with_all_keys().with_revision(compacted_at - 1))).await
    {
        Ok(r) => format!("unexpectedly readable: {} keys", r.kvs().len()),
        Err(e) => e.to_string(),
    };
    Observed { revision, now: kv_map(&now), history, compacted_read }
}

fn graceful_restart_keeps_everything(extra_args: &[&str]) {
    let mut config = MemberConfig::new(Flavor::subject());
    for a in extra_args {
        config = config.arg(*a);
    }
    let mut m = Member::start_with(config);
    let rt = runtime();
    let n = 300;

    let (before, compact_rev, history_revs) = rt.block_on(async {
        let mut c = connect(&m.endpoint()).await;
        for i in 0..n {
            c.put(format!("key/{i:04}"), format!("value-{i}"), None).await.expect("put");
        }
        // Overwrites (versions > 1), deletes (tombstones in history), a txn, a range delete.
        for i in (0..n).step_by(3) {
            c.put(format!("key/{i:04}"), format!("value-{i}-v2"), None).await.expect("overwrite");
        }
        for i in (0..n).step_by(7) {
            c.delete(format!("key/{i:04}"), None).await.expect("delete");
        }
        let mid = c.put("marker", "mid", None).await.expect("put marker").header().unwrap().revision();
        c.txn(Txn::new().and_then([
            TxnOp::put("txn/a", "1", None),
            TxnOp::put("txn/b", "2", None),
            TxnOp::delete("key/0001", None),
        ]))
        .await
        .expect("txn");
        c.delete("key/029", Some(DeleteOptions::new().with_prefix())).await.expect("range delete");
        for i in 0..20 {
            c.put("hot", format!("{i}"), Some(PutOptions::new().with_prev_key())).await.expect("hot put");
        }
        let compact_rev = mid - 50;
        c.compact(compact_rev, None).await.expect("compact");
        let last = c.put("marker", "end", None).await.expect("put marker").header().unwrap().revision();
        let history_revs = vec![compact_rev, mid, mid + 1, last - 5];
        (observe(&mut c, compact_rev, &history_revs).await, compact_rev, history_revs)
    });
    assert!(before.now.len() > 200, "setup wrote too little: {} keys", before.now.len());
    assert!(before.compacted_read.contains("required revision has been compacted"), "{}", before.compacted_read);

    let status = m.terminate();
    eprintln!("{} exited on SIGTERM with {status}", m.flavor());
    m.restart();

    rt.block_on(async {
        let mut c = connect(&m.endpoint()).await;
        let after = observe(&mut c, compact_rev, &history_revs).await;
        if after != before {
            let mut msg = format!("state differs after graceful restart ({} {extra_args:?})\n", m.flavor());
            if after.revision != before.revision {
                msg += &format!("  revision: before {} after {}\n", before.revision, after.revision);
            }
            diff_maps(&mut msg, "current", &before.now, &after.now);
            for ((rev, b), (_, a)) in before.history.iter().zip(&after.history) {
                diff_maps(&mut msg, &format!("at rev {rev}"), b, a);
            }
            if after.compacted_read != before.compacted_read {
                msg += &format!(
                    "  read below compaction: before {:?} after {:?}\n",
                    before.compacted_read, after.compacted_read
                );
            }
            panic!("{msg}");
        }
        // And it keeps going from where it was.
        let r = c.put("after-restart", "x", None).await.expect("put after restart");
        assert_eq!(r.header().unwrap().revision(), before.revision + 1, "first write after restart");
    });
}

fn diff_maps(msg: &mut String, what: &str, before: &KvMap, after: &KvMap) {
    let mut shown = 0;
    for (k, b) in before {
        if after.get(k) != Some(b) && shown < 20 {
            *msg += &format!("  {what}: {:?}: before {:?} after {:?}\n", String::from_utf8_lossy(k), b, after.get(k));
            shown += 1;
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)).take(20) {
        *msg += &format!("  {what}: {:?}: appeared after restart\n", String::from_utf8_lossy(k));
    }
}

#[test]
fn graceful_restart_keeps_everything_default_flags() {
    graceful_restart_keeps_everything(&[]);
}

#[test]
fn graceful_restart_keeps_everything_after_raft_snapshots() {
    graceful_restart_keeps_everything(&["--snapshot-count=50"]);
}

/// (key, value, revision the ack reported)
type Acked = Vec<(String, String, i64)>;

#[test]
fn kill9_loses_no_acknowledged_put() {
    let mut m = Member::start(Flavor::subject());
    let rt = runtime();
    let clients = 8;
    let mut max_acked_rev = 0;
    let mut all_acked: Acked = Vec::new();

    for round in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let acked: Arc<Mutex<Acked>> = Arc::default();
        let endpoint = m.endpoint();
        let handles: Vec<_> = (0..clients)
            .map(|cid| {
                let (stop, acked_count, acked, endpoint) =
                    (stop.clone(), acked_count.clone(), acked.clone(), endpoint.clone());
                rt.spawn(async move {
                    let mut c = connect(&endpoint).await;
                    let mut errors = 0;
                    for i in 0u64.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let key = format!("r{round}/c{cid}/{i:06}");
                        let value = format!("value-{round}-{cid}-{i}-{}", "x".repeat((i % 64) as usize));
                        match c.put(key.clone(), value.clone(), None).await {
                            Ok(r) => {
                                let rev = r.header().map(|h| h.revision()).unwrap_or(0);
                                acked.lock().unwrap().push((key, value, rev));
                                acked_count.fetch_add(1, Ordering::SeqCst);
                            }
                            // After the kill: keep trying (as a real client would) until told to
                            // stop, but anything not acknowledged is allowed to be lost.
                            Err(_) => {
                                errors += 1;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    errors
                })
            })
            .collect();

        // Let the writers get going, then kill while they are mid-stream.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_count.load(Ordering::SeqCst) < 400 {
            assert!(
                Instant::now() < deadline,
                "round {round}: only {} puts acknowledged in 30s",
                acked_count.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let running = handles.iter().filter(|h| !h.is_finished()).count();
        assert_eq!(running, clients, "all writers must still be writing when the member is killed");
        m.kill9();
        let acked_at_kill = acked_count.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        let errors: usize = rt.block_on(async {
            let mut total = 0;
            for h in handles {
                total += tokio::time::timeout(Duration::from_secs(20), h)
                    .await
                    .expect("writer did not stop")
                    .expect("writer panicked");
            }
            total
        });
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        eprintln!(
            "round {round}: {} puts acknowledged ({acked_at_kill} when killed), {errors} failed after the kill",
            acked.len()
        );
        // (An ack can still arrive just after the kill: the response was sent before it. Such a
        // put was acknowledged and must survive like the others.)

        m.restart();
        let missing = rt.block_on(async {
            let mut c = connect(&m.endpoint()).await;
            let r = c.get(format!("r{round}/"), Some(GetOptions::new().with_prefix())).await.expect("read back");
            let present = kv_map(&r);
            let mut missing = Vec::new();
            for (key, value, rev) in &acked {
                match present.get(key.as_bytes()) {
                    Some((v, _, mod_rev, _, _)) if v == value.as_bytes() && mod_rev == rev => {}
                    other => missing.push(format!(
                        "{key}: acked value {value:?} at rev {rev}, after restart {:?}",
                        other.map(|(v, _, m, _, _)| (String::from_utf8_lossy(v).into_owned(), *m))
                    )),
                }
            }
            missing
        });
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged puts lost or changed after kill -9 + restart:\n{}",
            missing.len(),
            acked.len(),
            missing.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
        );
        max_acked_rev = max_acked_rev.max(acked.iter().map(|a| a.2).max().unwrap_or(0));
        all_acked.extend(acked);
    }

    // Earlier rounds survive later crashes too, and the member still takes writes.
    rt.block_on(async {
        let mut c = connect(&m.endpoint()).await;
        let present = kv_map(&c.get("", all()).await.expect("get all"));
        let lost = all_acked
            .iter()
            .filter(|(k, v, _)| present.get(k.as_bytes()).map(|p| &p.0) != Some(&v.as_bytes().to_vec()))
            .count();
        assert_eq!(lost, 0, "acknowledged puts from earlier rounds lost");
        let r = c.put("final", "x", None).await.expect("put after the crashes");
        assert!(r.header().unwrap().revision() > max_acked_rev, "revision went backwards after crash recovery");
    });
}
