//! `bench watch-latency`: how long a write takes to reach the watchers. `--watchers` watchers
//! of one prefix are spread over `--streams` Watch streams (spread over `--conns`
//! connections); once every watcher is created, `--put-clients` put loops (one, as etcd's) on
//! a connection of their own put `--put-total` keys at `--put-rate` in all.
//!
//! Each event each watcher receives is one sample, timed as etcd's watch-latency times it: from
//! the moment its put was sent. That includes the put's own commit, so the figure is what a
//! client watching for another client's write waits. The time from the put's *answer* to the
//! event is recorded too (the delivery delay alone); an event that arrives before the putter
//! has its answer — possible, both are sent at apply — counts as "before the put response"
//! instead. Each event is matched to its put through the key, which carries the put's number.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use wasmraft_proto::etcdserverpb::{
    PutRequest, WatchCreateRequest, WatchRequest, WatchResponse, kv_client::KvClient, watch_client::WatchClient,
    watch_request,
};

use super::report::{Latencies, Outcome};
use super::runner::{self, Plan, Stop};
use super::{Common, Finished};
use wasmraft_client::{CliError, EXIT_INVALID_INPUT, EXIT_SERVER_ERROR, secs, status_error};

/// The watched prefix; put `i` writes `PREFIX{i}`.
const PREFIX: &str = "bench-watch-latency/";

#[derive(Args, Debug, Clone)]
pub struct WatchLatencyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Watchers in all, each on the whole prefix (so each receives every put's event).
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Watch streams the watchers are dealt over (round-robin), dealt over --conns.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Puts in all.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Concurrent put loops (write load beyond one client's pace).
    #[arg(long, default_value_t = 1)]
    pub put_clients: usize,
    /// Puts per second; 0: as fast as the answers come.
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// When each put was sent and answered, in ns since the run started (+1, so 0 means "not yet").
struct PutTimes {
    start: Instant,
    sent: Vec<AtomicU64>,
    answered: Vec<AtomicU64>,
}

impl PutTimes {
    fn stamp(&self, slot: &AtomicU64) {
        slot.store(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1, Ordering::Release);
    }
}

/// What one stream's reader saw.
#[derive(Default)]
struct Seen {
    from_sent: Latencies,
    from_answer: Latencies,
    before_answer: u64,
    events: u64,
    error: Option<String>,
}

pub async fn run(a: &WatchLatencyArgs) -> Result<Finished, CliError> {
    if a.watchers == 0 || a.streams == 0 || a.put_total == 0 || a.put_clients == 0 {
        return Err(CliError::new(
            EXIT_INVALID_INPUT,
            "--watchers, --streams, --put-total and --put-clients must be at least 1",
        ));
    }
    let streams = a.streams.min(a.watchers);
    let rate = runner::rate(a.put_rate, "put-rate")?;
    let call = secs(a.common.conn.command_timeout, "command-timeout")?;
    // The watch connections, and one more for the puts.
    let mut conns = runner::connect(&a.common, a.common.conns + 1).await?;
    let put_conn = conns.pop().ok_or_else(|| CliError::new(EXIT_INVALID_INPUT, "--conns must be at least 1"))?;
    let times = Arc::new(PutTimes {
        start: Instant::now(),
        sent: (0..a.put_total).map(|_| AtomicU64::new(0)).collect(),
        answered: (0..a.put_total).map(|_| AtomicU64::new(0)).collect(),
    });
    let (done_tx, done_rx) = watch::channel(None::<(u64, Instant)>);
    let mut readers = Vec::with_capacity(streams);
    for s in 0..streams {
        let mine = (s..a.watchers).step_by(streams).count() as u64;
        let client = WatchClient::new(conns[s % conns.len()].clone());
        let (requests, responses) = open_stream(client, mine, call).await?;
        readers.push(tokio::spawn(read_events(responses, requests, mine, times.clone(), done_rx.clone())));
    }

    let plan =
        Plan { stop: Stop::Total(a.put_total), rate, progress: runner::progress(&a.common, Stop::Total(a.put_total)) };
    let (value, t) = (vec![b'v'; a.val_size], times.clone());
    let puts_started = Instant::now();
    let puts = runner::run(&plan, vec![KvClient::new(put_conn); a.put_clients], move |mut kv, i| {
        let (value, t) = (value.clone(), t.clone());
        async move {
            let slot = usize::try_from(i).unwrap_or(usize::MAX);
            let request = PutRequest { key: format!("{PREFIX}{i}").into_bytes(), value, ..Default::default() };
            t.stamp(&t.sent[slot]);
            kv.put(request).await?;
            t.stamp(&t.answered[slot]);
            Ok::<(), tonic::Status>(())
        }
    })
    .await;

    // Every watcher should now get every successful put's event; wait at most a
    // --command-timeout for the stragglers.
    let _ = done_tx.send(Some((puts.count(), Instant::now() + call)));
    let mut events = Outcome::default();
    let (mut from_answer, mut before_answer) = (Latencies::default(), 0);
    for r in readers {
        let seen =
            r.await.unwrap_or_else(|e| Seen { error: Some(format!("watch reader failed: {e}")), ..Default::default() });
        events.latencies.merge(&seen.from_sent);
        from_answer.merge(&seen.from_answer);
        before_answer += seen.before_answer;
        if let Some(e) = seen.error {
            events.error(e);
        }
    }
    // From the first put to the last event: the rate of events is what the watchers saw.
    events.elapsed = puts_started.elapsed();
    let expected = puts.count() * a.watchers as u64;
    let missing = expected.saturating_sub(events.count());
    if missing > 0 {
        events.errors.insert(format!("watch: event not received within {call:?} of the last put"), missing);
    }
    for (text, n) in &puts.errors {
        *events.errors.entry(format!("put: {text}")).or_default() += n;
    }

    let params = json!({
        "watchers": a.watchers, "streams": streams, "put_total": a.put_total, "put_clients": a.put_clients,
        "put_rate": a.put_rate, "val_size": a.val_size,
    });
    let mut extra = serde_json::Map::new();
    extra.insert("events".into(), json!(events.count()));
    extra.insert("puts".into(), json!(puts.count()));
    extra.insert("put_qps".into(), json!((puts.qps() * 1000.0).round() / 1000.0));
    extra.insert("put_latency_us".into(), puts.latencies.stats().to_json());
    extra.insert("after_put_response_us".into(), from_answer.stats().to_json());
    extra.insert("events_before_put_response".into(), json!(before_answer));
    let a_s = from_answer.stats();
    let more = format!(
        "{}\nFrom the put's response to the event: p50 {:.4} secs, p99 {:.4} secs, max {:.4} secs \
         ({} events arrived before their put's response).\n",
        puts.summary("Put summary", None),
        a_s.p50 as f64 / 1e6,
        a_s.p99 as f64 / 1e6,
        a_s.max as f64 / 1e6,
        before_answer,
    );
    Ok(Finished {
        title: "Watch latency summary (put sent → event received, per watcher)",
        transport: super::Transport::Grpc,
        outcome: events,
        params,
        extra,
        more,
    })
}

/// Opens one Watch stream with `watchers` watchers of [`PREFIX`] and waits until each is
/// created, so no put can precede a watcher. Returns the request end too: dropping it would
/// end the stream.
async fn open_stream(
    mut client: WatchClient<wasmraft_client::AuthedChannel>,
    watchers: u64,
    call: Duration,
) -> Result<(mpsc::Sender<WatchRequest>, Streaming<WatchResponse>), CliError> {
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(PREFIX.as_bytes()),
            ..Default::default()
        })),
    };
    let capacity = usize::try_from(watchers).unwrap_or(usize::MAX).clamp(1, 1024);
    let (requests, rx) = mpsc::channel(capacity);
    // Queue the creates before the call: a server may answer the call only with its first
    // message, and the channel delivers them as the stream opens.
    let queue = {
        let requests = requests.clone();
        tokio::spawn(async move {
            for _ in 0..watchers {
                if requests.send(create.clone()).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut responses = client.watch(ReceiverStream::new(rx)).await.map_err(status_error)?.into_inner();
    let mut created = 0;
    while created < watchers {
        let msg = tokio::time::timeout(call, responses.message())
            .await
            .map_err(|_| CliError::new(EXIT_SERVER_ERROR, format!("watchers not created within {call:?}")))?
            .map_err(status_error)?;
        match msg {
            Some(r) if r.canceled => {
                return Err(CliError::new(EXIT_SERVER_ERROR, format!("watch refused: {}", r.cancel_reason)));
            }
            Some(r) if r.created => created += 1,
            Some(_) => {}
            None => {
                return Err(CliError::new(
                    EXIT_SERVER_ERROR,
                    "the watch stream ended before its watchers were created",
                ));
            }
        }
    }
    let _ = queue.await;
    Ok((requests, responses))
}

/// Reads one stream's events until every watcher on it has every successful put's event, or
/// until the deadline set after the last put.
async fn read_events(
    mut responses: Streaming<WatchResponse>,
    _requests: mpsc::Sender<WatchRequest>,
    watchers: u64,
    times: Arc<PutTimes>,
    mut done: watch::Receiver<Option<(u64, Instant)>>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        let finish = *done.borrow();
        let msg = match finish {
            Some((puts, _)) if seen.events >= puts * watchers => break,
            Some((_, deadline)) => match tokio::time::timeout_at(deadline, responses.message()).await {
                Ok(msg) => msg,
                Err(_) => break,
            },
            None => tokio::select! {
                msg = responses.message() => msg,
                _ = done.changed() => continue,
            },
        };
        let r = match msg {
            Ok(Some(r)) => r,
            Ok(None) => {
                seen.error = Some("watch: the stream ended".into());
                break;
            }
            Err(s) => {
                seen.error = Some(format!("watch: {}", runner::Failure::text(&s)));
                break;
            }
        };
        if r.canceled {
            seen.error = Some(format!("watch: canceled: {}", r.cancel_reason));
            break;
        }
        let now = u64::try_from(times.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        for e in &r.events {
            let Some(slot) = e.kv.as_ref().and_then(|kv| put_number(&kv.key)).and_then(|i| usize::try_from(i).ok())
            else {
                continue;
            };
            let (Some(sent), Some(answered)) = (times.sent.get(slot), times.answered.get(slot)) else { continue };
            seen.events += 1;
            let sent = sent.load(Ordering::Acquire);
            seen.from_sent.record(Duration::from_nanos(now.saturating_sub(sent)));
            match answered.load(Ordering::Acquire) {
                0 => seen.before_answer += 1,
                at => seen.from_answer.record(Duration::from_nanos(now.saturating_sub(at))),
            }
        }
    }
    seen
}

/// The put number a key of [`PREFIX`] carries.
fn put_number(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(PREFIX.as_bytes())?).ok()?.parse().ok()
}

/// etcd's prefix range end: the prefix with its last byte below 0xff incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_put_number() {
        assert_eq!(put_number(format!("{PREFIX}42").as_bytes()), Some(42));
        assert_eq!(put_number(b"other/42"), None);
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }
}
