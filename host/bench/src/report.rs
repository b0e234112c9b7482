//! What a run measured and how it is shown: etcd's benchmark summary for people, one JSON object
//! for scripts and tests.
//!
//! Latencies go into an HDR histogram at microsecond resolution with 3 significant digits, so a
//! run of millions of requests costs a few kilobytes per client loop and the percentiles are
//! within 0.1% of the exact ones. Failed requests are not latencies: they are counted by their
//! error text, as etcd's report does, so a run that half failed cannot pass for a fast one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The longest latency recorded as itself (10 minutes); a longer one is recorded as this.
const MAX_MICROS: u64 = 600_000_000;

/// One histogram of latencies (µs); every constructor agrees on its bounds, so any two merge.
/// The fastest and slowest are also kept exactly: the histogram only knows a value's bucket,
/// and a "slowest" a few µs above any request really seen would read as a bug.
#[derive(Clone, Debug)]
pub struct Latencies {
    hist: Histogram<u64>,
    min: u64,
    max: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        // Valid bounds (1 ≤ low, high ≥ 2 × low, 3 significant digits): cannot fail.
        let hist =
            Histogram::new_with_bounds(1, MAX_MICROS, 3).unwrap_or_else(|_| unreachable!("valid histogram bounds"));
        Self { hist, min: u64::MAX, max: 0 }
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS);
        // Clamped into the bounds above, so recording cannot fail.
        let _ = self.hist.record(us);
        self.min = self.min.min(us);
        self.max = self.max.max(us);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The figures the summary and the JSON show, in µs; percentiles lie between the exact
    /// fastest and slowest.
    pub fn stats(&self) -> Stats {
        let h = &self.hist;
        if h.is_empty() {
            return Stats::default();
        }
        let q = |q: f64| self.quantile(q);
        Stats {
            min: self.min,
            mean: h.mean(),
            stddev: h.stdev(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: self.max,
        }
    }

    /// The latency at quantile `q` (0.5: the median), between the fastest and the slowest.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.hist.is_empty() { 0 } else { self.hist.value_at_quantile(q).clamp(self.min, self.max) }
    }

    /// etcd's "Response time histogram": ten equal buckets from the fastest to the slowest
    /// request, each with its upper bound (µs) and how many requests fell in it.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        let h = &self.hist;
        if h.is_empty() {
            return Vec::new();
        }
        let (lo, hi) = (self.min, self.max);
        let width = (hi - lo).div_ceil(10).max(1);
        let mut buckets: Vec<(u64, u64)> = (1..=10).map(|b| (lo + b * width, 0)).collect();
        for v in h.iter_recorded() {
            // The histogram's bucket value is its highest equivalent value; clamp it into the
            // observed range so the last request lands in the last bucket.
            let value = v.value_iterated_to().clamp(lo, hi);
            let b = usize::try_from((value - lo) / width).unwrap_or(9).min(9);
            buckets[b].1 += v.count_since_last_iteration();
        }
        buckets
    }
}

/// Latency figures in µs (all 0 when nothing was recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub min: u64,
    pub mean: f64,
    pub stddev: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Stats {
    pub fn to_json(self) -> Value {
        json!({
            "min": self.min,
            "mean": (self.mean * 10.0).round() / 10.0,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p999": self.p999,
            "max": self.max,
        })
    }
}

/// What one timed phase produced: the latency of every request that succeeded, every failure
/// by its text, and how long the phase took from the first request to the last answer.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub latencies: Latencies,
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn error(&mut self, text: impl Into<String>) {
        *self.errors.entry(text.into()).or_default() += 1;
    }

    /// Adds another client loop's requests (the elapsed time is the caller's to set).
    pub fn merge(&mut self, other: &Outcome) {
        self.latencies.merge(&other.latencies);
        for (text, n) in &other.errors {
            *self.errors.entry(text.clone()).or_default() += n;
        }
    }

    /// Successful requests.
    pub fn count(&self) -> u64 {
        self.latencies.count()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Successful requests per second over the phase.
    pub fn qps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.count() as f64 / secs } else { 0.0 }
    }

    /// The result as `--json` writes it; a workload adds its own fields to the object.
    pub fn to_json(&self, workload: &str, params: Value) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("workload".into(), json!(workload));
        m.insert("params".into(), params);
        m.insert("count".into(), json!(self.count()));
        m.insert("errors".into(), json!(self.errors));
        m.insert("duration_s".into(), json!(round3(self.elapsed.as_secs_f64())));
        m.insert("qps".into(), json!(round3(self.qps())));
        m.insert("latency_us".into(), self.latencies.stats().to_json());
        m
    }

    /// etcd's benchmark summary: totals, the response time histogram, the latency
    /// distribution and the errors, in seconds as etcd prints them; and, when given, the
    /// transport the requests went over (a line etcd's tool, gRPC only, does not print).
    pub fn summary(&self, title: &str, transport: Option<&str>) -> String {
        let s = self.latencies.stats();
        let secs = |us: f64| us / 1e6;
        let mut out = String::new();
        let _ = writeln!(out, "\n{title}:");
        if let Some(t) = transport {
            let _ = writeln!(out, "  Transport:\t{t}");
        }
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        let _ = writeln!(out, "  Slowest:\t{:.4} secs.", secs(s.max as f64));
        let _ = writeln!(out, "  Fastest:\t{:.4} secs.", secs(s.min as f64));
        let _ = writeln!(out, "  Average:\t{:.4} secs.", secs(s.mean));
        let _ = writeln!(out, "  Stddev:\t{:.4} secs.", secs(s.stddev));
        let _ = writeln!(out, "  Requests/sec:\t{:.4}", self.qps());
        let buckets = self.latencies.buckets();
        if let Some(most) = buckets.iter().map(|b| b.1).max() {
            let _ = writeln!(out, "\nResponse time histogram:");
            for (upper, n) in &buckets {
                let bar = "∎".repeat(usize::try_from(n * 40 / most.max(1)).unwrap_or(40));
                let _ = writeln!(out, "  {:.4} [{n}]\t|{bar}", secs(*upper as f64));
            }
            let _ = writeln!(out, "\nLatency distribution:");
            for (label, q) in [
                ("10%", 0.1),
                ("25%", 0.25),
                ("50%", 0.5),
                ("75%", 0.75),
                ("90%", 0.9),
                ("95%", 0.95),
                ("99%", 0.99),
                ("99.9%", 0.999),
            ] {
                let _ = writeln!(out, "  {label} in {:.4} secs.", secs(self.latencies.quantile(q) as f64));
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nError distribution:");
            for (text, n) in &self.errors {
                let _ = writeln!(out, "  [{n}]\t{text}");
            }
        }
        out
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(us: impl IntoIterator<Item = u64>) -> Outcome {
        let mut o = Outcome::default();
        for v in us {
            o.latencies.record(Duration::from_micros(v));
        }
        o.elapsed = Duration::from_secs(2);
        o
    }

    #[test]
    fn percentiles_of_one_to_ten_thousand() {
        let o = outcome(1..=10_000);
        let s = o.latencies.stats();
        assert_eq!((s.min, s.max), (1, 10_000));
        // Three significant digits: within 0.1% of the exact quantile.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(s.p50, 5_000), "p50 {}", s.p50);
        assert!(near(s.p90, 9_000), "p90 {}", s.p90);
        assert!(near(s.p99, 9_900), "p99 {}", s.p99);
        assert!(near(s.p999, 9_990), "p99.9 {}", s.p999);
        assert!((s.mean - 5_000.5).abs() < 5.0, "mean {}", s.mean);
        assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        assert_eq!(o.qps(), 5_000.0);
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut o = outcome([]);
        o.latencies.record(Duration::ZERO);
        o.latencies.record(Duration::from_secs(3600));
        let s = o.latencies.stats();
        assert_eq!(o.count(), 2);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, MAX_MICROS);
    }

    #[test]
    fn merged_outcomes_add_up_and_errors_count_by_text() {
        let mut a = outcome([100, 200]);
        a.error("Unavailable: no leader");
        let mut b = outcome([300]);
        b.error("Unavailable: no leader");
        b.error("DeadlineExceeded: timeout");
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors["Unavailable: no leader"], 2);
        let text = a.summary("Summary", None);
        assert!(
            text.contains("Error distribution:\n  [1]\tDeadlineExceeded: timeout\n  [2]\tUnavailable: no leader"),
            "{text}"
        );
    }

    #[test]
    fn buckets_hold_every_request_from_fastest_to_slowest() {
        let o = outcome((1..=1000).map(|i| i * 10));
        let b = o.latencies.buckets();
        assert_eq!(b.len(), 10);
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 1000);
        assert!(b.last().is_some_and(|x| x.0 >= 10_000));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(outcome([]).latencies.buckets().is_empty());
    }

    #[test]
    fn json_shape() {
        let mut o = outcome([1_000, 2_000, 3_000]);
        o.error("Unknown: boom");
        let v = Value::Object(o.to_json("put", json!({"clients": 2})));
        assert_eq!(v["workload"], "put");
        assert_eq!(v["params"]["clients"], 2);
        assert_eq!(v["count"], 3);
        assert_eq!(v["errors"]["Unknown: boom"], 1);
        assert_eq!(v["duration_s"], 2.0);
        assert_eq!(v["qps"], 1.5);
        for field in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][field].is_number(), "latency_us.{field} in {v}");
        }
        assert_eq!(v["latency_us"]["min"], 1_000);
        assert_eq!(v["latency_us"]["max"], 3_000);
        // An empty run still has every field.
        let empty = Value::Object(Outcome::default().to_json("range", json!({})));
        assert_eq!(empty["count"], 0);
        assert_eq!(empty["qps"], 0.0);
        assert_eq!(empty["latency_us"]["p99"], 0);
    }

    #[test]
    fn summary_looks_like_etcds() {
        let text = outcome([1_000, 2_000, 4_000]).summary("Summary", Some("gRPC (HTTP/2)"));
        for line in [
            "Summary:\n  Transport:\tgRPC (HTTP/2)\n  Total:\t2.0000 secs.",
            "  Slowest:\t0.0040 secs.",
            "  Fastest:\t0.0010 secs.",
            "Requests/sec:\t1.5000",
            "Response time histogram:",
            "Latency distribution:",
            "  99.9% in 0.0040 secs.",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
    }
}
