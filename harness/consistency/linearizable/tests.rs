use super::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn op(op: KeyOp, call_ms: u64, ret: Option<(u64, Answer)>) -> Operation {
    Operation {
        op,
        call_ms,
        returned: ret,
    }
}

fn put(value: u64, call: u64, ret: u64) -> Operation {
    op(KeyOp::Put { value }, call, Some((ret, Answer::Done)))
}

fn get(value: Option<u64>, call: u64, ret: u64) -> Operation {
    op(KeyOp::Get, call, Some((ret, Answer::Read { value })))
}

const BUDGET: u64 = 1_000_000;

fn linearizable(history: &[Operation]) -> bool {
    match check(history, BUDGET) {
        Verdict::Linearizable { .. } => true,
        Verdict::NotLinearizable(_) => false,
        Verdict::Unknown { .. } => panic!("a small history exhausted the budget"),
    }
}

#[test]
fn a_read_of_a_value_overwritten_before_it_began_is_stale() {
    let history = [put(17, 0, 10), put(18, 20, 30), get(Some(17), 40, 50)];
    let Verdict::NotLinearizable(v) = check(&history, BUDGET) else {
        panic!("a stale read must not be linearizable");
    };
    assert_eq!(v.stuck, history[2]);
    assert_eq!(v.value, Some(18));
    assert_eq!(v.last_write, Some(history[1]));
    assert_eq!(
        v.to_string(),
        "get → v17 (40–50 ms) cannot be placed after any order of the operations before it: the key holds v18, written by put v18 (20–30 ms) (the longest order found places 2 of 3 operations; 2 states searched)"
    );
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let old = [put(17, 0, 10), put(18, 20, 40), get(Some(17), 25, 35)];
    let new = [put(17, 0, 10), put(18, 20, 40), get(Some(18), 25, 35)];
    assert!(linearizable(&old));
    assert!(linearizable(&new));
}

#[test]
fn a_write_whose_outcome_is_unknown_may_have_happened_or_not() {
    let lost = op(KeyOp::Put { value: 9 }, 5, None);
    // Read later as applied…
    assert!(linearizable(&[lost, get(Some(9), 100, 110)]));
    // …or never applied.
    assert!(linearizable(&[lost, get(None, 100, 110)]));
    // But it cannot take effect twice or before it was called.
    assert!(!linearizable(&[get(Some(9), 0, 4), lost,]));
}

#[test]
fn a_compare_and_set_answers_by_the_value_it_found() {
    let cas = |expect, value, applied, call, ret| {
        op(
            KeyOp::CompareAndSet { expect, value },
            call,
            Some((ret, Answer::Swapped { applied })),
        )
    };
    assert!(linearizable(&[
        put(1, 0, 5),
        cas(Some(1), 2, true, 10, 15),
        get(Some(2), 20, 25)
    ]));
    assert!(!linearizable(&[
        put(1, 0, 5),
        cas(Some(1), 2, false, 10, 15)
    ]));
    assert!(linearizable(&[
        put(1, 0, 5),
        cas(None, 2, false, 10, 15),
        get(Some(1), 20, 25)
    ]));
    let deleted = op(KeyOp::Delete, 6, Some((8, Answer::Done)));
    assert!(linearizable(&[
        put(1, 0, 5),
        deleted,
        cas(None, 2, true, 10, 15)
    ]));
}

#[test]
fn a_search_past_its_budget_is_unknown_never_a_pass() {
    // Many concurrent writes and a read nothing wrote: every order must be tried.
    let mut history: Vec<Operation> = (0..12).map(|v| put(v, 0, 100)).collect();
    history.push(get(Some(99), 0, 100));
    assert_eq!(
        check(&history, 50),
        Verdict::Unknown {
            operations: 13,
            states: 50
        }
    );
    assert!(matches!(
        check(&history, BUDGET),
        Verdict::NotLinearizable(_)
    ));
}

/// Every order of every subset that keeps all completed operations, by brute force: the
/// independent oracle for small histories.
fn brute_force(history: &[Operation]) -> bool {
    let ops: Vec<&Operation> = history.iter().collect();
    let n = ops.len();
    let mut order: Vec<usize> = Vec::new();
    let mut used = vec![false; n];
    fn go(ops: &[&Operation], order: &mut Vec<usize>, used: &mut [bool]) -> bool {
        // A complete candidate: every completed operation used.
        if ops
            .iter()
            .enumerate()
            .all(|(i, o)| used[i] || o.returned.is_none())
            && valid(ops, order)
        {
            return true;
        }
        for i in 0..ops.len() {
            if !used[i] {
                used[i] = true;
                order.push(i);
                if valid(ops, order) && go(ops, order, used) {
                    return true;
                }
                order.pop();
                used[i] = false;
            }
        }
        false
    }
    /// The order so far respects real time (among the operations in it, and against every
    /// completed one left out so far, which must come later) and the register's answers.
    fn valid(ops: &[&Operation], order: &[usize]) -> bool {
        for (pos, &b) in order.iter().enumerate() {
            for (i, a) in ops.iter().enumerate() {
                let a_later = order[pos + 1..].contains(&i) || !order.contains(&i);
                if a_later && a.returned.is_some_and(|(r, _)| r < ops[b].call_ms) {
                    return false;
                }
            }
        }
        let mut state = None;
        for &i in order {
            match register(state, ops[i]) {
                Some(s) => state = s,
                None => return false,
            }
        }
        true
    }
    go(&ops, &mut order, &mut used)
}

/// The register, written again for the oracle (not the checker's `apply`).
fn register(state: Option<u64>, op: &Operation) -> Option<Option<u64>> {
    let answer = op.returned.map(|(_, a)| a);
    match op.op {
        KeyOp::Put { value } => matches!(answer, None | Some(Answer::Done)).then_some(Some(value)),
        KeyOp::Delete => matches!(answer, None | Some(Answer::Done)).then_some(None),
        KeyOp::Get => match answer {
            None => Some(state),
            Some(Answer::Read { value }) => (value == state).then_some(state),
            Some(_) => None,
        },
        KeyOp::CompareAndSet { expect, value } => {
            let next = if state == expect { Some(value) } else { state };
            match answer {
                None => Some(next),
                Some(Answer::Swapped { applied }) => (applied == (state == expect)).then_some(next),
                Some(_) => None,
            }
        }
    }
}

fn arb_operation() -> impl Strategy<Value = Operation> {
    let value = 1u64..4;
    let kind = prop_oneof![
        value.clone().prop_map(|value| KeyOp::Put { value }),
        Just(KeyOp::Delete),
        (proptest::option::of(value.clone()), value.clone())
            .prop_map(|(expect, value)| KeyOp::CompareAndSet { expect, value }),
        Just(KeyOp::Get),
        Just(KeyOp::Get),
    ];
    (
        kind,
        0u64..30,
        0u64..15,
        proptest::option::of(value),
        any::<bool>(),
        0u8..6,
    )
        .prop_map(|(op, call_ms, length, read, applied, fate)| {
            let answer = match op {
                KeyOp::Put { .. } | KeyOp::Delete => Answer::Done,
                KeyOp::Get => Answer::Read { value: read },
                KeyOp::CompareAndSet { .. } => Answer::Swapped { applied },
            };
            Operation {
                op,
                call_ms,
                // One in six has an unknown outcome.
                returned: (fate != 0).then_some((call_ms + length, answer)),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn the_search_agrees_with_brute_force(history in proptest::collection::vec(arb_operation(), 0..7)) {
        prop_assert_eq!(linearizable(&history), brute_force(&history), "{:?}", history);
    }
}

/// The property above is worth something only when it meets both verdicts often.
#[test]
fn the_generated_histories_are_both_linearizable_and_not() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(arb_operation(), 1..7);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..600 {
        let history = strategy.new_tree(&mut runner).expect("a history").current();
        if linearizable(&history) {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(yes >= 100 && no >= 100, "{yes} linearizable, {no} not");
}
