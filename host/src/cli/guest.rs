//! `wasmraft guest deploy|rollback|status|list`: the client side of `wasmraft.v1.GuestAdmin`.
//!
//! Output is one line per item, fields separated by ", " like etcdctl's simple format:
//! - deploy, rollback: `<name>, <version>, <sha256>, <since index>, <fuel>, <memory bytes>,
//!   <stack bytes>`;
//! - status, one line per endpoint (every endpoint is asked, not only the first that answers):
//!   `<endpoint>, <member id>, <member name>, <guest>, <version>, <sha256>, <since index>,
//!   <fuel>, <memory bytes>, <stack bytes>, <applied index>[, <state sha256>]`, or
//!   `<endpoint>, error: <why>`;
//! - list: `<sha256>, <size>, <name>, <version>, <indexes it was deployed at, space-separated>,
//!   active|stored`.
//!
//! Exit codes are the other client subcommands': 1 when the member refused (the reason is
//! printed) or, for status, when any endpoint failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tonic::transport::Channel;
use wasmraft_proto::wasmraft::v1::{
    DeployRequest, GuestDeployment, GuestStatusRequest, ListRequest, RollbackRequest,
    guest_admin_client::GuestAdminClient,
};

use super::{
    CliError, ConnFlags, Dial, EXIT_INVALID_INPUT, EXIT_IO, EXIT_SERVER_ERROR, channel, channel_to, print, secs,
    status_error,
};

/// A deploy waits for the module to travel through the log and for the swap to apply (the
/// receiving member compiles the module first), so it gets at least this long.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Subcommand, Debug, Clone)]
pub enum GuestCommand {
    /// Deploy a guest component (FILE.wasm) to the cluster through the log. Every member switches
    /// at the same index; the new guest's `migrate` runs first, and if it fails nothing changes.
    Deploy {
        /// The component file.
        file: PathBuf,
        #[command(flatten)]
        swap: SwapFlags,
        /// Fuel per entry for the new deployment (default: the active deployment's).
        #[arg(long)]
        fuel: Option<u64>,
        /// Memory limit in bytes for the new deployment (default: the active deployment's).
        #[arg(long)]
        memory_bytes: Option<u64>,
        /// Wasm stack limit in bytes for the new deployment, where a deep recursion traps: a
        /// power of two from 65536 to 8388608 (default: the active deployment's).
        #[arg(long)]
        stack_bytes: Option<u64>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Switch back to a stored module that was active before: a sha256 (or a unique prefix of
    /// at least 8 hex digits) or a version of the active guest.
    Rollback {
        target: String,
        #[command(flatten)]
        swap: SwapFlags,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// The active guest of every endpoint's member: name, version, hash, since which index.
    Status {
        /// Also hash each member's guest keyspace (members at the same applied index agree).
        #[arg(long)]
        state_hash: bool,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// The modules stored in the cluster's state.
    List {
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Compile a guest crate (written on wasmraft-guest-sdk, crate-type "cdylib") to a Wasm
    /// component, ready for `--guest` or `guest deploy`. Installs the wasm32 target if needed.
    Build {
        /// The guest crate's directory.
        #[arg(default_value = ".")]
        crate_dir: PathBuf,
        /// Where to write the component (default: <crate>/target/<crate name>.component.wasm).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write the KV guest this binary bundles to FILE, to `guest deploy` it to a cluster whose
    /// data was written by an older one (an existing data dir keeps running the guest it
    /// stored; the new guest's `migrate` brings its keyspace over).
    Bundled {
        /// Where to write the component.
        file: PathBuf,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct SwapFlags {
    /// Allow a guest of another name, or a version that is not higher than the active one.
    #[arg(long)]
    force: bool,
}

impl GuestCommand {
    pub fn name(&self) -> &'static str {
        match self {
            GuestCommand::Deploy { .. } => "guest deploy",
            GuestCommand::Rollback { .. } => "guest rollback",
            GuestCommand::Status { .. } => "guest status",
            GuestCommand::List { .. } => "guest list",
            GuestCommand::Build { .. } => "guest build",
            GuestCommand::Bundled { .. } => "guest bundled",
        }
    }
}

async fn admin(conn: &ConnFlags, call: Duration) -> Result<GuestAdminClient<super::AuthedChannel>, CliError> {
    let (channel, _) = channel(conn, call).await?;
    client(conn, channel).await
}

/// A client of one member logged in as `--user` (every GuestAdmin call takes the root role
/// when auth is on).
async fn client(conn: &ConnFlags, channel: Channel) -> Result<GuestAdminClient<super::AuthedChannel>, CliError> {
    Ok(GuestAdminClient::new(super::authed(conn, channel).await?)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX))
}

fn deployment_line(d: Option<GuestDeployment>) -> Result<String, CliError> {
    let d = d.ok_or_else(|| CliError::new(EXIT_SERVER_ERROR, "the member answered without a deployment"))?;
    Ok(format!("{}, {}, {}, {}, {}\n", d.name, d.version, hex::encode(&d.sha256), d.since_index, limits_fields(&d)))
}

/// `<fuel>, <memory bytes>, <stack bytes>` of a deployment (a record from before the stack
/// limit was recorded ran, and runs, with the default).
fn limits_fields(d: &GuestDeployment) -> String {
    let limits = wasmraft_runtime::deployment::limits_of(d);
    format!("{}, {}, {}", limits.fuel_per_entry, limits.memory_bytes, limits.stack_bytes)
}

pub async fn run(cmd: GuestCommand) -> Result<(), CliError> {
    match cmd {
        GuestCommand::Deploy { file, swap, fuel, memory_bytes, stack_bytes, conn } => {
            let module = std::fs::read(&file)
                .map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("reading {}: {e}", file.display())))?;
            let call = secs(conn.command_timeout, "command-timeout")?.max(DEPLOY_TIMEOUT);
            let request = DeployRequest {
                module,
                force: swap.force,
                fuel_per_entry: fuel.unwrap_or(0),
                memory_bytes: memory_bytes.unwrap_or(0),
                stack_bytes: stack_bytes.unwrap_or(0),
            };
            let resp = admin(&conn, call).await?.deploy(request).await.map_err(status_error)?;
            print(&deployment_line(resp.into_inner().deployment)?)
        }
        GuestCommand::Rollback { target, swap, conn } => {
            let call = secs(conn.command_timeout, "command-timeout")?.max(DEPLOY_TIMEOUT);
            let request = RollbackRequest { target, force: swap.force };
            let resp = admin(&conn, call).await?.rollback(request).await.map_err(status_error)?;
            print(&deployment_line(resp.into_inner().deployment)?)
        }
        GuestCommand::Build { crate_dir, output } => build(&crate_dir, output),
        GuestCommand::Bundled { file } => {
            std::fs::write(&file, crate::server::BUNDLED_KV_GUEST)
                .map_err(|e| CliError::new(EXIT_IO, format!("writing {}: {e}", file.display())))?;
            print(&format!(
                "{}: the bundled KV guest, sha256 {}\n",
                file.display(),
                hex::encode(crate::server::bundled_guest_hash())
            ))
        }
        GuestCommand::Status { state_hash, conn } => {
            let dial = Dial::new(&conn, secs(conn.command_timeout, "command-timeout")?)?;
            let mut out = String::new();
            let mut failed = false;
            for ep in &conn.endpoints {
                match member_status(ep, &dial, &conn, state_hash).await {
                    Ok(line) => out.push_str(&line),
                    Err(e) => {
                        failed = true;
                        out.push_str(&format!("{ep}, error: {e}\n"));
                    }
                }
            }
            print(&out)?;
            if failed {
                return Err(CliError::new(EXIT_SERVER_ERROR, "some endpoints did not answer"));
            }
            Ok(())
        }
        GuestCommand::List { conn } => {
            let call = secs(conn.command_timeout, "command-timeout")?;
            let resp = admin(&conn, call).await?.list(ListRequest {}).await.map_err(status_error)?;
            let mut out = String::new();
            for m in resp.into_inner().modules {
                let at: Vec<String> = m.deployed_at.iter().map(u64::to_string).collect();
                out.push_str(&format!(
                    "{}, {}, {}, {}, {}, {}\n",
                    hex::encode(&m.sha256),
                    m.size,
                    m.name,
                    m.version,
                    at.join(" "),
                    if m.active { "active" } else { "stored" }
                ));
            }
            print(&out)
        }
    }
}

async fn member_status(ep: &str, dial: &Dial, conn: &ConnFlags, state_hash: bool) -> Result<String, String> {
    let (channel, url) = channel_to(ep, dial).await?;
    let s = client(conn, channel)
        .await
        .map_err(|e| e.message)?
        .status(GuestStatusRequest { state_hash })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let (name, version, hash, since, limits) = match &s.active {
        Some(d) => {
            (d.name.as_str(), d.version.as_str(), hex::encode(&d.sha256), d.since_index.to_string(), limits_fields(d))
        }
        None => ("-", "-", "-".to_string(), "-".to_string(), "-, -, -".to_string()),
    };
    let mut line = format!(
        "{url}, {:x}, {}, {name}, {version}, {hash}, {since}, {limits}, {}",
        s.member_id, s.member_name, s.applied_index
    );
    if state_hash {
        line.push_str(&format!(", {}", s.state_sha256));
    }
    line.push('\n');
    Ok(line)
}

/// `guest build`: the SDK's component builder, outside a build script.
fn build(crate_dir: &std::path::Path, output: Option<PathBuf>) -> Result<(), CliError> {
    let fail = |e: anyhow::Error| CliError::new(EXIT_SERVER_ERROR, format!("{e:#}"));
    let crate_dir = crate_dir
        .canonicalize()
        .map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("{}: {e}", crate_dir.display())))?;
    let name = wasmraft_guest_sdk::builder::package_name(&crate_dir.join("Cargo.toml"))
        .map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("{e:#}")))?;
    let target_dir = crate_dir.join("target");
    let out = output.unwrap_or_else(|| target_dir.join(format!("{name}.component.wasm")));
    wasmraft_guest_sdk::builder::build_component_to(&crate_dir, &target_dir, &out).map_err(fail)?;
    print(&format!("{}\n", out.display()))
}
