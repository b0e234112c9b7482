//! Logging through `tracing`, in the two shapes etcd 3.4 offers: `--logger capnslog` (text lines)
//! and `--logger zap` (JSON lines). raft-rs logs with `slog`; the node forwards its records into
//! `tracing` (`node::raft_logger`) so there is one stream with one filter.

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
