//! `wasmraft bench`: load against any etcd v3 API endpoint — real etcd or wasmraft — and
//! against wasmraft's generic API, so both servers are measured by the same client in the same
//! run. Workloads and flags follow etcd's `tools/benchmark` where it has them (`put`, `range`,
//! `txn-put`, `watch-latency`, `lease-keepalive`), so figures can be read next to etcd's own;
//! `propose` and `query` load a custom guest through `wasmraft.v1.Generic`. With `--gateway`,
//! `put`, `range` and `txn-put` go through etcd's JSON gateway (`POST /v3/kv/…` over HTTP/1.1)
//! instead of gRPC (see [`gateway`]); the report names the transport it measured.
//!
//! Every workload prints etcd's benchmark summary to stdout and, with `--json FILE`, one JSON
//! object (see [`report`]). Exit codes are the other client commands': 0 every request
//! succeeded; 1 some failed (the summary and the JSON are still written, errors counted by
//! their text); 3 bad flags; 4 an endpoint could not be reached before the run; 6 the JSON
//! could not be written.
//!
//! A crate of its own because it is a client of the API, not part of the server: the `wasmraft`
//! binary calls [`run`] for its `bench` subcommand. It reaches members as the other client
//! commands do (`wasmraft-client`) and must not know the server's internals (storage, raft,
//! guests): what it measures is what any etcd v3 client would see.

mod gateway;
mod generic;
mod kv;
mod lease_keepalive;
mod put;
mod range;
pub mod report;
mod runner;
mod txn_put;
mod watch_latency;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use report::Outcome;
use wasmraft_client::{CliError, ConnFlags, EXIT_INVALID_INPUT, EXIT_IO, EXIT_SERVER_ERROR};

/// The workloads.
#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Put keys (random, or sequential with --sequential-keys) of --val-size bytes.
    Put(KvArgs),
    /// Range requests: KEY [RANGE_END], or single keys of a key space written first (untimed).
    Range(range::RangeArgs),
    /// Txns of --txn-ops puts each.
    TxnPut(txn_put::TxnPutArgs),
    /// Latency from a put being sent to each watcher receiving its event.
    WatchLatency(watch_latency::WatchLatencyArgs),
    /// Keep-alive round trips: each client grants a lease and renews it as fast as answered.
    LeaseKeepalive(lease_keepalive::LeaseKeepaliveArgs),
    /// Propose a command to a custom guest through wasmraft.v1.Generic.
    Propose(generic::ProposeArgs),
    /// Run a custom guest's query through wasmraft.v1.Generic.
    Query(generic::QueryArgs),
}

impl BenchCommand {
    pub fn name(&self) -> &'static str {
        match self {
            BenchCommand::Put(_) => "put",
            BenchCommand::Range(_) => "range",
            BenchCommand::TxnPut(_) => "txn-put",
            BenchCommand::WatchLatency(_) => "watch-latency",
            BenchCommand::LeaseKeepalive(_) => "lease-keepalive",
            BenchCommand::Propose(_) => "propose",
            BenchCommand::Query(_) => "query",
        }
    }
}

/// Where the load goes and where the result is written: every workload has these.
#[derive(Args, Debug, Clone)]
#[command(mut_arg("endpoints", |a| a.help("Comma-separated member client URLs; the connections are dealt round-robin over all of them")))]
pub struct Common {
    #[command(flatten)]
    pub conn: ConnFlags,
    /// gRPC connections the clients share, dealt round-robin over --endpoints (each endpoint
    /// gets its share; --endpoints does not fail over here).
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Also write the result as one JSON object to this file (`-`: stdout, after the summary).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl Common {
    fn params(&self) -> Value {
        json!({ "endpoints": self.conn.endpoints, "conns": self.conns })
    }
}

/// How much load: the closed-loop clients, when they stop, how fast they may go.
#[derive(Args, Debug, Clone)]
pub struct Load {
    /// Concurrent request loops, dealt round-robin over the connections.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Requests in all (default 10000). Not with --duration.
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Send requests for this long instead (Go duration: 10s, 1m30s).
    #[arg(long, value_parser = wasmraft_client::go_duration::parse)]
    pub duration: Option<Duration>,
    /// Requests per second over all clients; 0: as fast as the answers come.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

impl Load {
    fn params(&self, plan: &runner::Plan) -> Value {
        let mut p = json!({ "clients": self.clients, "rate": self.rate });
        match plan.stop {
            runner::Stop::Total(n) => p["total"] = json!(n),
            runner::Stop::After(d) => p["duration_s"] = json!(d.as_secs_f64()),
        }
        p
    }

    fn check(&self) -> Result<(), CliError> {
        if self.clients == 0 {
            return Err(CliError::new(EXIT_INVALID_INPUT, "--clients must be at least 1"));
        }
        Ok(())
    }
}

/// How the requests reached the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// etcd's gRPC API over HTTP/2.
    Grpc,
    /// etcd's JSON gateway (`/v3/…`) over HTTP/1.1 keep-alive connections.
    Gateway,
}

impl Transport {
    /// The name in the JSON's `params.transport`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Gateway => "gateway",
        }
    }

    /// How the summary names it.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "gRPC (HTTP/2)",
            Transport::Gateway => "JSON gateway (HTTP/1.1)",
        }
    }
}

/// What a workload hands back: the timed phase, its parameters, and any fields of its own for
/// the JSON (watch-latency's event counts).
pub struct Finished {
    pub title: &'static str,
    pub transport: Transport,
    pub outcome: Outcome,
    pub params: Value,
    pub extra: serde_json::Map<String, Value>,
    /// More text for the summary (printed after the main one).
    pub more: String,
}

impl Finished {
    /// The usual result: one timed phase, etcd's summary title, nothing extra.
    pub fn new(outcome: Outcome, params: Value) -> Finished {
        Finished {
            title: "Summary",
            transport: Transport::Grpc,
            outcome,
            params,
            extra: Default::default(),
            more: String::new(),
        }
    }

    /// The same, measured over `transport`.
    pub fn over(self, transport: Transport) -> Finished {
        Finished { transport, ..self }
    }
}

/// Merges two JSON objects' fields (`b`'s win).
fn merged(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            a.extend(b);
            Value::Object(a)
        }
        (a, _) => a,
    }
}

async fn run_async(cmd: BenchCommand) -> Result<(Finished, Common), CliError> {
    let (finished, common) = match cmd {
        BenchCommand::Put(a) => (put::run(&a).await?, a.common),
        BenchCommand::Range(a) => (range::run(&a).await?, a.kv.common),
        BenchCommand::TxnPut(a) => (txn_put::run(&a).await?, a.kv.common),
        BenchCommand::WatchLatency(a) => (watch_latency::run(&a).await?, a.common),
        BenchCommand::LeaseKeepalive(a) => (lease_keepalive::run(&a).await?, a.common),
        BenchCommand::Propose(a) => (generic::propose(&a).await?, a.common),
        BenchCommand::Query(a) => (generic::query(&a).await?, a.common),
    };
    let transport = json!({ "transport": finished.transport.name() });
    let finished = Finished { params: merged(merged(common.params(), transport), finished.params), ..finished };
    Ok((finished, common))
}

/// Prints the summary, writes the JSON, and says how the run ended.
fn finish(name: &str, f: &Finished, common: &Common) -> Result<(), CliError> {
    let mut text = f.outcome.summary(f.title, Some(f.transport.label()));
    text.push_str(&f.more);
    let mut json = f.outcome.to_json(name, f.params.clone());
    json.extend(f.extra.clone());
    let json = Value::Object(json).to_string();
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock, s: &str| out.write_all(s.as_bytes()).and_then(|()| out.flush());
    write(&mut out, &text).map_err(|e| CliError::new(EXIT_IO, format!("writing to stdout: {e}")))?;
    match &common.json {
        Some(p) if p.as_os_str() == "-" => write(&mut out, &format!("{json}\n"))
            .map_err(|e| CliError::new(EXIT_IO, format!("writing to stdout: {e}")))?,
        Some(p) => std::fs::write(p, format!("{json}\n"))
            .map_err(|e| CliError::new(EXIT_IO, format!("writing {}: {e}", p.display())))?,
        None => {}
    }
    let errors = f.outcome.error_count();
    if errors > 0 {
        return Err(CliError::new(EXIT_SERVER_ERROR, format!("{errors} requests failed (see the error distribution)")));
    }
    Ok(())
}

/// Runs a workload to completion on a multi-threaded runtime (the load generator should not be
/// what limits the server); errors are printed to stderr.
pub fn run(cmd: BenchCommand) -> ExitCode {
    let name = cmd.name();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("bench").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmraft bench {name}: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    let result = runtime.block_on(run_async(cmd)).and_then(|(f, common)| finish(name, &f, &common));
    // Streams a workload left open must not keep the process waiting.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmraft bench {name}: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// The flags of the KV write and read workloads.
#[derive(Args, Debug, Clone)]
pub struct KvArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub keys: KeyFlags,
    /// Send the requests through etcd's JSON gateway (POST /v3/kv/put, /v3/kv/range,
    /// /v3/kv/txn with base64 keys and values) over HTTP/1.1 keep-alive connections instead of
    /// gRPC. An HTTP/1.1 connection carries one request at a time: clients sharing one take
    /// turns, so give --conns as many as --clients for that many requests in flight.
    #[arg(long)]
    pub gateway: bool,
}

impl KvArgs {
    pub fn transport(&self) -> Transport {
        if self.gateway { Transport::Gateway } else { Transport::Grpc }
    }
}

/// Key and value shapes for the KV workloads (etcd's flags and defaults, except that keys are
/// zero-padded decimal indexes rather than varints, so they can be read and counted with
/// etcdctl).
#[derive(Args, Debug, Clone)]
pub struct KeyFlags {
    /// Key size in bytes (the low digits of the key's index, zero-padded).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Distinct keys used (default: 1 for put and txn-put, as etcd's; 1000 for range).
    #[arg(long)]
    pub key_space_size: Option<u64>,
    /// Use keys 0, 1, 2, … (modulo the key space) instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
}

impl KeyFlags {
    /// The key space, checked: at least one key, and no more than `--key-size` digits can
    /// tell apart (more would silently write fewer distinct keys than asked for).
    pub fn space(&self, default: u64) -> Result<u64, CliError> {
        let space = self.key_space_size.unwrap_or(default);
        if self.key_size == 0 {
            return Err(CliError::new(EXIT_INVALID_INPUT, "--key-size must be at least 1"));
        }
        if space == 0 {
            return Err(CliError::new(EXIT_INVALID_INPUT, "--key-space-size must be at least 1"));
        }
        let distinct = u32::try_from(self.key_size).ok().and_then(|d| 10u64.checked_pow(d)).unwrap_or(u64::MAX);
        if space > distinct {
            return Err(CliError::new(
                EXIT_INVALID_INPUT,
                format!("--key-space-size {space} needs keys of more than --key-size {} digits", self.key_size),
            ));
        }
        Ok(space)
    }

    /// The index of request `i`'s (first) key.
    pub fn index(&self, i: u64, space: u64, seed: u64) -> u64 {
        if self.sequential_keys { i % space } else { splitmix64(i ^ seed) % space }
    }

    pub fn params(&self, space: u64) -> Value {
        json!({
            "key_size": self.key_size,
            "val_size": self.val_size,
            "key_space_size": space,
            "sequential_keys": self.sequential_keys,
        })
    }
}

/// Key `index` as exactly `size` bytes: its low decimal digits, zero-padded.
pub fn key(index: u64, size: usize) -> Vec<u8> {
    let digits = format!("{index:0size$}");
    digits.as_bytes()[digits.len().saturating_sub(size)..].to_vec()
}

/// A seed for random keys: different runs write different keys, with no RNG state shared
/// between the request loops.
pub fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    splitmix64(nanos as u64 ^ u64::from(std::process::id()))
}

/// A well-mixed 64-bit hash (SplitMix64's finalizer): random-looking keys from request indexes.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size() {
        assert_eq!(key(42, 8), b"00000042");
        assert_eq!(key(123_456, 3), b"456");
        assert_eq!(key(7, 1), b"7");
    }

    #[test]
    fn key_space_fits_the_key_size() {
        let flags =
            |size, space| KeyFlags { key_size: size, val_size: 8, key_space_size: space, sequential_keys: false };
        assert_eq!(flags(8, None).space(1).unwrap(), 1);
        assert_eq!(flags(3, Some(1000)).space(1).unwrap(), 1000);
        assert_eq!(flags(3, Some(1001)).space(1).unwrap_err().code, EXIT_INVALID_INPUT);
        assert_eq!(flags(8, Some(0)).space(1).unwrap_err().code, EXIT_INVALID_INPUT);
        assert_eq!(flags(40, Some(u64::MAX)).space(1).unwrap(), u64::MAX);
        let random = flags(8, Some(100));
        let seen: std::collections::BTreeSet<u64> = (0..2000).map(|i| random.index(i, 100, 7)).collect();
        assert!(seen.len() > 90 && seen.iter().all(|&k| k < 100), "{}", seen.len());
    }
}
