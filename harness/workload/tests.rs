use super::history::{ClientOp, OkAnswer, OpOutcome, Request};
use super::judge::known_writes;
use super::*;
use crate::consistency::watch::{Change, Segment, Watch, WatchEvent};
use crate::spec::WorkloadSettings;

fn op(client: u32, key: &str, request: Request, at: u64, outcome: OpOutcome) -> ClientOp {
    ClientOp {
        client,
        member: format!("quorum-{}", client + 1).into(),
        key: format!("/w/{key}").into(),
        request,
        call_ms: at,
        return_ms: at + 5,
        outcome,
        retry: false,
    }
}

fn ok(revision: i64, answer: OkAnswer) -> OpOutcome {
    OpOutcome::Ok { revision, answer }
}

fn history(operations: Vec<ClientOp>) -> WorkloadHistory {
    WorkloadHistory {
        version: history::WORKLOAD_VERSION,
        scenario: "s".to_string(),
        run_id: "r".to_string(),
        settings: WorkloadSettings {
            prefix: "/w/".to_string(),
            watch: false,
            ..WorkloadSettings::default()
        },
        start_revision: 1,
        operations,
        watches: Vec::new(),
        etcd: true,
        zookeeper: None,
    }
}

#[test]
fn only_writes_that_changed_something_are_known_at_their_revision() {
    let h = history(vec![
        op(
            0,
            "k0",
            Request::Put { value: 1 },
            0,
            ok(2, OkAnswer::Written),
        ),
        op(
            1,
            "k1",
            Request::Delete,
            10,
            ok(2, OkAnswer::Deleted { count: 0 }),
        ),
        op(
            0,
            "k0",
            Request::Delete,
            20,
            ok(3, OkAnswer::Deleted { count: 1 }),
        ),
        op(
            1,
            "k0",
            Request::CompareAndSet {
                expect: Some(9),
                value: 2,
            },
            30,
            ok(3, OkAnswer::Swapped { applied: false }),
        ),
        op(
            2,
            "k1",
            Request::CompareAndSet {
                expect: None,
                value: 3,
            },
            40,
            ok(4, OkAnswer::Swapped { applied: true }),
        ),
        op(
            2,
            "k2",
            Request::Put { value: 4 },
            50,
            OpOutcome::Indeterminate {
                error: "timeout".into(),
            },
        ),
    ]);
    let known = known_writes(&h);
    let flat: Vec<(i64, compact_str::CompactString, Change)> = known
        .iter()
        .map(|w| (w.revision, w.key.clone(), w.change))
        .collect();
    assert_eq!(
        flat,
        vec![
            (2, "/w/k0".into(), Change::Put { value: 1 }),
            (3, "/w/k0".into(), Change::Delete),
            (4, "/w/k1".into(), Change::Put { value: 3 }),
        ]
    );
}

#[test]
fn a_stale_read_fails_naming_the_key_and_the_write_and_a_refused_write_constrains_nothing() {
    let mut ops = vec![
        op(
            0,
            "k0",
            Request::Put { value: 1 },
            0,
            ok(2, OkAnswer::Written),
        ),
        // Refused: known not applied, so the read of 1 after it is no stale read.
        op(
            1,
            "k0",
            Request::Put { value: 2 },
            10,
            OpOutcome::Failed {
                error: "etcdserver: no leader".into(),
            },
        ),
        op(
            2,
            "k0",
            Request::Get {
                serializable: false,
            },
            20,
            ok(2, OkAnswer::Read { value: Some(1) }),
        ),
    ];
    let verdict = judge(&history(ops.clone()), DEFAULT_SEARCH_BUDGET);
    assert_eq!(verdict.checks[0].status, CheckerStatus::Pass, "{verdict:?}");
    // No serializable read was made: that checker has no evidence, and says so.
    assert_eq!(verdict.checks[1].status, CheckerStatus::Unknown);
    // The same write acknowledged: the read of 1 after it is stale.
    ops[1].outcome = ok(3, OkAnswer::Written);
    let verdict = judge(&history(ops), DEFAULT_SEARCH_BUDGET);
    assert_eq!(verdict.status(), CheckerStatus::Fail);
    let lin = &verdict.checks[0];
    assert_eq!(lin.checker, "linearizable");
    assert_eq!(lin.breaches.len(), 1);
    assert!(
        lin.breaches[0]
            .what
            .starts_with("k0: get → v1 (20–25 ms) cannot be placed"),
        "{}",
        lin.breaches[0].what
    );
    assert!(lin.breaches[0]
        .what
        .contains("written by put v2 (10–15 ms)"));
    assert_eq!((lin.breaches[0].from_ms, lin.breaches[0].to_ms), (10, 25));
}

#[test]
fn nothing_recorded_is_unknown_never_a_pass() {
    let verdict = judge(&history(Vec::new()), DEFAULT_SEARCH_BUDGET);
    assert_eq!(verdict.status(), CheckerStatus::Unknown);
    assert!(verdict.checks[0].detail.contains("nothing to judge"));
}

#[test]
fn a_history_round_trips_through_its_file() {
    let dir = std::env::temp_dir().join(format!("workload-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let h = history(vec![op(
        0,
        "k0",
        Request::Delete,
        0,
        ok(2, OkAnswer::Deleted { count: 0 }),
    )]);
    h.write(&dir).expect("write");
    assert_eq!(WorkloadHistory::read(&dir).expect("read"), h);
    std::fs::write(dir.join(WORKLOAD_FILE), "{\"version\": 99}").expect("write");
    let e = WorkloadHistory::read(&dir).expect_err("a newer layout");
    assert!(e.to_string().contains("workload history version 99"), "{e}");
    // The same layout under another version is refused by its version too.
    let mut other = h.clone();
    other.version = 98;
    other.write(&dir).expect("write");
    let e = WorkloadHistory::read(&dir).expect_err("another version");
    assert!(e.to_string().contains("workload history version 98"), "{e}");
    // This version, but not a history: malformed.
    let text = format!("{{\"version\": {}}}", history::WORKLOAD_VERSION);
    std::fs::write(dir.join(WORKLOAD_FILE), text).expect("write");
    let e = WorkloadHistory::read(&dir).expect_err("malformed");
    assert!(e.to_string().contains("not a workload history"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_serializable_read_is_judged_linearizable_only_when_the_scenario_claims_it() {
    let ops = vec![
        op(
            0,
            "k0",
            Request::Put { value: 1 },
            0,
            ok(2, OkAnswer::Written),
        ),
        op(
            0,
            "k0",
            Request::Put { value: 2 },
            10,
            ok(3, OkAnswer::Written),
        ),
        // Served by a member cut off before revision 3.
        op(
            1,
            "k0",
            Request::Get { serializable: true },
            20,
            ok(2, OkAnswer::Read { value: Some(1) }),
        ),
    ];
    let mut h = history(ops);
    let promised = judge(&h, DEFAULT_SEARCH_BUDGET);
    assert_eq!(
        promised.checks[0].status,
        CheckerStatus::Pass,
        "{promised:?}"
    );
    assert_eq!(promised.checks[1].status, CheckerStatus::Pass);
    h.settings.serializable_claimed_linearizable = true;
    let claimed = judge(&h, DEFAULT_SEARCH_BUDGET);
    assert_eq!(claimed.checks[0].status, CheckerStatus::Fail);
    assert!(claimed.checks[0].breaches[0]
        .what
        .contains("get → v1 (20–25 ms)"));
}

#[test]
fn the_watches_are_waited_for_up_to_the_last_write_that_changed_something() {
    let operations = vec![
        op(
            0,
            "k1",
            Request::Put { value: 1 },
            10,
            ok(5, OkAnswer::Written),
        ),
        op(
            1,
            "k2",
            Request::Delete,
            20,
            ok(9, OkAnswer::Deleted { count: 0 }),
        ),
        op(
            2,
            "k3",
            Request::CompareAndSet {
                expect: None,
                value: 2,
            },
            30,
            ok(7, OkAnswer::Swapped { applied: true }),
        ),
        op(
            3,
            "k1",
            Request::Get {
                serializable: false,
            },
            40,
            ok(11, OkAnswer::Read { value: Some(1) }),
        ),
    ];
    // The delete of an absent key and the read carry later header revisions, but no event.
    assert_eq!(clients::last_acknowledged_write(&operations), Some(7));
    assert_eq!(clients::last_acknowledged_write(&[]), None);
    let behind = clients::CatchUp::Behind {
        revision: 7,
        lagging: vec![("quorum-3".to_string(), 6)],
    };
    assert_eq!(
        behind.to_string(),
        "watches had not delivered revision 7, the last acknowledged write, within 10 s of the clients stopping: on quorum-3 at revision 5"
    );
}

#[test]
fn a_watch_begun_again_after_a_compaction_is_complete_only_when_the_scenario_claims_it() {
    let ops: Vec<ClientOp> = (0..5)
        .map(|i| {
            op(
                0,
                "k0",
                Request::Put { value: i + 1 },
                i * 10,
                ok(i as i64 + 2, OkAnswer::Written),
            )
        })
        .collect();
    let event = |revision: i64| WatchEvent {
        revision,
        key: "/w/k0".into(),
        change: Change::Put {
            value: revision as u64 - 1,
        },
        at_ms: revision as u64 * 10,
    };
    let record = |from: i64, revisions: &[i64]| Watch {
        member: "quorum-3".to_string(),
        client: Some(2),
        begun_at_compaction: (from > 2).then_some(from),
        segments: vec![Segment {
            from_revision: from,
            events: revisions.iter().map(|r| event(*r)).collect(),
        }],
    };
    // Client 2's watch delivered 2 and 3, was compacted away at 5, and began again there.
    let mut h = history(ops);
    h.settings.watch = true;
    h.watches = vec![record(2, &[2, 3]), record(5, &[5, 6])];
    let watch_check = |h: &WorkloadHistory| {
        judge(h, DEFAULT_SEARCH_BUDGET)
            .checks
            .into_iter()
            .find(|c| c.checker == "watch guarantees")
            .expect("judged")
    };
    assert_eq!(watch_check(&h).status, CheckerStatus::Pass);
    h.settings.compacted_watch_claimed_complete = true;
    let claimed = watch_check(&h);
    assert_eq!(claimed.status, CheckerStatus::Fail, "{claimed:?}");
    assert!(
        claimed
            .breaches
            .iter()
            .any(|b| b.what.contains("revision 4")),
        "{claimed:?}"
    );
}

#[test]
fn a_retried_put_may_apply_twice_but_not_when_counted_as_one_write() {
    let unknown = || OpOutcome::Indeterminate {
        error: "no answer within 100 ms".to_string(),
    };
    let mut retry = op(0, "k0", Request::Put { value: 18 }, 110, unknown());
    retry.retry = true;
    let ops = vec![
        op(0, "k0", Request::Put { value: 18 }, 0, unknown()),
        retry,
        op(
            1,
            "k0",
            Request::Put { value: 19 },
            120,
            ok(3, OkAnswer::Written),
        ),
        // Reads of 18, 19 and 18 again: two writes of 18 explain them, one does not.
        op(
            1,
            "k0",
            Request::Get {
                serializable: false,
            },
            200,
            ok(4, OkAnswer::Read { value: Some(18) }),
        ),
    ];
    let event = |revision: i64, value: u64| WatchEvent {
        revision,
        key: "/w/k0".into(),
        change: Change::Put { value },
        at_ms: 100 + revision as u64 * 10,
    };
    let mut h = history(ops);
    h.settings.watch = true;
    h.watches = vec![Watch {
        member: "quorum-2".to_string(),
        client: Some(1),
        begun_at_compaction: None,
        segments: vec![Segment {
            from_revision: 2,
            events: vec![event(2, 18), event(3, 19), event(4, 18)],
        }],
    }];
    let check = |h: &WorkloadHistory, checker: &str| {
        judge(h, DEFAULT_SEARCH_BUDGET)
            .checks
            .into_iter()
            .find(|c| c.checker == checker)
            .expect("judged")
    };
    assert_eq!(check(&h, "watch guarantees").status, CheckerStatus::Pass);
    assert_eq!(check(&h, "linearizable").status, CheckerStatus::Pass);
    h.settings.retried_put_counted_as_one = true;
    let watched = check(&h, "watch guarantees");
    assert_eq!(watched.status, CheckerStatus::Fail, "{watched:?}");
    assert_eq!(
        watched.breaches[0].what,
        "put /w/k0 v18 took effect 2 times, at revisions 2, 4, but the history counts it sent once"
    );
    assert_eq!(watched.breaches[0].from_ms, 140);
}
