//! The recorded history: what each client invoked, when, and how it ended.

use serde::{Deserialize, Serialize};

/// Values are integers: the harness writes unique ones, so every read names the write it saw.
pub type Value = u64;

/// What a client asked for, on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// A linearizable get.
    Read { key: String },
    /// A put.
    Write { key: String, value: Value },
    /// A transaction: if the key's value is `expect` (`None`: the key does not exist), put `new`.
    Cas { key: String, expect: Option<Value>, new: Value },
}

impl Call {
    pub fn key(&self) -> &str {
        match self {
            Call::Read { key } | Call::Write { key, .. } | Call::Cas { key, .. } => key,
        }
    }
}

/// What came back for a call that completed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Return {
    /// The value read (`None`: no such key).
    Read(Option<Value>),
    Write,
    /// Whether the compare succeeded (and the put happened).
    Cas(bool),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Completed at `completed_ns` with `returned`.
    Ok { returned: Return, completed_ns: u64 },
    /// Certainly had no effect.
    Failed,
    /// May have taken effect at any time after invocation.
    Unknown,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client (process) that issued it; a client has one operation in flight at a time.
    pub process: u64,
    pub call: Call,
    /// When it was invoked, in nanoseconds since the run started (one clock for all clients).
    pub invoked_ns: u64,
    pub outcome: Outcome,
}

/// A whole run's operations, in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub operations: Vec<Operation>,
}

impl Operation {
    /// When the client saw the result, if it saw one: only [`Outcome::Ok`] has a completion.
    pub fn completed_ns(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Ok { completed_ns, .. } => Some(*completed_ns),
            Outcome::Failed | Outcome::Unknown => None,
        }
    }

    /// What came back, if the operation completed.
    pub fn returned(&self) -> Option<&Return> {
        match &self.outcome {
            Outcome::Ok { returned, .. } => Some(returned),
            Outcome::Failed | Outcome::Unknown => None,
        }
    }
}

impl History {
    /// The history as pretty-printed JSON, for the harness to save next to a failing run's logs
    /// (pretty: a person reads it first, and `lincheck <file>` re-checks it).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Reads a history saved by [`History::to_json`]. It is not validated here: [`crate::check`]
    /// does that, and a loaded file can be inspected even when it is malformed.
    pub fn from_json(json: &str) -> Result<History, serde_json::Error> {
        serde_json::from_str(json)
    }
}
