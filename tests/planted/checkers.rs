//! Planted mistakes in recorded histories: each takes a history recorded by a real run (a
//! quorum of three under the workload, its leader crashed and restarted), plants one anomaly a
//! server could show — a stale read, a serializable read going back, a watch going back in
//! revision (etcd issue 15271's symptom), an event delivered twice, a gap, an event no client
//! wrote — and `succession check` must give its verdict naming the operations; its twin plants
//! the legal change closest to it, and must pass. Offline: no cluster, always run.

use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use succession::consistency::watch::{Change, WatchEvent};
use succession::workload::history::{ClientOp, OkAnswer, OpOutcome, Request};
use succession::workload::WorkloadHistory;

use super::support::*;

/// One planted anomaly and its legal twin.
struct Planted {
    name: &'static str,
    /// Changes the recorded history into the broken one.
    broken: fn(&mut WorkloadHistory),
    /// Changes it into the legal twin.
    twin: fn(&mut WorkloadHistory),
    /// The exit code of the broken one.
    exit: i32,
    /// What `check` must print for the broken one.
    says: &'static [&'static str],
    /// Extra arguments to `check`.
    args: &'static [&'static str],
}

fn recorded() -> WorkloadHistory {
    WorkloadHistory::read(&root_dir().join("tests/fixtures/workload/recorded"))
        .expect("the recorded workload history")
}

fn end_ms(h: &WorkloadHistory) -> u64 {
    h.operations.iter().map(|o| o.return_ms).max().unwrap_or(0) + 10
}

fn top_revision(h: &WorkloadHistory) -> i64 {
    h.operations
        .iter()
        .filter_map(|o| match o.outcome {
            OpOutcome::Ok { revision, .. } => Some(revision),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn op(client: u32, key: &str, request: Request, at: u64, outcome: OpOutcome) -> ClientOp {
    ClientOp {
        client,
        member: "quorum-1".into(),
        key: key.into(),
        request,
        call_ms: at,
        return_ms: at + 2,
        outcome,
        retry: false,
    }
}

/// A put acknowledged after everything recorded, then a linearizable get of the key.
fn put_then_get(h: &mut WorkloadHistory, read: Option<u64>) {
    let (at, revision) = (end_ms(h), top_revision(h) + 1);
    let key = WorkloadHistory::key(&h.settings.prefix, 0);
    h.operations.push(op(
        90,
        &key,
        Request::Put { value: 9_000_001 },
        at,
        OpOutcome::Ok {
            revision,
            answer: OkAnswer::Written,
        },
    ));
    h.operations.push(op(
        91,
        &key,
        Request::Get {
            serializable: false,
        },
        at + 10,
        OpOutcome::Ok {
            revision,
            answer: OkAnswer::Read { value: read },
        },
    ));
}

/// Two serializable reads of one client, the second served at `second`.
fn serializable_pair(h: &mut WorkloadHistory, back: i64) {
    let (at, revision) = (end_ms(h), top_revision(h));
    let key = WorkloadHistory::key(&h.settings.prefix, 1);
    for (i, r) in [revision, revision - back].into_iter().enumerate() {
        h.operations.push(op(
            92,
            &key,
            Request::Get { serializable: true },
            at + 10 * i as u64,
            OpOutcome::Ok {
                revision: r,
                answer: OkAnswer::Read { value: None },
            },
        ));
    }
}

/// The last event of the first watch's last connection.
fn last_event(h: &WorkloadHistory) -> WatchEvent {
    h.watches[0]
        .segments
        .last()
        .and_then(|s| s.events.last())
        .cloned()
        .expect("a recorded event")
}

/// Delivers an event on the first watch, after every known write it had not delivered yet (the
/// recording stopped the watches before the last writes' events arrived).
fn deliver(h: &mut WorkloadHistory, event: WatchEvent) {
    let last = last_event(h).revision;
    let at_ms = event.at_ms;
    let known = succession::workload::judge::known_writes(h);
    let Some(s) = h.watches[0].segments.last_mut() else {
        return;
    };
    for (_, writes) in known.revisions(last + 1..event.revision.max(last + 1)) {
        for w in writes {
            s.events.push(WatchEvent {
                revision: w.revision,
                key: w.key.clone(),
                change: w.change,
                at_ms,
            });
        }
    }
    s.events.push(event);
}

/// An event of an earlier write delivered after a later one (the watch goes back).
fn goes_back(h: &mut WorkloadHistory) {
    let events = &h.watches[0].segments.last().expect("a segment").events;
    let mut earlier = events[events.len() / 2].clone();
    earlier.at_ms = end_ms(h);
    deliver(h, earlier);
}

/// A new acknowledged write, and its event delivered after the last one.
fn a_new_write_delivered(h: &mut WorkloadHistory) {
    let (at, revision) = (end_ms(h), top_revision(h) + 1);
    let key = WorkloadHistory::key(&h.settings.prefix, 2);
    h.operations.push(op(
        93,
        &key,
        Request::Put { value: 9_000_002 },
        at,
        OpOutcome::Ok {
            revision,
            answer: OkAnswer::Written,
        },
    ));
    deliver(
        h,
        WatchEvent {
            revision,
            key: key.into(),
            change: Change::Put { value: 9_000_002 },
            at_ms: at + 3,
        },
    );
}

fn twice(h: &mut WorkloadHistory) {
    let mut again = last_event(h);
    again.at_ms += 1;
    deliver(h, again);
}

/// Takes out of the first watch an event in the middle of a connection: when `lost_answer`,
/// its write's answer is lost too (the history no longer shows the write, so nothing is
/// missing).
fn take_out(h: &mut WorkloadHistory, lost_answer: bool) {
    let segment = h.watches[0].segments.last_mut().expect("a segment");
    let middle = segment.events.len() / 2;
    let gone = segment.events.remove(middle);
    if lost_answer {
        for o in h.operations.iter_mut().filter(|o| {
            o.key == gone.key
                && matches!(o.outcome, OpOutcome::Ok { revision, .. } if revision == gone.revision)
        }) {
            o.outcome = OpOutcome::Indeterminate {
                error: "planted: the answer was lost".to_string(),
            };
        }
    }
}

/// An event whose value some client wrote (`attempted`) or none did.
fn unacknowledged_event(h: &mut WorkloadHistory, attempted: bool) {
    let (at, revision) = (end_ms(h), top_revision(h) + 1);
    let key = WorkloadHistory::key(&h.settings.prefix, 1);
    if attempted {
        h.operations.push(op(
            94,
            &key,
            Request::Put { value: 9_000_003 },
            at,
            OpOutcome::Indeterminate {
                error: "planted: no answer".to_string(),
            },
        ));
    }
    deliver(
        h,
        WatchEvent {
            revision,
            key: key.into(),
            change: Change::Put { value: 9_000_003 },
            at_ms: at + 3,
        },
    );
}

const PLANTED: &[Planted] = &[
    Planted {
        name: "stale-read",
        broken: |h| put_then_get(h, None),
        twin: |h| put_then_get(h, Some(9_000_001)),
        exit: 1,
        says: &[
            "linearizable         FAIL",
            "k0: get → nothing",
            "cannot be placed after any order",
            "written by put v9000001",
        ],
        args: &[],
    },
    Planted {
        name: "serializable-read-goes-back",
        broken: |h| serializable_pair(h, 3),
        twin: |h| serializable_pair(h, 0),
        exit: 1,
        says: &[
            "serializable reads   FAIL",
            "client 92 read at revision",
            "a serializable read went back",
        ],
        args: &[],
    },
    Planted {
        name: "watch-goes-back",
        broken: goes_back,
        twin: a_new_write_delivered,
        exit: 1,
        says: &["watch guarantees     FAIL", "went back from revision"],
        args: &[],
    },
    Planted {
        name: "watch-event-twice",
        broken: twice,
        twin: a_new_write_delivered,
        exit: 1,
        says: &["watch guarantees     FAIL", "twice"],
        args: &[],
    },
    Planted {
        name: "watch-gap",
        broken: |h| take_out(h, false),
        twin: |h| take_out(h, true),
        exit: 1,
        says: &["watch guarantees     FAIL", "missed revision"],
        args: &[],
    },
    Planted {
        name: "watch-invents-a-write",
        broken: |h| unacknowledged_event(h, false),
        twin: |h| unacknowledged_event(h, true),
        exit: 1,
        says: &["watch guarantees     FAIL", "which no client wrote"],
        args: &[],
    },
    Planted {
        name: "search-out-of-budget-is-unknown",
        broken: |_| {},
        twin: |_| {},
        exit: 4,
        says: &[
            "linearizable         UNKNOWN",
            "ran out of its budget of 1 states",
        ],
        args: &["--search-budget", "1"],
    },
];

fn scratch(name: &str, twin: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "succession-planted-checker-{name}-{}-{}",
        if twin { "twin" } else { "broken" },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn check(dir: &Path, args: &[&str]) -> Result<(i32, String), Failed> {
    let out = succession()
        .arg("check")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| fail(format!("succession check: {e}")))?;
    Ok((out.status.code().unwrap_or(-1), output_text(&out)))
}

fn run(p: &Planted, twin: bool) -> TestResult {
    let mut history = recorded();
    (if twin { p.twin } else { p.broken })(&mut history);
    let dir = scratch(p.name, twin);
    history
        .write(&dir)
        .map_err(|e| fail(format!("writing the planted history: {e}")))?;
    let args = if twin { &[][..] } else { p.args };
    let (code, text) = check(&dir, args)?;
    let _ = std::fs::remove_dir_all(&dir);
    if twin {
        return if code == 0 {
            Ok(())
        } else {
            Err(fail(format!(
                "the twin of {} did not pass (exit {code})\n{text}",
                p.name
            )))
        };
    }
    if code != p.exit {
        return Err(fail(format!(
            "{} exited {code}, not {}\n{text}",
            p.name, p.exit
        )));
    }
    for want in p.says {
        if !text.contains(want) {
            return Err(fail(format!("{} should say `{want}`\n{text}", p.name)));
        }
    }
    Ok(())
}

/// The trials: each planted anomaly caught, each twin passing, and the recorded history itself
/// passing.
pub fn trials() -> Vec<Trial> {
    let mut trials = vec![Trial::test(
        "planted::checker::recorded_history_passes",
        || {
            let (code, text) = check(&root_dir().join("tests/fixtures/workload/recorded"), &[])?;
            if code == 0 {
                Ok(())
            } else {
                Err(fail(format!("the recorded history did not pass\n{text}")))
            }
        },
    )];
    for (i, p) in PLANTED.iter().enumerate() {
        trials.push(Trial::test(
            format!("planted::checker::{}::caught", p.name),
            move || run(&PLANTED[i], false),
        ));
        trials.push(Trial::test(
            format!("planted::checker::{}::twin_passes", p.name),
            move || run(&PLANTED[i], true),
        ));
    }
    trials
}
