//! Turning a failed search into a [`Violation`] a person can act on.
//!
//! The search only says "no order"; what helps is where it got stuck. Its deepest point is
//! replayed: the longest prefix it placed, the key's value there, and, for every operation that
//! could have come next, whether the register refuses it outright or it merely leads nowhere.

use crate::history::History;
use crate::model::State;
use crate::partition::KeyHistory;
use crate::report::{OpRef, Placed, Stuck, StuckReason, Violation};

/// `longest` holds indices into `key.ops`, in the order the search placed them.
pub(crate) fn violation(history: &History, key: &KeyHistory<'_>, longest: &[usize]) -> Violation {
    let op_ref = |i: usize| {
        let index = key.ops[i].index;
        OpRef { index, operation: history.operations[index].clone() }
    };
    let mut placed = vec![false; key.ops.len()];
    let mut prefix = Vec::with_capacity(longest.len());
    let mut state: State = None;
    for &i in longest {
        // The search only placed operations the register accepted, so this always applies;
        // were it not to, the prefix honestly ends where it stops making sense.
        let Some(after) = key.ops[i].op.apply(state) else { break };
        state = after;
        placed[i] = true;
        prefix.push(Placed { op: op_ref(i), state_after: state });
    }

    let deadline = (0..key.ops.len())
        .filter(|&i| !placed[i])
        .filter_map(|i| key.ops[i].completed_ns.map(|completed| (completed, key.ops[i].index, i)))
        .min()
        .map(|(completed, _, i)| (completed, i));
    // Calls at the deadline's instant count as concurrent with it, as in the search.
    let horizon = deadline.map_or(u64::MAX, |(completed, _)| completed);
    let mut candidates: Vec<usize> =
        (0..key.ops.len()).filter(|&i| !placed[i] && key.ops[i].invoked_ns <= horizon).collect();
    candidates.sort_by_key(|&i| (key.ops[i].invoked_ns, key.ops[i].index));
    let next = candidates
        .into_iter()
        .map(|i| {
            let reason = match key.ops[i].op.apply(state) {
                Some(_) => StuckReason::DeadEnd,
                None => StuckReason::Contradicts,
            };
            Stuck { op: op_ref(i), reason }
        })
        .collect();

    Violation {
        key: key.key.to_string(),
        ops_on_key: key.ops.len(),
        prefix,
        state,
        deadline: deadline.map(|(_, i)| op_ref(i)),
        next,
    }
}
