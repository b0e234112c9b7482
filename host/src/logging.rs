//! Logging through `tracing`, in the two shapes etcd 3.4 offers: `--logger capnslog` (text lines)
//! and `--logger zap` (JSON lines). raft-rs logs with `slog`; the node forwards its records into
//! `tracing` (`node::raft_logger`) so there is one stream with one filter.
//!
//! `--log-outputs` follows etcd's `setupLogging`: with capnslog exactly one of `default`,
//! `stderr` or `stdout`; with zap any set of `stderr`, `stdout` and file paths (each line goes to
//! every one; a file is appended to, created if missing), `default` (stderr) only alone, and
//! `/dev/null` anywhere discarding everything. etcd's `journal` (zap's systemd journald output)
//! is refused with a clear error: run under systemd with `stderr`, which the journal captures.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogLevel, Logger};

/// Where log lines go.
#[derive(Debug, Clone)]
pub enum Output {
    Stderr,
    Stdout,
    File(Arc<File>),
}

/// The checked `--log-outputs` (deduplicated and sorted, as etcd's flag keeps them).
#[derive(Debug, Clone)]
pub struct LogOutputs {
    outputs: Vec<Output>,
}

impl LogOutputs {
    /// Checks `--log-outputs` against the logger as etcd does (its error texts) and opens the
    /// files.
    pub fn parse(logger: Logger, value: &str) -> anyhow::Result<LogOutputs> {
        let mut names: Vec<&str> = value.split(',').collect();
        names.sort_unstable();
        names.dedup();
        match logger {
            Logger::Capnslog => {
                if names.len() != 1 {
                    anyhow::bail!(
                        "--logger=capnslog supports only 1 value in '--log-outputs', got {}",
                        go_quoted(&names)
                    );
                }
                let output = match names[0] {
                    "default" | "stderr" => Output::Stderr,
                    "stdout" => Output::Stdout,
                    other => anyhow::bail!(
                        "unknown log-output {other:?} (only supports \"default\", \"stderr\", \"stdout\")"
                    ),
                };
                Ok(LogOutputs { outputs: vec![output] })
            }
            Logger::Zap => {
                if names.len() > 1 && names.contains(&"default") {
                    anyhow::bail!("multi logoutput for \"default\" is not supported yet");
                }
                if names.contains(&"journal") {
                    anyhow::bail!(
                        "--log-outputs=journal: wasmraft does not write to systemd's journal itself; use 'stderr', which the journal captures"
                    );
                }
                if names.contains(&"/dev/null") {
                    return Ok(LogOutputs { outputs: Vec::new() });
                }
                let mut outputs = Vec::new();
                for n in names {
                    outputs.push(match n {
                        "default" | "stderr" => Output::Stderr,
                        "stdout" => Output::Stdout,
                        path => Output::File(Arc::new(
                            std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(path)
                                .map_err(|e| anyhow::anyhow!("couldn't open sink {path:?}: {e}"))?,
                        )),
                    });
                }
                Ok(LogOutputs { outputs })
            }
        }
    }
}

impl Default for LogOutputs {
    fn default() -> Self {
        LogOutputs { outputs: vec![Output::Stderr] }
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(v: &[&str]) -> String {
    format!("[{}]", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "))
}

/// Every line to every output.
pub struct Tee<'a> {
    outputs: &'a [Output],
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for o in self.outputs {
            // One write_all per line and output: lines from threads do not interleave within
            // a line (the fmt layer hands over whole lines).
            match o {
                Output::Stderr => io::stderr().write_all(buf)?,
                Output::Stdout => io::stdout().write_all(buf)?,
                Output::File(f) => (&**f).write_all(buf)?,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        for o in self.outputs {
            match o {
                Output::Stderr => io::stderr().flush()?,
                Output::Stdout => io::stdout().flush()?,
                Output::File(f) => (&**f).flush()?,
            }
        }
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutputs {
    type Writer = Tee<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Tee { outputs: &self.outputs }
    }
}

/// Installs the global subscriber, writing to `outputs` (stderr by default, as etcd does).
/// `RUST_LOG` overrides the level for debugging individual modules.
pub fn init(logger: Logger, level: LogLevel, debug: bool, outputs: LogOutputs) {
    let level = if debug {
        "debug"
    } else {
        match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => "error",
        }
    };
    // raft-rs is chatty at info (every term change and vote); etcd logs those at info too.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(outputs);
    // A second init (tests starting several members in one process) keeps the first subscriber.
    let _ = match logger {
        Logger::Zap => builder.json().with_current_span(false).try_init(),
        Logger::Capnslog => builder.with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_rules() {
        let e = LogOutputs::parse(Logger::Capnslog, "/tmp/x.log").unwrap_err().to_string();
        assert_eq!(e, "unknown log-output \"/tmp/x.log\" (only supports \"default\", \"stderr\", \"stdout\")");
        let e = LogOutputs::parse(Logger::Capnslog, "stderr,stdout").unwrap_err().to_string();
        assert_eq!(e, "--logger=capnslog supports only 1 value in '--log-outputs', got [\"stderr\" \"stdout\"]");
        let e = LogOutputs::parse(Logger::Zap, "default,stderr").unwrap_err().to_string();
        assert_eq!(e, "multi logoutput for \"default\" is not supported yet");
        assert_eq!(LogOutputs::parse(Logger::Zap, "stderr,stdout,stderr").unwrap().outputs.len(), 2);
        assert!(LogOutputs::parse(Logger::Zap, "stderr,/dev/null").unwrap().outputs.is_empty());
        assert!(LogOutputs::parse(Logger::Zap, "journal").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.log");
        let o = LogOutputs::parse(Logger::Zap, &format!("stderr,{}", path.display())).unwrap();
        o.make_writer().write_all(b"a line\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a line\n");
    }
}
