//! kvload — what `tests/scripts/compare-cluster.sh` needs besides load (which comes from
//! `wasmraft bench`): the leader of a cluster, and how long a leader failover takes.
//!
//! ```text
//! kvload status --endpoints http://127.0.0.1:2379,http://127.0.0.1:2381
//! kvload failover --kill-pid 1234 --endpoints http://127.0.0.1:2381,http://127.0.0.1:2383
//! ```
//!
//! It speaks only the public etcd API through the `etcd-client` crate, so the same run measures
//! either server, and prints one `STATUS …` / `RESULT …` line per answer for scripts.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use etcd_client::{Client, ConnectOptions};

#[derive(Parser, Debug)]
#[command(name = "kvload", about = "an etcd v3 cluster's leader, and leader failover time")]
struct Cli {
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand, Debug)]
enum Op {
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

async fn connect_one(endpoint: &str, timeout_ms: u64) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_millis(timeout_ms))
        .with_connect_timeout(Duration::from_millis(timeout_ms));
    Client::connect([endpoint], Some(opts)).await.with_context(|| format!("connecting to {endpoint}"))
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
                println!("STATUS endpoint={e} error={}", format!("{err:#}").replace(' ', "_"));
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
        client.status().await.with_context(|| format!("{e} does not answer before the kill"))?;
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
    let (e, took, attempts) =
        tokio::time::timeout(give_up, rx.recv()).await.context("no put succeeded")?.context("all writers ended")?;
    let ms = took.as_secs_f64() * 1000.0;
    println!(
        "failover: first successful put through {e} {ms:.1} ms after kill -9 (attempt #{attempts} on it, one every 20 ms)"
    );
    println!("RESULT op=failover failover_ms={ms:.1} endpoint={e}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.op {
        Op::Status(c) => status(&c).await?,
        Op::Failover { cluster, kill_pid, give_up_secs } => {
            failover(&cluster, kill_pid, Duration::from_secs(give_up_secs)).await?
        }
    }
    Ok(())
}
