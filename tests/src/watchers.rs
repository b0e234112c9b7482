//! Watchers of a fault run: each watches the whole key space from the run's first revision,
//! on one member at a time, and records every event it gets. When its stream breaks (member
//! killed, paused, partitioned off, "no leader" cancel) it moves to the next member and resumes
//! from the revision after the last one it saw. When its position was compacted meanwhile, etcd
//! cancels the watch with a `compact_revision`: the watcher records the gap (revisions it can
//! never get) and resumes there. [`crate::watch_check`] then checks the logs.
//!
//! Every watch asks for `prev_kv` and progress notifications (the fault run starts members with
//! a 500 ms notification interval), and on wasmraft the watcher also requests progress every half
//! second — not on etcd 3.4.23, which answers a request at once with its current revision, ahead
//! of events it has not sent yet (etcd#15220, fixed in 3.4.25; `tests/watch_progress.rs` shows it)
//! — so that each response's boundaries (which events arrived together, where a
//! progress notification fell among them) are recorded for the atomicity and bookmark checks, and
//! each event's previous key for [`crate::kv_model`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use tokio::task::JoinHandle;

use crate::kv_model::Kv;

/// One event as seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenEvent {
    pub revision: i64,
    pub key: String,
    /// The value for a put (`None` for a delete).
    pub value: Option<String>,
    /// A put's key fields (0 for a delete).
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    /// The key before the event, as the server sent it (`prev_kv`).
    pub prev: Option<Kv>,
    /// Index of the response it came in, in [`WatchLog::responses`].
    pub response: usize,
}

/// One watch response as received: what the atomicity and bookmark checks need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenResponse {
    /// Which watch (stream) of this watcher it came on, counting from 1.
    pub watch: u64,
    /// On the history's clock.
    pub received_ns: u64,
    /// The header's revision.
    pub revision: i64,
    /// A progress notification: no events, not a create, cancel or compaction answer.
    pub progress: bool,
    pub events: usize,
}

/// Revisions `from..=to` were compacted before the watcher got them (etcd answered with
/// `compact_revision` = `to + 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactedGap {
    pub from: i64,
    pub to: i64,
}

/// What one watcher saw.
#[derive(Clone, Debug, Default)]
pub struct WatchLog {
    pub events: Vec<SeenEvent>,
    pub responses: Vec<SeenResponse>,
    pub gaps: Vec<CompactedGap>,
    /// The next revision it asks for when it (re)starts a watch.
    pub next: i64,
    /// Watches (re)started.
    pub watches: u64,
}

/// The running watchers.
pub struct Watchers {
    logs: Vec<Arc<Mutex<WatchLog>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    /// `count` watchers from `start` (inclusive), the i-th starting on member i (mod n). The
    /// last `lagging` of them keep falling behind on purpose: each drops its stream after a few
    /// seconds and stays away for three, so that compactions overtake it and the compacted
    /// answer (and the gap it leaves) is exercised, not only the happy reconnect.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        endpoints: Vec<String>,
        count: usize,
        lagging: usize,
        start: i64,
        clock: Instant,
        request_progress: bool,
    ) -> Watchers {
        let stop = Arc::new(AtomicBool::new(false));
        let logs: Vec<Arc<Mutex<WatchLog>>> =
            (0..count).map(|_| Arc::new(Mutex::new(WatchLog { next: start, ..Default::default() }))).collect();
        let tasks = logs
            .iter()
            .enumerate()
            .map(|(i, log)| {
                let lags = i + lagging >= count;
                let how = How { lags, clock, request_progress };
                rt.spawn(watch_loop(i, endpoints.clone(), log.clone(), stop.clone(), how))
            })
            .collect();
        Watchers { logs, stop, tasks }
    }

    /// Waits (blocking, bounded by `timeout`) until every watcher has seen or skipped every
    /// revision up to `revision`; `Err` names the ones that have not.
    pub fn wait_until(&self, revision: i64, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let behind: Vec<String> = self
                .snapshot()
                .iter()
                .enumerate()
                .filter(|(_, l)| l.next <= revision)
                .map(|(i, l)| format!("watcher {i} at {}", l.next))
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("watchers behind revision {revision} after {timeout:?}: {}", behind.join(", ")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Copies of the logs so far.
    pub fn snapshot(&self) -> Vec<WatchLog> {
        self.logs.iter().map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }

    /// Stops the watchers; their logs.
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> Vec<WatchLog> {
        self.stop.store(true, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = rt.block_on(t);
        }
        self.logs.iter().map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }
}

/// How a watcher behaves (see [`Watchers::start`]).
#[derive(Clone, Copy)]
struct How {
    lags: bool,
    clock: Instant,
    request_progress: bool,
}

async fn watch_loop(idx: usize, endpoints: Vec<String>, log: Arc<Mutex<WatchLog>>, stop: Arc<AtomicBool>, how: How) {
    let mut endpoint = idx % endpoints.len();
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        if how.lags {
            // 2 to 4 s of watching, then 3 s away.
            let watching = Duration::from_millis(2000 + (round * 700) % 2000);
            let _ = tokio::time::timeout(watching, watch_once(&endpoints[endpoint], &log, &how)).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        } else {
            let _ = watch_once(&endpoints[endpoint], &log, &how).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        endpoint = (endpoint + 1) % endpoints.len();
    }
}

/// One watch stream on one member, until it breaks or is cancelled.
async fn watch_once(endpoint: &str, log: &Mutex<WatchLog>, how: &How) -> Result<(), String> {
    let lock = || log.lock().unwrap_or_else(|p| p.into_inner());
    let mut client = crate::cluster::try_connect(&[endpoint.to_string()], Duration::from_secs(5)).await?;
    let next = lock().next;
    let opts = WatchOptions::new().with_all_keys().with_start_revision(next).with_prev_key().with_progress_notify();
    // The create itself is bounded: on a paused member it would wait forever.
    let mut stream = tokio::time::timeout(Duration::from_secs(5), client.watch("", Some(opts)))
        .await
        .map_err(|_| "watch create timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let watch = {
        let mut l = lock();
        l.watches += 1;
        l.watches
    };
    let mut progress = tokio::time::interval(Duration::from_millis(500));
    let mut silent_since = Instant::now();
    loop {
        let msg = tokio::select! {
            m = stream.message() => m.map_err(|e| e.to_string())?,
            _ = progress.tick() => {
                // A silent member (paused, cut off) is left after a while; the resume point is
                // kept.
                if silent_since.elapsed() > Duration::from_secs(10) {
                    return Err("silent for 10 s".into());
                }
                if how.request_progress {
                    stream.request_progress().await.map_err(|e| e.to_string())?;
                }
                continue;
            }
        };
        silent_since = Instant::now();
        let Some(resp) = msg else {
            return Err("stream ended".into());
        };
        let received_ns = u64::try_from(how.clock.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut l = lock();
        if resp.compact_revision() > 0 {
            let c = resp.compact_revision();
            if c > l.next {
                let from = l.next;
                l.gaps.push(CompactedGap { from, to: c - 1 });
                l.next = c;
            }
            return Err(format!("compacted at {c}"));
        }
        let response = l.responses.len();
        l.responses.push(SeenResponse {
            watch,
            received_ns,
            revision: resp.header().map_or(0, |h| h.revision()),
            progress: resp.events().is_empty() && !resp.created() && !resp.canceled(),
            events: resp.events().len(),
        });
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let revision = kv.mod_revision();
            let put = ev.event_type() == EventType::Put;
            l.events.push(SeenEvent {
                revision,
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: put.then(|| String::from_utf8_lossy(kv.value()).into_owned()),
                create_revision: if put { kv.create_revision() } else { 0 },
                version: if put { kv.version() } else { 0 },
                lease: if put { kv.lease() } else { 0 },
                prev: ev.prev_kv().map(Kv::from_etcd),
                response,
            });
            l.next = l.next.max(revision + 1);
        }
        if resp.canceled() {
            return Err(format!("cancelled: {}", resp.cancel_reason()));
        }
    }
}
