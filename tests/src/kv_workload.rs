//! The concurrent clients of a fault run: each loops over random operations on a small set of
//! keys and records each one in the run's [`Recorder`]:
//!
//! - on the *register* keys (`nemesis/k*`), checked per key by the linearizability checker and by
//!   the revision model: a linearizable get, a put of a unique value, a compare-and-swap
//!   transaction (value == expected, or create_revision == 0 for "absent", then put);
//! - for the revision model only ([`crate::kv_model`]): serializable gets; linearizable and
//!   serializable ranges over the whole `nemesis/` prefix; on the *model* keys (`nemesis/m*`)
//!   puts, deletes (with the previous key) and a two-key transaction (both keys' mod revisions
//!   as last seen, then put both, else get both); a put of a new *lease* key (`nemesis/l*`)
//!   attached to a fresh lease of 2–5 s that is never kept alive.
//!
//! The register keys are never deleted or leased, so the register model stays exact; the lease
//! keys are only removed by their leases' expiry, so every delete event there is an expiry.
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

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::task::JoinHandle;
use wasmraft_lincheck::{Call, Outcome, Return};

use crate::history_recorder::Recorder;
use crate::kv_model::{Ended, Kv, ModelOp, Request, Response};
use crate::prng::Prng;

/// The prefix of every key the clients touch (what the ranges read).
pub const PREFIX: &str = "nemesis/";
/// Keys only ever written with a lease.
pub const LEASE_PREFIX: &str = "nemesis/l";

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub clients: usize,
    /// The register keys (few, so that operations conflict).
    pub keys: Vec<String>,
    /// Keys for deletes and two-key transactions.
    pub model_keys: Vec<String>,
    /// An operation without an answer after this is abandoned as unknown.
    pub op_timeout: Duration,
    /// Each client waits up to this long (uniformly) between operations.
    pub max_think: Duration,
}

impl WorkloadConfig {
    pub fn new(clients: usize, keys: usize) -> WorkloadConfig {
        WorkloadConfig {
            clients,
            keys: (0..keys).map(|i| format!("{PREFIX}k{i}")).collect(),
            model_keys: (0..4).map(|i| format!("{PREFIX}m{i}")).collect(),
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
                    seen: HashMap::new(),
                    mods: HashMap::new(),
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

/// The next thing a client does: a register operation (also in the linearizability history) or
/// one for the revision model only. A leased put is two: the grant, then the put.
enum Planned {
    Register(Call),
    Model(Request),
    LeasedPut { key: String, ttl: i64 },
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
    /// The last value this client saw for each register key: what its compare-and-swaps expect,
    /// so that some of them succeed.
    seen: HashMap<String, Option<u64>>,
    /// The last mod revision this client saw for each model key (two-key transactions).
    mods: HashMap<String, i64>,
}

impl KvClient {
    async fn run(mut self) {
        let mut process = self.idx as u64;
        let mut endpoint = self.idx % self.endpoints.len();
        let mut conn: Option<Client> = None;
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
            let (ok, unknown) = match self.next_op() {
                Planned::Register(call) => {
                    let request = register_request(&call);
                    let (ended, invoked_ns) = self.perform(client, &request).await;
                    let outcome = match &ended {
                        Ended::Answered { response, completed_ns, .. } => match register_return(&call, response) {
                            Some(returned) => {
                                self.note_register(&call, &returned, &ended);
                                Outcome::Ok { returned, completed_ns: *completed_ns }
                            }
                            // An answer of the wrong shape: the model reports it.
                            None => Outcome::Unknown,
                        },
                        Ended::Failed => Outcome::Failed,
                        Ended::Unknown => Outcome::Unknown,
                    };
                    self.recorder.record(process, call, invoked_ns, outcome);
                    (matches!(ended, Ended::Answered { .. }), ended == Ended::Unknown)
                }
                Planned::Model(request) => {
                    let (ended, _) = self.perform(client, &request).await;
                    self.note_model(&ended);
                    (matches!(ended, Ended::Answered { .. }), ended == Ended::Unknown)
                }
                Planned::LeasedPut { key, ttl } => {
                    let (granted, _) = self.perform(client, &Request::LeaseGrant { ttl }).await;
                    match granted {
                        Ended::Answered { response: Response::LeaseGrant { id, .. }, .. } => {
                            let value = self.values.fetch_add(1, Ordering::SeqCst).to_string();
                            let (ended, _) = self.perform(client, &Request::Put { key, value, lease: id }).await;
                            (matches!(ended, Ended::Answered { .. }), ended == Ended::Unknown)
                        }
                        other => (false, other == Ended::Unknown),
                    }
                }
            };
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

    /// Runs and records one request; how it ended, and when it was invoked.
    async fn perform(&self, client: &mut Client, request: &Request) -> (Ended, u64) {
        let invoked_ns = self.recorder.now_ns();
        let answer = tokio::time::timeout(self.cfg.op_timeout, execute(client, request)).await;
        let completed_ns = self.recorder.now_ns();
        let ended = match answer {
            Ok(Ok((revision, response))) => Ended::Answered { revision, response, completed_ns },
            Ok(Err(e)) => match classify(&e) {
                Outcome::Failed => Ended::Failed,
                _ => Ended::Unknown,
            },
            Err(_elapsed) => Ended::Unknown,
        };
        self.recorder.record_model(ModelOp {
            client: self.idx as u64,
            invoked_ns,
            request: request.clone(),
            ended: ended.clone(),
        });
        (ended, invoked_ns)
    }

    fn note_register(&mut self, call: &Call, returned: &Return, ended: &Ended) {
        let Ended::Answered { revision, .. } = ended else { return };
        match (call, returned) {
            (Call::Read { key }, Return::Read(v)) => {
                self.seen.insert(key.clone(), *v);
            }
            (Call::Write { key, value }, _) | (Call::Cas { key, new: value, .. }, Return::Cas(true)) => {
                self.seen.insert(key.clone(), Some(*value));
                self.recorder.acked(*revision, key, *value);
            }
            _ => {}
        }
    }

    /// Remembers the model keys' mod revisions a range or transaction showed.
    fn note_model(&mut self, ended: &Ended) {
        let Ended::Answered { response, .. } = ended else { return };
        let kvs: Vec<&Kv> = match response {
            Response::Range { kvs, .. } => kvs.iter().collect(),
            Response::Txn { reads, .. } => reads.iter().flatten().collect(),
            _ => Vec::new(),
        };
        for kv in kvs {
            self.mods.insert(kv.key.clone(), kv.mod_revision);
        }
        if let Response::Range { kvs, .. } = response {
            // A model key absent from a whole-prefix range is absent.
            for k in &self.cfg.model_keys {
                if !kvs.iter().any(|kv| &kv.key == k) {
                    self.mods.insert(k.clone(), 0);
                }
            }
        }
    }

    fn next_op(&mut self) -> Planned {
        let pick = |rng: &mut Prng, keys: &[String]| rng.pick(keys).cloned().unwrap_or_else(|| format!("{PREFIX}x"));
        let key = pick(&mut self.rng, &self.cfg.keys);
        let dice = self.rng.below(100);
        let values = self.values.clone();
        let value = || values.fetch_add(1, Ordering::SeqCst);
        match dice {
            0..25 => Planned::Register(Call::Read { key }),
            25..42 => Planned::Register(Call::Write { key, value: value() }),
            42..55 => {
                let expect = if self.rng.percent(20) { None } else { self.seen.get(&key).copied().flatten() };
                Planned::Register(Call::Cas { key, expect, new: value() })
            }
            55..60 => Planned::Model(Request::Get { key, serializable: true }),
            60..68 => Planned::Model(Request::Range { prefix: PREFIX.into(), serializable: false }),
            68..72 => Planned::Model(Request::Range { prefix: PREFIX.into(), serializable: true }),
            72..80 => Planned::Model(Request::Put {
                key: pick(&mut self.rng, &self.cfg.model_keys),
                value: value().to_string(),
                lease: 0,
            }),
            80..86 => Planned::Model(Request::Delete { key: pick(&mut self.rng, &self.cfg.model_keys) }),
            86..95 => {
                let a = pick(&mut self.rng, &self.cfg.model_keys);
                let mut b = pick(&mut self.rng, &self.cfg.model_keys);
                if a == b {
                    b = self.cfg.model_keys.iter().find(|k| **k != a).cloned().unwrap_or(b);
                }
                let guess =
                    |k: &String, rng: &mut Prng| if rng.percent(15) { 0 } else { *self.mods.get(k).unwrap_or(&0) };
                let mod_revisions = [guess(&a, &mut self.rng), guess(&b, &mut self.rng)];
                Planned::Model(Request::Txn2 {
                    keys: [a, b],
                    mod_revisions,
                    values: [value().to_string(), value().to_string()],
                })
            }
            // A key of its own, so that every lease ends in an expiry (a key put again would be
            // detached from its first lease before that one ran out).
            _ => Planned::LeasedPut { key: format!("{LEASE_PREFIX}{}", value()), ttl: self.rng.between(2, 5) as i64 },
        }
    }
}

fn register_request(call: &Call) -> Request {
    match call {
        Call::Read { key } => Request::Get { key: key.clone(), serializable: false },
        Call::Write { key, value } => Request::Put { key: key.clone(), value: value.to_string(), lease: 0 },
        Call::Cas { key, expect, new } => {
            Request::Cas { key: key.clone(), expect: expect.map(|v| v.to_string()), new: new.to_string() }
        }
    }
}

/// The register's view of an answer, `None` if it is not the answer the call expects.
fn register_return(call: &Call, response: &Response) -> Option<Return> {
    match (call, response) {
        (Call::Read { .. }, Response::Range { kvs, .. }) => {
            Some(Return::Read(kvs.first().map(|kv| parse_value(kv.value.as_bytes()))))
        }
        (Call::Write { .. }, Response::Put) => Some(Return::Write),
        (Call::Cas { .. }, Response::Txn { succeeded, .. }) => Some(Return::Cas(*succeeded)),
        _ => None,
    }
}

/// A value that is not one of ours (none is ever written as u64::MAX): reported as read, so the
/// checker flags it.
const FOREIGN_VALUE: u64 = u64::MAX;

fn parse_value(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(FOREIGN_VALUE)
}

fn kvs(r: &etcd_client::GetResponse) -> Vec<Kv> {
    r.kvs().iter().map(Kv::from_etcd).collect()
}

/// Runs one request; the response header's revision and what came back.
async fn execute(client: &mut Client, request: &Request) -> Result<(i64, Response), etcd_client::Error> {
    let rev = |h: Option<&etcd_client::ResponseHeader>| h.map_or(0, |h| h.revision());
    match request {
        Request::Get { key, serializable } => {
            let opts = serializable.then(|| GetOptions::new().with_serializable());
            let r = client.get(key.as_str(), opts).await?;
            Ok((rev(r.header()), Response::Range { kvs: kvs(&r), count: r.count() }))
        }
        Request::Range { prefix, serializable } => {
            let mut opts = GetOptions::new().with_prefix();
            if *serializable {
                opts = opts.with_serializable();
            }
            let r = client.get(prefix.as_str(), Some(opts)).await?;
            Ok((rev(r.header()), Response::Range { kvs: kvs(&r), count: r.count() }))
        }
        Request::Put { key, value, lease } => {
            let opts = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            let r = client.put(key.as_str(), value.as_str(), opts).await?;
            Ok((rev(r.header()), Response::Put))
        }
        Request::Delete { key } => {
            let r = client.delete(key.as_str(), Some(DeleteOptions::new().with_prev_key())).await?;
            let prev = r.prev_kvs().iter().map(Kv::from_etcd).collect();
            Ok((rev(r.header()), Response::Delete { deleted: r.deleted(), prev }))
        }
        Request::Cas { key, expect, new } => {
            let cmp = match expect {
                Some(v) => Compare::value(key.as_str(), CompareOp::Equal, v.as_str()),
                None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            };
            let txn = Txn::new().when([cmp]).and_then([TxnOp::put(key.as_str(), new.as_str(), None)]);
            let r = client.txn(txn).await?;
            Ok((rev(r.header()), Response::Txn { succeeded: r.succeeded(), reads: Vec::new() }))
        }
        Request::Txn2 { keys, mod_revisions, values } => {
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(keys[0].as_str(), CompareOp::Equal, mod_revisions[0]),
                    Compare::mod_revision(keys[1].as_str(), CompareOp::Equal, mod_revisions[1]),
                ])
                .and_then([
                    TxnOp::put(keys[0].as_str(), values[0].as_str(), None),
                    TxnOp::put(keys[1].as_str(), values[1].as_str(), None),
                ])
                .or_else([TxnOp::get(keys[0].as_str(), None), TxnOp::get(keys[1].as_str(), None)]);
            let r = client.txn(txn).await?;
            let reads = r
                .op_responses()
                .iter()
                .filter_map(|o| match o {
                    TxnOpResponse::Get(g) => Some(kvs(g)),
                    _ => None,
                })
                .collect();
            Ok((rev(r.header()), Response::Txn { succeeded: r.succeeded(), reads }))
        }
        Request::LeaseGrant { ttl } => {
            let r = client.lease_grant(*ttl, None).await?;
            Ok((rev(r.header()), Response::LeaseGrant { id: r.id(), ttl: r.ttl() }))
        }
    }
}

/// Waits (blocking, up to `timeout`) until no lease key is left: the leases the clients were
/// granted last must run out before the run's final revision is taken, so the model can check
/// that every one of them did.
pub fn wait_leases_expired(
    rt: &tokio::runtime::Runtime,
    endpoints: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut left = Vec::new();
    while std::time::Instant::now() < deadline {
        let got = rt.block_on(async {
            let mut c = crate::cluster::try_connect(endpoints, Duration::from_secs(5)).await?;
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                c.get(LEASE_PREFIX, Some(GetOptions::new().with_prefix())),
            )
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(r.kvs().iter().map(Kv::from_etcd).collect::<Vec<_>>())
        });
        match got {
            Ok(kvs) if kvs.is_empty() => return Ok(()),
            Ok(kvs) => left = kvs,
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("lease keys still there {timeout:?} after the clients stopped: {left:?}"))
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
