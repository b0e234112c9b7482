//! kvload — a small etcd v3 KV load generator, for comparing wasmraft with real etcd on the same
//! machine in the same run (see `tests/scripts/compare-load.sh`).
//!
//! ```text
//! kvload put   --endpoints http://127.0.0.1:2379 --clients 16 --total 10000 --key-size 8 --val-size 256
//! kvload range --endpoints http://127.0.0.1:2379 --clients 16 --total 10000 --consistency s
//! kvload status --endpoints http://127.0.0.1:2379,http://127.0.0.1:2381
//! kvload failover --kill-pid 1234 --endpoints http://127.0.0.1:2381,http://127.0.0.1:2383
//! ```
//!
//! It speaks only the public etcd API through the `etcd-client` crate, so the same run measures
//! either server. `--clients` concurrent request loops share `--conns` gRPC connections (like
//! etcd's own `benchmark` tool); the `--total` requests are spread over them. Prints throughput
//! and latency percentiles, plus one `RESULT key=value ...` line meant for scripts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use etcd_client::{Client, ConnectOptions, GetOptions};
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(
    name = "kvload",
    about = "etcd v3 KV load generator (puts or ranges), prints QPS and latency percentiles"
)]
struct Cli {
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand, Debug)]
enum Op {
    /// Puts `--total` keys (`--key-space` distinct keys, cycling) of `--val-size` bytes.
    Put(Common),
    /// Ranges (single-key gets) over `--key-space` keys, which are written first (untimed).
    Range {
        #[command(flatten)]
        common: Common,
        /// l = linearizable, s = serializable.
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Maintenance.Status of each endpoint, one `STATUS endpoint=… member=… leader=… term=…
    /// index=… applied=…` line each (or `STATUS endpoint=… error=…`); exits 1 if any failed.
    Status(Cluster),
    /// Leader failover time: SIGKILLs `--kill-pid` (the leader), then starts a put through
    /// every `--endpoints` (the survivors) every 20 ms, overlapping, until the first succeeds.
    /// Prints `RESULT op=failover failover_ms=…` — from the kill to that first success.
    Failover {
        #[command(flatten)]
        cluster: Cluster,
        /// The process to kill -9 (the current leader).
        #[arg(long)]
        kill_pid: i32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        give_up_secs: u64,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Comma-separated client URLs.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Concurrent request loops.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// gRPC connections shared by the clients.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Total requests.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Key size in bytes (keys are zero-padded decimal indexes).
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Distinct keys; default: `--total` for put, 1000 for range.
    #[arg(long)]
    key_space: Option<u64>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

/// For `status` and `failover`.
#[derive(clap::Args, Debug, Clone)]
struct Cluster {
    /// Comma-separated client URLs.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Consistency {
    L,
    S,
}

fn key(i: u64, size: usize) -> Vec<u8> {
    let digits = format!("{i:0size$}");
    // Keep exactly `size` bytes: the low digits if the index is wider than the key.
    digits.as_bytes()[digits.len().saturating_sub(size)..].to_vec()
}

async fn connect_one(endpoint: &str, timeout_ms: u64) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_millis(timeout_ms))
        .with_connect_timeout(Duration::from_millis(timeout_ms));
    Client::connect([endpoint], Some(opts))
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

async fn status(c: &Cluster) -> Result<()> {
    let mut failed = false;
    for e in &c.endpoints {
        let st = async {
            let mut client = connect_one(e, c.timeout_ms).await?;
            let st = tokio::time::timeout(Duration::from_millis(c.timeout_ms), client.status())
                .await
                .context("timed out")??;
            anyhow::Ok(st)
        }
        .await;
        match st {
            Ok(st) => {
                let h = st.header().context("status without header")?;
                println!(
                    "STATUS endpoint={e} member={:x} leader={:x} term={} index={} applied={} revision={}",
                    h.member_id(),
                    st.leader(),
                    st.raft_term(),
                    st.raft_index(),
                    st.raft_applied_index(),
                    h.revision()
                );
            }
            Err(err) => {
                failed = true;
                println!(
                    "STATUS endpoint={e} error={}",
                    format!("{err:#}").replace(' ', "_")
                );
            }
        }
    }
    if failed {
        bail!("some endpoints did not answer");
    }
    Ok(())
}

async fn failover(c: &Cluster, pid: i32, give_up: Duration) -> Result<()> {
    let mut clients = Vec::new();
    for e in &c.endpoints {
        clients.push((e.clone(), connect_one(e, c.timeout_ms).await?));
    }
    // Warm the connections so the measurement does not include connection setup.
    for (e, client) in &mut clients {
        client
            .status()
            .await
            .with_context(|| format!("{e} does not answer before the kill"))?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Duration, u64)>();
    let killed_at = Instant::now();
    // SAFETY: kill(2) with a pid given on the command line.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        bail!("kill -9 {pid}: {}", std::io::Error::last_os_error());
    }
    // A fresh attempt every 20 ms on each survivor, attempts overlapping: a put stuck on the
    // dead leader (and timing out) does not delay the next one, so the resolution is ~20 ms
    // rather than the request timeout.
    for (e, client) in clients {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut attempts = 0u64;
            while !tx.is_closed() && killed_at.elapsed() < give_up {
                attempts += 1;
                let (tx, e, mut client) = (tx.clone(), e.clone(), client.clone());
                tokio::spawn(async move {
                    let key = format!("failover-probe/{}", killed_at.elapsed().as_nanos());
                    if client.put(key, "x", None).await.is_ok() {
                        let _ = tx.send((e, killed_at.elapsed(), attempts));
                    }
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    drop(tx);
    let (e, took, attempts) = tokio::time::timeout(give_up, rx.recv())
        .await
        .context("no put succeeded")?
        .context("all writers ended")?;
    let ms = took.as_secs_f64() * 1000.0;
    println!(
        "failover: first successful put through {e} {ms:.1} ms after kill -9 (attempt #{attempts} on it, one every 20 ms)"
    );
    println!("RESULT op=failover failover_ms={ms:.1} endpoint={e}");
    Ok(())
}

async fn connections(c: &Common) -> Result<Vec<Client>> {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_secs(c.timeout))
        .with_connect_timeout(Duration::from_secs(5));
    let mut conns = Vec::new();
    for _ in 0..c.conns.max(1) {
        conns.push(
            Client::connect(&c.endpoints, Some(opts.clone()))
                .await
                .with_context(|| format!("connecting to {:?}", c.endpoints))?,
        );
    }
    Ok(conns)
}

struct Outcome {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `total` requests over `clients` loops; `req(client, i)` performs request number `i`.
async fn drive<F, Fut>(
    conns: &[Client],
    clients: usize,
    total: u64,
    req: F,
) -> Result<(Outcome, Duration)>
where
    F: Fn(Client, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), etcd_client::Error>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let req = Arc::new(req);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..clients.max(1) {
        let (next, req, client) = (next.clone(), req.clone(), conns[n % conns.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
                errors: 0,
                first_error: None,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                match req(client.clone(), i).await {
                    Ok(()) => {
                        let us = t.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        out.hist
                            .record(us)
                            .expect("latency within histogram bounds");
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            out
        }));
    }
    let mut total_out = Outcome {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        let o = t.await.context("client task panicked")?;
        total_out.hist.add(&o.hist).expect("same histogram bounds");
        total_out.errors += o.errors;
        if total_out.first_error.is_none() {
            total_out.first_error = o.first_error;
        }
    }
    Ok((total_out, start.elapsed()))
}

fn report(op: &str, c: &Common, out: &Outcome, elapsed: Duration) {
    let ok = out.hist.len();
    let secs = elapsed.as_secs_f64();
    let qps = ok as f64 / secs;
    let ms = |q: f64| out.hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{op}: {ok} ok / {} requests, {} clients, {} conns, key {}B, value {}B, {:.3}s",
        c.total, c.clients, c.conns, c.key_size, c.val_size, secs
    );
    println!(
        "  {qps:.1} req/s   latency p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms   errors {}",
        ms(0.5),
        ms(0.99),
        out.hist.max() as f64 / 1000.0,
        out.errors
    );
    if let Some(e) = &out.first_error {
        println!("  first error: {e}");
    }
    println!(
        "RESULT op={op} total={} ok={ok} errors={} clients={} secs={secs:.3} qps={qps:.1} p50_ms={:.3} p99_ms={:.3}",
        c.total,
        out.errors,
        c.clients,
        ms(0.5),
        ms(0.99)
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.op {
        Op::Put(c) => {
            let space = c.key_space.unwrap_or(c.total).max(1);
            let conns = connections(&c).await?;
            let value = vec![b'v'; c.val_size];
            let key_size = c.key_size;
            let (out, elapsed) = drive(&conns, c.clients, c.total, move |mut client, i| {
                let (k, v) = (key(i % space, key_size), value.clone());
                async move { client.put(k, v, None).await.map(|_| ()) }
            })
            .await?;
            report("put", &c, &out, elapsed);
            if out.hist.is_empty() {
                bail!("no request succeeded");
            }
        }
        Op::Range {
            common: c,
            consistency,
        } => {
            let space = c.key_space.unwrap_or(1000).max(1);
            let conns = connections(&c).await?;
            // Untimed: make sure every key read exists with a value of the requested size.
            let value = vec![b'v'; c.val_size];
            let key_size = c.key_size;
            let (fill, _) = drive(&conns, c.clients, space, move |mut client, i| {
                let (k, v) = (key(i, key_size), value.clone());
                async move { client.put(k, v, None).await.map(|_| ()) }
            })
            .await?;
            if fill.errors > 0 {
                bail!(
                    "populating {space} keys failed: {}",
                    fill.first_error.unwrap_or_default()
                );
            }
            let serializable = consistency == Consistency::S;
            let (out, elapsed) = drive(&conns, c.clients, c.total, move |mut client, i| {
                let k = key(i % space, key_size);
                let opts = if serializable {
                    Some(GetOptions::new().with_serializable())
                } else {
                    None
                };
                async move { client.get(k, opts).await.map(|_| ()) }
            })
            .await?;
            let name = if serializable { "range-s" } else { "range-l" };
            report(name, &c, &out, elapsed);
            if out.hist.is_empty() {
                bail!("no request succeeded");
            }
        }
        Op::Status(c) => status(&c).await?,
        Op::Failover {
            cluster,
            kill_pid,
            give_up_secs,
        } => failover(&cluster, kill_pid, Duration::from_secs(give_up_secs)).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_have_the_requested_size() {
        assert_eq!(key(42, 8), b"00000042");
        assert_eq!(key(123456, 3), b"456");
        assert_eq!(key(7, 1), b"7");
    }
}
