//! Whether the operations on one key are linearizable: whether they can be put in one order in
//! which each takes effect at an instant between its call and its return, and every answer is
//! what a single key-value register would have given at that point.
//!
//! The search is Wing and Gong's, with Lowe's cache of the configurations already seen (the set
//! of operations placed, and the register's value): at each step only an operation that no
//! unplaced completed operation returned before may be placed next. An operation whose outcome
//! is unknown (a timeout, a lost connection) may have taken effect once, at any instant after
//! its call, or never: it never has to be placed, and constrains nothing after it. Operations
//! known not to have been applied are left out of the history before it is checked.
//!
//! Deciding linearizability is NP-complete, so the search has a budget of configurations; a
//! search that exhausts it is `Unknown`, never a pass.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// What a client asked of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum KeyOp {
    /// Write a value (values are unique per write).
    Put {
        /// The value.
        value: u64,
    },
    /// Remove the key.
    Delete,
    /// A transaction: when the key holds `expect` (none: absent), write `value`.
    CompareAndSet {
        /// The value the key must hold.
        expect: Option<u64>,
        /// The value written when it does.
        value: u64,
    },
    /// Read the key.
    Get,
}

/// What came back, when something did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "answer")]
pub enum Answer {
    /// A put or a delete was acknowledged.
    Done,
    /// A get read this value (none: the key was absent).
    Read {
        /// The value.
        value: Option<u64>,
    },
    /// A compare-and-set applied (true) or found another value (false).
    Swapped {
        /// Whether it applied.
        applied: bool,
    },
}

/// One operation on the key, with its call and return on one monotonic clock (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What was asked.
    pub op: KeyOp,
    /// When it was called.
    pub call_ms: u64,
    /// When it returned, with what; none when its outcome is unknown.
    pub returned: Option<(u64, Answer)>,
}

impl Operation {
    fn return_ms(&self) -> Option<u64> {
        self.returned.map(|(at, _)| at)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = |v: Option<u64>| v.map_or("nothing".to_string(), |v| format!("v{v}"));
        match (self.op, self.returned) {
            (KeyOp::Put { value: v }, _) => write!(f, "put v{v}")?,
            (KeyOp::Delete, _) => f.write_str("delete")?,
            (KeyOp::CompareAndSet { expect, value: v }, returned) => {
                write!(f, "compare-and-set {} → v{v}", value(expect))?;
                if let Some((_, Answer::Swapped { applied })) = returned {
                    f.write_str(if applied {
                        " (applied)"
                    } else {
                        " (not applied)"
                    })?;
                }
            }
            (KeyOp::Get, Some((_, Answer::Read { value: v }))) => write!(f, "get → {}", value(v))?,
            (KeyOp::Get, _) => f.write_str("get")?,
        }
        match self.return_ms() {
            Some(ret) => write!(f, " ({}–{ret} ms)", self.call_ms),
            None => write!(f, " (called at {} ms, outcome unknown)", self.call_ms),
        }
    }
}

/// The register's value after `op` takes effect on `state`, when its answer allows it there.
fn apply(state: Option<u64>, op: &Operation) -> Option<Option<u64>> {
    let answer = op.returned.map(|(_, a)| a);
    match (op.op, answer) {
        (KeyOp::Put { value }, None | Some(Answer::Done)) => Some(Some(value)),
        (KeyOp::Delete, None | Some(Answer::Done)) => Some(None),
        (KeyOp::CompareAndSet { expect, value }, _) => {
            let applies = state == expect;
            match answer {
                None => Some(if applies { Some(value) } else { state }),
                Some(Answer::Swapped { applied }) if applied == applies => {
                    Some(if applies { Some(value) } else { state })
                }
                _ => None,
            }
        }
        (KeyOp::Get, Some(Answer::Read { value })) if value == state => Some(state),
        (KeyOp::Get, None) => Some(state),
        _ => None,
    }
}

/// How the search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An order exists.
    Linearizable {
        /// Operations checked.
        operations: usize,
        /// Configurations the search visited.
        states: u64,
    },
    /// No order exists.
    NotLinearizable(Violation),
    /// The budget ran out before the search could tell.
    Unknown {
        /// Operations checked.
        operations: usize,
        /// Configurations the search visited (the budget).
        states: u64,
    },
}

/// Where every order the search tried got stuck furthest: the operation that could be placed
/// nowhere after the longest order it found, and that order's last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The completed operation that returned first among those that could not be placed.
    pub stuck: Operation,
    /// The register's value after the longest order found.
    pub value: Option<u64>,
    /// The last operation in that order that wrote the value (none: the initial absence).
    pub last_write: Option<Operation>,
    /// How many operations that order placed, of how many.
    pub placed: usize,
    /// Operations checked.
    pub operations: usize,
    /// Configurations the search visited.
    pub states: u64,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self
            .value
            .map_or("nothing".to_string(), |v| format!("v{v}"));
        write!(
            f,
            "{} cannot be placed after any order of the operations before it: ",
            self.stuck
        )?;
        match &self.last_write {
            Some(w) => write!(f, "the key holds {value}, written by {w}")?,
            None => write!(f, "the key holds {value}")?,
        }
        write!(
            f,
            " (the longest order found places {} of {} operations; {} states searched)",
            self.placed, self.operations, self.states
        )
    }
}

/// A set of operation indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Placed(Vec<u64>);

impl Placed {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
}

/// One level of the search: the operations that may be placed next, and the one being tried.
struct Frame {
    candidates: Vec<usize>,
    next: usize,
    /// The operation this level placed, and the value before it.
    placed: Option<(usize, Option<u64>)>,
}

/// Whether `history` (the operations on one key, the key absent at first) is linearizable,
/// visiting at most `budget` configurations.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    // A get whose outcome is unknown says nothing.
    let ops: Vec<Operation> = history
        .iter()
        .filter(|o| !(o.op == KeyOp::Get && o.returned.is_none()))
        .copied()
        .collect();
    let n = ops.len();
    let completed = ops.iter().filter(|o| o.returned.is_some()).count();
    let mut placed = Placed::new(n);
    let mut placed_completed = 0;
    let mut state: Option<u64> = None;
    let mut order: Vec<usize> = Vec::new();
    let mut seen: HashSet<(Placed, Option<u64>)> = HashSet::new();
    let mut states: u64 = 0;
    let mut deepest: (usize, Option<u64>, Vec<usize>, Placed) =
        (0, None, Vec::new(), placed.clone());
    let mut stack = vec![Frame {
        candidates: candidates(&ops, &placed),
        next: 0,
        placed: None,
    }];
    while let Some(frame) = stack.last_mut() {
        if placed_completed == completed {
            return Verdict::Linearizable {
                operations: n,
                states,
            };
        }
        if frame.next < frame.candidates.len() {
            let i = frame.candidates[frame.next];
            frame.next += 1;
            let Some(after) = apply(state, &ops[i]) else {
                continue;
            };
            placed.flip(i);
            if !seen.insert((placed.clone(), after)) {
                placed.flip(i);
                continue;
            }
            states += 1;
            if states > budget {
                return Verdict::Unknown {
                    operations: n,
                    states: budget,
                };
            }
            let before = state;
            state = after;
            order.push(i);
            if ops[i].returned.is_some() {
                placed_completed += 1;
            }
            if order.len() > deepest.0 {
                deepest = (order.len(), state, order.clone(), placed.clone());
            }
            stack.push(Frame {
                candidates: candidates(&ops, &placed),
                next: 0,
                placed: Some((i, before)),
            });
        } else {
            let Some(frame) = stack.pop() else { break };
            match frame.placed {
                Some((i, before)) => {
                    placed.flip(i);
                    state = before;
                    order.pop();
                    if ops[i].returned.is_some() {
                        placed_completed -= 1;
                    }
                }
                None => break,
            }
        }
    }
    let (count, value, longest, at) = deepest;
    let stuck = (0..n)
        .filter(|&i| !at.has(i))
        .filter_map(|i| ops[i].return_ms().map(|r| (r, i)))
        .min()
        .map(|(_, i)| ops[i]);
    let last_write = last_write(&ops, &longest);
    match stuck {
        Some(stuck) => Verdict::NotLinearizable(Violation {
            stuck,
            value,
            last_write,
            placed: count,
            operations: n,
            states,
        }),
        // Every completed operation was placed in some order, yet none placed them all at
        // once: unreachable for a finished search, but never a pass.
        None => Verdict::Unknown {
            operations: n,
            states,
        },
    }
}

/// The last operation of `order` that set the register's value, replaying it from absence.
fn last_write(ops: &[Operation], order: &[usize]) -> Option<Operation> {
    let mut state = None;
    let mut last = None;
    for &i in order {
        let sets = match ops[i].op {
            KeyOp::Put { .. } | KeyOp::Delete => true,
            KeyOp::CompareAndSet { expect, .. } => state == expect,
            KeyOp::Get => false,
        };
        if sets {
            last = Some(ops[i]);
        }
        state = apply(state, &ops[i]).unwrap_or(state);
    }
    last
}

/// The unplaced operations that may come next: those called no later than the earliest return
/// of an unplaced completed operation (one that returned before another was called must come
/// first).
fn candidates(ops: &[Operation], placed: &Placed) -> Vec<usize> {
    let earliest_return = (0..ops.len())
        .filter(|&i| !placed.has(i))
        .filter_map(|i| ops[i].return_ms())
        .min()
        .unwrap_or(u64::MAX);
    (0..ops.len())
        .filter(|&i| !placed.has(i) && ops[i].call_ms <= earliest_return)
        .collect()
}

#[cfg(test)]
mod tests;
