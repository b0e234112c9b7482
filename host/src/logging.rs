//! Logging through `tracing`, in the two shapes etcd 3.4 offers: `--logger capnslog` (text lines)
//! and `--logger zap` (JSON lines), to the `--log-outputs` etcd allows (stderr, stdout, and for
//! zap files too). raft-rs logs with `slog`; the node forwards its records into `tracing`
//! (`node::raft_logger`) so there is one stream with one filter.

use std::fs::{File, OpenOptions};
use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

use crate::config::{LogLevel, LogOutput, Logger};

/// Installs the global subscriber. `RUST_LOG` overrides the level for debugging individual
/// modules. Fails only if a log file cannot be opened.
pub fn init(logger: Logger, level: LogLevel, outputs: &[LogOutput]) -> anyhow::Result<()> {
    let level = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => "error",
    };
    let mut writer: Option<BoxMakeWriter> = None;
    for output in outputs {
        let next = match output {
            // etcd's "default" is journald under systemd; wasmraft writes stderr, which systemd
            // also collects.
            LogOutput::Default | LogOutput::Stderr => BoxMakeWriter::new(std::io::stderr),
            LogOutput::Stdout => BoxMakeWriter::new(std::io::stdout),
            LogOutput::File(path) => {
                let file: File = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("open {}", path.display()))?;
                BoxMakeWriter::new(Arc::new(file))
            }
        };
        writer = Some(match writer {
            None => next,
            Some(w) => BoxMakeWriter::new(w.and(next)),
        });
    }
    let writer = writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::stderr));
    // raft-rs is chatty at info (every term change and vote); etcd logs those at info too.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    // A second init (tests starting several members in one process) keeps the first subscriber.
    let _ = match logger {
        Logger::Zap => builder.json().with_current_span(false).try_init(),
        Logger::Capnslog => builder.with_ansi(false).try_init(),
    };
    Ok(())
}
