//! raft-rs logs with `slog`: its records are forwarded into `tracing`, so the member has one log
//! stream with one filter whichever shape the binary writes it in.

/// The slog logger handed to raft-rs: every record becomes a `tracing` event with target
/// `raft`, its key-values appended to the message as `key=value`, so raft's lines read like the
/// rest of the log (etcd prints raft's lines under "raft" too).
pub(crate) fn raft_logger() -> slog::Logger {
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
