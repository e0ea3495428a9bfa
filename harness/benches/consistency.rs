//! Measures the linearizability checker on a synthetic history as long as a workload records
//! in ten minutes: clients doing gets, puts, deletes and compare-and-sets on a small key set,
//! each operation taking effect at an instant between its call and its return (so the history
//! is linearizable and the search must find an order for all of it), with a few outcomes
//! unknown. Prints the time to check every key and the process's peak memory.
//!
//! `cargo bench --bench consistency` (BENCH_CLIENTS, BENCH_KEYS, BENCH_SECONDS, BENCH_RATE:
//! operations per second per client; defaults 4, 8, 600, 100).

use std::collections::BTreeMap;
use std::time::Instant;

use succession::consistency::linearizable::{check, Answer, KeyOp, Operation, Verdict};
use succession::rng::SeededRng;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One client's operation before its answer is known: its key, what it asks, and when it is
/// called, takes effect and returns (µs).
struct Planned {
    key: usize,
    op: KeyOp,
    call: u64,
    effect: u64,
    ret: u64,
    unknown: bool,
}

fn plan(clients: u64, keys: u64, seconds: u64, rate: u64, rng: &mut SeededRng) -> Vec<Planned> {
    let mut planned = Vec::new();
    let gap = 1_000_000 / rate.max(1);
    let mut value = 0;
    for _ in 0..clients {
        let mut now = rng.below(gap as usize) as u64;
        while now < seconds * 1_000_000 {
            let latency = 500 + rng.below(20_000) as u64;
            value += 1;
            let op = match rng.below(10) {
                0..=3 => KeyOp::Get,
                4..=6 => KeyOp::Put { value },
                7 => KeyOp::Delete,
                _ => KeyOp::CompareAndSet {
                    expect: (rng.below(2) == 0).then(|| rng.below(value as usize) as u64),
                    value,
                },
            };
            planned.push(Planned {
                key: rng.below(keys as usize),
                op,
                call: now,
                effect: now + rng.below(latency as usize) as u64,
                ret: now + latency,
                unknown: rng.below(200) == 0,
            });
            now += latency.max(gap) + rng.below(1000) as u64;
        }
    }
    planned
}

/// The history the register gives `planned`, key by key (times in ms, as recorded).
fn answer(planned: Vec<Planned>) -> BTreeMap<usize, Vec<Operation>> {
    let mut by_key: BTreeMap<usize, Vec<Planned>> = BTreeMap::new();
    for p in planned {
        by_key.entry(p.key).or_default().push(p);
    }
    by_key
        .into_iter()
        .map(|(key, mut ops)| {
            ops.sort_by_key(|p| p.effect);
            let mut state: Option<u64> = None;
            let history = ops
                .iter()
                .map(|p| {
                    let answer = match p.op {
                        KeyOp::Get => Answer::Read { value: state },
                        KeyOp::Put { value } => {
                            state = Some(value);
                            Answer::Done
                        }
                        KeyOp::Delete => {
                            state = None;
                            Answer::Done
                        }
                        KeyOp::CompareAndSet { expect, value } => {
                            let applied = state == expect;
                            if applied {
                                state = Some(value);
                            }
                            Answer::Swapped { applied }
                        }
                    };
                    Operation {
                        op: p.op,
                        call_ms: p.call / 1000,
                        returned: (!p.unknown).then_some((p.ret.div_ceil(1000), answer)),
                    }
                })
                .collect();
            (key, history)
        })
        .collect()
}

/// This process's peak resident memory (`VmHWM`: unlike getrusage's maximum, it does not carry
/// over what the launching process, cargo, had before the exec).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let (clients, keys, seconds, rate) = (
        setting("BENCH_CLIENTS", 4),
        setting("BENCH_KEYS", 8),
        setting("BENCH_SECONDS", 600),
        setting("BENCH_RATE", 100),
    );
    let mut rng = SeededRng::new(setting("BENCH_SEED", 1));
    let history = answer(plan(clients, keys, seconds, rate, &mut rng));
    let operations: usize = history.values().map(Vec::len).sum();
    println!(
        "history: {clients} clients, {keys} keys, {seconds} s at {rate} operations/s each: {operations} operations"
    );
    let began = Instant::now();
    let mut states = 0;
    let mut failed = 0;
    for (key, ops) in &history {
        let one = Instant::now();
        let verdict = check(ops, 50_000_000);
        let ms = one.elapsed().as_millis();
        match verdict {
            Verdict::Linearizable {
                operations,
                states: s,
            } => {
                states += s;
                println!("  key {key}: {operations} operations linearizable, {s} states, {ms} ms");
            }
            other => {
                failed += 1;
                println!("  key {key}: {other:?} after {ms} ms");
            }
        }
    }
    println!(
        "checked in {} ms, {states} states, peak memory {:.1} MiB{}",
        began.elapsed().as_millis(),
        peak_rss_mib(),
        if failed > 0 {
            format!(
                "; {failed} keys not judged linearizable (the generator or the checker is wrong)"
            )
        } else {
            String::new()
        }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
