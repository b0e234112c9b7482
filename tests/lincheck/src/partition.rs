//! Splitting a history by key.
//!
//! Linearizability is compositional (Herlihy & Wing): a history is linearizable iff its
//! restriction to each object is. Every operation here touches one key, so each key is checked
//! on its own; that turns one search over all operations, exponential in the concurrency of the
//! whole run, into one small search per key.

use std::collections::BTreeMap;

use crate::history::History;
use crate::model::RegisterOp;

/// One operation of a key's sub-history, as the search needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyOp {
    /// Its position in [`History::operations`], to name it in reports.
    pub(crate) index: usize,
    pub(crate) op: RegisterOp,
    pub(crate) invoked_ns: u64,
    /// `None` for an operation whose outcome is unknown: it may take effect at any time after
    /// its invocation, or never.
    pub(crate) completed_ns: Option<u64>,
}

impl KeyOp {
    /// Whether the search must place it: only a completed operation certainly took effect.
    pub(crate) fn required(&self) -> bool {
        self.completed_ns.is_some()
    }
}

/// All the operations on one key that the checker considers.
#[derive(Debug)]
pub(crate) struct KeyHistory<'h> {
    pub(crate) key: &'h str,
    pub(crate) ops: Vec<KeyOp>,
    /// Operations on this key that tell nothing: failed ones, and unknown reads.
    pub(crate) ignored: usize,
}

/// The history's keys in order, each with its operations in the history's order.
pub(crate) fn by_key(history: &History) -> Vec<KeyHistory<'_>> {
    let mut keys: BTreeMap<&str, KeyHistory<'_>> = BTreeMap::new();
    for (index, operation) in history.operations.iter().enumerate() {
        let key = operation.call.key();
        let entry = keys.entry(key).or_insert_with(|| KeyHistory { key, ops: Vec::new(), ignored: 0 });
        match RegisterOp::from_operation(operation) {
            Some(op) => entry.ops.push(KeyOp {
                index,
                op,
                invoked_ns: operation.invoked_ns,
                completed_ns: operation.completed_ns(),
            }),
            None => entry.ignored += 1,
        }
    }
    keys.into_values().collect()
}
