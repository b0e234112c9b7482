//! swapload — write throughput and latency around a guest swap, in a real 3-member cluster.
//!
//! ```text
//! cargo build --release -p wasmraft
//! cargo run --release -p wasmraft-tests --bin swapload -- --clients 16 --trials 3
//! ```
//!
//! Each trial starts a fresh 3-member cluster of the `wasmraft` binary next to this one
//! (`target/release/wasmraft` for a release build; env `WASMRAFT_BIN` overrides) with the bundled
//! KV guest, puts from `--clients` concurrent loops (spread over the members, each on its own
//! connection, so two thirds go through followers), and after `--before-secs` deploys the KV
//! guest v2 (`tests/guests/kv-v2`, or `--module`) through the log while the load goes on.
//!
//! Windows, by the time each put *completed*:
//! - **before**: the second before the deploy request was sent;
//! - **during**: from the deploy request until the last member logged its switch (the deploy
//!   answers once the member that took it has applied the swap; followers apply it on their own
//!   time, and writes through them wait for that);
//! - **after**: the second after the last member switched.
//!
//! For each: puts per second and p50 / p99 / max latency. Also the deploy call's duration and,
//! per member, the time its swap entry took to apply (from its `switched to guest … the swap
//! entry took X ms to apply` log line), and a timeline in 100 ms buckets. One `RESULT …` line per
//! trial is meant for scripts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use wasmraft_tests::{Cluster, ClusterConfig, Flavor, GuestSwitch};

#[derive(Parser, Debug)]
#[command(name = "swapload", about = "write throughput and latency before, during and after a guest swap under load")]
struct Args {
    /// Concurrent put loops, spread over the three members.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Load before the deploy, in seconds.
    #[arg(long, default_value_t = 3.0)]
    before_secs: f64,
    /// Load after the last member switched, in seconds.
    #[arg(long, default_value_t = 3.0)]
    after_secs: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// The component to deploy (default: the KV guest v2 built by this crate's build script).
    #[arg(long)]
    module: Option<PathBuf>,
    /// Fresh clusters, one swap each.
    #[arg(long, default_value_t = 1)]
    trials: usize,
    /// Print the 100 ms timeline around the swap.
    #[arg(long)]
    timeline: bool,
}

/// One put: when it was sent and completed, relative to the trial's start.
#[derive(Clone, Copy)]
struct Put {
    done: Duration,
    latency: Duration,
    ok: bool,
}

struct Window {
    name: &'static str,
    start: Duration,
    end: Duration,
}

struct Stats {
    ok: usize,
    errors: usize,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn stats(puts: &[Put], start: Duration, end: Duration) -> Stats {
    let inside: Vec<&Put> = puts.iter().filter(|p| p.done >= start && p.done < end).collect();
    let mut lat: Vec<Duration> = inside.iter().filter(|p| p.ok).map(|p| p.latency).collect();
    lat.sort();
    let q = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    let secs = (end.saturating_sub(start)).as_secs_f64().max(1e-9);
    Stats {
        ok: lat.len(),
        errors: inside.len() - lat.len(),
        qps: lat.len() as f64 / secs,
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        max_ms: lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
    }
}

/// Watches the members' logs (every 5 ms) from before the deploy: for each member, when (since
/// `t0`) a switch line beyond the ones already there first appeared, and the line. Ends when
/// every member has one, or on `stop`.
fn watch_switches(
    logs: Vec<PathBuf>,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Option<(Duration, GuestSwitch)>>> {
    let switches = |path: &PathBuf| -> Vec<GuestSwitch> {
        std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(GuestSwitch::parse).collect()
    };
    let seen: Vec<usize> = logs.iter().map(|p| switches(p).len()).collect();
    std::thread::spawn(move || {
        let mut found: Vec<Option<(Duration, GuestSwitch)>> = vec![None; logs.len()];
        while found.iter().any(Option::is_none) && !stop.load(Ordering::Relaxed) {
            for (i, path) in logs.iter().enumerate() {
                if found[i].is_none()
                    && let Some(s) = switches(path).into_iter().nth(seen[i])
                {
                    found[i] = Some((t0.elapsed(), s));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        found
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let module = args.module.clone().unwrap_or_else(|| PathBuf::from(env!("WASMRAFT_TEST_KV_V2_GUEST")));
    if !module.is_file() {
        bail!("{} does not exist", module.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    println!(
        "swapload: wasmraft {}, {} clients, {} B values, deploying {}",
        wasmraft_tests::wasmraft_bin().display(),
        args.clients,
        args.val_size,
        module.display()
    );
    for trial in 1..=args.trials {
        trial_run(&rt, &args, &module, trial)?;
    }
    Ok(())
}

fn trial_run(rt: &tokio::runtime::Runtime, args: &Args, module: &std::path::Path, trial: usize) -> Result<()> {
    let mut cluster: Cluster = ClusterConfig::new(Flavor::Wasmraft, 3).start();
    cluster.wait_leader(Duration::from_secs(30));
    let endpoints = cluster.endpoints();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let value = vec![b'v'; args.val_size];
    let writers: Vec<_> = (0..args.clients.max(1))
        .map(|w| {
            let (endpoint, stop, value) = (endpoints[w % endpoints.len()].clone(), stop.clone(), value.clone());
            rt.spawn(async move {
                let mut client = wasmraft_tests::cluster::try_connect(&[endpoint], Duration::from_secs(30)).await?;
                let mut puts = Vec::new();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let ok = client.put(format!("swapload/{w}/{seq}"), value.clone(), None).await.is_ok();
                    let done = Instant::now();
                    puts.push(Put { done: done - t0, latency: done - sent, ok });
                    seq += 1;
                }
                Ok::<_, String>(puts)
            })
        })
        .collect();

    let logs = cluster.members().iter().map(|m| m.log_path().to_path_buf()).collect();
    let watcher_stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_switches(logs, t0, watcher_stop.clone());
    std::thread::sleep(Duration::from_secs_f64(args.before_secs));
    let deploy_at = t0.elapsed();
    let deployed = cluster.deploy(module, false);
    let deploy_took = t0.elapsed() - deploy_at;
    let deployed = match deployed {
        Ok(d) => d,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            watcher_stop.store(true, Ordering::Relaxed);
            bail!("deploy failed: {e}");
        }
    };
    let statuses = cluster.wait_guest(&deployed.name, &deployed.version, Duration::from_secs(60));
    watcher_stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().map_err(|_| anyhow::anyhow!("the log watcher panicked"))?;
    let statuses = statuses.map_err(anyhow::Error::msg)?;
    // When each member switched: when its switch line appeared in its log (5 ms resolution).
    let mut switches = Vec::new();
    for (m, seen) in cluster.members().iter().zip(seen) {
        let (at, s) = seen.with_context(|| format!("member {} logged no switch", m.name()))?;
        if s.index != deployed.since_index {
            bail!("member {} switched at index {}, not {}", m.name(), s.index, deployed.since_index);
        }
        switches.push((m.name().to_string(), s.apply_ms, at));
    }
    let last_switch =
        switches.iter().map(|(_, _, at)| *at).max().unwrap_or(deploy_at + deploy_took).max(deploy_at + deploy_took);
    let after_end = last_switch + Duration::from_secs_f64(args.after_secs);
    while t0.elapsed() < after_end {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut puts = Vec::new();
    for w in writers {
        puts.extend(rt.block_on(w).context("writer task")?.map_err(anyhow::Error::msg)?);
    }

    let one_sec = Duration::from_secs(1);
    let windows = [
        Window { name: "before", start: deploy_at.saturating_sub(one_sec), end: deploy_at },
        Window { name: "during", start: deploy_at, end: last_switch },
        Window { name: "after", start: last_switch, end: last_switch + one_sec },
    ];
    println!(
        "\ntrial {trial}: swap to {} {} at index {} (same on all {} members: {})",
        deployed.name,
        deployed.version,
        deployed.since_index,
        statuses.len(),
        statuses.iter().all(|s| s.since_index == deployed.since_index)
    );
    println!(
        "  deploy call: {:.0} ms; last member switched {:.0} ms after the request",
        deploy_took.as_secs_f64() * 1000.0,
        (last_switch - deploy_at).as_secs_f64() * 1000.0
    );
    for (name, ms, at) in &switches {
        println!(
            "  {name}: swap entry applied in {ms:.1} ms, switched {:.0} ms after the request",
            (*at - deploy_at).as_secs_f64() * 1000.0
        );
    }
    println!(
        "  {:<7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "window", "secs", "puts/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut result = format!(
        "RESULT op=swap trial={trial} clients={} deploy_ms={:.0}",
        args.clients,
        deploy_took.as_secs_f64() * 1000.0
    );
    for w in &windows {
        let s = stats(&puts, w.start, w.end);
        println!(
            "  {:<7} {:>8.3} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            w.name,
            (w.end - w.start).as_secs_f64(),
            s.qps,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.errors
        );
        result.push_str(&format!(" {0}_qps={1:.0} {0}_p99_ms={2:.2} {0}_ok={3}", w.name, s.qps, s.p99_ms, s.ok));
    }
    let applies: Vec<String> = switches.iter().map(|(n, ms, _)| format!("{n}:{ms:.1}")).collect();
    result.push_str(&format!(
        " during_secs={:.3} switch_apply_ms={}",
        (last_switch - deploy_at).as_secs_f64(),
        applies.join(",")
    ));
    if args.timeline {
        println!("  timeline (100 ms buckets by completion; t = ms from the deploy request):");
        let mut t = deploy_at.saturating_sub(one_sec);
        while t < last_switch + one_sec {
            let end = t + Duration::from_millis(100);
            let s = stats(&puts, t, end);
            let rel = t.as_secs_f64() * 1000.0 - deploy_at.as_secs_f64() * 1000.0;
            println!("    t={rel:>+6.0} {:>6.0} puts/s  p99 {:>8.2} ms  errors {}", s.qps, s.p99_ms, s.errors);
            t = end;
        }
    }
    println!("{result}");
    Ok(())
}
