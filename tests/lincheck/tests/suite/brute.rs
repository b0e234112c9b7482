//! An independent, deliberately naive checker to cross-check the real one on small histories:
//! try every order of every choice of operations, over all keys at once (so it also checks
//! that splitting by key loses nothing), with its own model. No memo, no event list.
//!
//! The search is depth-first over orders, abandoning a prefix as soon as it breaks real time
//! or the register: that is still exhaustive, just not absurdly slow.

use std::collections::HashMap;

use wasmraft_lincheck::{Call, History, Operation, Outcome, Return, Value};

pub fn linearizable(history: &History) -> bool {
    let ops: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|op| !matches!((&op.call, &op.outcome), (_, Outcome::Failed) | (Call::Read { .. }, Outcome::Unknown)))
        .collect();
    assert!(ops.len() <= 9, "the brute-force checker is for small histories");
    let mut used = vec![false; ops.len()];
    let mut order = Vec::new();
    extend(&ops, &mut used, &mut order)
}

/// Whether `order` can be completed: every completed operation placed, unknown ones optional.
fn extend(ops: &[&Operation], used: &mut [bool], order: &mut Vec<usize>) -> bool {
    let all_required_placed = (0..ops.len()).all(|i| used[i] || ops[i].outcome == Outcome::Unknown);
    if all_required_placed && replay(ops, order) {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // Real time: `i` may not follow anything invoked after it completed.
        let breaks_real_time = match &ops[i].outcome {
            Outcome::Ok { completed_ns, .. } => order.iter().any(|&j| *completed_ns < ops[j].invoked_ns),
            _ => false,
        };
        if breaks_real_time {
            continue;
        }
        order.push(i);
        used[i] = true;
        if replay(ops, order) && extend(ops, used, order) {
            return true;
        }
        used[i] = false;
        order.pop();
    }
    false
}

/// Whether running `order` on a map of registers returns what was recorded.
fn replay(ops: &[&Operation], order: &[usize]) -> bool {
    let mut store: HashMap<&str, Value> = HashMap::new();
    for &i in order {
        let op = ops[i];
        let key = op.call.key();
        let current = store.get(key).copied();
        let returned = match &op.outcome {
            Outcome::Ok { returned, .. } => Some(returned),
            _ => None,
        };
        match (&op.call, returned) {
            (Call::Read { .. }, Some(Return::Read(saw))) => {
                if *saw != current {
                    return false;
                }
            }
            (Call::Write { value, .. }, _) => {
                store.insert(key, *value);
            }
            (Call::Cas { expect, new, .. }, Some(Return::Cas(succeeded))) => {
                if (current == *expect) != *succeeded {
                    return false;
                }
                if *succeeded {
                    store.insert(key, *new);
                }
            }
            (Call::Cas { expect, new, .. }, None) => {
                if current == *expect {
                    store.insert(key, *new);
                }
            }
            _ => panic!("unexpected operation {op:?}"),
        }
    }
    true
}
