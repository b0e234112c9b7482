//! The `wasmraft` binary's client subcommands (`propose`, `query`, `info`, `guest …`), run as a
//! process against a cluster, the way an operator or a guest author's script would run them.
//!
//! [`WasmraftCli`] is bound to one or more endpoints (`--endpoints`, comma-separated; the CLI
//! uses the first that accepts a connection, except `guest status`, which asks every one). Runs
//! return a [`CmdOutput`] (exit code, stdout, stderr); [`WasmraftCli::ok`] turns a non-zero exit
//! into an `Err` carrying the whole output, so a test can `expect` success or look into a
//! refusal's text.

use std::process::Command;
use std::time::Duration;

use crate::binaries::wasmraft_bin;
use crate::etcdctl::{CmdOutput, run_captured};

/// A hard limit per invocation: the CLI has its own dial and command timeouts (a deploy waits up
/// to 60 s for the swap to apply); this only guards a test against a wedged process.
pub const CLI_HARD_TIMEOUT: Duration = Duration::from_secs(120);

/// `wasmraft <subcommand> --endpoints=<endpoints> …`.
#[derive(Clone, Debug)]
pub struct WasmraftCli {
    endpoints: String,
}

impl WasmraftCli {
    /// Bound to `endpoints`: one client URL, or several comma-separated.
    pub fn new(endpoints: impl Into<String>) -> Self {
        WasmraftCli { endpoints: endpoints.into() }
    }

    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Runs `wasmraft <args…> --endpoints=<endpoints>` (the flag goes last, after the
    /// subcommand, where clap expects it). The environment is cleared so a developer's
    /// `ETCD_*` variables cannot change what runs. `Err` only if the process could not be run
    /// or hung; a refusal is an `Ok` with a non-zero code.
    pub fn run(&self, args: &[&str]) -> Result<CmdOutput, String> {
        let mut cmd = Command::new(wasmraft_bin());
        cmd.env_clear().args(args).arg(format!("--endpoints={}", self.endpoints));
        run_captured(cmd, None, CLI_HARD_TIMEOUT).map_err(|e| format!("wasmraft {}: {e}", args.join(" ")))
    }

    /// Like [`WasmraftCli::run`], but a non-zero exit is an `Err` with the command and its whole
    /// output; `Ok` is stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.run(args)?;
        if out.success() {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(format!("wasmraft {} --endpoints={} failed: {}", args.join(" "), self.endpoints, out.render()))
        }
    }

    /// `wasmraft propose DATA`: a command through the log to the active guest (the generic
    /// API); its answer as text.
    pub fn propose(&self, data: &str) -> Result<String, String> {
        self.ok(&["propose", data])
    }

    /// `wasmraft query DATA`: a linearizable read-only request to the active guest.
    pub fn query(&self, data: &str) -> Result<String, String> {
        self.ok(&["query", data])
    }

    /// `wasmraft query --consistency=s DATA`: answered from the member's local state.
    pub fn query_serializable(&self, data: &str) -> Result<String, String> {
        self.ok(&["query", "--consistency=s", data])
    }
}
