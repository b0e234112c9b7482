//! leaseload — lease keep-alive throughput, etcd 3.4 and wasmraft started in the same run on the
//! same machine.
//!
//! ```text
//! WASMRAFT_BIN=target/release/wasmraft leaseload --members 3 --leases 64 --conns 8 --seconds 10
//! ```
//!
//! For each flavor: a fresh cluster, `--leases` leases granted, then one keep-alive stream per
//! lease (spread over `--conns` connections, which are spread over the members, so on a cluster
//! most streams go through a follower, which forwards to the leader as etcd does) renewing its
//! lease as fast as the answers come back — ping-pong per stream, as etcd's
//! `benchmark lease-keepalive` does — for `--seconds`. Prints keep-alives per second and the
//! round-trip percentiles; then the wasmraft/etcd ratios, and one `RESULT …` line per flavor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use wasmraft_tests::{ClusterConfig, Flavor};

#[derive(Parser, Debug, Clone)]
#[command(name = "leaseload", about = "lease keep-alive throughput, etcd vs wasmraft")]
struct Cli {
    /// Cluster size for both flavors.
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Leases, each with its own keep-alive stream.
    #[arg(long, default_value_t = 64)]
    leases: usize,
    /// Connections the streams are spread over.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// How long the streams run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Outcome {
    per_sec: f64,
    latency: Histogram<u64>,
}

/// The cluster's start and leader wait block, so they happen outside the runtime.
fn run(flavor: Flavor, cli: &Cli, rt: &tokio::runtime::Runtime) -> Result<Outcome> {
    let mut cluster = ClusterConfig::new(flavor, cli.members).start();
    cluster.wait_leader(Duration::from_secs(30));
    rt.block_on(measure(cluster.endpoints(), cli))
}

async fn measure(endpoints: Vec<String>, cli: &Cli) -> Result<Outcome> {
    let mut clients = Vec::new();
    for c in 0..cli.conns.max(1) {
        let ep = endpoints[c % endpoints.len()].clone();
        clients.push(etcd_client::Client::connect([ep], None).await.context("connect")?);
    }
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let deadline = Instant::now() + Duration::from_secs(cli.seconds);
    let mut tasks = Vec::new();
    for l in 0..cli.leases {
        let client = &mut clients[l % cli.conns.max(1)];
        let id = client.lease_grant(60, None).await.context("grant")?.id();
        let (mut keeper, mut answers) = client.lease_keep_alive(id).await.context("keep-alive stream")?;
        let latency = latency.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            while Instant::now() < deadline {
                let sent = Instant::now();
                keeper.keep_alive().await.context("send keep-alive")?;
                let answer = answers.message().await.context("keep-alive answer")?.context("keep-alive stream ended")?;
                if answer.ttl() <= 0 {
                    bail!("lease {id:x} expired during the run");
                }
                local.record(sent.elapsed().as_micros().max(1) as u64)?;
            }
            latency.lock().await.add(&local)?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.context("keep-alive task")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latency = Arc::try_unwrap(latency).map_err(|_| anyhow::anyhow!("histogram still shared"))?.into_inner();
    Ok(Outcome { per_sec: latency.len() as f64 / elapsed, latency })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = wasmraft_tests::runtime();
    let mut results = Vec::new();
    for flavor in [Flavor::Etcd, Flavor::Wasmraft] {
        let o = run(flavor, &cli, &rt)?;
        let ms = |q: f64| o.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{flavor:?}: {:.0} keep-alives/s, round trip ms p50 {:.2} p99 {:.2} max {:.2}",
            o.per_sec,
            ms(0.5),
            ms(0.99),
            o.latency.max() as f64 / 1000.0
        );
        println!(
            "RESULT flavor={flavor:?} members={} leases={} conns={} per_sec={:.0} p50_ms={:.3} p99_ms={:.3}",
            cli.members, cli.leases, cli.conns, o.per_sec, ms(0.5), ms(0.99)
        );
        results.push(o);
    }
    let (e, w) = (&results[0], &results[1]);
    let q = |o: &Outcome, q: f64| o.latency.value_at_quantile(q) as f64;
    println!(
        "wasmraft/etcd: keep-alives/s {:.2}, round trip p50 {:.2} p99 {:.2}",
        w.per_sec / e.per_sec,
        q(w, 0.5) / q(e, 0.5),
        q(w, 0.99) / q(e, 0.99)
    );
    Ok(())
}
