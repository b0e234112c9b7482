//! Logging through `tracing`, in the two shapes etcd 3.4 offers: `--logger capnslog` (text lines)
//! and `--logger zap` (JSON lines). raft-rs logs with `slog`; its records are forwarded into
//! `tracing` so there is one stream with one filter.

use tracing_subscriber::EnvFilter;

use crate::config::{LogLevel, Logger};

/// Installs the global subscriber, writing to stderr as etcd does. `RUST_LOG` overrides the
/// level for debugging individual modules.
pub fn init(logger: Logger, level: LogLevel, debug: bool) {
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests starting several members in one process) keeps the first subscriber.
    let _ = match logger {
        Logger::Zap => builder.json().with_current_span(false).try_init(),
        Logger::Capnslog => builder.with_ansi(false).try_init(),
    };
}

/// The slog logger handed to raft-rs: every record becomes a `tracing` event with target
/// `raft`, its key-values appended to the message as `key=value`, so raft's lines read like the
/// rest of the log (etcd prints raft's lines under "raft" too).
pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(RaftDrain, slog::o!())
}

struct RaftDrain;

impl slog::Drain for RaftDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        use slog::KV;
        let mut line = KvLine(record.msg().to_string());
        let _ = record.kv().serialize(record, &mut line);
        let _ = values.serialize(record, &mut line);
        let line = line.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{line}"),
            slog::Level::Warning => tracing::warn!(target: "raft", "{line}"),
            slog::Level::Info => tracing::info!(target: "raft", "{line}"),
            slog::Level::Debug => tracing::debug!(target: "raft", "{line}"),
            slog::Level::Trace => tracing::trace!(target: "raft", "{line}"),
        }
        Ok(())
    }
}

struct KvLine(String);

impl slog::Serializer for KvLine {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}
