//! `ETCD_*` environment variables as etcd's `pkg/flags.SetFlagsFromEnv` applies them: each flag
//! not given on the command line takes its variable's value when that is not empty ("recognized
//! and used environment variable"); a variable for a flag that *was* given stops the member
//! ("conflicting environment variable ... is shadowed by corresponding command-line flag"); any
//! other `ETCD_*` variable gets a warning ("unrecognized environment variable"). wasmraft's own
//! flags read `WASMRAFT_*` variables the same way, without the unrecognized-variable warning
//! (other tools use that prefix too).
//!
//! Not used with a config file: etcd ignores the environment then.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};

use anyhow::bail;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use super::load::{Note, clap_reason};

/// One flag's variable.
#[derive(Debug, Clone)]
pub struct Binding {
    pub id: String,
    pub long: String,
    pub var: String,
}

/// What the environment adds to a command line.
#[derive(Debug, Default)]
pub struct Applied {
    /// `--flag=value` for each variable used, in the order of the flags.
    pub args: Vec<OsString>,
    /// The ids of the flags set from the environment.
    pub ids: HashSet<String>,
    pub notes: Vec<Note>,
}

/// Variables etcd knows that name no flag wasmraft reads from the environment (`--version` is
/// a flag of etcd's set, so its variable is "used" without effect).
const ALSO_KNOWN: &[&str] = &["ETCD_VERSION"];

/// Applies `env` to the flags `bindings` describes, given what the command line set
/// (`cmdline`, parsed by `cmd` without the environment).
pub fn apply(
    cmd: &Command,
    bindings: &[Binding],
    cmdline: &ArgMatches,
    env: &[(OsString, OsString)],
) -> anyhow::Result<Applied> {
    let vars: HashMap<&OsStr, &OsStr> = env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())).collect();
    let mut out = Applied::default();
    let mut used: HashSet<&str> = HashSet::new();
    let mut shadowed: HashSet<&str> = HashSet::new();
    for b in bindings {
        if cmdline.value_source(&b.id) == Some(ValueSource::CommandLine) {
            shadowed.insert(&b.var);
            continue;
        }
        let Some(value) = vars.get(OsStr::new(&b.var)) else { continue };
        if value.is_empty() {
            continue;
        }
        let Some(value) = value.to_str() else {
            bail!("invalid value {value:?} for {}: not UTF-8", b.var);
        };
        let arg = format!("--{}={value}", b.long);
        if let Err(e) = cmd.clone().try_get_matches_from(["wasmraft", arg.as_str()]) {
            bail!("invalid value {value:?} for {}: {}", b.var, clap_reason(&e));
        }
        used.insert(&b.var);
        out.ids.insert(b.id.clone());
        out.args.push(arg.into());
        out.notes.push(Note::info(format!("pkg/flags: recognized and used environment variable {}={value}", b.var)));
    }
    for (key, value) in env {
        let key = key.to_string_lossy();
        if used.contains(key.as_ref()) {
            continue;
        }
        if shadowed.contains(key.as_ref()) {
            bail!(
                "conflicting environment variable {key:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            );
        }
        let known = bindings.iter().any(|b| b.var == key) || ALSO_KNOWN.contains(&key.as_ref());
        if key.starts_with("ETCD_") && !known {
            out.notes.push(Note::warn(format!(
                "pkg/flags: unrecognized environment variable {key}={}",
                value.to_string_lossy()
            )));
        }
    }
    Ok(out)
}
