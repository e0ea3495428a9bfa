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

use std::collections::{BTreeSet, HashSet};

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

/// Whether `op`, placed where the register holds `state`, sets its value there.
fn sets(state: Option<u64>, op: &Operation) -> bool {
    match op.op {
        KeyOp::Put { .. } | KeyOp::Delete => true,
        KeyOp::CompareAndSet { expect, .. } => state == expect,
        KeyOp::Get => false,
    }
}

/// Where the search stands: which operations are placed, in what order, and the value.
struct Position<'o> {
    ops: &'o [Operation],
    /// Unplaced operations by index, which is call order.
    unplaced: BTreeSet<usize>,
    /// Placed operations by index.
    placed: BTreeSet<usize>,
    /// Unplaced operations that returned, by their return.
    pending: BTreeSet<(u64, usize)>,
    /// The register's value.
    value: Option<u64>,
    /// The order so far, each with the last operation at or before it that set the value.
    order: Vec<(usize, Option<usize>)>,
}

/// A configuration, compactly: the highest placed index, the unplaced ones below it (all
/// others below it are placed) and the value. Searches go roughly in call order, so the
/// middle part stays as small as the history is concurrent.
type Configuration = (usize, Vec<usize>, Option<u64>);

impl<'o> Position<'o> {
    fn new(ops: &'o [Operation]) -> Self {
        Self {
            ops,
            unplaced: (0..ops.len()).collect(),
            placed: BTreeSet::new(),
            pending: ops
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.return_ms().map(|r| (r, i)))
                .collect(),
            value: None,
            order: Vec::new(),
        }
    }

    /// The unplaced operations that may come next: those called no later than the earliest
    /// return of an unplaced completed operation (one that returned before another was called
    /// must come first).
    fn candidates(&self) -> Vec<usize> {
        let earliest = self.pending.first().map_or(u64::MAX, |(r, _)| *r);
        self.unplaced
            .iter()
            .copied()
            .take_while(|&i| self.ops[i].call_ms <= earliest)
            .collect()
    }

    fn configuration(&self) -> Configuration {
        let hi = self.placed.last().map_or(0, |h| h + 1);
        (hi, self.unplaced.range(..hi).copied().collect(), self.value)
    }

    fn place(&mut self, i: usize, after: Option<u64>) {
        let op = &self.ops[i];
        let last = if sets(self.value, op) {
            Some(i)
        } else {
            self.order.last().and_then(|(_, w)| *w)
        };
        self.unplaced.remove(&i);
        self.placed.insert(i);
        if let Some(r) = op.return_ms() {
            self.pending.remove(&(r, i));
        }
        self.order.push((i, last));
        self.value = after;
    }

    fn unplace(&mut self, i: usize, before: Option<u64>) {
        self.unplaced.insert(i);
        self.placed.remove(&i);
        if let Some(r) = self.ops[i].return_ms() {
            self.pending.insert((r, i));
        }
        self.order.pop();
        self.value = before;
    }
}

/// One level of the search: the operations that may be placed next, and the one being tried.
struct Frame {
    candidates: Vec<usize>,
    next: usize,
    /// The operation this level placed, and the value before it.
    placed: Option<(usize, Option<u64>)>,
}

/// The furthest the search got: how many operations it placed, the value then, the completed
/// operation that returned first among those left, and the last write placed.
#[derive(Default)]
struct Furthest {
    placed: usize,
    value: Option<u64>,
    stuck: Option<usize>,
    last_write: Option<usize>,
}

/// Whether `history` (the operations on one key, the key absent at first) is linearizable,
/// visiting at most `budget` configurations.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    // A get whose outcome is unknown says nothing.
    let mut ops: Vec<Operation> = history
        .iter()
        .filter(|o| !(o.op == KeyOp::Get && o.returned.is_none()))
        .copied()
        .collect();
    ops.sort_by_key(|o| o.call_ms);
    let n = ops.len();
    let mut at = Position::new(&ops);
    let mut seen: HashSet<Configuration> = HashSet::new();
    let mut states: u64 = 0;
    let mut furthest = Furthest {
        stuck: at.pending.first().map(|(_, i)| *i),
        ..Furthest::default()
    };
    let mut stack = vec![Frame {
        candidates: at.candidates(),
        next: 0,
        placed: None,
    }];
    while let Some(frame) = stack.last_mut() {
        if at.pending.is_empty() {
            return Verdict::Linearizable {
                operations: n,
                states,
            };
        }
        if frame.next < frame.candidates.len() {
            let i = frame.candidates[frame.next];
            frame.next += 1;
            let Some(after) = apply(at.value, &ops[i]) else {
                continue;
            };
            let before = at.value;
            at.place(i, after);
            if !seen.insert(at.configuration()) {
                at.unplace(i, before);
                continue;
            }
            states += 1;
            if states > budget {
                return Verdict::Unknown {
                    operations: n,
                    states: budget,
                };
            }
            if at.order.len() > furthest.placed {
                furthest = Furthest {
                    placed: at.order.len(),
                    value: at.value,
                    stuck: at.pending.first().map(|(_, i)| *i),
                    last_write: at.order.last().and_then(|(_, w)| *w),
                };
            }
            stack.push(Frame {
                candidates: at.candidates(),
                next: 0,
                placed: Some((i, before)),
            });
        } else {
            match stack.pop().and_then(|f| f.placed) {
                Some((i, before)) => at.unplace(i, before),
                None => break,
            }
        }
    }
    match furthest.stuck {
        Some(stuck) => Verdict::NotLinearizable(Violation {
            stuck: ops[stuck],
            value: furthest.value,
            last_write: furthest.last_write.map(|i| ops[i]),
            placed: furthest.placed,
            operations: n,
            states,
        }),
        // Nothing left to place: unreachable for a finished search, but never a pass.
        None => Verdict::Unknown {
            operations: n,
            states,
        },
    }
}

#[cfg(test)]
mod tests;
