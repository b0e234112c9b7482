//! Where a member's settings come from, in etcd's order (etcdmain/config.go `parse`): the
//! command line is parsed first (an unknown flag or a bad value stops there); `--version` prints
//! and exits; a config file (`--config-file`, else `ETCD_CONFIG_FILE`) then replaces every other
//! flag and the environment, and says so in the log; without one, `ETCD_*` variables fill in the
//! flags the command line did not give ([`super::env`]).
//!
//! What a start should tell the operator before logging is set up (logging itself depends on
//! the outcome) is collected as [`Note`]s, logged by the caller once the logger exists.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::env::{self, Binding};
use super::file::{self, FileValue};
use super::{Config, MemberFlags, go_flag, no_effect};

/// Something to log at start, once the logger is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: tracing::Level,
    pub text: String,
}

impl Note {
    pub fn info(text: String) -> Note {
        Note { level: tracing::Level::INFO, text }
    }

    pub fn warn(text: String) -> Note {
        Note { level: tracing::Level::WARN, text }
    }

    pub fn log(&self) {
        match self.level {
            tracing::Level::WARN => tracing::warn!("{}", self.text),
            tracing::Level::ERROR => tracing::error!("{}", self.text),
            _ => tracing::info!("{}", self.text),
        }
    }
}

/// What `wasmraft` without a subcommand was asked to do.
#[derive(Debug)]
pub enum Invocation {
    /// `--version`.
    Version,
    /// `--wasmraft-print-flags`: the resolved flags as JSON, to print instead of starting, and
    /// what a start would have logged about them.
    PrintFlags { json: String, notes: Vec<Note> },
    /// Start a member.
    Run { config: Box<Config>, notes: Vec<Note> },
}

/// Why loading stopped.
#[derive(Debug)]
pub enum LoadError {
    /// The command line itself (unknown flag, bad value, `--help`): clap's message and exit code.
    Usage(clap::Error),
    /// The settings are invalid (etcd's "error verifying flags").
    Invalid(anyhow::Error),
}

impl From<clap::Error> for LoadError {
    fn from(e: clap::Error) -> Self {
        LoadError::Usage(e)
    }
}

impl From<anyhow::Error> for LoadError {
    fn from(e: anyhow::Error) -> Self {
        LoadError::Invalid(e)
    }
}

/// wasmraft's flag that prints the resolved flags (hidden; for tests and for operators checking
/// what a config file or environment amounts to).
pub const PRINT_FLAGS: &str = "wasmraft-print-flags";

/// Flags etcd 3.4 accepts and ignores with a warning (etcdmain/config.go `ignored`): etcd 2's.
pub const IGNORED: &[&str] = &[
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
];

/// Whether `long` is one of [`member_command`]'s arguments that are not member settings.
pub fn is_extra(long: &str) -> bool {
    long == PRINT_FLAGS || IGNORED.contains(&long)
}

/// The member's flags as one command: [`MemberFlags`], the flag that prints them and etcd's
/// ignored flags; repeated flags override (Go's flag package: the last one counts); without
/// clap's own environment handling ([`super::env`] applies the variables as etcd does).
pub fn member_command() -> Command {
    strip_env(with_extras(MemberFlags::augment_args(Command::new("wasmraft"))))
}

/// `cmd` (the member's flags, possibly inside a larger command) with wasmraft's extras.
pub fn with_extras(cmd: Command) -> Command {
    let mut cmd = cmd.args_override_self(true).arg(
        Arg::new(PRINT_FLAGS)
            .long(PRINT_FLAGS)
            .hide(true)
            .action(ArgAction::SetTrue)
            .help("Print every flag's resolved value as JSON and exit, without starting a member."),
    );
    for name in IGNORED {
        cmd = cmd.arg(
            Arg::new(*name)
                .long(*name)
                .hide(true)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .action(ArgAction::Set),
        );
    }
    cmd
}

/// `cmd` without clap's reading of environment variables.
pub fn strip_env(cmd: Command) -> Command {
    cmd.mut_args(|a| a.env(None))
}

/// Every flag's variable, read from the flag definitions.
fn bindings() -> Vec<Binding> {
    MemberFlags::augment_args(Command::new("wasmraft"))
        .get_arguments()
        .filter_map(|a| {
            Some(Binding {
                id: a.get_id().to_string(),
                long: a.get_long()?.to_string(),
                var: a.get_env()?.to_str()?.to_string(),
            })
        })
        .collect()
}

/// The long names of the member's flags, for Go's single-dash form.
pub fn long_names() -> HashSet<String> {
    member_command().get_arguments().filter_map(|a| a.get_long()).map(String::from).collect()
}

/// Loads a member's settings from `args` (the program name first) and `env` (the process
/// environment, as `std::env::vars_os`).
pub fn load(args: Vec<OsString>, env: &[(OsString, OsString)]) -> Result<Invocation, LoadError> {
    let cmd = member_command();
    let args = go_flag::normalize_single_dash(args, &long_names());
    let cmdline = cmd.clone().try_get_matches_from(&args)?;
    if cmdline.get_one::<bool>("version").copied().unwrap_or(false) {
        return Ok(Invocation::Version);
    }
    let config_file =
        cmdline.get_one::<PathBuf>("config_file").filter(|p| !p.as_os_str().is_empty()).cloned().or_else(|| {
            env.iter().find(|(k, v)| k == "ETCD_CONFIG_FILE" && !v.is_empty()).map(|(_, v)| PathBuf::from(v))
        });
    let mut notes = Vec::new();
    let (matches, source) = match &config_file {
        Some(path) => {
            notes.push(Note::info(format!(
                "etcdmain: Loading server configuration from {:?}. Other configuration command line flags and environment variables will be ignored if provided.",
                path.display().to_string()
            )));
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if cmdline.value_source(id) == Some(ValueSource::CommandLine)
                    && !matches!(id, "config_file" | PRINT_FLAGS)
                    && let Some(long) = arg.get_long()
                {
                    notes.push(Note::warn(format!("etcdmain: ignoring --{long}: a configuration file is given")));
                }
            }
            let (values, file_notes) = file::read(path, &cmd)?;
            notes.extend(file_notes);
            let matches = from_file(&cmd, path, &values)?;
            (matches, Source::File(values))
        }
        None => {
            let applied = env::apply(&cmd, &bindings(), &cmdline, env)?;
            notes.extend(applied.notes);
            let mut all = args.clone();
            all.extend(applied.args);
            (cmd.clone().try_get_matches_from(&all)?, Source::CommandLine(applied.ids))
        }
    };
    let flags = MemberFlags::from_arg_matches(&matches)?;
    notes.extend(startup_notes(&flags, &matches));
    let config = match flags.validate() {
        Ok(config) => config,
        Err(e) => {
            return Err(LoadError::Invalid(match (&source, &config_file) {
                (Source::File(values), Some(path)) => locate(e, values, path),
                _ => e,
            }));
        }
    };
    if matches.get_flag(PRINT_FLAGS) || cmdline.get_flag(PRINT_FLAGS) {
        return Ok(Invocation::PrintFlags { json: super::dump::json(&cmd, &matches, &source, &config), notes });
    }
    Ok(Invocation::Run { config: Box::new(config), notes })
}

/// Where the parsed values came from, for the dump.
pub enum Source {
    CommandLine(HashSet<String>),
    File(Vec<FileValue>),
}

/// The file's values through the same parser as the command line, each checked alone first so
/// an error names its key and line.
fn from_file(cmd: &Command, path: &std::path::Path, values: &[FileValue]) -> Result<ArgMatches, LoadError> {
    for v in values {
        if let Err(e) = cmd.clone().try_get_matches_from(["wasmraft".to_string(), v.arg()]) {
            return Err(anyhow!("{}: line {}: {}: {}", path.display(), v.line, v.key, clap_reason(&e)).into());
        }
    }
    let args = std::iter::once("wasmraft".to_string()).chain(values.iter().map(FileValue::arg));
    Ok(cmd.clone().try_get_matches_from(args)?)
}

/// An error of the shared checks that names a flag set by the file, with that key's line.
fn locate(e: anyhow::Error, values: &[FileValue], path: &std::path::Path) -> anyhow::Error {
    let text = format!("{e:#}");
    match file::locate(values, &text) {
        Some(v) => anyhow!("{text} ({}: line {}: {})", path.display(), v.line, v.key),
        None => e,
    }
}

/// Warnings etcd prints at start for the settings given: flags it ignores, deprecated flags,
/// flags without effect.
fn startup_notes(flags: &MemberFlags, matches: &ArgMatches) -> Vec<Note> {
    let mut notes = Vec::new();
    for name in IGNORED {
        if matches.value_source(name) == Some(ValueSource::CommandLine) {
            notes.push(Note::warn(format!("pkg/flags: flag \"-{name}\" is no longer supported - ignoring.")));
        }
    }
    if flags.debug {
        // etcd's texts, its unbalanced parenthesis included.
        notes.push(Note::warn("Deprecated '--debug' flag is set to true (use '--log-level=debug' instead".into()));
        if let Some(level) = clap::ValueEnum::to_possible_value(&flags.log_level).filter(|l| l.get_name() != "debug") {
            notes.push(Note::warn(format!(
                "Deprecated '--debug' flag is set to true with inconsistent '--log-level={}' flag",
                level.get_name()
            )));
        }
    }
    if flags.log_output != "default" {
        notes.push(Note::warn("embed: '--log-output' flag has been deprecated! Please use '--log-outputs'!".into()));
    }
    if flags.metrics != "basic" && flags.metrics != "extensive" {
        notes.push(Note::warn(format!(
            "etcdmain: --metrics={:?} is neither 'basic' nor 'extensive': basic metrics, as etcd does",
            flags.metrics
        )));
    }
    notes.extend(no_effect::notes(flags));
    notes
}

/// The first line of a clap error, without its `error: ` prefix.
pub fn clap_reason(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}
