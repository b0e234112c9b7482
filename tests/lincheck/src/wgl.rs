//! The search: Wing & Gong's backtracking over a list of call and return events, with Lowe's
//! memo of configurations already explored (the "WGL" algorithm, as in porcupine and Knossos).
//!
//! The events of one key's operations are kept in time order in a doubly linked list. Scanning
//! it from the front, the calls met before the first return are exactly the operations that may
//! take effect next: any of them was invoked before every pending operation completed. The
//! search tries each in turn; one the register accepts is *lifted* (its call and return leave
//! the list) and the scan restarts from the front. Meeting a return means the operation it ends
//! must already have been placed but was not, so the last choice is undone (the pair is put
//! back, which a linked list does in O(1)) and the scan goes on after it.
//!
//! Lowe's insight makes this practical: the future of the search depends only on *which*
//! operations are placed and on the register's state, not on their order. Each such
//! configuration is entered once; a second path reaching it is cut off.
//!
//! Unknown operations (no completion) get a return event after every real one. They are never
//! required: when the first return met is an unknown one, every remaining operation is unknown,
//! and letting none of them ever take effect is a valid ending.

use std::collections::HashSet;

use crate::bitset::BitSet;
use crate::budget::Meter;
use crate::model::State;
use crate::partition::KeyOp;

/// How a key's search ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Search {
    Linearizable,
    /// No order works. `longest` is the longest sequence of operations (indices into the key's
    /// ops) that the search could place, in order: the best lead to what went wrong.
    NotLinearizable {
        longest: Vec<usize>,
    },
    /// The budget ran out first.
    Timeout,
}

/// What the search cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SearchStats {
    pub(crate) steps: u64,
    /// Distinct configurations (placed set, register state) entered: the memo's size.
    pub(crate) states: usize,
}

/// Node 0 is the head sentinel; operation `i` has its call at node `2i + 1` and its return at
/// `2i + 2`.
const HEAD: usize = 0;
const NIL: usize = usize::MAX;

fn op_of(node: usize) -> usize {
    (node - 1) / 2
}

fn is_call(node: usize) -> bool {
    node % 2 == 1
}

/// The event list (Knuth's dancing links: a removed node keeps its neighbours, so removals
/// undone in reverse order restore the list exactly).
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Events {
    fn new(ops: &[KeyOp]) -> Events {
        // At equal times calls sort before returns: an operation invoked at the instant another
        // completed is taken as concurrent with it, which can only allow more orders. A clock's
        // resolution should not produce a violation.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoked_ns, 0, 2 * i + 1));
            match op.completed_ns {
                Some(completed) => order.push((completed, 1, 2 * i + 2)),
                None => order.push((u64::MAX, 2, 2 * i + 2)),
            }
        }
        order.sort_unstable();
        let nodes = 2 * ops.len() + 1;
        let mut events = Events { next: vec![NIL; nodes], prev: vec![NIL; nodes] };
        let mut last = HEAD;
        for &(_, _, node) in &order {
            events.next[last] = node;
            events.prev[node] = last;
            last = node;
        }
        events
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(call + 1);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(call + 1);
        self.relink(call);
    }
}

/// The longest stack of placed operations seen, kept up to date without copying the whole stack
/// each time it grows: only the part past where it last agreed with the stack.
struct Longest {
    ops: Vec<usize>,
    /// How many leading entries of `ops` are known to equal the current stack's.
    agrees: usize,
}

impl Longest {
    fn pushed(&mut self, stack: &[(usize, State)]) {
        if stack.len() > self.ops.len() {
            self.ops.truncate(self.agrees);
            self.ops.extend(stack[self.agrees..].iter().map(|&(call, _)| op_of(call)));
            self.agrees = stack.len();
        }
    }

    fn popped(&mut self, depth: usize) {
        self.agrees = self.agrees.min(depth);
    }
}

/// Searches for a linearization of one key's operations, from an absent key.
pub(crate) fn search(ops: &[KeyOp], meter: &mut Meter) -> (Search, SearchStats) {
    let steps_before = meter.steps();
    let mut events = Events::new(ops);
    let mut placed = BitSet::with_capacity(ops.len());
    let mut memo: HashSet<(BitSet, State)> = HashSet::new();
    // The placed operations' call nodes, each with the state before it.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut longest = Longest { ops: Vec::new(), agrees: 0 };
    let mut state: State = None;
    let mut node = events.next[HEAD];

    let verdict = loop {
        if node == NIL || (!is_call(node) && !ops[op_of(node)].required()) {
            break Search::Linearizable;
        }
        if !meter.tick() {
            break Search::Timeout;
        }
        if is_call(node) {
            let i = op_of(node);
            if let Some(after) = ops[i].op.apply(state) {
                placed.insert(i);
                if memo.insert((placed.clone(), after)) {
                    stack.push((node, state));
                    longest.pushed(&stack);
                    state = after;
                    events.lift(node);
                    node = events.next[HEAD];
                    continue;
                }
                placed.remove(i);
            }
            node = events.next[node];
        } else {
            let Some((call, before)) = stack.pop() else {
                break Search::NotLinearizable { longest: longest.ops };
            };
            longest.popped(stack.len());
            state = before;
            placed.remove(op_of(call));
            events.unlift(call);
            node = events.next[call];
        }
    };
    let stats = SearchStats { steps: meter.steps() - steps_before, states: memo.len() };
    (verdict, stats)
}
