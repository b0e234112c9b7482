//! The concurrent clients of a fault run: each loops over random operations on a small set of
//! keys — a linearizable get, a put of a unique value, a compare-and-swap transaction (value ==
//! expected, or create_revision == 0 for "absent", then put) — and records each one in the
//! run's [`Recorder`].
//!
//! Each client talks to one member at a time and moves to the next after any error or timeout
//! (a killed, paused or partitioned-off member stops answering; a client stuck on it would
//! measure nothing). Whether an operation took effect is only claimed when the answer says so:
//!
//! - an answer: `Ok` (for a write, the response header's revision is kept for the watch check);
//! - the connection could not be made (`tcp connect error`): `Failed` — the request never left;
//! - anything else (timeout, unavailable, connection lost, "request timed out", "leader
//!   changed", any other server error): `Unknown`. When in doubt, unknown: claiming "failed" for
//!   a write that did happen would make the checker report a violation that is the harness's.
//!
//! A client whose operation ended unknown continues as a new process id: for the checker that
//! operation is still in flight forever, and a process has at most one operation in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use tokio::task::JoinHandle;
use wasmraft_lincheck::{Call, Outcome, Return};

use crate::history_recorder::Recorder;
use crate::prng::Prng;

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub clients: usize,
    /// The keys operated on (few, so that operations conflict).
    pub keys: Vec<String>,
    /// An operation without an answer after this is abandoned as unknown.
    pub op_timeout: Duration,
    /// Each client waits up to this long (uniformly) between operations.
    pub max_think: Duration,
}

impl WorkloadConfig {
    pub fn new(clients: usize, keys: usize) -> WorkloadConfig {
        WorkloadConfig {
            clients,
            keys: (0..keys).map(|i| format!("nemesis/k{i}")).collect(),
            op_timeout: Duration::from_secs(3),
            max_think: Duration::from_millis(20),
        }
    }
}

/// Running clients; [`Workload::stop`] ends them after their current operation.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Spawns the clients on `rt` against `endpoints` (client URLs, one per member).
    pub fn start(
        rt: &tokio::runtime::Runtime,
        endpoints: Vec<String>,
        cfg: WorkloadConfig,
        rng: &mut Prng,
        recorder: Arc<Recorder>,
    ) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let values = Arc::new(AtomicU64::new(1));
        let tasks = (0..cfg.clients)
            .map(|idx| {
                let client = KvClient {
                    idx,
                    clients: cfg.clients as u64,
                    endpoints: endpoints.clone(),
                    cfg: cfg.clone(),
                    rng: rng.fork(),
                    recorder: recorder.clone(),
                    values: values.clone(),
                    stop: stop.clone(),
                };
                rt.spawn(client.run())
            })
            .collect();
        Workload { stop, tasks }
    }

    /// Stops the clients and waits for them (each finishes or abandons its operation within
    /// the operation timeout).
    pub fn stop(self, rt: &tokio::runtime::Runtime) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = rt.block_on(t);
        }
    }
}

struct KvClient {
    idx: usize,
    clients: u64,
    endpoints: Vec<String>,
    cfg: WorkloadConfig,
    rng: Prng,
    recorder: Arc<Recorder>,
    /// Source of unique values across all clients.
    values: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl KvClient {
    async fn run(mut self) {
        let mut process = self.idx as u64;
        let mut endpoint = self.idx % self.endpoints.len();
        let mut conn: Option<Client> = None;
        // The last value this client saw for each key: what its compare-and-swaps expect, so that
        // some of them succeed.
        let mut seen: HashMap<String, Option<u64>> = HashMap::new();
        while !self.stop.load(Ordering::SeqCst) {
            let client = match &mut conn {
                Some(c) => c,
                None => match crate::cluster::try_connect(
                    std::slice::from_ref(&self.endpoints[endpoint]),
                    self.cfg.op_timeout,
                )
                .await
                {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        endpoint = (endpoint + 1) % self.endpoints.len();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let call = self.next_call(&seen);
            let invoked_ns = self.recorder.now_ns();
            let answer = tokio::time::timeout(self.cfg.op_timeout, execute(client, &call)).await;
            let completed_ns = self.recorder.now_ns();
            let outcome = match answer {
                Ok(Ok((returned, revision))) => {
                    match (&call, &returned) {
                        (Call::Read { key }, Return::Read(v)) => {
                            seen.insert(key.clone(), *v);
                        }
                        (Call::Write { key, value }, _) | (Call::Cas { key, new: value, .. }, Return::Cas(true)) => {
                            seen.insert(key.clone(), Some(*value));
                            self.recorder.acked(revision, key, *value);
                        }
                        _ => {}
                    }
                    Outcome::Ok { returned, completed_ns }
                }
                Ok(Err(e)) => classify(&e),
                Err(_elapsed) => Outcome::Unknown,
            };
            let ok = matches!(outcome, Outcome::Ok { .. });
            let unknown = outcome == Outcome::Unknown;
            self.recorder.record(process, call, invoked_ns, outcome);
            if unknown {
                process += self.clients;
            }
            if !ok {
                // Another member next time, on a fresh connection.
                conn = None;
                endpoint = (endpoint + 1) % self.endpoints.len();
            }
            let think = self.rng.below(self.cfg.max_think.as_millis() as u64 + 1);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
    }

    fn next_call(&mut self, seen: &HashMap<String, Option<u64>>) -> Call {
        let key = self.rng.pick(&self.cfg.keys).cloned().unwrap_or_else(|| "nemesis/k0".into());
        let dice = self.rng.below(100);
        if dice < 40 {
            Call::Read { key }
        } else {
            let value = self.values.fetch_add(1, Ordering::SeqCst);
            if dice < 70 {
                Call::Write { key, value }
            } else {
                let expect = if self.rng.percent(20) { None } else { seen.get(&key).copied().flatten() };
                Call::Cas { key, expect, new: value }
            }
        }
    }
}

/// A value that is not one of ours (none is ever written as u64::MAX): reported as read, so the
/// checker flags it.
const FOREIGN_VALUE: u64 = u64::MAX;

fn parse_value(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(FOREIGN_VALUE)
}

/// Runs one call; the return and the response header's revision.
async fn execute(client: &mut Client, call: &Call) -> Result<(Return, i64), etcd_client::Error> {
    match call {
        Call::Read { key } => {
            let r = client.get(key.as_str(), None).await?;
            let rev = r.header().map_or(0, |h| h.revision());
            Ok((Return::Read(r.kvs().first().map(|kv| parse_value(kv.value()))), rev))
        }
        Call::Write { key, value } => {
            let r = client.put(key.as_str(), value.to_string(), None).await?;
            Ok((Return::Write, r.header().map_or(0, |h| h.revision())))
        }
        Call::Cas { key, expect, new } => {
            let cmp = match expect {
                Some(v) => Compare::value(key.as_str(), CompareOp::Equal, v.to_string()),
                None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            };
            let txn = Txn::new().when([cmp]).and_then([TxnOp::put(key.as_str(), new.to_string(), None)]);
            let r = client.txn(txn).await?;
            Ok((Return::Cas(r.succeeded()), r.header().map_or(0, |h| h.revision())))
        }
    }
}

/// Which errors prove the operation had no effect (see the module docs).
pub fn classify(e: &etcd_client::Error) -> Outcome {
    let text = e.to_string();
    if text.contains("tcp connect error") { Outcome::Failed } else { Outcome::Unknown }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_never_made_counts_as_failed() {
        let refused =
            tonic::Status::unavailable("error trying to connect: tcp connect error: Connection refused (os error 111)");
        assert_eq!(classify(&etcd_client::Error::GRpcStatus(refused)), Outcome::Failed);
        for msg in [
            "etcdserver: request timed out",
            "etcdserver: leader changed",
            "transport error",
            "h2 protocol error: broken pipe",
        ] {
            let e = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(msg));
            assert_eq!(classify(&e), Outcome::Unknown, "{msg}");
        }
        assert_eq!(parse_value(b"42"), 42);
        assert_eq!(parse_value(b"x"), FOREIGN_VALUE);
    }
}
