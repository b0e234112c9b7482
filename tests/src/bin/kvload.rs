//! kvload — a small etcd v3 KV load generator, for comparing wasmraft with real etcd on the same
//! machine in the same run (see `tests/scripts/compare-load.sh`).
//!
//! ```text
//! kvload put   --endpoints http://127.0.0.1:2379 --clients 16 --total 10000 --key-size 8 --val-size 256
//! kvload range --endpoints http://127.0.0.1:2379 --clients 16 --total 10000 --consistency s
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
