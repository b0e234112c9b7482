//! How load is generated, the same for every workload: `--conns` gRPC connections dealt
//! round-robin over `--endpoints`, `--clients` request loops dealt round-robin over the
//! connections, each loop sending its next request as soon as its last one is answered (closed
//! loop, as etcd's benchmark does), until `--total` requests were sent or `--duration` passed,
//! never faster than `--rate` requests/s summed over all loops.
//!
//! A workload supplies one state per loop (usually a tonic client, cheap to clone) and an async
//! function that sends request number `i`; the runner times it and counts its failure by its
//! [`Failure`] text, whichever transport it went over.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::report::Outcome;
use super::{Common, Load};
use wasmraft_client::{
    AuthedChannel, CliError, Dial, EXIT_BAD_CONNECTION, EXIT_INVALID_INPUT, channel_to, login, secs,
};

/// When the request loops stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After this many requests in all (each sent once, whatever its answer).
    Total(u64),
    /// At the first request a loop would start after this long.
    After(Duration),
}

/// One timed phase: when its loops stop, how fast they may go, what the user sees (the
/// number of loops is the number of states given to [`run`]).
pub struct Plan {
    pub stop: Stop,
    /// Requests per second over all loops; `None`: as fast as the answers come.
    pub rate: Option<f64>,
    pub progress: ProgressBar,
}

impl Plan {
    /// The phase `--clients`, `--total`/`--duration` and `--rate` describe.
    pub fn from_flags(load: &Load, common: &Common) -> Result<Plan, CliError> {
        let stop = match load.duration {
            Some(d) if d.is_zero() => return Err(CliError::new(EXIT_INVALID_INPUT, "--duration must be more than 0")),
            Some(d) => Stop::After(d),
            None => Stop::Total(load.total.unwrap_or(DEFAULT_TOTAL)),
        };
        Ok(Plan { stop, rate: rate(load.rate, "rate")?, progress: progress(common, stop) })
    }

    /// A phase that is not measured (writing a key space before reading it): no progress bar,
    /// no rate limit.
    pub fn untimed(total: u64) -> Plan {
        Plan { stop: Stop::Total(total), rate: None, progress: ProgressBar::hidden() }
    }
}

/// etcd's benchmark default for `--total`.
pub const DEFAULT_TOTAL: u64 = 10_000;

/// `--rate`-like flags: 0 means unlimited; negative or not a number is a usage error.
pub fn rate(value: f64, flag: &str) -> Result<Option<f64>, CliError> {
    if !value.is_finite() || value < 0.0 {
        return Err(CliError::new(
            EXIT_INVALID_INPUT,
            format!("--{flag} must be a number of requests per second, 0 for unlimited (got {value})"),
        ));
    }
    Ok((value > 0.0).then_some(value))
}

/// A bar on stderr counting requests (a counter without a bar for a `--duration` run). indicatif
/// draws nothing when stderr is not a terminal, so logs and test output stay clean on their own.
pub fn progress(common: &Common, stop: Stop) -> ProgressBar {
    if common.no_progress {
        return ProgressBar::hidden();
    }
    let (len, template) = match stop {
        Stop::Total(n) => (Some(n), "{elapsed_precise} [{bar:40}] {pos}/{len} requests ({per_sec})".to_string()),
        Stop::After(d) => (None, format!("{{elapsed_precise}} of {d:?}: {{pos}} requests ({{per_sec}})")),
    };
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `n` connections (usually `--conns`), dealt round-robin over the endpoints, all made before
/// anything is measured; one login for all of them when `--user` is given. An endpoint that
/// cannot be reached is an error naming it, not a run full of failures.
pub async fn connect(common: &Common, n: usize) -> Result<Vec<AuthedChannel>, CliError> {
    if n == 0 {
        return Err(CliError::new(EXIT_INVALID_INPUT, "--conns must be at least 1"));
    }
    let endpoints: Vec<&String> = common.conn.endpoints.iter().filter(|e| !e.trim().is_empty()).collect();
    if endpoints.is_empty() {
        return Err(CliError::new(EXIT_INVALID_INPUT, "--endpoints names no endpoint"));
    }
    let dial = Dial::new(&common.conn, secs(common.conn.command_timeout, "command-timeout")?)?;
    let mut channels = Vec::with_capacity(n);
    for i in 0..n {
        let ep = endpoints[i % endpoints.len()];
        let (channel, _) = channel_to(ep.trim(), &dial)
            .await
            .map_err(|e| CliError::new(EXIT_BAD_CONNECTION, format!("cannot connect to {e}")))?;
        channels.push(channel);
    }
    let token = login(&common.conn, channels[0].clone()).await?;
    Ok(channels.into_iter().map(|c| AuthedChannel::new(c, token.clone())).collect())
}

/// `n` clients made by `make` (a tonic client's `new`), dealt round-robin over fresh
/// connections.
pub async fn clients<C>(common: &Common, n: usize, make: impl Fn(AuthedChannel) -> C) -> Result<Vec<C>, CliError> {
    let conns = connect(common, common.conns).await?;
    Ok((0..n).map(|i| make(conns[i % conns.len()].clone())).collect())
}

/// Runs `plan` with one loop per element of `states`; `request(state, i)` sends request `i`.
/// Returns every loop's latencies and errors merged, and the phase's wall time.
pub async fn run<S, F, Fut, E>(plan: &Plan, states: Vec<S>, request: F) -> Outcome
where
    S: Clone + Send + 'static,
    F: Fn(S, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Failure,
{
    let next = Arc::new(AtomicU64::new(0));
    let request = Arc::new(request);
    let limiter = plan.rate.map(|r| Arc::new(Limiter::new(r)));
    let start = Instant::now();
    let deadline = match plan.stop {
        Stop::After(d) => Some(start + d),
        Stop::Total(_) => None,
    };
    let total = match plan.stop {
        Stop::Total(n) => n,
        Stop::After(_) => u64::MAX,
    };
    let mut loops = Vec::with_capacity(states.len());
    for state in states {
        let (next, request, limiter, bar) = (next.clone(), request.clone(), limiter.clone(), plan.progress.clone());
        loops.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                if let Some(l) = &limiter {
                    l.wait().await;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let sent = Instant::now();
                match request(state.clone(), i).await {
                    Ok(()) => out.latencies.record(sent.elapsed()),
                    Err(failure) => out.error(failure.text()),
                }
                bar.inc(1);
            }
            out
        }));
    }
    let mut outcome = Outcome::default();
    for l in loops {
        match l.await {
            Ok(out) => outcome.merge(&out),
            // A loop that panicked is a bug here, not a server's answer; still, say so.
            Err(e) => outcome.error(format!("request loop failed: {e}")),
        }
    }
    outcome.elapsed = start.elapsed();
    plan.progress.finish_and_clear();
    outcome
}

/// How a failed request is counted in the error distribution.
pub trait Failure {
    fn text(&self) -> String;
}

/// A gRPC status: its code and message, as the other client commands print them
/// (`Unavailable: etcdserver: leader changed`).
impl Failure for tonic::Status {
    fn text(&self) -> String {
        format!("{:?}: {}", self.code(), self.message())
    }
}

/// A token bucket holding one token (golang.org/x/time/rate with burst 1, as etcd's benchmark
/// uses): requests are spaced 1/rate apart, and time lost to a slow answer is not made up with
/// a burst afterwards, so the server sees the rate asked for and never more.
pub struct Limiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(per_second: f64) -> Limiter {
        Limiter { interval: Duration::from_secs_f64(1.0 / per_second), next: Mutex::new(None) }
    }

    /// Waits for this caller's slot.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_spaces_requests_and_does_not_burst_after_a_pause() {
        let l = Limiter::new(10.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            l.wait().await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(400));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t1 = Instant::now();
        l.wait().await;
        l.wait().await;
        assert_eq!(t1.elapsed(), Duration::from_millis(100), "one slot now, the next 100 ms later");
    }

    #[tokio::test(start_paused = true)]
    async fn total_and_duration_stop_the_loops() {
        let ok = |_: (), _: u64| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<(), tonic::Status>(())
        };
        let plan = Plan::untimed(100);
        let out = run(&plan, vec![(); 4], ok).await;
        assert_eq!(out.count(), 100);
        assert_eq!(out.elapsed, Duration::from_millis(250));

        let plan = Plan { stop: Stop::After(Duration::from_secs(1)), rate: None, progress: ProgressBar::hidden() };
        let out = run(&plan, vec![(); 2], ok).await;
        assert_eq!(out.count(), 200);

        let plan =
            Plan { stop: Stop::After(Duration::from_secs(2)), rate: Some(50.0), progress: ProgressBar::hidden() };
        let out = run(&plan, vec![(); 8], ok).await;
        assert!((99..=101).contains(&out.count()), "{}", out.count());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_by_their_text() {
        let fail = |_: (), i: u64| async move {
            if i.is_multiple_of(2) { Ok(()) } else { Err(tonic::Status::unavailable("etcdserver: no leader")) }
        };
        let out = run(&Plan::untimed(10), vec![(); 3], fail).await;
        assert_eq!(out.count(), 5);
        assert_eq!(out.errors["Unavailable: etcdserver: no leader"], 5);
    }
}
