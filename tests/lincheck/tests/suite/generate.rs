//! Random histories that are linearizable by construction: each operation is given a moment
//! inside its [invoked, completed] window at which it takes effect, the operations are run on a
//! real map in the order of those moments, and what each returned is recorded.

use std::collections::HashMap;

use wasmraft_lincheck::{Call, History, Operation, Outcome, Return, Value};

/// SplitMix64: tiny, seedable, good enough to shake out orderings.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub struct Shape {
    pub ops: usize,
    pub processes: u64,
    pub keys: usize,
    /// Longest gap between a process's operations, and longest half-window of an operation:
    /// small values give many ties and overlaps.
    pub gap: u64,
    pub window: u64,
    pub unknown_percent: u64,
    pub failed_percent: u64,
}

struct Planned {
    op: Operation,
    /// When it takes effect; `None` if it never does (failed, or unknown and lost).
    effect_ns: Option<u64>,
}

pub fn linearizable_history(rng: &mut Rng, shape: &Shape) -> History {
    let keys: Vec<String> = (0..shape.keys).map(|k| format!("k{k}")).collect();
    let mut free_at = vec![0u64; shape.processes as usize];
    let mut next_value: Value = 1;
    let mut written: Vec<Value> = Vec::new();
    let mut planned = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        let process = rng.below(shape.processes);
        let invoked_ns = free_at[process as usize] + rng.below(shape.gap + 1);
        let effect = invoked_ns + rng.below(shape.window + 1);
        let completed_ns = effect + rng.below(shape.window + 1);
        let key = keys[rng.below(keys.len() as u64) as usize].clone();
        let call = match rng.below(10) {
            0..=3 => Call::Read { key },
            4..=6 => {
                next_value += 1;
                written.push(next_value);
                Call::Write { key, value: next_value }
            }
            _ => {
                // Expect a value written before (often the current one, on few keys), or absent.
                let expect = if written.is_empty() || rng.chance(15) {
                    None
                } else {
                    let recent = written.len().min(3) as u64;
                    Some(written[written.len() - 1 - rng.below(recent) as usize])
                };
                next_value += 1;
                written.push(next_value);
                Call::Cas { key, expect, new: next_value }
            }
        };
        let (outcome, effect_ns) = if rng.chance(shape.failed_percent) {
            free_at[process as usize] = completed_ns;
            (Outcome::Failed, None)
        } else if rng.chance(shape.unknown_percent) {
            free_at[process as usize] = completed_ns;
            (Outcome::Unknown, rng.chance(50).then_some(effect))
        } else {
            free_at[process as usize] = completed_ns;
            // Placeholder return, filled in by the replay below.
            (Outcome::Ok { returned: Return::Write, completed_ns }, Some(effect))
        };
        planned.push(Planned { op: Operation { process, call, invoked_ns, outcome }, effect_ns });
    }

    // Operations taking effect at the same instant go in a random order.
    let mut by_effect: Vec<(u64, u64, usize)> =
        (0..planned.len()).filter_map(|i| planned[i].effect_ns.map(|at| (at, rng.next(), i))).collect();
    by_effect.sort_unstable();
    let mut store: HashMap<String, Value> = HashMap::new();
    for (_, _, i) in by_effect {
        let op = &mut planned[i].op;
        let key = op.call.key().to_string();
        let current = store.get(&key).copied();
        let returned = match &op.call {
            Call::Read { .. } => Return::Read(current),
            Call::Write { value, .. } => {
                store.insert(key, *value);
                Return::Write
            }
            Call::Cas { expect, new, .. } => {
                let succeeded = current == *expect;
                if succeeded {
                    store.insert(key, *new);
                }
                Return::Cas(succeeded)
            }
        };
        if let Outcome::Ok { returned: slot, .. } = &mut op.outcome {
            *slot = returned;
        }
    }
    History { operations: planned.into_iter().map(|p| p.op).collect() }
}

/// Changes one completed read's result (to absent, another value written, or one never
/// written), or flips one completed CAS's result. `None` if there is nothing to change.
pub fn mutate(rng: &mut Rng, history: &History) -> Option<History> {
    let candidates: Vec<usize> = (0..history.operations.len())
        .filter(|&i| {
            matches!(history.operations[i].outcome, Outcome::Ok { returned: Return::Read(_) | Return::Cas(_), .. })
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let values: Vec<Value> = history
        .operations
        .iter()
        .filter_map(|op| match op.call {
            Call::Write { value, .. } => Some(value),
            Call::Cas { new, .. } => Some(new),
            Call::Read { .. } => None,
        })
        .collect();
    let mut mutated = history.clone();
    let target = candidates[rng.below(candidates.len() as u64) as usize];
    if let Outcome::Ok { returned, .. } = &mut mutated.operations[target].outcome {
        *returned = match returned {
            Return::Read(saw) => {
                let mut new = *saw;
                while new == *saw {
                    new = match rng.below(4) {
                        0 => None,
                        1 => Some(999_999),
                        _ if values.is_empty() => None,
                        _ => Some(values[rng.below(values.len() as u64) as usize]),
                    };
                }
                Return::Read(new)
            }
            Return::Cas(succeeded) => Return::Cas(!*succeeded),
            Return::Write => Return::Write,
        };
    }
    Some(mutated)
}
