//! watchload — watch event latency with many watchers under write load, etcd 3.4 and wasmraft
//! started in the same run on the same machine.
//!
//! ```text
//! WASMRAFT_BIN=target/release/wasmraft watchload --members 1 --watchers 1000 --conns 10 --writers 8 --puts 5000
//! ```
//!
//! For each flavor: a fresh cluster, `--watchers` watchers of the prefix `w/` spread over
//! `--conns` connections (a watch stream per watcher, as clients commonly do), then `--writers`
//! loops put `--puts` keys in total through another connection. Every put's value carries its
//! send time; every event any watcher receives is a latency sample (receive time minus send
//! time). Prints put throughput, event latency percentiles, and whether every watcher got every
//! event; then the wasmraft/etcd ratios, and one `RESULT …` line per flavor for scripts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use etcd_client::WatchOptions;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use wasmraft_tests::{ClusterConfig, Flavor};

#[derive(Parser, Debug, Clone)]
#[command(name = "watchload", about = "watch event latency, etcd vs wasmraft")]
struct Cli {
    /// Cluster size for both flavors.
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Watchers of the whole prefix (each sees every event).
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Connections the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    conns: usize,
    /// Concurrent put loops.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Puts in total.
    #[arg(long, default_value_t = 2000)]
    puts: usize,
    /// Value size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 64)]
    val_size: usize,
}

struct Outcome {
    puts_per_sec: f64,
    latency: Histogram<u64>,
    complete: bool,
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

async fn run(flavor: Flavor, cli: &Cli) -> Result<Outcome> {
    let cluster = ClusterConfig::new(flavor, cli.members).start();
    let endpoints = cluster.endpoints();
    let expected = cli.puts as u64;
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    let complete = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut clients = Vec::new();
    for c in 0..cli.conns.max(1) {
        let ep = endpoints[c % endpoints.len()].clone();
        clients.push(etcd_client::Client::connect([ep], None).await.context("connect")?);
    }
    for w in 0..cli.watchers {
        let client = &mut clients[w % cli.conns.max(1)];
        let mut stream = client.watch("w/", Some(WatchOptions::new().with_prefix())).await.context("watch")?;
        let created = stream.message().await?.context("watch stream ended")?;
        if !created.created() {
            bail!("first watch response is not 'created'");
        }
        let (latency, complete) = (latency.clone(), complete.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = 0u64;
            let mut samples = Vec::with_capacity(expected as usize);
            while seen < expected {
                match tokio::time::timeout(Duration::from_secs(60), stream.message()).await {
                    Ok(Ok(Some(r))) => {
                        let at = now_micros();
                        for e in r.events() {
                            if let Some(kv) = e.kv() {
                                let sent = kv.value().get(..8).map_or(at, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
                                samples.push(at.saturating_sub(sent).max(1));
                                seen += 1;
                            }
                        }
                    }
                    _ => break,
                }
            }
            let mut h = latency.lock().await;
            for s in samples {
                let _ = h.record(s);
            }
            if seen == expected {
                complete.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..cli.writers.max(1) {
        let mut client = etcd_client::Client::connect(endpoints.clone(), None).await.context("connect")?;
        let (next, val_size) = (next.clone(), cli.val_size.max(8));
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= expected {
                    return Ok::<_, etcd_client::Error>(());
                }
                let mut value = vec![0u8; val_size];
                value[..8].copy_from_slice(&now_micros().to_be_bytes());
                client.put(format!("w/{i:08}"), value, None).await?;
            }
        }));
    }
    for w in writers {
        w.await.context("writer task")?.context("put")?;
    }
    let elapsed = started.elapsed();
    for r in readers {
        r.await.context("reader task")?;
    }
    let latency = Arc::try_unwrap(latency).map_err(|_| anyhow::anyhow!("readers still hold the histogram"))?.into_inner();
    let complete = complete.load(Ordering::Relaxed) == cli.watchers as u64;
    drop(cluster);
    Ok(Outcome { puts_per_sec: expected as f64 / elapsed.as_secs_f64(), latency, complete })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = wasmraft_tests::runtime();
    let mut results = Vec::new();
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let o = rt.block_on(run(flavor, &cli))?;
        let ms = |q: f64| o.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{flavor:?}: {:.0} puts/s, {} events, latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}, every watcher got every event: {}",
            o.puts_per_sec,
            o.latency.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            o.latency.max() as f64 / 1000.0,
            o.complete
        );
        println!(
            "RESULT flavor={flavor:?} members={} watchers={} writers={} puts={} puts_per_sec={:.0} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} complete={}",
            cli.members, cli.watchers, cli.writers, cli.puts, o.puts_per_sec, ms(0.5), ms(0.9), ms(0.99), o.latency.max() as f64 / 1000.0, o.complete
        );
        results.push(o);
    }
    let (e, w) = (&results[0], &results[1]);
    let q = |o: &Outcome, q: f64| o.latency.value_at_quantile(q) as f64;
    println!(
        "wasmraft/etcd: puts/s {:.2}, latency p50 {:.2} p90 {:.2} p99 {:.2}",
        w.puts_per_sec / e.puts_per_sec,
        q(w, 0.5) / q(e, 0.5),
        q(w, 0.9) / q(e, 0.9),
        q(w, 0.99) / q(e, 0.99)
    );
    Ok(())
}
