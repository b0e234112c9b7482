//! A multi-member cluster — N real `etcd` or `wasmraft` processes on loopback.
//!
//! [`Cluster::start`] creates N [`Member`]s on fresh loopback ports, each with its own temp data
//! dir, all with the same `--initial-cluster` / `--initial-cluster-token` /
//! `--initial-cluster-state=new` flags (etcd 3.4's flags, so either flavor starts from the same
//! command lines). It *spawns* every member first and only then waits for each to log "ready to
//! serve client requests": the members of a new cluster become ready together, once a quorum has
//! elected a leader and each member has published itself through the log.
//!
//! What a test gets:
//! - endpoints ([`Cluster::endpoints`], [`Cluster::running_endpoints`]), an [`Etcdctl`] bound to
//!   a member ([`Cluster::etcdctl`]), an async `etcd-client` ([`Cluster::client`],
//!   [`Cluster::client_running`]) and the `wasmraft` client subcommands ([`Cluster::cli`]: the
//!   generic `propose`/`query` API that custom guests serve);
//! - status per member (Maintenance.Status, what `etcdctl endpoint status` shows:
//!   [`Cluster::status`]), the leader as the running members agree on it ([`Cluster::leader`],
//!   [`Cluster::wait_leader`]), all members caught up ([`Cluster::wait_converged`]);
//! - faults: [`Cluster::kill9`] (SIGKILL, data dir kept), [`Cluster::restart`] (same data dir,
//!   ports and flags; etcd ignores the `--initial-cluster*` flags when the data dir already holds
//!   a member, and so must wasmraft), [`Cluster::pause`] / [`Cluster::resume`] (SIGSTOP /
//!   SIGCONT: alive but silent);
//! - guests (in [`crate::guest`]): [`Cluster::deploy`], [`Cluster::rollback`],
//!   [`Cluster::guest_status`], [`Cluster::wait_guest`], [`Cluster::wait_same_state`].
//!
//! "Running" members are those whose process is alive and not paused: the ones that can answer.
//!
//! Teardown: [`Cluster`]'s `Drop` SIGKILLs every process first, paused ones included (so no
//! member keeps electing while the others are reaped one by one), then each [`Member`]'s own
//! `Drop` reaps it, prints the tail of its log when the test is panicking, and removes its temp
//! dir (kept with `WASMRAFT_TEST_KEEP=1`). Members are spawned with `PR_SET_PDEATHSIG`, so even a
//! test process that dies outright leaves nothing behind.
//!
//! All methods are blocking (they run etcdctl or wait for log lines); from async code call them
//! through `tokio::task::spawn_blocking` or keep them out of the runtime's worker threads.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::etcdctl::Etcdctl;
use crate::member::{Flavor, Member, MemberConfig};

/// One member's `etcdctl endpoint status -w json` answer (the fields tests use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    pub endpoint: String,
    /// The answering member's id (`header.member_id`).
    pub member_id: u64,
    pub cluster_id: u64,
    /// The store revision in the header.
    pub revision: u64,
    /// The member id this member believes is leader (0: none).
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    /// `raftAppliedIndex` (etcd 3.4 reports it; 0 when absent).
    pub raft_applied_index: u64,
    pub version: String,
}

impl EndpointStatus {
    /// Parses the JSON etcdctl 3.4 prints for `endpoint status -w json` with one endpoint.
    pub fn parse(json: &str) -> Result<EndpointStatus, String> {
        let v: Value = serde_json::from_str(json.trim()).map_err(|e| format!("endpoint status json: {e}: {json:?}"))?;
        let entry = v
            .as_array()
            .and_then(|a| a.first())
            .ok_or_else(|| format!("endpoint status json: not a non-empty array: {json:?}"))?;
        let status = &entry["Status"];
        let header = &status["header"];
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        Ok(EndpointStatus {
            endpoint: entry["Endpoint"].as_str().unwrap_or_default().to_string(),
            member_id: u(&header["member_id"]),
            cluster_id: u(&header["cluster_id"]),
            revision: u(&header["revision"]),
            leader: u(&status["leader"]),
            raft_index: u(&status["raftIndex"]),
            raft_term: u(&status["raftTerm"]),
            raft_applied_index: u(&status["raftAppliedIndex"]),
            version: status["version"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.member_id
    }
}

/// How to build a cluster; [`Cluster::start`] covers the common case.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub flavor: Flavor,
    pub size: usize,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Flags appended to every member's command line (e.g. `--snapshot-count=100`).
    pub extra_args: Vec<String>,
    /// Member names are `<prefix><i>`, i from 0.
    pub name_prefix: String,
    /// Every member serves clients on https (TLS flags in `extra_args`).
    pub https_client: bool,
    /// Every member's peer URLs are https (--peer-* flags in `extra_args`).
    pub https_peer: bool,
    /// Where each member's data dir really is (its temp dir's `data` is a symlink there): a
    /// directory on a test file system, say (tests/lazyfs). Empty: in the member's temp dir.
    pub data_dirs: Vec<std::path::PathBuf>,
    /// Extra environment of member `i`'s process (restarts included); missing: none.
    pub member_env: Vec<Vec<(String, String)>>,
}

impl ClusterConfig {
    pub fn new(flavor: Flavor, size: usize) -> Self {
        assert!(size >= 1, "a cluster needs at least one member");
        ClusterConfig {
            flavor,
            size,
            token: "wasmraft-test-cluster".into(),
            extra_args: Vec::new(),
            name_prefix: "m".into(),
            https_client: false,
            https_peer: false,
            data_dirs: Vec::new(),
            member_env: Vec::new(),
        }
    }

    /// Sets `key=value` in member `i`'s environment.
    pub fn member_env(mut self, i: usize, key: impl Into<String>, value: impl Into<String>) -> Self {
        assert!(i < self.size, "member {i} of {}", self.size);
        self.member_env.resize(self.size, Vec::new());
        self.member_env[i].push((key.into(), value.into()));
        self
    }

    /// Member `i`'s data dir is `dirs[i]` (an existing, empty directory), reached through a
    /// symlink from its temp dir.
    pub fn data_dirs(mut self, dirs: Vec<std::path::PathBuf>) -> Self {
        assert_eq!(dirs.len(), self.size, "one data dir per member");
        self.data_dirs = dirs;
        self
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    /// Clients over TLS: https client URLs (the TLS flags are the caller's `arg`s).
    pub fn https_client(mut self) -> Self {
        self.https_client = true;
        self
    }

    /// Peer TLS: https peer URLs (the --peer-* flags are the caller's `arg`s).
    pub fn https_peer(mut self) -> Self {
        self.https_peer = true;
        self
    }

    /// A fresh member of this cluster's flavor and URL schemes.
    fn member_config(&self, name: impl Into<String>) -> MemberConfig {
        let mut c = MemberConfig::new(self.flavor).name(name);
        if self.https_client {
            c = c.https_client();
        }
        if self.https_peer {
            c = c.https_peer();
        }
        c
    }

    /// `--guest=PATH`: the cluster's first guest (a component file) instead of the bundled KV
    /// guest. wasmraft only.
    pub fn guest(self, component: impl AsRef<std::path::Path>) -> Self {
        let arg = format!("--guest={}", component.as_ref().display());
        self.arg(arg)
    }

    /// Spawns all members, then waits until every one is ready.
    pub fn start(self) -> Cluster {
        let configs: Vec<MemberConfig> =
            (0..self.size).map(|i| self.member_config(format!("{}{i}", self.name_prefix))).collect();
        let initial_cluster = configs.iter().map(MemberConfig::cluster_entry).collect::<Vec<_>>().join(",");
        let mut members: Vec<Member> = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c
                    .initial_cluster(initial_cluster.clone())
                    .arg(format!("--initial-cluster-token={}", self.token))
                    .arg("--initial-cluster-state=new");
                c.extra_args.extend(self.extra_args.iter().cloned());
                c.env.extend(self.member_env.get(i).into_iter().flatten().cloned());
                match self.data_dirs.get(i) {
                    Some(real) => Member::spawn_prepared(c, |link| {
                        std::os::unix::fs::symlink(real, link).expect("link the member's data dir")
                    }),
                    None => Member::spawn(c),
                }
            })
            .collect();
        for m in &mut members {
            m.wait_ready();
        }
        Cluster { config: self, members }
    }
}

/// N running (or killed, restartable) members of one cluster. See the module docs.
pub struct Cluster {
    config: ClusterConfig,
    members: Vec<Member>,
}

impl Cluster {
    /// Starts a new `size`-member cluster of `flavor` and waits until all members are ready.
    pub fn start(flavor: Flavor, size: usize) -> Cluster {
        ClusterConfig::new(flavor, size).start()
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn flavor(&self) -> Flavor {
        self.config.flavor
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The value for `--initial-cluster`: `m0=http://127.0.0.1:P0,m1=…`.
    pub fn initial_cluster(&self) -> String {
        self.members.iter().map(|m| m.config().cluster_entry()).collect::<Vec<_>>().join(",")
    }

    /// A member to add to this cluster at runtime (after `etcdctl member add`): fresh ports, the
    /// cluster's token and extra flags, `--initial-cluster-state=existing`, and an
    /// `--initial-cluster` of the members `current` plus itself (what `member add` tells an
    /// operator to use).
    pub fn joiner_config(&self, name: &str, current: &[usize]) -> MemberConfig {
        let mut c = self.config.member_config(name);
        let mut entries: Vec<String> = current.iter().map(|&i| self.members[i].config().cluster_entry()).collect();
        entries.push(c.cluster_entry());
        c = c
            .initial_cluster(entries.join(","))
            .arg(format!("--initial-cluster-token={}", self.config.token))
            .arg("--initial-cluster-state=existing");
        c.extra_args.extend(self.config.extra_args.iter().cloned());
        c
    }

    /// Starts a member made with [`Cluster::joiner_config`] and waits until it serves clients;
    /// returns its index.
    pub fn join(&mut self, config: MemberConfig) -> usize {
        let i = self.spawn_join(config);
        self.members[i].wait_ready();
        i
    }

    /// Starts a member made with [`Cluster::joiner_config`] without waiting; returns its index.
    pub fn spawn_join(&mut self, config: MemberConfig) -> usize {
        self.members.push(Member::spawn(config));
        self.members.len() - 1
    }

    /// Every member's client URL, running or not, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].endpoint()
    }

    /// Indexes of the members whose process is alive and not paused.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.members[i].is_running() && !self.members[i].is_paused()).collect()
    }

    /// Client URLs of the running (alive, not paused) members.
    pub fn running_endpoints(&mut self) -> Vec<String> {
        self.running().into_iter().map(|i| self.members[i].endpoint()).collect()
    }

    /// etcdctl bound to member `i`.
    pub fn etcdctl(&self, i: usize) -> Etcdctl {
        Etcdctl::new(self.members[i].endpoint())
    }

    /// etcdctl with all members' endpoints (etcdctl's balancer picks one and fails over).
    pub fn etcdctl_all(&self) -> Etcdctl {
        Etcdctl::new(self.endpoints().join(","))
    }

    /// An `etcd-client` connected to member `i` only (lazy connection: it never fails here if
    /// the member is down, its requests do). `timeout` is the per-request timeout.
    pub async fn client(&self, i: usize, timeout: Duration) -> etcd_client::Client {
        connect(&[self.members[i].endpoint()], timeout).await
    }

    /// An `etcd-client` over the running members' endpoints (it balances over them and fails
    /// over when one goes away). `Err` if it cannot be built.
    pub async fn client_running(&mut self, timeout: Duration) -> Result<etcd_client::Client, String> {
        try_connect(&self.running_endpoints(), timeout).await
    }

    /// Member `i`'s Maintenance.Status (what `etcdctl endpoint status` shows), through the
    /// `etcd-client` crate with 2 s timeouts. Blocking: it runs its own small runtime, so never
    /// call it from inside an async runtime.
    ///
    /// Through the client crate rather than etcdctl because it is cheaper than a process per
    /// call; [`Cluster::etcdctl_status`] is the etcdctl path (etcdctl's `endpoint` subcommands
    /// send a URL as the HTTP/2 `:authority`, which wasmraft's client listener accepts as etcd
    /// does: see host/api/src/authority.rs).
    pub fn status(&self, i: usize) -> Result<EndpointStatus, String> {
        let endpoint = self.members[i].endpoint();
        let name = self.members[i].name().to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        rt.block_on(async move {
            let opts = etcd_client::ConnectOptions::new()
                .with_timeout(Duration::from_secs(2))
                .with_connect_timeout(Duration::from_secs(1));
            let mut client = etcd_client::Client::connect([endpoint.as_str()], Some(opts))
                .await
                .map_err(|e| format!("status of {name}: connect: {e}"))?;
            let st = tokio::time::timeout(Duration::from_secs(3), client.status())
                .await
                .map_err(|_| format!("status of {name}: timed out"))?
                .map_err(|e| format!("status of {name}: {e}"))?;
            let h = st.header().ok_or_else(|| format!("status of {name}: no header"))?;
            Ok(EndpointStatus {
                endpoint: endpoint.clone(),
                member_id: h.member_id(),
                cluster_id: h.cluster_id(),
                revision: u64::try_from(h.revision()).unwrap_or(0),
                leader: st.leader(),
                raft_index: st.raft_index(),
                raft_term: st.raft_term(),
                raft_applied_index: st.raft_applied_index(),
                version: st.version().to_string(),
            })
        })
    }

    /// `etcdctl endpoint status -w json` against member `i` (see [`Cluster::status`] for why
    /// the harness does not use this by default).
    pub fn etcdctl_status(&self, i: usize) -> Result<EndpointStatus, String> {
        let out =
            self.etcdctl(i).run(&["--dial-timeout=1s", "--command-timeout=2s", "endpoint", "status", "-w", "json"]);
        if !out.success() {
            return Err(format!("etcdctl endpoint status of {} failed: {}", self.members[i].name(), out.render()));
        }
        EndpointStatus::parse(&out.stdout)
    }

    /// The status of every running member, or the first error.
    pub fn statuses(&mut self) -> Result<Vec<(usize, EndpointStatus)>, String> {
        self.running().into_iter().map(|i| self.status(i).map(|s| (i, s))).collect()
    }

    /// The index of the leader if every running member answers status, they all name the same
    /// leader in the same term, and that leader is a running member that says it leads.
    pub fn leader(&mut self) -> Option<usize> {
        let statuses = self.statuses().ok()?;
        let (_, first) = statuses.first()?;
        let (leader_id, term) = (first.leader, first.raft_term);
        if leader_id == 0 || statuses.iter().any(|(_, s)| s.leader != leader_id || s.raft_term != term) {
            return None;
        }
        statuses.iter().find(|(_, s)| s.member_id == leader_id && s.is_leader()).map(|(i, _)| *i)
    }

    /// Polls [`Cluster::leader`] until the running members agree on a leader; panics (with every
    /// member's status or error) after `timeout`.
    pub fn wait_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return i;
            }
            if Instant::now() >= deadline {
                let running = self.running();
                let report: Vec<String> =
                    running.iter().map(|&i| format!("{}: {:?}", self.members[i].name(), self.status(i))).collect();
                panic!("no agreed leader among running members after {timeout:?}:\n{}", report.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls until every running member reports the same raft index and applied index (and
    /// revision, term and leader) as the others; returns those statuses. Panics after `timeout`.
    /// Only meaningful when nobody is writing.
    pub fn wait_converged(&mut self, timeout: Duration) -> Vec<(usize, EndpointStatus)> {
        self.try_wait_converged(timeout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::wait_converged`] that returns the failure (with the last statuses) instead of
    /// panicking, for checks that report rather than abort.
    pub fn try_wait_converged(&mut self, timeout: Duration) -> Result<Vec<(usize, EndpointStatus)>, String> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            match self.statuses() {
                Ok(st) => {
                    let first = &st[0].1;
                    let agree = st.iter().all(|(_, s)| {
                        s.raft_index == first.raft_index
                            && s.raft_term == first.raft_term
                            && s.revision == first.revision
                            && s.raft_applied_index == first.raft_applied_index
                            && s.leader == first.leader
                    });
                    if agree && first.leader != 0 {
                        return Ok(st);
                    }
                    last = format!("{st:#?}");
                }
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(format!("running members did not converge within {timeout:?}; last: {last}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs member `i` (data dir kept for [`Cluster::restart`]).
    pub fn kill9(&mut self, i: usize) {
        self.members[i].kill9();
    }

    /// Restarts member `i` on its data dir and ports and waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        self.members[i].restart();
    }

    /// Restarts member `i` without waiting for readiness.
    pub fn restart_no_wait(&mut self, i: usize) {
        self.members[i].restart_no_wait();
    }

    /// SIGSTOPs member `i` ([`Member::pause`]): alive, holding its ports, answering nothing.
    /// It leaves [`Cluster::running`] until [`Cluster::resume`].
    pub fn pause(&mut self, i: usize) {
        self.members[i].pause();
    }

    /// SIGCONTs member `i` after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.members[i].resume();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kill everything before any member's Drop reaps and prints, so that survivors do not
        // keep campaigning (and logging) while the others are torn down.
        for m in &self.members {
            if let Some(pid) = m.pid() {
                // SAFETY: kill(2) on our own unreaped child; Member's Drop reaps it. SIGKILL ends
                // a paused (stopped) member too; the SIGCONT is for good measure.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    libc::kill(pid as libc::pid_t, libc::SIGCONT);
                }
            }
        }
    }
}

/// Serializes a test binary's multi-member tests: held for a test's whole run. Each such test
/// starts clusters whose steps have etcdctl's 5 s deadline, and on CI's two cores several of
/// them at once starve elections (a step's proposal lost to a leader change then times out; seen
/// in CI for auth and peer TLS). Tests in one binary run in parallel threads; binaries run one
/// after the other, so a process-wide lock is enough.
pub fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A multi-thread tokio runtime (two workers) for a blocking test that drives async clients:
/// spawn client tasks on it, and call the (blocking) [`Cluster`] methods from the test's own
/// thread meanwhile. Panics if the runtime cannot be built.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

/// An `etcd-client` over `endpoints` with a per-request `timeout` and a short connect timeout.
/// Panics if the client cannot be built; [`try_connect`] returns the error.
pub async fn connect(endpoints: &[String], timeout: Duration) -> etcd_client::Client {
    try_connect(endpoints, timeout).await.unwrap_or_else(|e| panic!("{e}"))
}

/// [`connect`] without the panic.
pub async fn try_connect(endpoints: &[String], timeout: Duration) -> Result<etcd_client::Client, String> {
    let opts = etcd_client::ConnectOptions::new().with_timeout(timeout).with_connect_timeout(Duration::from_secs(2));
    etcd_client::Client::connect(endpoints, Some(opts))
        .await
        .map_err(|e| format!("etcd-client connect to {endpoints:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcdctl_endpoint_status_json() {
        let json = r#"[{"Endpoint":"http://127.0.0.1:2379","Status":{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":7,"raft_term":3},"version":"3.4.23","dbSize":20480,"leader":10276657743932975437,"raftIndex":12,"raftTerm":3,"raftAppliedIndex":12,"dbSizeInUse":16384}}]"#;
        let s = EndpointStatus::parse(json).unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:2379");
        assert_eq!(s.member_id, 10276657743932975437);
        assert_eq!(s.cluster_id, 14841639068965178418);
        assert_eq!((s.revision, s.raft_index, s.raft_term, s.raft_applied_index), (7, 12, 3, 12));
        assert!(s.is_leader());
        assert_eq!(s.version, "3.4.23");
        assert!(EndpointStatus::parse("[]").is_err());
        assert!(EndpointStatus::parse("nope").is_err());
    }
}
