//! Recording what concurrent clients did, as a [`wasmraft_lincheck::History`]: every operation's
//! invocation and completion times come from one monotonic clock shared by all clients (an
//! operation is stamped *before* its request is sent and *after* its response arrived, so the
//! recorded interval contains the real one), and how it ended.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use wasmraft_lincheck::{Call, History, Operation, Outcome};

use crate::kv_model::ModelOp;

/// A write that was acknowledged, and the revision its response header carried: what the watch
/// check expects watchers to have seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedWrite {
    pub revision: i64,
    pub key: String,
    pub value: u64,
}

/// Shared by every client of a run (`Arc`).
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Operation>>,
    acked: Mutex<Vec<AckedWrite>>,
    /// Every operation again, with its whole answer, for the revision model.
    model: Mutex<Vec<ModelOp>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            acked: Mutex::new(Vec::new()),
            model: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the recorder was made (the history's clock).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant the history's clock counts from (the watchers stamp their responses on it).
    pub fn clock(&self) -> Instant {
        self.start
    }

    /// One operation for the revision model.
    pub fn record_model(&self, op: ModelOp) {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// The revision model's operations so far, in invocation order.
    pub fn model_ops(&self) -> Vec<ModelOp> {
        let mut ops = self.model.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ops.sort_by_key(|o| (o.invoked_ns, o.client));
        ops
    }

    /// One finished (or abandoned) operation.
    pub fn record(&self, process: u64, call: Call, invoked_ns: u64, outcome: Outcome) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(Operation { process, call, invoked_ns, outcome });
    }

    /// A write acknowledged at `revision`.
    pub fn acked(&self, revision: i64, key: &str, value: u64) {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).push(AckedWrite { revision, key: key.to_string(), value });
    }

    /// The history so far, in invocation order.
    pub fn history(&self) -> History {
        let mut operations = self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone();
        operations.sort_by_key(|o| (o.invoked_ns, o.process));
        History { operations }
    }

    /// The acknowledged writes so far, in revision order.
    pub fn acked_writes(&self) -> Vec<AckedWrite> {
        let mut w = self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        w.sort_by_key(|w| w.revision);
        w
    }
}

/// (ok, failed, unknown) operations.
pub fn outcome_counts(h: &History) -> (u64, u64, u64) {
    h.operations.iter().fold((0, 0, 0), |(ok, failed, unknown), o| match o.outcome {
        Outcome::Ok { .. } => (ok + 1, failed, unknown),
        Outcome::Failed => (ok, failed + 1, unknown),
        Outcome::Unknown => (ok, failed, unknown + 1),
    })
}

/// Writes `h` as JSON to `dir/name`, returning the path.
pub fn save_history(h: &History, dir: &Path, name: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(name);
    let json = serde_json::to_string(h).map_err(|e| format!("history to JSON: {e}"))?;
    std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_lincheck::Return;

    #[test]
    fn records_in_invocation_order_with_one_clock() {
        let r = Recorder::new();
        let t0 = r.now_ns();
        let t1 = r.now_ns();
        assert!(t1 >= t0);
        let read = Call::Read { key: "k".into() };
        r.record(1, read.clone(), t1, Outcome::Unknown);
        r.record(
            0,
            Call::Write { key: "k".into(), value: 5 },
            t0,
            Outcome::Ok { returned: Return::Write, completed_ns: t1 },
        );
        r.record(2, read, t1, Outcome::Failed);
        let h = r.history();
        assert_eq!(h.operations.iter().map(|o| o.process).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(outcome_counts(&h), (1, 1, 1));
        r.acked(9, "k", 5);
        r.acked(4, "j", 1);
        assert_eq!(r.acked_writes()[0].revision, 4);
        let dir = tempfile::tempdir().expect("tempdir");
        let p = save_history(&h, dir.path(), "h.json").expect("saved");
        let back: History = serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
        assert_eq!(back, h);
    }
}
