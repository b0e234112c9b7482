//! Guest deployment in a test cluster: deploy, roll back, and see which guest each member runs.
//!
//! Everything goes through the `wasmraft guest …` subcommands (the client of
//! `wasmraft.v1.GuestAdmin`), whose one-line-per-item output is parsed here into
//! [`Deployment`], [`GuestStatus`] and [`StoredModule`]. The [`Cluster`] methods in this module:
//!
//! - [`Cluster::deploy`] / [`Cluster::deploy_with`]: `wasmraft guest deploy FILE.wasm`;
//! - [`Cluster::rollback`]: `wasmraft guest rollback HASH|VERSION`;
//! - [`Cluster::guest_status`] (and [`Cluster::guest_status_with_state_hash`]): per running
//!   member, its active guest, since which index, its applied index (and its state hash);
//! - [`Cluster::guest_list`]: the modules stored in the cluster;
//! - [`Cluster::wait_guest`]: until every running member runs a given guest;
//! - [`Cluster::wait_same_state`]: until every running member has applied the same index, then
//!   their state hashes must agree.
//!
//! Each member also logs every switch (`wasmraft: switched to guest …`):
//! [`crate::Member::guest_switches`] parses those lines.
//!
//! Refusals are `Err(String)` carrying the CLI's exit code and stderr (for a refused swap:
//! `FailedPrecondition: wasmraft: …` with the reason), so a test can check the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::WasmraftCli;
use crate::cluster::Cluster;

/// A deployment as `guest deploy` / `guest rollback` print it: `<name>, <version>, <sha256>,
/// <since index>, <fuel>, <memory bytes>, <stack bytes>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    pub version: String,
    /// Lower-case hex.
    pub sha256: String,
    /// The index of the swap entry.
    pub since_index: u64,
    pub fuel_per_entry: u64,
    pub memory_bytes: u64,
    pub stack_bytes: u64,
}

impl Deployment {
    pub fn parse(line: &str) -> Result<Deployment, String> {
        let f: Vec<&str> = line.trim().split(", ").collect();
        let [name, version, sha256, since, fuel, memory, stack] = f.as_slice() else {
            return Err(format!("a deployment line has 7 fields: {line:?}"));
        };
        Ok(Deployment {
            name: name.to_string(),
            version: version.to_string(),
            sha256: sha256.to_string(),
            since_index: number(since, line)?,
            fuel_per_entry: number(fuel, line)?,
            memory_bytes: number(memory, line)?,
            stack_bytes: number(stack, line)?,
        })
    }
}

/// One member's answer to `guest status`: `<endpoint>, <member id hex>, <member name>, <guest>,
/// <version>, <sha256>, <since index>, <fuel>, <memory bytes>, <stack bytes>, <applied
/// index>[, <state sha256>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestStatus {
    pub endpoint: String,
    /// Index of the member in its [`Cluster`], `usize::MAX` if the endpoint is not one of its
    /// members (only when parsed on its own).
    pub member: usize,
    pub member_id: u64,
    pub member_name: String,
    /// The active guest's name, version and hash (`-` while no guest is deployed).
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The index of the swap entry that made it active (0 while no guest is deployed).
    pub since_index: u64,
    /// The deployment's fuel, memory and stack limits (0 while no guest is deployed).
    pub fuel_per_entry: u64,
    pub memory_bytes: u64,
    pub stack_bytes: u64,
    pub applied_index: u64,
    /// Sha256 of the guest keyspace at `applied_index`, if asked for.
    pub state_hash: Option<String>,
}

impl GuestStatus {
    pub fn parse(line: &str) -> Result<GuestStatus, String> {
        let f: Vec<&str> = line.trim().split(", ").collect();
        if f.len() == 2 && f[1].starts_with("error: ") {
            return Err(format!("guest status of {}: {}", f[0], &f[1]["error: ".len()..]));
        }
        if f.len() != 11 && f.len() != 12 {
            return Err(format!("a guest status line has 11 or 12 fields: {line:?}"));
        }
        let or_zero = |s: &str| if s == "-" { Ok(0) } else { number(s, line) };
        Ok(GuestStatus {
            endpoint: f[0].to_string(),
            member: usize::MAX,
            member_id: u64::from_str_radix(f[1], 16).map_err(|e| format!("member id {:?} in {line:?}: {e}", f[1]))?,
            member_name: f[2].to_string(),
            name: f[3].to_string(),
            version: f[4].to_string(),
            sha256: f[5].to_string(),
            since_index: or_zero(f[6])?,
            fuel_per_entry: or_zero(f[7])?,
            memory_bytes: or_zero(f[8])?,
            stack_bytes: or_zero(f[9])?,
            applied_index: number(f[10], line)?,
            state_hash: f.get(11).map(|s| s.to_string()),
        })
    }

    /// `name version` of the active guest, for messages.
    pub fn guest(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// One module of `guest list`: `<sha256>, <size>, <name>, <version>, <indexes it was deployed
/// at, space-separated>, active|stored`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredModule {
    pub sha256: String,
    pub size: u64,
    /// From the last time it was active; empty if it never was.
    pub name: String,
    pub version: String,
    pub deployed_at: Vec<u64>,
    pub active: bool,
}

impl StoredModule {
    pub fn parse(line: &str) -> Result<StoredModule, String> {
        let f: Vec<&str> = line.trim().split(", ").collect();
        let [sha256, size, name, version, at, state] = f.as_slice() else {
            return Err(format!("a stored module line has 6 fields: {line:?}"));
        };
        Ok(StoredModule {
            sha256: sha256.to_string(),
            size: number(size, line)?,
            name: name.to_string(),
            version: version.to_string(),
            deployed_at: at.split_whitespace().map(|n| number(n, line)).collect::<Result<_, _>>()?,
            active: match *state {
                "active" => true,
                "stored" => false,
                other => return Err(format!("module state {other:?} in {line:?}")),
            },
        })
    }
}

fn number(s: &str, line: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|e| format!("{s:?} in {line:?}: {e}"))
}

/// Options of [`Cluster::deploy_with`]; `DeployOptions::default()` is a plain deploy through
/// any running member.
#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    /// `--force`: another guest name, or a version that is not higher.
    pub force: bool,
    /// `--fuel N` for the new deployment (default: keep the active one's).
    pub fuel: Option<u64>,
    /// `--memory-bytes N` (default: keep the active one's).
    pub memory_bytes: Option<u64>,
    /// `--stack-bytes N` (default: keep the active one's).
    pub stack_bytes: Option<u64>,
    /// Send the request to this member (default: the running members, first that answers).
    pub via: Option<usize>,
}

impl DeployOptions {
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }
    pub fn stack_bytes(mut self, bytes: u64) -> Self {
        self.stack_bytes = Some(bytes);
        self
    }
    pub fn via(mut self, member: usize) -> Self {
        self.via = Some(member);
        self
    }
}

impl Cluster {
    /// `wasmraft` client subcommands bound to member `i`.
    pub fn cli(&self, i: usize) -> WasmraftCli {
        WasmraftCli::new(self.endpoint(i))
    }

    /// `wasmraft` client subcommands bound to every running member (the CLI uses the first that
    /// accepts a connection).
    pub fn cli_running(&mut self) -> WasmraftCli {
        WasmraftCli::new(self.running_endpoints().join(","))
    }

    /// `wasmraft guest deploy FILE [--force]` through the running members; answers once the swap
    /// entry has applied on the member that took the request. `Err` carries the refusal (exit
    /// code and stderr), e.g. `FailedPrecondition: wasmraft: the new guest's migrate refused the
    /// swap: …`.
    pub fn deploy(&mut self, module: impl AsRef<Path>, force: bool) -> Result<Deployment, String> {
        self.deploy_with(module, &DeployOptions { force, ..Default::default() })
    }

    /// `wasmraft guest deploy` with [`DeployOptions`].
    pub fn deploy_with(&mut self, module: impl AsRef<Path>, opts: &DeployOptions) -> Result<Deployment, String> {
        let module: PathBuf = module.as_ref().to_path_buf();
        let path = module.to_str().ok_or_else(|| format!("module path {} is not UTF-8", module.display()))?;
        let mut args = vec!["guest".to_string(), "deploy".into(), path.to_string()];
        if opts.force {
            args.push("--force".into());
        }
        if let Some(fuel) = opts.fuel {
            args.push(format!("--fuel={fuel}"));
        }
        if let Some(bytes) = opts.memory_bytes {
            args.push(format!("--memory-bytes={bytes}"));
        }
        if let Some(bytes) = opts.stack_bytes {
            args.push(format!("--stack-bytes={bytes}"));
        }
        let cli = match opts.via {
            Some(i) => self.cli(i),
            None => self.cli_running(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Deployment::parse(&cli.ok(&args)?)
    }

    /// `wasmraft guest rollback TARGET` (a sha256, a unique prefix of at least 8 hex digits, or
    /// a version of the active guest's name that was active before) through the running members.
    pub fn rollback(&mut self, target: &str) -> Result<Deployment, String> {
        Deployment::parse(&self.cli_running().ok(&["guest", "rollback", target])?)
    }

    /// `wasmraft guest rollback TARGET --force`: also to a module of another guest name.
    pub fn rollback_forced(&mut self, target: &str) -> Result<Deployment, String> {
        Deployment::parse(&self.cli_running().ok(&["guest", "rollback", target, "--force"])?)
    }

    /// `wasmraft guest status` of every running member, in member order. `Err` if any running
    /// member did not answer.
    pub fn guest_status(&mut self) -> Result<Vec<GuestStatus>, String> {
        self.guest_status_of(false)
    }

    /// [`Cluster::guest_status`] with `--state-hash`: each member also hashes its guest keyspace
    /// at its applied index (members at the same applied index must agree).
    pub fn guest_status_with_state_hash(&mut self) -> Result<Vec<GuestStatus>, String> {
        self.guest_status_of(true)
    }

    fn guest_status_of(&mut self, state_hash: bool) -> Result<Vec<GuestStatus>, String> {
        let running = self.running();
        if running.is_empty() {
            return Err("no member is running".into());
        }
        let endpoints: Vec<String> = running.iter().map(|&i| self.endpoint(i)).collect();
        let mut args = vec!["guest", "status"];
        if state_hash {
            args.push("--state-hash");
        }
        let out = WasmraftCli::new(endpoints.join(",")).run(&args)?;
        let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != running.len() {
            return Err(format!("guest status of {} members: {}", running.len(), out.render()));
        }
        running
            .iter()
            .zip(lines)
            .map(|(&i, line)| {
                let mut st = GuestStatus::parse(line)?;
                if st.endpoint != self.endpoint(i) {
                    return Err(format!("guest status line for member {i} is about {}: {line:?}", st.endpoint));
                }
                st.member = i;
                Ok(st)
            })
            .collect()
    }

    /// `wasmraft guest list`: the modules stored in the cluster's state.
    pub fn guest_list(&mut self) -> Result<Vec<StoredModule>, String> {
        let out = self.cli_running().ok(&["guest", "list"])?;
        out.lines().filter(|l| !l.trim().is_empty()).map(StoredModule::parse).collect()
    }

    /// Polls [`Cluster::guest_status`] until every running member runs guest `name` `version`
    /// with the same since-index (a member that is behind still runs the previous guest);
    /// returns the statuses, or the last ones seen after `timeout`.
    pub fn wait_guest(&mut self, name: &str, version: &str, timeout: Duration) -> Result<Vec<GuestStatus>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.guest_status() {
                Ok(st) => {
                    let agree =
                        st.iter().all(|s| s.name == name && s.version == version && s.since_index == st[0].since_index);
                    if agree {
                        return Ok(st);
                    }
                    format!("{st:#?}")
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!("not every running member runs {name} {version} after {timeout:?}; last: {last}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls [`Cluster::guest_status_with_state_hash`] until every running member reports the
    /// same applied index, then checks that they agree on the active guest, its since-index and
    /// the state hash: members that applied the same log must have the same state. `Err` on
    /// disagreement (the statuses show where), or after `timeout` if the applied indexes never
    /// met (someone keeps writing, or a member is stuck).
    pub fn wait_same_state(&mut self, timeout: Duration) -> Result<Vec<GuestStatus>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.guest_status_with_state_hash() {
                Ok(st) if st.iter().all(|s| s.applied_index == st[0].applied_index) => {
                    let first = &st[0];
                    let agree = st.iter().all(|s| {
                        (&s.name, &s.version, &s.sha256, s.since_index, &s.state_hash)
                            == (&first.name, &first.version, &first.sha256, first.since_index, &first.state_hash)
                    });
                    return if agree && first.state_hash.is_some() {
                        Ok(st)
                    } else {
                        Err(format!("members at applied index {} disagree: {st:#?}", first.applied_index))
                    };
                }
                Ok(st) => format!("{st:#?}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "running members did not reach the same applied index within {timeout:?}; last: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "e3ee767753a051f6d4b4b17042bd64532200ac261849b2bdfb4aa1981227a856";

    #[test]
    fn parses_the_guest_subcommands_output() {
        let d = Deployment::parse(&format!("etcd-kv, 0.2.0, {HASH}, 14, 10000000000, 268435456, 524288\n")).unwrap();
        assert_eq!(
            (d.name.as_str(), d.version.as_str(), d.since_index, d.memory_bytes),
            ("etcd-kv", "0.2.0", 14, 268435456)
        );
        assert_eq!(d.sha256, HASH);

        let line = format!(
            "http://127.0.0.1:32370, 628170c800dbcee, m0, etcd-kv, 0.1.0, {HASH}, 8, 1000, 65536, 131072, 10, abc"
        );
        let s = GuestStatus::parse(&line).unwrap();
        assert_eq!(s.member_id, 0x628170c800dbcee);
        assert_eq!(
            (s.member_name.as_str(), s.guest(), s.since_index, s.applied_index),
            ("m0", "etcd-kv 0.1.0".into(), 8, 10)
        );
        assert_eq!(s.state_hash.as_deref(), Some("abc"));
        assert_eq!((s.fuel_per_entry, s.memory_bytes, s.stack_bytes), (1000, 65536, 131072));
        let s = GuestStatus::parse("http://127.0.0.1:1, 1f, m1, -, -, -, -, -, -, -, 3").unwrap();
        assert_eq!((s.since_index, s.stack_bytes, s.state_hash), (0, 0, None));
        let err = GuestStatus::parse("http://127.0.0.1:1, error: Unavailable: connection refused").unwrap_err();
        assert!(err.contains("connection refused"), "{err}");

        let m = StoredModule::parse(&format!("{HASH}, 187486, etcd-kv, 0.1.0, 8 15, active")).unwrap();
        assert_eq!((m.size, m.deployed_at.clone(), m.active), (187486, vec![8, 15], true));
        let m = StoredModule::parse(&format!("{HASH}, 189108, , , , stored")).unwrap();
        assert!(m.name.is_empty() && m.deployed_at.is_empty() && !m.active);
        assert!(Deployment::parse("nope").is_err());
    }
}
