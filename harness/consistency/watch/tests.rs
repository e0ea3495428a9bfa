use super::*;
use proptest::prelude::*;

fn put(revision: i64, key: &str, value: u64, at_ms: u64) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.into(),
        change: Change::Put { value },
        at_ms,
    }
}

/// Writes at revisions 2, 3 and 4; revision 4 is a transaction on two keys.
fn known() -> (KnownWrites, Attempted) {
    let mut known = KnownWrites::new();
    known.insert(2, [("k1".into(), Change::Put { value: 10 })].into());
    known.insert(3, [("k2".into(), Change::Put { value: 11 })].into());
    known.insert(
        4,
        [
            ("k1".into(), Change::Put { value: 12 }),
            ("k2".into(), Change::Put { value: 13 }),
        ]
        .into(),
    );
    let attempted = attempted(&known);
    (known, attempted)
}

fn watch(segments: Vec<(i64, Vec<WatchEvent>)>) -> Watch {
    Watch {
        client: None,
        begun_at_compaction: None,
        member: "quorum-2".to_string(),
        segments: segments
            .into_iter()
            .map(|(from_revision, events)| Segment {
                from_revision,
                events,
            })
            .collect(),
    }
}

fn complete() -> Vec<WatchEvent> {
    vec![
        put(2, "k1", 10, 100),
        put(3, "k2", 11, 110),
        put(4, "k1", 12, 120),
        put(4, "k2", 13, 120),
    ]
}

#[test]
fn a_complete_watch_and_one_resumed_where_it_left_off_break_nothing() {
    let (known, attempted) = known();
    assert_eq!(
        check_watch(&watch(vec![(2, complete())]), &known, &attempted),
        vec![]
    );
    let events = complete();
    let resumed = watch(vec![(2, events[..2].to_vec()), (4, events[2..].to_vec())]);
    assert_eq!(check_watch(&resumed, &known, &attempted), vec![]);
}

#[test]
fn a_watch_that_goes_back_names_the_member_the_revisions_and_the_moment() {
    let (known, attempted) = known();
    let events = complete();
    let back = watch(vec![(2, events.clone()), (3, vec![put(3, "k2", 11, 300)])]);
    let broke = check_watch(&back, &known, &attempted);
    assert!(broke.contains(&WatchBroke::WentBack {
        member: "quorum-2".into(),
        from: 4,
        to: 3,
        at_ms: 300
    }));
    assert!(broke.iter().any(|b| b.to_string()
        == "the watch on quorum-2 went back from revision 4 to 3 (received at 300 ms)"));
    assert!(broke
        .iter()
        .any(|b| matches!(b, WatchBroke::Repeated { first: 3, .. })));
}

#[test]
fn a_gap_a_bad_resume_a_torn_transaction_and_an_invented_event_are_each_named() {
    let (known, attempted) = known();
    let events = complete();
    let gap = watch(vec![(
        2,
        vec![events[0].clone(), events[2].clone(), events[3].clone()],
    )]);
    assert_eq!(
        check_watch(&gap, &known, &attempted)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["the watch on quorum-2 missed revision 3 (k2), between revisions 2 and 4 it did deliver"]
    );
    let bad_resume = watch(vec![(2, events[..1].to_vec()), (3, events[2..].to_vec())]);
    assert_eq!(
        check_watch(&bad_resume, &known, &attempted)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["the watch on quorum-2 reconnected from revision 3 but resumed at 4, skipping revision 3"]
    );
    let torn = watch(vec![(2, events[..3].to_vec())]);
    assert!(matches!(
        check_watch(&torn, &known, &attempted).as_slice(),
        [WatchBroke::Torn {
            revision: 4,
            got: 1,
            wrote: 2,
            ..
        }]
    ));
    let mut invented = events.clone();
    invented.push(put(5, "k1", 99, 200));
    assert!(matches!(
        check_watch(&watch(vec![(2, invented)]), &known, &attempted).as_slice(),
        [WatchBroke::Invented { revision: 5, .. }]
    ));
}

/// A history of writes (revision r writes one or two keys) and a watch that delivered every
/// one of them in order, over connections that each resume where the last left off.
fn arb_kept() -> impl Strategy<Value = (KnownWrites, Watch)> {
    (
        proptest::collection::vec(any::<bool>(), 1..12),
        proptest::collection::vec(any::<bool>(), 12),
    )
        .prop_map(|(pairs, cuts)| {
            let mut known = KnownWrites::new();
            let mut events = Vec::new();
            let mut value = 100;
            for (i, pair) in pairs.iter().enumerate() {
                let revision = i as i64 + 2;
                let keys: &[&str] = if *pair { &["a", "b"] } else { &["a"] };
                let mut writes = Vec::new();
                for key in keys {
                    value += 1;
                    writes.push(((*key).into(), Change::Put { value }));
                    events.push(put(revision, key, value, revision as u64 * 10));
                }
                known.insert(revision, writes);
            }
            let mut segments = vec![Segment {
                from_revision: 2,
                events: Vec::new(),
            }];
            let mut previous = None;
            for event in events {
                let new_revision = previous != Some(event.revision);
                if new_revision && previous.is_some() && cuts[event.revision as usize % cuts.len()]
                {
                    segments.push(Segment {
                        from_revision: event.revision,
                        events: Vec::new(),
                    });
                }
                previous = Some(event.revision);
                if let Some(s) = segments.last_mut() {
                    s.events.push(event);
                }
            }
            (
                known,
                Watch {
                    client: None,
                    begun_at_compaction: None,
                    member: "quorum-1".into(),
                    segments,
                },
            )
        })
}

fn attempted(known: &KnownWrites) -> Attempted {
    known.iter().map(|w| (w.key.clone(), w.change)).collect()
}

#[test]
fn a_delete_whose_answer_was_lost_is_no_invention_but_one_never_attempted_is() {
    let (known, mut attempted) = known();
    let mut events = complete();
    events.push(WatchEvent {
        revision: 5,
        key: "k2".into(),
        change: Change::Delete,
        at_ms: 130,
    });
    let deleted = watch(vec![(2, events)]);
    assert!(matches!(
        check_watch(&deleted, &known, &attempted).as_slice(),
        [WatchBroke::Invented { revision: 5, .. }]
    ));
    // A client tried to delete k2 and never heard back: the history knows no revision for it.
    attempted.insert("k2".into(), Change::Delete);
    assert_eq!(check_watch(&deleted, &known, &attempted), vec![]);
}

proptest! {
    #[test]
    fn a_watch_that_kept_every_guarantee_breaks_none((known, watch) in arb_kept()) {
        prop_assert_eq!(check_watch(&watch, &known, &attempted(&known)), vec![]);
    }

    #[test]
    fn losing_any_event_but_the_last_revisions_or_repeating_any_is_caught(
        (known, watch) in arb_kept(),
        pick in any::<prop::sample::Index>(),
        repeat in any::<bool>(),
    ) {
        let last = known.last_revision().unwrap_or_default();
        let mut broken = watch.clone();
        let positions: Vec<(usize, usize)> = broken
            .segments
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| (0..seg.events.len()).map(move |e| (s, e)))
            .filter(|&(s, e)| repeat || watch.segments[s].events[e].revision < last)
            .collect();
        prop_assume!(!positions.is_empty());
        let (s, e) = positions[pick.index(positions.len())];
        if repeat {
            let again = broken.segments[s].events[e].clone();
            broken.segments[s].events.push(again);
        } else {
            broken.segments[s].events.remove(e);
        }
        prop_assert!(!check_watch(&broken, &known, &attempted(&known)).is_empty());
    }
}

#[test]
fn a_connection_that_starts_before_the_revision_it_asked_for_is_named_and_judged_without_panic() {
    let (known, attempted) = known();
    let events = complete();
    // Resumed from revision 4 but delivered revision 3 first (a member restored from an older
    // snapshot serving the watch).
    let early = watch(vec![(2, events[..2].to_vec()), (4, events[1..].to_vec())]);
    let broke = check_watch(&early, &known, &attempted);
    assert!(
        broke.iter().any(|b| matches!(
            b,
            WatchBroke::BeforeStart {
                from: 4,
                got: 3,
                ..
            }
        )),
        "{broke:?}"
    );
    assert!(broke
        .iter()
        .any(|b| b.to_string()
            == "the watch on quorum-2 asked to start at revision 4 and delivered revision 3 first (received at 110 ms)"));
    // A first connection that delivers only revisions below its start.
    let only_early = watch(vec![(5, events[..1].to_vec())]);
    assert!(matches!(
        check_watch(&only_early, &known, &attempted).as_slice(),
        [WatchBroke::BeforeStart {
            from: 5,
            got: 2,
            ..
        }]
    ));
}

fn arb_event() -> impl Strategy<Value = WatchEvent> {
    (0i64..8, 0usize..3, 0u64..20, any::<bool>()).prop_map(|(revision, k, value, delete)| {
        WatchEvent {
            revision,
            key: format!("k{k}").into(),
            change: if delete {
                Change::Delete
            } else {
                Change::Put { value }
            },
            at_ms: revision as u64 * 10,
        }
    })
}

proptest! {
    /// Whatever a server delivers — out of order, before the start, twice — the check answers
    /// with what broke; it never panics (a harness that crashes on a broken server hides it).
    #[test]
    fn any_delivery_is_judged_without_panic(
        segments in proptest::collection::vec(
            (0i64..8, proptest::collection::vec(arb_event(), 0..6)),
            0..4,
        ),
    ) {
        let (known, attempted) = known();
        let _ = check_watch(&watch(segments), &known, &attempted);
    }
}

#[test]
fn writes_missed_in_a_row_are_one_breach_and_each_gap_another() {
    let mut known = KnownWrites::new();
    for r in 2..=12 {
        known.insert(
            r,
            vec![(
                format!("k{}", r % 6).into(),
                Change::Put { value: r as u64 },
            )],
        );
    }
    let attempted = attempted(&known);
    let at = |r: i64| put(r, &format!("k{}", r % 6), r as u64, r as u64 * 10);
    // Delivered 2, 3, 9 and 12: revisions 4 to 8 missed in one run, 10 and 11 in another.
    let gappy = watch(vec![(2, vec![at(2), at(3), at(9), at(12)])]);
    assert_eq!(
        check_watch(&gappy, &known, &attempted)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "the watch on quorum-2 missed 5 writes, revisions 4 to 8 (k4, k5, k0, k1, …), between revisions 3 and 9 it did deliver",
            "the watch on quorum-2 missed 2 writes, revisions 10 to 11 (k4, k5), between revisions 9 and 12 it did deliver",
        ]
    );
}

#[test]
fn a_watch_begun_at_a_compaction_may_lack_the_deletes_compacted_with_their_tombstones() {
    let mut known = KnownWrites::new();
    known.insert(5, vec![("k1".into(), Change::Delete)]);
    known.insert(6, vec![("k2".into(), Change::Put { value: 20 })]);
    let tried = attempted(&known);
    let mut begun = watch(vec![(5, vec![put(6, "k2", 20, 60)])]);
    // Without knowing it began at the compaction, the delete at 5 is a skip.
    assert_eq!(check_watch(&begun, &known, &tried).len(), 1);
    begun.begun_at_compaction = Some(5);
    assert_eq!(check_watch(&begun, &known, &tried), vec![]);
    // A put at the compacted revision is kept by the compaction: it must come.
    let mut kept = KnownWrites::new();
    kept.insert(5, vec![("k1".into(), Change::Put { value: 19 })]);
    kept.insert(6, vec![("k2".into(), Change::Put { value: 20 })]);
    assert_eq!(check_watch(&begun, &kept, &attempted(&kept)).len(), 1);
}
