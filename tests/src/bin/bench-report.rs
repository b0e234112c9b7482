//! bench-report — turns a `tests/scripts/bench-compare.sh` results dir into a markdown section
//! (machine, settings, per member count a table of QPS, p50/p99 and RSS with the wasmraft/etcd
//! ratio) and an SVG plot of put throughput vs clients (one line per server per member count).
//!
//! ```text
//! bench-report --results DIR --markdown section.md --svg docs/benchmarks-throughput.svg
//! ```
//!
//! The results dir holds, per run, `m{N}-{server}-{workload}.json` (`wasmraft bench --json`),
//! `m{N}-{server}-{workload}.rss.json` (the members' summed VmHWM) and one `meta.txt`
//! (`key=value` lines the script wrote: settings, date, commit, data file system, load average).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(name = "bench-report", about = "bench-compare.sh results → markdown tables and an SVG throughput plot")]
struct Cli {
    /// The results dir bench-compare.sh wrote.
    #[arg(long)]
    results: PathBuf,
    /// Write the markdown section here (`-`: stdout).
    #[arg(long, default_value = "-")]
    markdown: String,
    /// Write the put-throughput-vs-clients plot here (SVG); skipped when there is no sweep.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// How the markdown links to the SVG (relative to the markdown file); default: --svg's file name.
    #[arg(long)]
    svg_link: Option<String>,
}

const SERVERS: [&str; 2] = ["etcd", "wasmraft"];

/// One `wasmraft bench` run, as the report needs it.
#[derive(Debug, Clone)]
struct Run {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    /// Members' VmHWM summed, KiB.
    rss_kib: Option<u64>,
}

/// (members, server, workload name) → run
type Runs = BTreeMap<(u32, String, String), Run>;

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("bench-report: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let meta = read_meta(&cli.results.join("meta.txt"))?;
    let runs = read_runs(&cli.results)?;
    if runs.is_empty() {
        bail!("no m{{N}}-{{server}}-{{workload}}.json results in {}", cli.results.display());
    }
    let mut plotted = false;
    if let Some(svg) = &cli.svg {
        plotted = plot(&runs, svg)?;
    }
    let link = cli
        .svg_link
        .clone()
        .or_else(|| cli.svg.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()));
    let md = markdown(&meta, &runs, if plotted { link.as_deref() } else { None });
    if cli.markdown == "-" {
        print!("{md}");
    } else {
        fs::write(&cli.markdown, md).with_context(|| format!("writing {}", cli.markdown))?;
    }
    Ok(())
}

fn read_meta(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// `m3-wasmraft-range-l` → (3, "wasmraft", "range-l")
fn parse_stem(stem: &str) -> Option<(u32, String, String)> {
    let rest = stem.strip_prefix('m')?;
    let (n, rest) = rest.split_once('-')?;
    let (server, workload) = rest.split_once('-')?;
    Some((n.parse().ok()?, server.to_string(), workload.to_string()))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn num(v: &Value, path: &[&str], file: &Path) -> Result<f64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key).ok_or_else(|| anyhow!("{}: no field {}", file.display(), path.join(".")))?;
    }
    cur.as_f64().ok_or_else(|| anyhow!("{}: {} is not a number", file.display(), path.join(".")))
}

fn read_runs(dir: &Path) -> Result<Runs> {
    let mut runs = Runs::new();
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
        if name.ends_with(".rss.json") {
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else { continue };
        let Some(key) = parse_stem(stem) else { continue };
        let v = read_json(&path)?;
        let errors =
            v.get("errors").and_then(Value::as_object).map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
        let rss_path = dir.join(format!("{stem}.rss.json"));
        let rss_kib =
            if rss_path.exists() { Some(num(&read_json(&rss_path)?, &["total_kib"], &rss_path)? as u64) } else { None };
        let run = Run {
            qps: num(&v, &["qps"], &path)?,
            p50_us: num(&v, &["latency_us", "p50"], &path)?,
            p99_us: num(&v, &["latency_us", "p99"], &path)?,
            errors,
            rss_kib,
        };
        runs.insert(key, run);
    }
    Ok(runs)
}

/// The machine this runs on (the script runs the report right after the load, on the same one).
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get().to_string()).unwrap_or_else(|_| "?".into());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "? GiB".into());
    let kernel =
        fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into());
    format!("{cores} cores of {model}, {mem_gib} RAM, Linux {kernel}")
}

fn workload_label(w: &str, meta: &BTreeMap<String, String>) -> String {
    let m = |k: &str| meta.get(k).cloned().unwrap_or_else(|| "?".into());
    match w {
        "put" => "put".into(),
        "range-l" => "range, linearizable".into(),
        "range-s" => "range, serializable".into(),
        "txn-put" => format!("txn-put ({} puts/txn)", m("txn_ops")),
        "watch-latency" => "watch-latency (events/s) ¹".into(),
        "lease-keepalive" => "lease-keepalive".into(),
        other => other.into(),
    }
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.0}", k as f64 / 1024.0)).unwrap_or_else(|| "–".into())
}

fn markdown(meta: &BTreeMap<String, String>, runs: &Runs, svg: Option<&str>) -> String {
    let m = |k: &str| meta.get(k).cloned().unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {}, {} build, {} vs etcd {}\n",
        m("date"),
        m("build"),
        m("wasmraft_version"),
        m("etcd_version")
    );
    if m("build") != "release" {
        let _ = writeln!(md, "**Not a release build: these figures only show that the script works.**\n");
    }
    let _ = writeln!(md, "`{}` at commit {}.\n", m("command"), m("commit"));
    let _ = writeln!(
        md,
        "Machine: {}; data dirs on {}; the load generator (`wasmraft bench`) runs on the same \
         cores. Load average {} at the start, {} at the end.{}\n",
        machine(),
        m("data_fs"),
        m("loadavg_start"),
        m("loadavg_end"),
        if m("note").is_empty() { String::new() } else { format!(" {}", m("note")) }
    );
    let _ = writeln!(
        md,
        "Settings: both servers with `{}`, members on loopback; every workload on a freshly \
         started cluster with empty data dirs. {} requests per workload, {} clients on {} \
         (round-robin over all members' endpoints), {} B keys, {} B values; range reads \
         single keys of {} written first; watch-latency: {}. RSS: each member's VmHWM (peak \
         resident set since it started) read right after the workload, summed over the members, \
         in MiB. Latencies in ms. Numbers are ratios from one run on a shared machine: read them \
         to about ±20%.\n",
        m("raft"),
        m("total"),
        m("clients"),
        m("conns"),
        m("key_size"),
        m("val_size"),
        m("range_keys"),
        m("watch"),
    );
    let members: Vec<u32> = {
        let mut v: Vec<u32> = runs.keys().map(|k| k.0).collect();
        v.dedup();
        v
    };
    let workloads: Vec<String> = m("workloads").split_whitespace().map(str::to_string).collect();
    let mut errors = Vec::new();
    for n in &members {
        let _ = writeln!(md, "#### {} member{}\n", n, if *n == 1 { "" } else { "s" });
        let _ = writeln!(
            md,
            "| workload | etcd QPS | wasmraft QPS | ratio | etcd p50 / p99 | wasmraft p50 / p99 | etcd RSS | wasmraft RSS |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for w in &workloads {
            let e = runs.get(&(*n, "etcd".into(), w.clone()));
            let s = runs.get(&(*n, "wasmraft".into(), w.clone()));
            if e.is_none() && s.is_none() {
                continue;
            }
            let qps = |r: Option<&Run>| r.map(|r| thousands(r.qps)).unwrap_or_else(|| "–".into());
            let lat = |r: Option<&Run>| {
                r.map(|r| format!("{} / {}", ms(r.p50_us), ms(r.p99_us))).unwrap_or_else(|| "–".into())
            };
            let ratio = match (e, s) {
                (Some(e), Some(s)) if e.qps > 0.0 => format!("{:.2}", s.qps / e.qps),
                _ => "–".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                workload_label(w, meta),
                qps(e),
                qps(s),
                ratio,
                lat(e),
                lat(s),
                mib(e.and_then(|r| r.rss_kib)),
                mib(s.and_then(|r| r.rss_kib)),
            );
            for (server, r) in [("etcd", e), ("wasmraft", s)] {
                if let Some(r) = r.filter(|r| r.errors > 0) {
                    errors.push(format!("{n} member(s), {server}, {w}: {} failed requests", r.errors));
                }
            }
        }
        md.push('\n');
    }
    if workloads.iter().any(|w| w == "watch-latency") {
        let _ = writeln!(
            md,
            "¹ watch-latency's events/s are its puts' rate (`--put-rate`) times the watchers while the \
         server keeps up, so they differ only when it does not: compare its latencies (from each \
         put being sent to each watcher's event).\n"
        );
    }
    if !errors.is_empty() {
        let _ = writeln!(md, "Failed requests (counted in the JSON, not in the latencies): {}.\n", errors.join("; "));
    }
    let sweep = sweep_points(runs);
    if !sweep.is_empty() {
        let cols: Vec<(u32, &str)> = members.iter().flat_map(|n| SERVERS.iter().map(move |s| (*n, *s))).collect();
        let _ = writeln!(md, "Put throughput (QPS) vs clients, {} requests each:\n", m("total"));
        let header: Vec<String> = cols.iter().map(|(n, s)| format!("{s}, {n} m.")).collect();
        let _ = writeln!(md, "| clients | {} |", header.join(" | "));
        let _ = writeln!(md, "|---:|{}", "---:|".repeat(cols.len()));
        for c in &sweep {
            let cells: Vec<String> = cols
                .iter()
                .map(|(n, s)| {
                    runs.get(&(*n, (*s).into(), format!("sweep-c{c}")))
                        .map(|r| thousands(r.qps))
                        .unwrap_or_else(|| "–".into())
                })
                .collect();
            let _ = writeln!(md, "| {c} | {} |", cells.join(" | "));
        }
        md.push('\n');
        if let Some(link) = svg {
            let _ = writeln!(md, "![put throughput vs clients, etcd and wasmraft, 1 and 3 members]({link})\n");
        }
    }
    md
}

/// The sweep's client counts, ascending.
fn sweep_points(runs: &Runs) -> Vec<u32> {
    let mut v: Vec<u32> =
        runs.keys().filter_map(|(_, _, w)| w.strip_prefix("sweep-c").and_then(|c| c.parse().ok())).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One line of the plot: (log2 clients, QPS) points.
struct Series {
    label: String,
    color: RGBColor,
    members: u32,
    points: Vec<(f64, f64)>,
}

/// Put QPS vs clients (log2 x axis), one line per server per member count. False if no sweep.
fn plot(runs: &Runs, path: &Path) -> Result<bool> {
    let sweep = sweep_points(runs);
    if sweep.is_empty() {
        return Ok(false);
    }
    let mut series: Vec<Series> = Vec::new();
    let mut members: Vec<u32> = runs.keys().map(|k| k.0).collect();
    members.dedup();
    for n in &members {
        for server in SERVERS {
            let points: Vec<(f64, f64)> = sweep
                .iter()
                .filter_map(|c| {
                    runs.get(&(*n, server.into(), format!("sweep-c{c}"))).map(|r| (f64::from(*c).log2(), r.qps))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let color = match (server, *n == 1) {
                ("etcd", true) => RGBColor(31, 119, 180),
                ("etcd", false) => RGBColor(23, 190, 207),
                (_, true) => RGBColor(214, 39, 40),
                (_, false) => RGBColor(255, 127, 14),
            };
            let label = format!("{server}, {n} member{}", if *n == 1 { "" } else { "s" });
            series.push(Series { label, color, members: *n, points });
        }
    }
    let ymax = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0_f64, f64::max) * 1.15;
    let xmin = f64::from(sweep[0]).log2() - 0.3;
    let xmax = f64::from(sweep[sweep.len() - 1]).log2() + 0.3;
    let draw_err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());

    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("put throughput vs clients", ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(xmin..xmax, 0.0..ymax)
        .map_err(|e| draw_err(&e))?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .x_desc("clients (log scale)")
        .y_desc("requests/s")
        .x_labels(((xmax - xmin).ceil() as usize + 1).max(2))
        .x_label_formatter(&|x| {
            let r = x.round();
            if (x - r).abs() < 1e-6 { format!("{}", 2f64.powf(r).round()) } else { String::new() }
        })
        .y_label_formatter(&|y| thousands(*y))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| draw_err(&e))?;
    for Series { label, color, members: n, points } in series {
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(|e| draw_err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if n == 1 {
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, style.filled()))).map_err(|e| draw_err(&e))?;
        } else {
            chart
                .draw_series(points.iter().map(|p| TriangleMarker::new(*p, 5, style.filled())))
                .map_err(|e| draw_err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(&e))?;
    root.present().map_err(|e| draw_err(&e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(parse_stem("m3-wasmraft-range-l"), Some((3, "wasmraft".into(), "range-l".into())));
        assert_eq!(parse_stem("m1-etcd-sweep-c16"), Some((1, "etcd".into(), "sweep-c16".into())));
        assert_eq!(parse_stem("meta"), None);
    }

    #[test]
    fn number_format() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(1500.0), "1.50");
    }
}
