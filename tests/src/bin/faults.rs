//! faults — the fault-injection harness's long mode (docs/reliability.md): runs seeds one after
//! the other, each on a fresh cluster, and prints one summary line per run and a total: runs,
//! operations (ok / failed / unknown), faults injected by kind, violations. Exits 1 if any run
//! found a violation (its history is saved under `--out`).
//!
//! ```text
//! faults --seed 1 --runs 20 --members 5 --duration 120s
//! faults --seed 7 --runs 1 --faults kill,partition-leader --subject etcd   # validate on etcd
//! faults --seed 40 --runs 10 --snapshot-count 50-500 --overlap 30          # snapshot installs
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use wasmraft_tests::Flavor;
use wasmraft_tests::fault_run::{RunConfig, default_out_dir, run};
use wasmraft_tests::kv_workload::WorkloadConfig;
use wasmraft_tests::nemesis::FaultKind;
use wasmraft_tests::prng::Prng;

#[derive(Parser, Debug)]
#[command(
    name = "faults",
    about = "randomized fault runs against a wasmraft (or etcd) cluster, with linearizability, convergence and watch checks"
)]
struct Cli {
    /// The first seed; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    runs: u64,
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// How long the nemesis injects faults in each run (e.g. 90s, 5m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    #[arg(long, default_value_t = 6)]
    keys: usize,
    #[arg(long, default_value_t = 3)]
    watchers: usize,
    /// Of which this many fall behind on purpose (compactions overtake them).
    #[arg(long, default_value_t = 1)]
    lagging_watchers: usize,
    /// Comma-separated fault kinds (default: all the subject supports): kill, kill-leader,
    /// kill-all, pause, pause-leader, partition-minority, partition-leader, partition-bridge,
    /// blackhole-minority, one-way-from-leader, one-way-to-leader, delay-leader, delay-member,
    /// move-leader, guest-swap, compact.
    #[arg(long)]
    faults: Option<String>,
    /// `wasmraft` (default) or `etcd` (validates the harness; no partitions or guest swaps).
    #[arg(long, default_value = "wasmraft")]
    subject: String,
    /// Where failing runs' histories go (default: <target>/faults).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `--snapshot-count` of the members: one number, or a range `LOW-HIGH` from which each run
    /// draws its own (from its seed). Default: the members' default (no snapshot is sent).
    #[arg(long, value_parser = parse_range)]
    snapshot_count: Option<(u64, u64)>,
    /// Percent of faults that get a second one (a kill or pause) while they are held.
    #[arg(long, default_value_t = 20)]
    overlap: u64,
    /// Watchers request progress every 500 ms even on etcd (whose 3.4.23 answers ahead of its
    /// events: the bookmark check then reports it).
    #[arg(long)]
    request_progress: bool,
    /// Print each run's nemesis log.
    #[arg(long)]
    verbose: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|e| format!("{s:?}: {e}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("{s:?}: use s, m or ms")),
    }
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (low, high) = s.split_once('-').unwrap_or((s, s));
    let low: u64 = low.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    let high: u64 = high.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    if low == 0 || high < low {
        return Err(format!("{s:?}: want N or LOW-HIGH with 0 < LOW <= HIGH"));
    }
    Ok((low, high))
}

fn main() {
    let cli = Cli::parse();
    let flavor = match cli.subject.as_str() {
        "etcd" => Flavor::Etcd,
        "wasmraft" => Flavor::Wasmraft,
        other => {
            eprintln!("--subject {other}: expected wasmraft or etcd");
            std::process::exit(2);
        }
    };
    let kinds: Vec<FaultKind> = match &cli.faults {
        None => FaultKind::ALL.to_vec(),
        Some(list) => {
            let parsed: Result<Vec<FaultKind>, String> = list
                .split(',')
                .map(|s| FaultKind::parse(s.trim()).ok_or_else(|| format!("unknown fault kind {s:?}")))
                .collect();
            match parsed {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("--faults: {e}");
                    std::process::exit(2);
                }
            }
        }
    };
    let started = Instant::now();
    let (mut ok, mut failed, mut unknown) = (0u64, 0u64, 0u64);
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let (mut overlapped, mut refused, mut installs, mut open) = (0u64, 0u64, 0u64, 0u64);
    let mut violations = Vec::new();
    for i in 0..cli.runs {
        let mut cfg = RunConfig::new(cli.seed + i, flavor, cli.members, cli.duration);
        cfg.workload = WorkloadConfig::new(cli.clients, cli.keys);
        cfg.watchers = cli.watchers;
        cfg.lagging_watchers = cli.lagging_watchers.min(cli.watchers);
        cfg.kinds = kinds.clone();
        cfg.pacing.overlap_percent = cli.overlap;
        cfg.snapshot_count = cli.snapshot_count.map(|(low, high)| Prng::new(cfg.seed ^ 0x5eed).between(low, high));
        cfg.request_progress |= cli.request_progress;
        cfg.out_dir = cli.out.clone().unwrap_or_else(default_out_dir);
        let report = run(&cfg);
        println!("{}", report.summary());
        if cli.verbose || !report.passed() {
            for line in &report.nemesis_log {
                println!("    {line}");
            }
        }
        for o in &report.open {
            println!("  OPEN (known bug): {o}");
            open += 1;
        }
        for v in &report.violations {
            println!("  VIOLATION: {v}");
            violations.push(format!("seed {}: {v}", report.seed));
        }
        ok += report.ops_ok;
        failed += report.ops_failed;
        unknown += report.ops_unknown;
        for (k, n) in report.faults {
            *faults.entry(k).or_default() += n;
        }
        overlapped += report.overlapped_faults;
        refused += report.refused_faults.values().sum::<u64>();
        installs += report.snapshot_installs;
    }
    let faults: Vec<String> = faults.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "TOTAL runs {} ({} members, {}), {:.0}s: ops ok {ok} / failed {failed} / unknown {unknown}; faults {} [{}], {overlapped} overlapping, {refused} refused; snapshot installs {installs}; open findings {open}; violations {}",
        cli.runs,
        cli.members,
        flavor,
        started.elapsed().as_secs_f64(),
        faults.iter().map(|f| f.split('=').nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)).sum::<u64>(),
        faults.join(" "),
        violations.len()
    );
    if !violations.is_empty() {
        std::process::exit(1);
    }
}
