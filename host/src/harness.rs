//! A whole member in the test's own process, running a compiled guest component: the SDK's wasm
//! harness, for guest authors' integration tests and ours.
//!
//! `wasmraft_guest_sdk::testing::Harness` runs a guest's Rust code natively; this runs the
//! *component* (what a cluster will run) behind the real stack: the raft log on disk, the apply
//! thread, wasmtime with the deployment's fuel, memory and stack limits, and the gRPC API,
//! reached through a real client on a loopback port. It lives in the host crate rather than in
//! `guest-sdk` because it needs the host, and the host's build already depends on the SDK.
//!
//! ```no_run
//! use wasmraft::harness::TestMember;
//!
//! let wasm = std::fs::read("target/my_guest.component.wasm").unwrap();
//! let member = TestMember::builder(wasm).fuel(50_000_000).start().unwrap();
//! assert_eq!(member.propose(b"add 2").unwrap(), b"2");
//! assert_eq!(member.query(b"get").unwrap(), b"2");
//! let member = member.restart().unwrap(); // same data dir: the state is still there
//! assert_eq!(member.query(b"get").unwrap(), b"2");
//! ```
//!
//! Calls block (plain `#[test]` functions work); each member owns its tokio runtime. A guest's
//! `Err`, trap, or exhausted fuel or memory comes back as a [`tonic::Status`] with code
//! `Aborted` and the guest's text as its message.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use tonic::transport::Channel;
use wasmraft_proto::wasmraft::v1::{
    Consistency, DeployRequest, GuestDeployment, GuestStatusRequest, GuestStatusResponse, InfoRequest, InfoResponse,
    ProposeRequest, QueryRequest, RollbackRequest, generic_client::GenericClient, guest_admin_client::GuestAdminClient,
};

use crate::config::MemberFlags;

/// How long [`TestMemberBuilder::start`] waits for the member to serve.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Configures a [`TestMember`].
pub struct TestMemberBuilder {
    wasm: Vec<u8>,
    fuel: Option<u64>,
    memory_bytes: Option<u64>,
    stack_bytes: Option<u64>,
    data_dir: Option<PathBuf>,
    extra_flags: Vec<String>,
}

impl TestMemberBuilder {
    /// Fuel per entry for the guest (default: the host's default).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// The guest's memory cap in bytes (default: the host's default).
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// The guest's Wasm stack limit in bytes (default: the host's default).
    pub fn stack_bytes(mut self, bytes: u64) -> Self {
        self.stack_bytes = Some(bytes);
        self
    }

    /// Keep the member's data here instead of in a temporary directory removed on drop.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Any other `wasmraft` member flag, e.g. `--snapshot-count=100`.
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.extra_flags.push(flag.into());
        self
    }

    /// Starts the member and waits until it serves with the guest deployed.
    pub fn start(self) -> anyhow::Result<TestMember> {
        let (dir, temp) = match &self.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::tempdir().context("creating a temporary data dir")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let guest_path = dir.join("guest.component.wasm");
        std::fs::write(&guest_path, &self.wasm).with_context(|| format!("writing {}", guest_path.display()))?;
        let mut member = TestMember {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(wasmraft_runtime::limits::GUEST_THREAD_STACK_BYTES)
                .enable_all()
                .build()
                .context("starting a tokio runtime")?,
            endpoint: String::new(),
            dir,
            _temp: temp,
            builder: self,
            server: None,
        };
        member.launch()?;
        Ok(member)
    }
}

/// One running member (a single-member cluster) in this process. Stops on drop.
pub struct TestMember {
    runtime: tokio::runtime::Runtime,
    endpoint: String,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    builder: TestMemberBuilder,
    server: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

impl TestMember {
    /// A member that will run the guest component `wasm`.
    pub fn builder(wasm: impl Into<Vec<u8>>) -> TestMemberBuilder {
        TestMemberBuilder {
            wasm: wasm.into(),
            fuel: None,
            memory_bytes: None,
            stack_bytes: None,
            data_dir: None,
            extra_flags: Vec::new(),
        }
    }

    /// [`TestMember::builder`] with the defaults, started.
    pub fn start(wasm: impl Into<Vec<u8>>) -> anyhow::Result<TestMember> {
        Self::builder(wasm).start()
    }

    /// The client URL (`http://127.0.0.1:PORT`): etcdctl, etcd clients and `wasmraft propose`
    /// can talk to it too.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let client = free_port()?;
        let peer = free_port()?;
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let mut args = vec![
            "wasmraft".to_string(),
            format!("--data-dir={}", self.dir.display()),
            format!("--listen-client-urls={curl}"),
            format!("--advertise-client-urls={curl}"),
            format!("--listen-peer-urls={purl}"),
            format!("--initial-advertise-peer-urls={purl}"),
            format!("--initial-cluster=default={purl}"),
            format!("--guest={}", self.dir.join("guest.component.wasm").display()),
        ];
        if let Some(f) = self.builder.fuel {
            args.push(format!("--guest-fuel={f}"));
        }
        if let Some(m) = self.builder.memory_bytes {
            args.push(format!("--guest-memory-bytes={m}"));
        }
        if let Some(s) = self.builder.stack_bytes {
            args.push(format!("--guest-stack-bytes={s}"));
        }
        args.extend(self.builder.extra_flags.iter().cloned());
        let cfg = Flags::try_parse_from(&args).context("member flags")?.member.validate()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = self.runtime.spawn(crate::server::run_until(cfg, async move {
            let _ = stopped.await;
        }));
        self.endpoint = curl;
        self.server = Some((stop, task));
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some((_, task)) = &self.server
                && task.is_finished()
            {
                let (_, task) = self.server.take().context("the member vanished")?;
                return match self.runtime.block_on(task) {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the member stopped before it served")),
                    Ok(Err(e)) => Err(e.context("the member did not start")),
                    Err(e) => Err(anyhow::anyhow!("the member's task failed: {e}")),
                };
            }
            match self.info() {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    anyhow::bail!("the member did not serve within {START_TIMEOUT:?}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// A connection to the member. A fresh one per call keeps the methods `&self`; loopback
    /// connects are cheap.
    fn connect(&self) -> Result<Channel, tonic::Status> {
        let endpoint = tonic::transport::Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60));
        self.runtime
            .block_on(endpoint.connect())
            .map_err(|e| tonic::Status::unavailable(format!("connecting to {}: {e}", self.endpoint)))
    }

    fn generic(&self) -> Result<GenericClient<Channel>, tonic::Status> {
        Ok(GenericClient::new(self.connect()?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// Proposes `command` through the log; the guest's `apply` result.
    pub fn propose(&self, command: &[u8]) -> Result<Vec<u8>, tonic::Status> {
        let mut c = self.generic()?;
        let r = self.runtime.block_on(c.propose(ProposeRequest { command: command.to_vec() }))?;
        Ok(r.into_inner().result)
    }

    /// The guest's `query`, linearizable.
    pub fn query(&self, request: &[u8]) -> Result<Vec<u8>, tonic::Status> {
        self.query_with(request, Consistency::Linearizable)
    }

    /// The guest's `query` with the given consistency.
    pub fn query_with(&self, request: &[u8], consistency: Consistency) -> Result<Vec<u8>, tonic::Status> {
        let mut c = self.generic()?;
        let r = self
            .runtime
            .block_on(c.query(QueryRequest { request: request.to_vec(), consistency: consistency as i32 }))?;
        Ok(r.into_inner().result)
    }

    /// The active guest's name, version, APIs and hash.
    pub fn info(&self) -> Result<InfoResponse, tonic::Status> {
        let mut c = self.generic()?;
        Ok(self.runtime.block_on(c.info(InfoRequest {}))?.into_inner())
    }

    fn admin(&self) -> Result<GuestAdminClient<Channel>, tonic::Status> {
        Ok(GuestAdminClient::new(self.connect()?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// Swaps in another guest component through the log (`force`: another name, or a version
    /// that is not higher).
    pub fn deploy(&self, wasm: &[u8], force: bool) -> Result<GuestDeployment, tonic::Status> {
        let mut c = self.admin()?;
        let req = DeployRequest { module: wasm.to_vec(), force, ..Default::default() };
        let r = self.runtime.block_on(c.deploy(req))?.into_inner();
        r.deployment.ok_or_else(|| tonic::Status::internal("no deployment in the answer"))
    }

    /// Switches back to a module that was active before (sha256 prefix or version).
    pub fn rollback(&self, target: &str, force: bool) -> Result<GuestDeployment, tonic::Status> {
        let mut c = self.admin()?;
        let r = self.runtime.block_on(c.rollback(RollbackRequest { target: target.to_string(), force }))?.into_inner();
        r.deployment.ok_or_else(|| tonic::Status::internal("no deployment in the answer"))
    }

    /// The member's active deployment, applied index and a hash of the guest keyspace.
    pub fn guest_status(&self) -> Result<GuestStatusResponse, tonic::Status> {
        let mut c = self.admin()?;
        Ok(self.runtime.block_on(c.status(GuestStatusRequest { state_hash: true }))?.into_inner())
    }

    /// Stops the member (its data stays) and starts it again on the same data dir; the guest
    /// it runs is the one its state records, not necessarily the one it was built with.
    pub fn restart(mut self) -> anyhow::Result<TestMember> {
        self.stop()?;
        self.launch()?;
        Ok(self)
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            match self.runtime.block_on(task) {
                Ok(r) => r.context("the member stopped with an error")?,
                Err(e) => anyhow::bail!("the member's task failed: {e}"),
            }
        }
        Ok(())
    }
}

impl Drop for TestMember {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping the test member: {e:#}");
        }
    }
}

#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    member: MemberFlags,
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}
