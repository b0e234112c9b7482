//! The Watch API against etcd 3.4.23, side by side on 3-member clusters started with
//! `--experimental-watch-progress-notify-interval=200ms`.
//!
//! - `etcdctl watch` (history with `--rev`, `--prefix`, `--prev-kv`, a range, JSON output that
//!   shows response boundaries and header revisions, interactive `-i` fed on stdin, a txn's
//!   events, a compacted revision, live events written through another member): the printed
//!   outputs, normalized as everywhere in these tests, must be equal.
//! - The etcd-client crate: one stream with several watchers (client-chosen and automatic ids,
//!   a duplicate id, an empty range, NOPUT/NODELETE filters, prev_kv, progress request,
//!   progress notifications, cancel), every response rendered field by field and compared.
//! - A stalled watcher (its client never reads) does not stall writes nor a watcher on another
//!   connection, and gets every event, in order and once, when it reads again (wasmraft only:
//!   this is about the hub's synced/unsynced behaviour, not a printed output).
//!
//! `WASMRAFT_TEST_SUBJECT=etcd` makes the subject a second real etcd, to validate the test.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchFilterType, WatchOptions, WatchResponse};
use wasmraft_tests::etcdctl::{Background, normalize};
use wasmraft_tests::{Cluster, ClusterConfig, Etcdctl, Flavor};

fn subject() -> Flavor {
    match std::env::var("WASMRAFT_TEST_SUBJECT").as_deref() {
        Ok("etcd") => Flavor::Etcd,
        _ => Flavor::Wasmraft,
    }
}

fn cluster(flavor: Flavor) -> Cluster {
    ClusterConfig::new(flavor, 3).arg("--experimental-watch-progress-notify-interval=200ms").start()
}

/// A running `etcdctl watch`.
struct Watching(Background);

impl Watching {
    fn start(endpoint: &str, args: &[&str]) -> Watching {
        Watching(Etcdctl::new(endpoint).spawn(&[&["watch"], args].concat()))
    }

    fn send_line(&mut self, line: &str) {
        self.0.send_line(line);
    }

    /// Waits until the output has `lines` lines (what etcd prints; or stopped growing for 2 s, or the
    /// process ended, or 10 s passed), then a little longer so that anything extra would show,
    /// and returns it normalized.
    fn finish(mut self, lines: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut seen, mut since) = (0, Instant::now());
        while Instant::now() < deadline {
            let n = self.0.line_count();
            if n != seen {
                (seen, since) = (n, Instant::now());
            }
            let quiet = n > 0 && since.elapsed() > Duration::from_secs(2);
            if n >= lines || quiet || self.0.exited() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        normalize(&self.0.kill())
    }
}

/// Gives a just-started watch time to be created before the writes it should see.
fn settle() {
    std::thread::sleep(Duration::from_millis(700));
}

/// Everything etcdctl printed in the scenario, step by step.
fn etcdctl_script(mut c: Cluster) -> Vec<(&'static str, String)> {
    let (w0, e1, e2) = (c.endpoint(0), c.etcdctl(1), c.etcdctl(2));
    let put = |ctl: &Etcdctl, k: &str, v: &str| assert!(ctl.run(&["put", k, v]).success());
    put(&e1, "a", "1"); // 2
    put(&e1, "b", "1"); // 3
    put(&e1, "a", "2"); // 4
    assert!(e1.run(&["del", "a"]).success()); // 5
    let txn = e1.run_with_stdin(&["txn"], Some("\nput x1 one\nput x2 two\ndel b\n\n\n"));
    assert!(txn.success(), "{}", txn.render()); // 6
    put(&e1, "a", "3"); // 7
    let mut out = vec![
        ("--rev=2 a", Watching::start(&w0, &["--rev=2", "a"]).finish(12)),
        ("--rev=2 --prev-kv a", Watching::start(&w0, &["--rev=2", "--prev-kv", "a"]).finish(16)),
        ("--rev=1 --prefix x -w json", Watching::start(&w0, &["--rev=1", "--prefix", "x", "-w", "json"]).finish(1)),
        ("--rev=3 a x (range) -w json", Watching::start(&w0, &["--rev=3", "a", "x", "-w", "json"]).finish(1)),
        ("--rev=6 --prev-kv --prefix ''", Watching::start(&w0, &["--rev=6", "--prev-kv", "--prefix", ""]).finish(14)),
    ];

    // Live: a watch on member 0, writes through member 2 (one put, one txn, one range delete).
    let live = Watching::start(&w0, &["--prefix", "live", "-w", "json"]);
    let live_prev = Watching::start(&w0, &["--prefix", "--prev-kv", "live"]);
    settle();
    put(&e2, "live/1", "v1"); // 8
    let txn = e2.run_with_stdin(&["txn"], Some("\nput live/2 v2\nput live/1 v1b\n\n\n"));
    assert!(txn.success(), "{}", txn.render()); // 9
    assert!(e2.run(&["del", "--prefix", "live"]).success()); // 10
    out.push(("live -w json", live.finish(3)));
    out.push(("live --prev-kv", live_prev.finish(21)));

    // Interactive: two watches on one stream, then writes.
    let mut inter = Watching::start(&w0, &["-i"]);
    inter.send_line("watch --rev=7 a");
    inter.send_line("watch --prefix inter");
    settle();
    put(&e2, "inter/x", "1"); // 11
    put(&e2, "a", "4"); // 12
    out.push(("-i", inter.finish(9)));

    // Compaction: a watch from before it is told so and ends; one from it on is complete.
    assert!(e1.run(&["compaction", "7"]).success());
    out.push(("--rev=3 a after compaction 7", Watching::start(&w0, &["--rev=3", "a"]).finish(2)));
    out.push(("--rev=7 a after compaction 7 -w json", Watching::start(&w0, &["--rev=7", "a", "-w", "json"]).finish(1)));

    // etcdctl requires a leader: when its member has had none for three election timeouts,
    // the stream is ended with "no leader".
    let orphan = Watching::start(&w0, &["lost"]);
    settle();
    c.kill9(1);
    c.kill9(2);
    out.push(("watch while the member loses its leader", orphan.finish(2)));
    out
}

#[test]
fn etcdctl_watch_matches_etcd() {
    let etcd = etcdctl_script(cluster(Flavor::Etcd));
    let ours = etcdctl_script(cluster(subject()));
    let mut diffs = Vec::new();
    for ((step, e), (_, w)) in etcd.iter().zip(&ours) {
        if e != w {
            diffs.push(format!("== {step}\n-- etcd\n{e}-- subject\n{w}"));
        }
    }
    assert!(diffs.is_empty(), "etcdctl watch differs from etcd 3.4:\n{}", diffs.join("\n"));
    // The comparison must have compared something: etcd printed the events.
    assert!(etcd[0].1.contains("PUT\na\n1\n"), "{}", etcd[0].1);
    for (step, printed) in &etcd {
        assert!(!printed.trim().is_empty(), "{step}: etcd printed nothing");
    }
}

fn render(resp: &WatchResponse, out: &mut String) {
    let _ = write!(
        out,
        "watch_id={} created={} canceled={} compact_revision={} cancel_reason={:?} revision={}",
        resp.watch_id(),
        resp.created(),
        resp.canceled(),
        resp.compact_revision(),
        resp.cancel_reason(),
        resp.header().map_or(-1, |h| h.revision()),
    );
    for e in resp.events() {
        let kind = match e.event_type() {
            EventType::Put => "PUT",
            EventType::Delete => "DELETE",
        };
        let kv = |kv: Option<&etcd_client::KeyValue>| {
            kv.map_or("-".to_string(), |kv| {
                format!(
                    "{}={}@{}/{}/v{}",
                    kv.key_str().unwrap_or("?"),
                    kv.value_str().unwrap_or("?"),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version()
                )
            })
        };
        let _ = write!(out, "\n  {kind} {} prev {}", kv(e.kv()), kv(e.prev_kv()));
    }
    out.push('\n');
}

/// Reads responses until `n` arrived (or 5 s passed) and renders them. Responses of different
/// watchers to one write come in no defined order (etcd walks a Go map), so they are grouped by
/// watch id, keeping each watcher's own order.
async fn take(stream: &mut etcd_client::WatchStream, n: usize, out: &mut String) {
    let mut got: Vec<(i64, String)> = Vec::new();
    let mut end = String::new();
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(resp))) => {
                let mut r = String::new();
                render(&resp, &mut r);
                got.push((resp.watch_id(), r));
            }
            Ok(Ok(None)) => {
                end = "<stream ended>\n".into();
                break;
            }
            Ok(Err(e)) => {
                end = format!("<error {e}>\n");
                break;
            }
            Err(_) => {
                end = "<timeout>\n".into();
                break;
            }
        }
    }
    got.sort_by_key(|(id, _)| *id);
    for (_, r) in got {
        out.push_str(&r);
    }
    out.push_str(&end);
}

async fn client_script(c: &Cluster) -> String {
    let mut writer = c.client(0, Duration::from_secs(5)).await;
    let mut client = c.client(0, Duration::from_secs(5)).await;
    let mut out = String::new();
    writer.put("k/a", "1", None).await.expect("put"); // 2
    writer.put("k/b", "1", None).await.expect("put"); // 3
    // Watcher 7: the prefix from revision 2 with prev_kv, deletes filtered out.
    let mut s = client
        .watch(
            "k/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(2)
                    .with_prev_key()
                    .with_watch_id(7)
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .expect("watch");
    take(&mut s, 2, &mut out).await; // created, then the replay
    // An automatic id (0), a duplicate of 7, an empty range, and a puts-filtered one on k/a.
    s.watch("k/a", None).await.expect("watch");
    s.watch("k/", Some(WatchOptions::new().with_prefix().with_watch_id(7))).await.expect("watch");
    s.watch("k/z", Some(WatchOptions::new().with_range("k/a"))).await.expect("watch");
    s.watch("k/a", Some(WatchOptions::new().with_filters([WatchFilterType::NoPut]).with_prev_key().with_watch_id(9)))
        .await
        .expect("watch");
    take(&mut s, 4, &mut out).await;
    writer.put("k/a", "2", None).await.expect("put"); // 4: to 7 and 0
    writer.delete("k/a", None).await.expect("delete"); // 5: to 0 and 9
    take(&mut s, 4, &mut out).await;
    s.request_progress().await.expect("progress");
    take(&mut s, 1, &mut out).await;
    s.cancel(0).await.expect("cancel");
    s.cancel(12345).await.expect("cancel unknown"); // no answer, as in etcd
    take(&mut s, 1, &mut out).await;
    writer.put("k/a", "3", None).await.expect("put"); // 6: to 7 only
    take(&mut s, 1, &mut out).await;
    // Progress notifications (every 200 ms here): a quiet watcher asked for them gets one.
    let mut p = client.watch("quiet", Some(WatchOptions::new().with_progress_notify())).await.expect("watch");
    take(&mut p, 2, &mut out).await;
    // A compacted start: the watcher is canceled with the compaction revision.
    writer.compact(5, None).await.expect("compact");
    let mut old = client.watch("k/a", Some(WatchOptions::new().with_start_revision(3))).await.expect("watch");
    take(&mut old, 2, &mut out).await;
    // Fragments: three 1 MiB values replayed in one response pass the 2 MiB limit (1.5 MiB
    // --max-request-bytes plus gRPC overhead); with `fragment` etcd splits it, without it not.
    let big = vec![b'f'; 1 << 20];
    let first = writer.put("big/1", big.clone(), None).await.expect("put").header().expect("header").revision();
    writer.put("big/2", big.clone(), None).await.expect("put");
    writer.put("big/3", big, None).await.expect("put");
    for (name, options) in [("fragment", WatchOptions::new().with_fragment()), ("whole", WatchOptions::new())] {
        let mut w = client.watch("big/", Some(options.with_prefix().with_start_revision(first))).await.expect("watch");
        let _ = write!(out, "{name}:");
        let mut events = 0;
        while events < 3 {
            match tokio::time::timeout(Duration::from_secs(5), w.message()).await {
                Ok(Ok(Some(r))) => {
                    events += r.events().len();
                    let _ = write!(out, " {}", r.events().len());
                }
                other => {
                    let _ = write!(out, " <{other:?}>");
                    break;
                }
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn etcd_client_watch_matches_etcd() {
    let rt = wasmraft_tests::runtime();
    let etcd = rt.block_on(client_script(
        &ClusterConfig::new(Flavor::Etcd, 1).arg("--experimental-watch-progress-notify-interval=200ms").start(),
    ));
    let ours = rt.block_on(client_script(
        &ClusterConfig::new(subject(), 1).arg("--experimental-watch-progress-notify-interval=200ms").start(),
    ));
    assert_eq!(ours, etcd, "etcd-client watch responses differ from etcd 3.4 (left: subject, right: etcd)");
    assert!(etcd.contains("PUT k/a=2@2/4/v2 prev k/a=1@2/2/v1"), "{etcd}");
    // The created response, then the replay: in three pieces, or in one.
    assert!(etcd.contains("fragment: 0 1 1 1\nwhole: 0 3\n"), "{etcd}");
}

/// A watcher whose client stops reading: writes and another watcher go on; once it reads
/// again it gets every event, in order, exactly once.
#[test]
fn a_stalled_watcher_stalls_nothing_and_catches_up() {
    const PUTS: usize = 300;
    let c = ClusterConfig::new(subject(), 1).start();
    let rt = wasmraft_tests::runtime();
    rt.block_on(async {
        let value = vec![b'v'; 64 * 1024];
        // Separate connections: an unread stream also holds its connection's flow-control window.
        let stalled_client = c.client(0, Duration::from_secs(5)).await;
        let mut live_client = c.client(0, Duration::from_secs(5)).await;
        let mut writer = c.client(0, Duration::from_secs(5)).await;
        // A replay batches up to 1000 revisions (as etcd does): far more than the client's
        // default 4 MiB message limit with these values.
        let mut stalled = stalled_client
            .watch_client()
            .max_decoding_message_size(1 << 30)
            .watch("s/", Some(WatchOptions::new().with_prefix()))
            .await
            .expect("watch");
        let mut live = live_client.watch("s/", Some(WatchOptions::new().with_prefix())).await.expect("watch");
        for s in [&mut stalled, &mut live] {
            let created = s.message().await.expect("created").expect("created");
            assert!(created.created());
        }
        // The live watcher is read concurrently; the stalled one is not read at all.
        let reader = tokio::spawn(async move {
            let mut revs = Vec::new();
            while revs.len() < PUTS {
                match tokio::time::timeout(Duration::from_secs(20), live.message()).await {
                    Ok(Ok(Some(r))) => revs.extend(r.events().iter().map(|e| e.kv().map_or(0, |kv| kv.mod_revision()))),
                    other => panic!("live watcher: {other:?} after {} events", revs.len()),
                }
            }
            revs
        });
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        let mut first = 0;
        for i in 0..PUTS {
            let t = Instant::now();
            let r = writer.put(format!("s/{i:04}"), value.clone(), None).await.expect("put");
            slowest = slowest.max(t.elapsed());
            if i == 0 {
                first = r.header().expect("header").revision();
            }
        }
        let writes = started.elapsed();
        let live_revs =
            tokio::time::timeout(Duration::from_secs(30), reader).await.expect("live watcher kept up").expect("reader");
        let want: Vec<i64> = (first..first + PUTS as i64).collect();
        assert_eq!(live_revs, want, "the live watcher got every event in order");
        assert!(slowest < Duration::from_secs(2), "a put took {slowest:?} while a watcher was stalled");
        // Now the stalled watcher reads: everything, in order, once.
        let mut revs = Vec::new();
        while revs.len() < PUTS {
            match tokio::time::timeout(Duration::from_secs(20), stalled.message()).await {
                Ok(Ok(Some(r))) => {
                    assert!(!r.canceled(), "stalled watcher canceled: {:?}", r.cancel_reason());
                    revs.extend(r.events().iter().map(|e| e.kv().map_or(0, |kv| kv.mod_revision())));
                }
                other => panic!("stalled watcher: {other:?} after {} events", revs.len()),
            }
        }
        assert_eq!(revs, want, "the stalled watcher got every event in order, once");
        eprintln!("{PUTS} puts of 64 KiB with a stalled watcher: {writes:?} (slowest {slowest:?})");
    });
}

/// A member that falls behind the leader's compacted log installs a snapshot, which replaces its
/// state wholesale: its watchers must still get every event, in order, once (etcd moves them to
/// unsynced on restore, as the hub does).
#[test]
fn watchers_on_a_member_that_installs_a_snapshot_miss_nothing() {
    // More entries than raft sends a paused follower before it waits for acknowledgements
    // (max inflight messages), so the rest can only reach it by snapshot.
    const PUTS: i64 = 800;
    let mut config = ClusterConfig::new(subject(), 3).arg("--snapshot-count=100");
    if subject() == Flavor::Wasmraft {
        // etcd 3.4 keeps a fixed 5,000 entries behind a snapshot and has no such flag.
        config = config.arg("--snapshot-catchup-entries=10");
    }
    let mut c = config.start();
    let leader = c.wait_leader(Duration::from_secs(20));
    let behind = (leader + 1) % 3;
    let writer_ep = c.endpoint(leader);
    let rt = wasmraft_tests::runtime();
    let (mut stream, first) = rt.block_on(async {
        let mut watcher = c.client(behind, Duration::from_secs(5)).await;
        let mut stream = watcher.watch("snap/", Some(WatchOptions::new().with_prefix())).await.expect("watch");
        let created = stream.message().await.expect("created").expect("created");
        (stream, created.header().expect("header").revision() + 1)
    });
    c.pause(behind);
    rt.block_on(async {
        let mut writer = etcd_client::Client::connect([writer_ep], None).await.expect("connect");
        for i in 0..PUTS {
            writer.put(format!("snap/{i:04}"), format!("v{i}"), None).await.expect("put");
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    c.resume(behind);
    let revs = rt.block_on(async {
        let mut revs = Vec::new();
        while (revs.len() as i64) < PUTS {
            match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
                Ok(Ok(Some(r))) => revs.extend(r.events().iter().map(|e| e.kv().map_or(0, |kv| kv.mod_revision()))),
                other => panic!("watcher on the member behind: {other:?} after {} events", revs.len()),
            }
        }
        revs
    });
    assert_eq!(revs, (first..first + PUTS).collect::<Vec<_>>());
    if subject() == Flavor::Wasmraft {
        let log = c.member(behind).log();
        assert!(log.contains("installing snapshot at index"), "the member did not install a snapshot; its log:\n{log}");
    }
}
