//! The ledger's bookkeeping, without a cluster: what counts as lost, kept, tolerated or neither.

use proptest::prelude::*;

use super::history::*;
use super::*;

const T0: &str = "2026-11-21T12:00:00.000Z";

fn record(seq: u64, done_ms: u64, outcome: Outcome) -> LedgerRecord {
    LedgerRecord {
        seq,
        phase: "steady".into(),
        via: "quorum-1".into(),
        sent_ms: done_ms.saturating_sub(5),
        done_ms,
        outcome,
    }
}

fn ack(seq: u64, done_ms: u64) -> LedgerRecord {
    record(
        seq,
        done_ms,
        Outcome::Acknowledged {
            revision: seq as i64 + 1,
        },
    )
}

fn failed(seq: u64, done_ms: u64) -> LedgerRecord {
    record(
        seq,
        done_ms,
        Outcome::Failed {
            cause: FailureCause::Leaderless,
            error: "etcdserver: no leader".into(),
        },
    )
}

fn indeterminate(seq: u64, done_ms: u64) -> LedgerRecord {
    record(
        seq,
        done_ms,
        Outcome::Indeterminate {
            error: "no answer within 1 s".into(),
        },
    )
}

fn read_back(at_ms: u64, present: impl IntoIterator<Item = u64>) -> LedgerEvent {
    LedgerEvent::ReadBack {
        at_ms,
        through: "quorum-1".into(),
        step: "end of run".into(),
        final_read: true,
        present: SeqSet::from_seqs(present),
        mismatched: vec![],
        foreign: 0,
    }
}

fn history(records: Vec<LedgerRecord>, events: Vec<LedgerEvent>, tolerate: Tolerance) -> History {
    History {
        version: HISTORY_VERSION,
        scenario: "t".into(),
        run_id: "abc123".into(),
        started_wall: T0.into(),
        prefix: "/succession/ledger/".into(),
        tolerate,
        records,
        events,
    }
}

fn snapshot(
    label: &str,
    started_ms: u64,
    at_ms: u64,
    seqs: impl IntoIterator<Item = u64>,
) -> LedgerEvent {
    LedgerEvent::Capture {
        at_ms,
        started_ms,
        label: label.into(),
        kind: CaptureKind::Snapshot,
        revision: 7,
        through: "quorum-2".into(),
        seqs: SeqSet::from_seqs(seqs),
    }
}

/// A restore that replaces the data with the capture `backup`.
fn restore(at_ms: u64) -> LedgerEvent {
    LedgerEvent::Restore {
        at_ms,
        label: "backup".into(),
        replace: true,
    }
}

fn after_snapshot() -> Tolerance {
    Tolerance {
        after_snapshot: true,
        ..Default::default()
    }
}

#[test]
fn every_acknowledged_write_read_back_passes() {
    let v = check(&history(
        vec![ack(1, 100), ack(2, 150), failed(3, 200)],
        vec![read_back(1000, [1, 2])],
        Tolerance::default(),
    ));
    assert!(v.pass, "{v:?}");
    assert_eq!(v.phases[0].acknowledged, 2);
    assert_eq!(v.phases[0].kept, 2);
    assert_eq!(v.phases[0].failed_leaderless, 1);
    assert_eq!(
        v.statements,
        vec!["no acknowledged write was lost beyond what the scenario tolerates (none)"]
    );
}

#[test]
fn an_indeterminate_write_is_neither_lost_nor_safe() {
    for present in [vec![], vec![2]] {
        let v = check(&history(
            vec![ack(1, 100), indeterminate(2, 1100)],
            vec![read_back(2000, [1].into_iter().chain(present))],
            Tolerance::default(),
        ));
        assert!(v.pass, "{v:?}");
        let p = &v.phases[0];
        assert_eq!(
            (p.kept, p.lost, p.lost_tolerated, p.indeterminate),
            (1, 0, 0, 1)
        );
        assert_eq!(p.loss_window, None);
    }
}

#[test]
fn a_write_acknowledged_after_a_snapshot_is_expected_lost_on_restore() {
    let records = vec![
        ack(1, 1000),
        ack(2, 2000),
        ack(3, 3500),
        ack(4, 3900),
        ack(5, 6000),
    ];
    let events = vec![
        snapshot("backup", 3000, 3050, [1, 2]),
        restore(5000),
        read_back(7000, [1, 2, 5]),
    ];
    let v = check(&history(records.clone(), events.clone(), after_snapshot()));
    assert!(v.pass, "{v:?}");
    assert_eq!(
        v.statements,
        vec![
            "restore from the 12:00:03 snapshot `backup` lost 2 acknowledged writes made after it (acknowledged 12:00:03.500–12:00:03.900); none before it",
            "no acknowledged write was lost beyond what the scenario tolerates (after-snapshot)",
        ]
    );
    assert_eq!(v.phases[0].lost_tolerated, 2);
    assert_eq!(
        v.phases[0].loss_window,
        Some(("12:00:03.500".to_string(), "12:00:03.900".to_string()))
    );

    let strict = check(&history(records, events, Tolerance::default()));
    assert!(!strict.pass);
    assert_eq!(
        strict.violations,
        vec!["at the end: 2 acknowledged writes lost made after the restored capture (tolerate \"after-snapshot\" to accept): seq 3–4, acknowledged 12:00:03.500–12:00:03.900"]
    );
}

#[test]
fn a_restore_that_replaced_nothing_is_caught() {
    let v = check(&history(
        vec![ack(1, 1000), ack(2, 3500)],
        vec![
            snapshot("backup", 3000, 3050, [1]),
            restore(5000),
            read_back(7000, [1, 2]),
        ],
        after_snapshot(),
    ));
    assert!(!v.pass);
    assert_eq!(
        v.violations,
        vec!["at the end: 1 acknowledged write is present although the restored capture does not hold them (the restore did not replace the data): seq 2"]
    );
}

#[test]
fn a_write_acknowledged_before_the_snapshot_but_missing_from_it_is_never_tolerated() {
    // Also one acknowledged in the millisecond the snapshot started: it may or may not be in
    // it, and missing from it, it is not excused as made after the snapshot.
    for (done_ms, acknowledged) in [(2000, "12:00:02.000"), (3000, "12:00:03.000")] {
        let v = check(&history(
            vec![ack(1, 1000), ack(2, done_ms)],
            vec![
                snapshot("backup", 3000, 3050, [1]),
                restore(5000),
                read_back(7000, [1]),
            ],
            after_snapshot(),
        ));
        assert!(!v.pass);
        assert!(
            v.statements[0].ends_with(&format!(
                "; 1 made before it (acknowledged at {acknowledged})"
            )),
            "{:?}",
            v.statements
        );
        assert!(
            v.violations[0].contains("missing from it: seq 2"),
            "{:?}",
            v.violations
        );
    }
}

#[test]
fn a_gap_in_the_sequence_is_a_loss_with_its_window() {
    let v = check(&history(
        (1..=6).map(|s| ack(s, s * 100)).collect(),
        vec![read_back(1000, [1, 2, 5, 6])],
        Tolerance::default(),
    ));
    assert!(!v.pass);
    assert_eq!(v.phases[0].lost, 2);
    assert_eq!(
        v.phases[0].loss_window,
        Some(("12:00:00.300".to_string(), "12:00:00.400".to_string()))
    );
    assert_eq!(
        v.statements[0],
        "2 acknowledged writes lost with no procedure to explain it (acknowledged 12:00:00.300–12:00:00.400)"
    );
}

#[test]
fn a_failed_write_that_is_present_is_a_violation() {
    let v = check(&history(
        vec![ack(1, 100), failed(2, 200)],
        vec![read_back(1000, [1, 2])],
        Tolerance::default(),
    ));
    assert!(!v.pass);
    assert_eq!(
        v.violations,
        vec!["at the end: 1 write reported failed is present: seq 2"]
    );
}

#[test]
fn a_recreated_cluster_loses_what_was_written_before_unless_a_dump_brings_it_back() {
    let records = vec![ack(1, 100), ack(2, 200), ack(3, 300), ack(4, 2000)];
    let reset = LedgerEvent::Reset { at_ms: 1000 };
    let wiped = check(&history(
        records.clone(),
        vec![reset.clone(), read_back(3000, [4])],
        Tolerance {
            wiped: true,
            ..Default::default()
        },
    ));
    assert!(wiped.pass, "{wiped:?}");
    assert_eq!(
        wiped.statements[0],
        "recreating the cluster empty at 12:00:01 lost 3 acknowledged writes made before it and never restored (acknowledged 12:00:00.100–12:00:00.300)"
    );
    let dumped = check(&history(
        records,
        vec![
            LedgerEvent::Capture {
                at_ms: 260,
                started_ms: 250,
                label: "fleet".into(),
                kind: CaptureKind::Dump,
                revision: 3,
                through: "quorum-1".into(),
                seqs: SeqSet::from_seqs([1, 2]),
            },
            reset,
            LedgerEvent::Restore {
                at_ms: 2500,
                label: "fleet".into(),
                replace: false,
            },
            read_back(3000, [1, 2, 4]),
        ],
        after_snapshot(),
    ));
    assert!(dumped.pass, "{dumped:?}");
    assert_eq!(
        dumped.statements,
        vec![
            "recreating the cluster empty at 12:00:01 lost no acknowledged write made before it and never restored",
            "restore from the 12:00:00 dump `fleet` lost 1 acknowledged write made after it (acknowledged at 12:00:00.300); none before it",
            "no acknowledged write was lost beyond what the scenario tolerates (after-snapshot)",
        ]
    );
}

#[test]
fn a_procedure_run_again_loses_nothing_more_and_says_so_once() {
    let v = check(&history(
        vec![ack(1, 1000), ack(2, 3500), ack(3, 6000)],
        vec![
            snapshot("backup", 3000, 3050, [1]),
            restore(4000),
            restore(4500),
            read_back(7000, [1, 3]),
        ],
        after_snapshot(),
    ));
    assert!(v.pass, "{v:?}");
    assert_eq!(
        v.statements,
        vec![
            "restore from the 12:00:03 snapshot `backup` lost 1 acknowledged write made after it (acknowledged at 12:00:03.500); none before it",
            "no acknowledged write was lost beyond what the scenario tolerates (after-snapshot)",
        ]
    );
    let v = check(&history(
        vec![ack(1, 100), ack(2, 1500), ack(3, 3000)],
        vec![
            LedgerEvent::Reset { at_ms: 1000 },
            LedgerEvent::Reset { at_ms: 2000 },
            read_back(4000, [3]),
        ],
        Tolerance {
            wiped: true,
            ..Default::default()
        },
    ));
    assert_eq!(
        v.statements[..2],
        [
            "recreating the cluster empty at 12:00:01 lost 1 acknowledged write made before it and never restored (acknowledged at 12:00:00.100)",
            "recreating the cluster empty at 12:00:02 lost 1 acknowledged write made before it and never restored (acknowledged at 12:00:01.500)",
        ]
    );
}

#[test]
fn writes_acknowledged_just_before_a_quorum_loss_are_attributed_to_it() {
    let records = vec![ack(1, 100), ack(2, 4700), ack(3, 4950), ack(4, 9000)];
    let events = vec![
        LedgerEvent::QuorumLost {
            at_ms: 6000,
            since_ms: 5000,
        },
        read_back(10_000, [1, 2, 4]),
    ];
    let tolerant = check(&history(
        records.clone(),
        events.clone(),
        Tolerance {
            uncommitted_ms: Some(1000),
            ..Default::default()
        },
    ));
    assert!(tolerant.pass, "{tolerant:?}");
    assert_eq!(
        tolerant.statements[0],
        "losing the majority at 12:00:05 lost 1 acknowledged write made in the 1.0 s before it (acknowledged at 12:00:04.950)"
    );
    assert!(!check(&history(records, events, Tolerance::default())).pass);
}

#[test]
fn writes_finished_after_the_read_began_are_not_judged_and_a_missing_final_read_fails() {
    let v = check(&history(
        vec![ack(1, 100), ack(2, 5000)],
        vec![read_back(1000, [1])],
        Tolerance::default(),
    ));
    assert!(v.pass, "{v:?}");
    assert_eq!(v.phases[0].kept, 1);
    let none = check(&history(vec![ack(1, 100)], vec![], Tolerance::default()));
    assert!(!none.pass);
    assert_eq!(
        none.violations,
        vec!["the ledger was never read back at the end"]
    );
}

#[test]
fn an_intermediate_read_that_misses_a_write_fails_the_check_even_if_it_comes_back() {
    let mut early = read_back(500, [1]);
    if let LedgerEvent::ReadBack {
        final_read, step, ..
    } = &mut early
    {
        *final_read = false;
        *step = "read through quorum-2".into();
    }
    let v = check(&history(
        vec![ack(1, 100), ack(2, 200)],
        vec![early, read_back(1000, [1, 2])],
        Tolerance::default(),
    ));
    assert!(!v.pass);
    assert!(
        v.violations[0].starts_with("at `read through quorum-2`: 1 acknowledged write lost"),
        "{:?}",
        v.violations
    );
}

#[derive(Debug, Clone)]
enum Kind {
    Ack(bool),
    Failed,
    Indeterminate(bool),
}

#[test]
fn a_restore_that_lost_nothing_says_so() {
    let v = check(&history(
        vec![ack(1, 1000)],
        vec![
            snapshot("backup", 3000, 3050, [1]),
            restore(5000),
            read_back(7000, [1]),
        ],
        Tolerance::default(),
    ));
    assert!(v.pass, "{v:?}");
    assert_eq!(v.statements.len(), 2, "{:?}", v.statements);
    assert!(
        v.statements[0].starts_with("restore from the 12:00:03 snapshot `backup` lost no"),
        "{:?}",
        v.statements
    );
}

#[test]
fn a_read_back_that_failed_fails_the_check_and_says_when() {
    let failed_read = |at_ms, step: &str, final_read| LedgerEvent::ReadFailed {
        at_ms,
        step: step.into(),
        final_read,
        error: "etcdserver: request timed out".into(),
    };
    let v = check(&history(
        vec![ack(1, 100)],
        vec![failed_read(1000, "end of run", true)],
        Tolerance::default(),
    ));
    assert!(!v.pass);
    assert_eq!(
        v.violations,
        ["at the end: the ledger could not be read back: etcdserver: request timed out"]
    );
    assert_eq!(
        v.statements,
        ["the ledger was never read back, so nothing can be said of what was lost"]
    );
    let v = check(&history(
        vec![ack(1, 100)],
        vec![
            failed_read(500, "after the restore", false),
            read_back(1000, [1]),
        ],
        Tolerance::default(),
    ));
    assert!(!v.pass);
    assert_eq!(
        v.violations,
        ["at `after the restore`: the ledger could not be read back: etcdserver: request timed out"]
    );
}

#[test]
fn phases_keep_their_names_and_count_each_cause_of_failure() {
    let in_phase = |mut r: LedgerRecord, phase: &str| {
        r.phase = phase.into();
        r
    };
    let failure = |seq, cause| {
        record(
            seq,
            seq * 100,
            Outcome::Failed {
                cause,
                error: "refused".into(),
            },
        )
    };
    let records = vec![
        in_phase(ack(1, 100), "steady"),
        in_phase(failure(2, FailureCause::Leaderless), "outage"),
        in_phase(failure(3, FailureCause::Unreachable), "outage"),
        in_phase(failure(4, FailureCause::Unreachable), "outage"),
        in_phase(failure(5, FailureCause::Refused), "outage"),
        in_phase(ack(6, 600), "steady"),
    ];
    let phase = |at_ms, name: &str| LedgerEvent::Phase {
        at_ms,
        name: name.into(),
    };
    // `pause` lasted less than a write interval: no write was sent in it, so it is not listed.
    let events = vec![
        phase(0, "steady"),
        phase(120, "pause"),
        phase(150, "outage"),
        phase(550, "steady"),
        read_back(1000, [1, 6]),
    ];
    let v = check(&history(records, events, Tolerance::default()));
    assert!(v.pass, "{v:?}");
    let names: Vec<&str> = v.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(names, ["steady", "outage"]);
    let outage = &v.phases[1];
    assert_eq!(
        (
            outage.sent,
            outage.failed_leaderless,
            outage.failed_unreachable,
            outage.failed_other
        ),
        (4, 1, 2, 1)
    );
    assert_eq!((v.phases[0].sent, v.phases[0].kept), (2, 2));
}

#[test]
fn a_restore_judges_by_the_latest_capture_of_its_label_taken_before_it() {
    // `backup` at 3 s holds 1 and 2; `other` holds only 1; a later `backup` (after the
    // restore) holds everything. The restore brings back `backup` as of 3 s: 3 is lost after
    // it (tolerated), and 2 must be there.
    let events = vec![
        snapshot("backup", 1000, 1050, [1]),
        snapshot("backup", 3000, 3050, [1, 2]),
        snapshot("other", 3100, 3150, [1]),
        restore(5000),
        snapshot("backup", 6000, 6050, [1, 2, 3]),
        read_back(7000, [1, 2]),
    ];
    let records = vec![ack(1, 500), ack(2, 2000), ack(3, 3500)];
    let v = check(&history(records.clone(), events.clone(), after_snapshot()));
    assert!(v.pass, "{v:?}");
    assert_eq!(v.phases[0].lost_tolerated, 1);
    assert!(
        v.statements[0].starts_with("restore from the 12:00:03 snapshot `backup` lost 1"),
        "{:?}",
        v.statements
    );
    // Without 2, the restore lost a write its capture held: never tolerated.
    let mut missing = events;
    missing[5] = read_back(7000, [1]);
    let v = check(&history(records, missing, after_snapshot()));
    assert!(!v.pass, "{v:?}");
}

#[test]
fn only_writes_acknowledged_shortly_before_a_quorum_loss_and_before_it_was_seen_are_attributed() {
    let tolerant = Tolerance {
        uncommitted_ms: Some(1000),
        ..Default::default()
    };
    // Lost 2 s before the quorum loss began (outside the 1 s window), or after it was seen:
    // not the quorum loss's doing. At the window's edge, or as it was seen: attributed.
    for (done_ms, attributed) in [(3000, false), (6500, false), (4000, true), (6000, true)] {
        let v = check(&history(
            vec![ack(1, 100), ack(2, done_ms)],
            vec![
                LedgerEvent::QuorumLost {
                    at_ms: 6000,
                    since_ms: 5000,
                },
                read_back(10_000, [1]),
            ],
            tolerant.clone(),
        ));
        assert_eq!(v.pass, attributed, "acknowledged at {done_ms} ms: {v:?}");
    }
}

#[test]
fn an_event_recorded_before_a_read_in_the_same_millisecond_counts_for_it() {
    let tolerate_wiped = Tolerance {
        wiped: true,
        ..Default::default()
    };
    let v = check(&history(
        vec![ack(1, 100)],
        vec![LedgerEvent::Reset { at_ms: 1000 }, read_back(1000, [])],
        tolerate_wiped.clone(),
    ));
    assert!(v.pass, "{v:?}");
    // Recorded after the read began: the read is judged without it.
    let v = check(&history(
        vec![ack(1, 100)],
        vec![read_back(1000, []), LedgerEvent::Reset { at_ms: 1000 }],
        tolerate_wiped,
    ));
    assert!(!v.pass, "{v:?}");
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => any::<bool>().prop_map(Kind::Ack),
        1 => Just(Kind::Failed),
        1 => any::<bool>().prop_map(Kind::Indeterminate),
    ]
}

proptest! {
    /// With no procedure in the history, an acknowledged write is lost exactly when it is
    /// absent, an indeterminate one never counts either way, and the verdict follows.
    #[test]
    fn bookkeeping_without_procedures(kinds in proptest::collection::vec(kind(), 0..120)) {
        let mut records = Vec::new();
        let mut present = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let seq = i as u64 + 1;
            let done = seq * 10;
            match k {
                Kind::Ack(here) => { records.push(ack(seq, done)); if *here { present.push(seq) } }
                Kind::Failed => records.push(failed(seq, done)),
                Kind::Indeterminate(here) => { records.push(indeterminate(seq, done)); if *here { present.push(seq) } }
            }
        }
        let v = check(&history(records, vec![read_back(100_000, present)], Tolerance::default()));
        let acked_absent = kinds.iter().filter(|k| matches!(k, Kind::Ack(false))).count() as u64;
        let acked_present = kinds.iter().filter(|k| matches!(k, Kind::Ack(true))).count() as u64;
        let indeterminate = kinds.iter().filter(|k| matches!(k, Kind::Indeterminate(_))).count() as u64;
        let lost: u64 = v.phases.iter().map(|p| p.lost).sum();
        let kept: u64 = v.phases.iter().map(|p| p.kept).sum();
        let ind: u64 = v.phases.iter().map(|p| p.indeterminate).sum();
        prop_assert_eq!(lost, acked_absent);
        prop_assert_eq!(kept, acked_present);
        prop_assert_eq!(ind, indeterminate);
        prop_assert_eq!(v.pass, acked_absent == 0);
    }

    /// A restore from a snapshot loses exactly the acknowledged writes made after it, which
    /// pass only when the scenario tolerates them.
    #[test]
    fn restore_loses_what_came_after_the_snapshot(
        count in 1u64..150,
        snap_at in 0u64..2000,
        restore_after in 1u64..2000,
        step in 1u64..30,
    ) {
        let records: Vec<LedgerRecord> = (1..=count).map(|s| ack(s, s * step)).collect();
        let restore_at = snap_at + restore_after;
        let in_snapshot: Vec<u64> = records.iter().filter(|r| r.done_ms <= snap_at).map(|r| r.seq).collect();
        let after_restore: Vec<u64> = records.iter().filter(|r| r.done_ms > restore_at).map(|r| r.seq).collect();
        let expected_lost = records.iter().filter(|r| r.done_ms > snap_at && r.done_ms <= restore_at).count() as u64;
        let events = vec![
            snapshot("b", snap_at, snap_at + 1, in_snapshot.clone()),
            LedgerEvent::Restore { at_ms: restore_at, label: "b".into(), replace: true },
            read_back((count * step).max(restore_at) + 1, in_snapshot.into_iter().chain(after_restore)),
        ];
        let tolerant = check(&history(records.clone(), events.clone(), after_snapshot()));
        prop_assert!(tolerant.pass, "{:?}", tolerant);
        prop_assert_eq!(tolerant.phases[0].lost_tolerated, expected_lost);
        prop_assert_eq!(tolerant.phases[0].lost, 0);
        let strict = check(&history(records, events, Tolerance::default()));
        prop_assert_eq!(strict.pass, expected_lost == 0);
        prop_assert_eq!(strict.phases[0].lost, expected_lost);
    }

    /// Sequence numbers need not be contiguous; the loss window spans exactly the absent
    /// acknowledged writes, and the verdict is the same after a round trip through JSON.
    #[test]
    fn gaps_windows_and_offline_recheck(
        seqs in proptest::collection::btree_set(0u64..400, 1..80),
        absent in proptest::collection::vec(any::<bool>(), 80),
    ) {
        let records: Vec<LedgerRecord> = seqs.iter().map(|s| ack(*s, 1000 + s * 7)).collect();
        let present: Vec<u64> = seqs.iter().zip(&absent).filter(|(_, a)| !**a).map(|(s, _)| *s).collect();
        let lost: Vec<&LedgerRecord> = records.iter().filter(|r| !present.contains(&r.seq)).collect();
        let h = history(records.clone(), vec![read_back(10_000, present)], Tolerance::default());
        let v = check(&h);
        prop_assert_eq!(v.phases[0].lost, lost.len() as u64);
        match (lost.first(), lost.last()) {
            (Some(first), Some(last)) => {
                let w = v.phases[0].loss_window.clone().expect("a window");
                prop_assert!(w.0.ends_with(&format!("{:03}", first.done_ms % 1000)), "{:?}", w);
                prop_assert!(w.1.ends_with(&format!("{:03}", last.done_ms % 1000)), "{:?}", w);
            }
            _ => prop_assert!(v.phases[0].loss_window.is_none()),
        }
        let text = serde_json::to_string(&h).expect("json");
        let again: History = serde_json::from_str(&text).expect("parse");
        prop_assert_eq!(check(&again), v);
    }
}

#[test]
fn a_saved_history_is_rechecked_the_same_offline() {
    let h = history(
        vec![ack(1, 100), ack(2, 200)],
        vec![read_back(1000, [1])],
        Tolerance::default(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    h.write(dir.path()).expect("write");
    let again = History::read(dir.path()).expect("read");
    assert_eq!(again, h);
    assert_eq!(check(&again), check(&h));
    std::fs::write(dir.path().join(HISTORY_FILE), "{\"version\": 99}").expect("write");
    let e = History::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("history format 99"), "{e}");
}

#[test]
fn each_write_s_fate_says_whether_its_loss_was_tolerated() {
    let records = vec![ack(1, 100), ack(2, 200), ack(3, 2000)];
    let events = vec![LedgerEvent::Reset { at_ms: 1000 }, read_back(3000, [3])];
    let fates = |tolerate| write_fates(&history(records.clone(), events.clone(), tolerate));
    let tolerated = fates(Tolerance {
        wiped: true,
        ..Default::default()
    });
    assert_eq!(
        tolerated.into_iter().collect::<Vec<_>>(),
        [
            (1, WriteFate::LostTolerated),
            (2, WriteFate::LostTolerated),
            (3, WriteFate::Kept)
        ]
    );
    let untolerated = fates(Tolerance::default());
    assert_eq!(
        untolerated.into_iter().collect::<Vec<_>>(),
        [
            (1, WriteFate::Lost),
            (2, WriteFate::Lost),
            (3, WriteFate::Kept)
        ]
    );
}

#[test]
fn a_phase_is_listed_where_it_first_began_even_when_its_first_write_came_later() {
    let in_phase = |mut r: LedgerRecord, phase: &str| {
        r.phase = phase.into();
        r
    };
    let phase = |at_ms, name: &str| LedgerEvent::Phase {
        at_ms,
        name: name.into(),
    };
    // `prepare` began first but sent nothing until it ran again after `cut`.
    let records = vec![
        in_phase(ack(1, 150), "cut"),
        in_phase(ack(2, 250), "prepare"),
    ];
    let events = vec![
        phase(0, "prepare"),
        phase(100, "cut"),
        phase(200, "prepare"),
        read_back(1000, [1, 2]),
    ];
    let v = check(&history(records, events, Tolerance::default()));
    let names: Vec<&str> = v.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(names, ["prepare", "cut"]);
}
