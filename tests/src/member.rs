//! One member — a real `etcd` or `wasmraft` process — on loopback.
//!
//! Both flavors take the same etcd 3.4 flags and print the same "ready to serve client requests"
//! line, so one type drives both; a test picks the flavor, and comparing wasmraft against real
//! etcd is a matter of starting one of each.
//!
//! A [`Member`] owns its process, a temp dir holding its data dir and its log, and the two ports.
//! The data dir and ports survive [`Member::kill9`] / [`Member::terminate`], so
//! [`Member::restart`] brings the *same* member back — that is what durability tests are about.
//! [`Member::pause`] / [`Member::resume`] (SIGSTOP / SIGCONT) freeze a member without killing it:
//! a member that stops answering while its peers carry on, as a long GC pause or a hung disk
//! would look from outside.
//!
//! Teardown is guaranteed three ways: `Drop` SIGKILLs and reaps the process (also a paused one,
//! which is sent SIGCONT too; also when the test panics, printing the tail of the member's log so
//! the failure explains itself); the process is spawned with `PR_SET_PDEATHSIG = SIGKILL`, so
//! even if the test binary itself dies (timeout, Ctrl-C, abort) no server is left behind holding
//! ports.
//!
//! The API is split so a multi-member cluster can be built on it later: [`MemberConfig`] carries
//! the name, ports, `--initial-cluster` and extra flags; [`Member::spawn`] starts without waiting
//! (members of a new cluster only become ready once a quorum is up), and
//! [`Member::wait_ready`] waits.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::binaries::{etcd_bin, wasmraft_bin};
use crate::ports::free_port;

/// The line both etcd 3.4 and wasmraft log (stderr) once they serve clients.
pub const READY_LINE: &str = "ready to serve client requests";

/// Default time to wait for [`READY_LINE`]. Generous because debug builds of wasmraft compile the
/// KV guest at start and CI has two cores shared by everything. Env
/// `WASMRAFT_TEST_READY_TIMEOUT_SECS` overrides.
pub fn default_ready_timeout() -> Duration {
    let secs = std::env::var("WASMRAFT_TEST_READY_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// How long [`Member::terminate`] waits for a graceful exit before it falls back to SIGKILL.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);

/// Which server program a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Debian's real etcd 3.4 — the reference.
    Etcd,
    /// The system under test.
    Wasmraft,
}

impl Flavor {
    pub fn binary(self) -> PathBuf {
        match self {
            Flavor::Etcd => etcd_bin(),
            Flavor::Wasmraft => wasmraft_bin(),
        }
    }

    /// The etcd version the flavor reports by default (Maintenance.Status, `/version`,
    /// `etcd_server_version`): the installed etcd's own, and for wasmraft the release whose
    /// client-visible behaviour it implements (3.4.31's watch progress rules).
    pub fn reported_version(self) -> &'static str {
        match self {
            Flavor::Etcd => "3.4.23",
            Flavor::Wasmraft => "3.4.31",
        }
    }

    /// The flavor under test: env `WASMRAFT_TEST_SUBJECT` (`etcd` or `wasmraft`), default
    /// wasmraft. Setting it to `etcd` runs a test's subject as real etcd, which validates the test
    /// itself (it must pass against the reference).
    pub fn subject() -> Flavor {
        Flavor::from_env("WASMRAFT_TEST_SUBJECT", Flavor::Wasmraft)
    }

    /// Reads a flavor from env var `var` (`etcd` or `wasmraft`), else `default`. Lets a test
    /// that normally targets wasmraft be pointed at real etcd to validate the test itself.
    pub fn from_env(var: &str, default: Flavor) -> Flavor {
        match std::env::var(var) {
            Ok(v) if v.eq_ignore_ascii_case("etcd") => Flavor::Etcd,
            Ok(v) if v.eq_ignore_ascii_case("wasmraft") => Flavor::Wasmraft,
            Ok(v) if v.is_empty() => default,
            Ok(v) => panic!("{var}={v}: expected `etcd` or `wasmraft`"),
            Err(_) => default,
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Etcd => "etcd",
            Flavor::Wasmraft => "wasmraft",
        })
    }
}

/// Everything needed to (re)start a member. Ports are fixed at creation so a restarted member is
/// reachable at the same URLs, as a real operator's member would be.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub flavor: Flavor,
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// `--initial-cluster`; `None` means a one-member cluster of just this member.
    pub initial_cluster: Option<String>,
    /// Further flags, appended after the standard ones (e.g. `--initial-cluster-state=existing`,
    /// `--snapshot-count=100`).
    pub extra_args: Vec<String>,
    /// Extra environment for the process.
    pub env: Vec<(String, String)>,
    pub ready_timeout: Duration,
    /// `https` for a member serving clients over TLS (its TLS flags go in `extra_args`).
    pub client_scheme: &'static str,
    /// `https` for a member whose peer URLs use TLS (its --peer-* flags go in `extra_args`).
    pub peer_scheme: &'static str,
    /// Replaces the standard URL and cluster flags (`--listen-*-urls`, `--advertise-*`,
    /// `--initial-cluster`): for members bootstrapped otherwise (`--discovery-srv`) or on
    /// other URLs (`unix://`). `--name` and `--data-dir` stay.
    pub url_args: Option<Vec<String>>,
    /// The process's working directory (relative `unix://` socket files land there).
    pub cwd: Option<PathBuf>,
}

impl MemberConfig {
    /// A one-member cluster named `m0` on two fresh loopback ports.
    pub fn new(flavor: Flavor) -> Self {
        MemberConfig {
            flavor,
            name: "m0".into(),
            client_port: free_port(),
            peer_port: free_port(),
            initial_cluster: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            ready_timeout: default_ready_timeout(),
            client_scheme: "http",
            peer_scheme: "http",
            url_args: None,
            cwd: None,
        }
    }

    /// Replaces the standard URL and cluster flags (see [`MemberConfig::url_args`]).
    pub fn url_args(mut self, args: Vec<String>) -> Self {
        self.url_args = Some(args);
        self
    }

    /// Runs the process in `dir`.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn initial_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.initial_cluster = Some(cluster.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Serve clients on an https:// URL (the certificate flags are the caller's `arg`s).
    pub fn https_client(mut self) -> Self {
        self.client_scheme = "https";
        self
    }

    /// Listen and advertise an https:// peer URL (the --peer-* flags are the caller's `arg`s).
    pub fn https_peer(mut self) -> Self {
        self.peer_scheme = "https";
        self
    }

    pub fn client_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.client_scheme, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port)
    }

    /// This member's `name=peer-url` entry for an `--initial-cluster` list.
    pub fn cluster_entry(&self) -> String {
        format!("{}={}", self.name, self.peer_url())
    }

    /// The command line, etcd 3.4 flags only (no wasmraft-specific ones), so the same line starts
    /// either flavor.
    pub fn args(&self, data_dir: &Path) -> Vec<String> {
        let mut args = vec![format!("--name={}", self.name), format!("--data-dir={}", data_dir.display())];
        if let Some(urls) = &self.url_args {
            args.extend(urls.iter().cloned());
            args.extend(self.extra_args.iter().cloned());
            return args;
        }
        args.extend([
            format!("--listen-client-urls={}", self.client_url()),
            format!("--advertise-client-urls={}", self.client_url()),
            format!("--listen-peer-urls={}", self.peer_url()),
            format!("--initial-advertise-peer-urls={}", self.peer_url()),
            format!("--initial-cluster={}", self.initial_cluster.clone().unwrap_or_else(|| self.cluster_entry())),
        ]);
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running (or stopped, restartable) member process. See the module docs.
pub struct Member {
    config: MemberConfig,
    /// Holds `data/` and `member.log`; removed on drop (kept with `WASMRAFT_TEST_KEEP=1`).
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Byte offset in the log where the current incarnation's output starts, so readiness is
    /// judged on this run's output, not an earlier run's.
    log_offset: u64,
    /// How many times the process has been started.
    starts: u32,
    /// Stopped with SIGSTOP by [`Member::pause`] and not resumed yet.
    paused: bool,
}

impl Member {
    /// Starts a fresh one-member cluster of `flavor` and waits until it serves clients.
    /// Panics (with the member's log) if it does not become ready.
    pub fn start(flavor: Flavor) -> Member {
        Member::start_with(MemberConfig::new(flavor))
    }

    /// Starts a member from `config` with a fresh data dir and waits until it is ready.
    pub fn start_with(config: MemberConfig) -> Member {
        let mut m = Member::spawn(config);
        m.wait_ready();
        m
    }

    /// Starts a member with a fresh, empty data dir without waiting for readiness (a member of a
    /// multi-member cluster cannot become ready before its peers are up).
    pub fn spawn(config: MemberConfig) -> Member {
        Member::spawn_prepared(config, |_| {})
    }

    /// Like [`Member::spawn`], but `prepare` gets the (not yet existing) data dir path first, to
    /// put a data dir there (say, one `snapshot restore` made).
    pub fn spawn_prepared(config: MemberConfig, prepare: impl FnOnce(&Path)) -> Member {
        let dir = tempfile::Builder::new()
            .prefix(&format!("wasmraft-test-{}-{}-", config.flavor, config.name))
            .tempdir()
            .expect("create member temp dir");
        // Not created: a real deployment's data dir usually does not exist on first start, and
        // both servers must create it themselves.
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("member.log");
        prepare(&data_dir);
        let mut m =
            Member { config, dir: Some(dir), data_dir, log_path, child: None, log_offset: 0, starts: 0, paused: false };
        m.spawn_process();
        m
    }

    fn spawn_process(&mut self) {
        assert!(self.child.is_none(), "member {} is already running", self.config.name);
        let bin = self.config.flavor.binary();
        let args = self.config.args(&self.data_dir);
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open member log");
        self.starts += 1;
        writeln!(
            log,
            "===== wasmraft-tests: start #{} of {}: {} {}",
            self.starts,
            self.config.name,
            bin.display(),
            args.join(" ")
        )
        .expect("write member log");
        self.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .envs(self.config.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.config.cwd {
            cmd.current_dir(dir);
        }
        let child = spawn_with_parent_death_signal(cmd)
            .unwrap_or_else(|e| panic!("spawning {} {}: {e}", bin.display(), args.join(" ")));
        self.child = Some(child);
    }

    /// Waits for [`READY_LINE`] in this incarnation's log; panics with the log if the process
    /// exits first or the timeout passes.
    pub fn wait_ready(&mut self) {
        let timeout = self.config.ready_timeout;
        if let Err(e) = self.try_wait_ready(timeout) {
            panic!("{e}");
        }
    }

    /// Like [`Member::wait_ready`] but returns the failure (with the log) instead of panicking,
    /// for tests where a member is expected *not* to come up.
    pub fn try_wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.current_log().contains(READY_LINE) {
                return Ok(());
            }
            let child = match self.child.as_mut() {
                Some(c) => c,
                None => return Err(format!("member {} is not running", self.config.name)),
            };
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                // The process may have printed the line just before exiting; still not ready.
                return Err(format!(
                    "{} member {} exited ({status}) before logging {READY_LINE:?}\n{}",
                    self.config.flavor,
                    self.config.name,
                    self.log_excerpt(200)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} member {} not ready after {timeout:?} (no {READY_LINE:?} in its log)\n{}",
                    self.config.flavor,
                    self.config.name,
                    self.log_excerpt(200)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:23790` (for `--endpoints` and client libraries).
    pub fn endpoint(&self) -> String {
        self.config.client_url()
    }

    pub fn peer_url(&self) -> String {
        self.config.peer_url()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn flavor(&self) -> Flavor {
        self.config.flavor
    }

    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// Mutable config, e.g. to change flags (like `--initial-cluster-state`) before a restart.
    pub fn config_mut(&mut self) -> &mut MemberConfig {
        &mut self.config
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole log, all incarnations (separated by `===== wasmraft-tests: start #N` lines).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// The current incarnation's log only.
    pub fn current_log(&self) -> String {
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&self.log_path)
            && f.seek(SeekFrom::Start(self.log_offset)).is_ok()
        {
            let _ = f.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The last `lines` lines of the log, framed, for failure messages.
    pub fn log_excerpt(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "----- last {} lines of {} ({}) -----\n{}\n----- end of log -----",
            all.len() - start,
            self.log_path.display(),
            self.config.name,
            all[start..].join("\n")
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is alive (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => match c.try_wait().expect("try_wait") {
                None => true,
                Some(_) => {
                    self.child = None;
                    self.paused = false;
                    false
                }
            },
        }
    }

    /// Waits up to `timeout` for the process to exit on its own (a member removed from its
    /// cluster stops by itself) and returns its exit status; None if it is still running then
    /// (or was not running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.child.as_mut()?.try_wait().expect("try_wait");
            if let Some(status) = status {
                self.child = None;
                self.paused = false;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL and reap: the process gets no chance to flush anything, like a power cut for the
    /// process (not for the OS: the page cache survives). The data dir is kept for
    /// [`Member::restart`]. Works on a paused member too. Panics if the member is not running.
    pub fn kill9(&mut self) {
        let mut child =
            self.child.take().unwrap_or_else(|| panic!("kill9: member {} is not running", self.config.name));
        kill_and_reap(&mut child);
        self.paused = false;
    }

    /// SIGSTOP: the process stays alive, holding its ports and files, but answers nothing —
    /// neither clients nor peers — until [`Member::resume`]. Its peers see a member that went
    /// silent (they elect a new leader if it led). Panics if the member is not running.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP, "pause");
        self.paused = true;
    }

    /// SIGCONT after [`Member::pause`]: the member carries on where it stopped (and catches up
    /// with what its peers did meanwhile). Panics if the member is not running.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT, "resume");
        self.paused = false;
    }

    /// Whether the member is stopped by [`Member::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused && self.child.is_some()
    }

    fn signal(&mut self, signal: libc::c_int, what: &str) {
        if !self.is_running() {
            panic!("{what}: member {} is not running", self.config.name);
        }
        let pid = self.pid().unwrap_or_else(|| panic!("{what}: member {} has no pid", self.config.name));
        // SAFETY: kill(2) on the pid of our own child, which is alive and unreaped (is_running
        // reaps it otherwise).
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            panic!("{what}: kill({pid}, {signal}) failed: {}", std::io::Error::last_os_error());
        }
    }

    /// The guest switches this member logged (`wasmraft: switched to guest …`), all incarnations,
    /// oldest first.
    pub fn guest_switches(&self) -> Vec<GuestSwitch> {
        self.log().lines().filter_map(GuestSwitch::parse).collect()
    }

    /// SIGTERM, then wait for a graceful exit (SIGKILL after [`TERMINATE_TIMEOUT`], which is a
    /// panic: a member that does not stop on SIGTERM is a bug). Returns the exit status; note
    /// that etcd re-raises the signal, so its status is "killed by SIGTERM", not exit code 0.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child =
            self.child.take().unwrap_or_else(|| panic!("terminate: member {} is not running", self.config.name));
        // SAFETY: plain kill(2) on the pid of our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        if std::mem::take(&mut self.paused) {
            // A stopped process only acts on SIGTERM once it runs again.
            // SAFETY: as above.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} member {} did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM (killed)\n{}",
                    self.config.flavor,
                    self.config.name,
                    self.log_excerpt(100)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the member again on the same data dir and ports, and waits until it is ready. A
    /// running member is first stopped gracefully ([`Member::terminate`]).
    pub fn restart(&mut self) {
        self.restart_no_wait();
        self.wait_ready();
    }

    /// Like [`Member::restart`] without waiting for readiness (for restarting several members of
    /// a cluster together).
    pub fn restart_no_wait(&mut self) {
        if self.is_running() {
            self.terminate();
        }
        self.spawn_process();
    }

    /// How many times the process has been started (1 after [`Member::start`]).
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
        let keep = std::env::var_os("WASMRAFT_TEST_KEEP").is_some_and(|v| v != "0");
        if std::thread::panicking() {
            // Shown by the test harness together with the failing test's output.
            eprintln!("{}", self.log_excerpt(80));
        }
        if keep && let Some(dir) = self.dir.take() {
            let path = dir.keep();
            eprintln!("wasmraft-tests: kept member {} dir {}", self.config.name, path.display());
        }
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("flavor", &self.config.flavor)
            .field("name", &self.config.name)
            .field("endpoint", &self.endpoint())
            .field("pid", &self.pid())
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// SIGKILL, SIGCONT (SIGKILL ends a stopped process too, but a stopped process that somehow
/// survives would keep its ports forever), then reap.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    // SAFETY: kill(2) on our own child, not reaped yet (a zombie at worst).
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
    let _ = child.wait();
}

/// One `wasmraft: switched to guest <name> <version> (sha256 <hex>) at index <N>; the swap entry
/// took <X> ms to apply` line of a member's log.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestSwitch {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The swap entry's index.
    pub index: u64,
    /// How long the swap entry took to apply on this member, in milliseconds: loading the new
    /// module (compiling it, unless this member already has it compiled — the member that
    /// validated the deploy does), instantiating it and running its `migrate`.
    pub apply_ms: f64,
}

impl GuestSwitch {
    /// Parses one log line; `None` if it is not a switch line.
    pub fn parse(line: &str) -> Option<GuestSwitch> {
        let rest = &line[line.find("switched to guest ")? + "switched to guest ".len()..];
        let (name, rest) = rest.split_once(' ')?;
        let (version, rest) = rest.split_once(" (sha256 ")?;
        let (sha256, rest) = rest.split_once(") at index ")?;
        let (index, rest) = rest.split_once(';')?;
        let ms = rest.split_once("took ")?.1.split_once(" ms")?.0;
        Some(GuestSwitch {
            name: name.to_string(),
            version: version.to_string(),
            sha256: sha256.to_string(),
            index: index.trim().parse().ok()?,
            apply_ms: ms.trim().parse().ok()?,
        })
    }
}

/// Spawns `cmd` so that the kernel SIGKILLs it when the test process dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. Test
/// functions run on short-lived threads, and a member may outlive the thread that started it
/// (shared fixtures, `spawn_blocking`), so all spawns go through one long-lived thread that only
/// ends with the process.
fn spawn_with_parent_death_signal(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("member-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let parent = std::process::id() as libc::pid_t;
                        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between
                        // fork and exec.
                        unsafe {
                            use std::os::unix::process::CommandExt;
                            cmd.pre_exec(move || {
                                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                                    return Err(std::io::Error::last_os_error());
                                }
                                // The parent may have died before prctl took effect.
                                if libc::getppid() != parent {
                                    libc::_exit(1);
                                }
                                Ok(())
                            });
                        }
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("start member-spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    sender.send((cmd, reply_tx)).expect("member-spawner thread is gone");
    reply_rx.recv().expect("member-spawner thread dropped the request")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a process with this pid exists (a zombie counts).
    fn exists(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the pid exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn dropping_a_paused_member_kills_and_reaps_it() {
        let mut m = Member::spawn(MemberConfig::new(Flavor::Wasmraft));
        m.pause();
        assert!(m.is_paused() && m.is_running());
        let pid = m.pid().expect("running");
        drop(m);
        assert!(!exists(pid), "the paused member {pid} survived its Member");
    }

    #[test]
    fn a_paused_member_can_be_resumed_killed_and_restarted() {
        let mut m = Member::spawn(MemberConfig::new(Flavor::Wasmraft));
        m.pause();
        m.resume();
        assert!(!m.is_paused() && m.is_running());
        m.pause();
        m.kill9();
        assert!(!m.is_paused() && !m.is_running());
        // Ready, so that its SIGTERM handler (graceful shutdown) is installed: a stopped process
        // with a handler only acts on SIGTERM once it runs again.
        m.restart();
        m.pause();
        // A graceful stop of a paused member must not wait for it to be resumed by hand.
        let started = Instant::now();
        m.terminate();
        assert!(started.elapsed() < TERMINATE_TIMEOUT, "terminate waited for the SIGKILL fallback");
        assert_eq!(m.starts(), 2);
    }

    #[test]
    fn parses_switch_lines() {
        let line = "2026-11-21T07:19:50.173890Z  INFO wasmraft_node::apply: wasmraft: switched to guest etcd-kv 0.2.0 (sha256 eb4a7e17) at index 14; the swap entry took 2519.0 ms to apply";
        let s = GuestSwitch::parse(line).expect("a switch line");
        assert_eq!(
            (s.name.as_str(), s.version.as_str(), s.sha256.as_str(), s.index),
            ("etcd-kv", "0.2.0", "eb4a7e17", 14)
        );
        assert_eq!(s.apply_ms, 2519.0);
        assert!(GuestSwitch::parse("INFO raft: switched to configuration config=...").is_none());
    }
}
