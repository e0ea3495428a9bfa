use super::*;
use proptest::prelude::*;

fn set(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.to_string()).collect()
}

fn views(list: &[(&str, MemberView)]) -> LeaderViews {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

fn membership(voters: &[&str]) -> impl FnOnce(&str) -> Result<Membership, String> {
    let voters = set(voters);
    move |_| {
        Ok(Membership {
            voters,
            source: "the member list".into(),
            synced_followers: None,
        })
    }
}

fn down() -> MemberView {
    MemberView::Down {
        why: "terminated".into(),
    }
}

#[test]
fn a_leader_named_by_every_voter_at_its_term_is_backed() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 4)),
        ("q2", MemberView::leader_at("q2", 4)),
        ("q3", MemberView::leader_at("q2", 4)),
    ]);
    let b = backed_leader(
        &v,
        &set(&["q1", "q2", "q3"]),
        membership(&["q1", "q2", "q3"]),
    )
    .expect("backed");
    assert_eq!(b.leader, "q2");
    assert_eq!(b.term, Some(4));
    assert_eq!(b.backers, set(&["q1", "q2", "q3"]));
    assert_eq!(
        b.describe(),
        "q2 at term 4, backed by 3 of 3 configured members (q1, q2, q3)"
    );
}

#[test]
fn two_of_three_voters_are_a_majority() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 5)),
        ("q2", MemberView::leader_at("q2", 5)),
        ("q3", down()),
    ]);
    let b =
        backed_leader(&v, &set(&["q1", "q2"]), membership(&["q1", "q2", "q3"])).expect("backed");
    assert_eq!(b.backers.len(), 2);
}

/// The survivor of two terminations still remembers the terminated leader.
#[test]
fn a_dead_leader_remembered_by_a_survivor_is_no_leader() {
    let v = views(&[
        ("q1", MemberView::leader_at("q3", 2)),
        ("q2", down()),
        ("q3", down()),
    ]);
    let e = backed_leader(&v, &set(&["q1"]), membership(&["q1", "q2", "q3"])).unwrap_err();
    assert_eq!(e.failed, Failed::LeaderNotLive);
    assert_eq!(
        e.to_string(),
        "q3 is named leader but is not live (down (terminated)) (views: q1 names q3 at term 2, q2 down (terminated), q3 down (terminated))"
    );
}

/// The lone survivor of a ZooKeeper trio still says `Mode: leader`.
#[test]
fn a_lone_server_that_claims_leadership_is_a_minority() {
    let v = views(&[
        ("q1", down()),
        ("q2", down()),
        ("q3", MemberView::leader_at("q3", 1)),
    ]);
    let e = backed_leader(&v, &set(&["q3"]), membership(&["q1", "q2", "q3"])).unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(
        e.reason.starts_with(
            "q3 is backed by 1 of the 3 voters of the member list; a majority needs 2 (not backing: q1 down (terminated), q2 down (terminated))"
        ),
        "{e}"
    );
}

#[test]
fn a_one_member_cluster_is_judged_by_its_own_membership() {
    let v = views(&[("q3", MemberView::leader_at("q3", 7))]);
    let b = backed_leader(&v, &set(&["q3"]), membership(&["q3"])).expect("backed");
    assert_eq!(b.backers, set(&["q3"]));
}

#[test]
fn a_silent_live_member_blocks_agreement() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 3)),
        ("q2", MemberView::leader_at("q2", 3)),
        (
            "q3",
            MemberView::Unreachable {
                why: "timeout".into(),
            },
        ),
    ]);
    let e = backed_leader(
        &v,
        &set(&["q1", "q2", "q3"]),
        membership(&["q1", "q2", "q3"]),
    )
    .unwrap_err();
    assert_eq!(e.failed, Failed::NotEveryLiveMember);
    assert!(e.reason.contains("q3 unreachable (timeout)"), "{e}");
}

#[test]
fn live_members_naming_two_leaders_disagree() {
    let v = views(&[
        ("q1", MemberView::leader("q1")),
        ("q2", MemberView::leader("q2")),
    ]);
    let e = backed_leader(&v, &set(&["q1", "q2"]), membership(&["q1", "q2"])).unwrap_err();
    assert_eq!(e.failed, Failed::Disagree);
    assert_eq!(e.reason, "live members disagree: q1 name q1; q2 name q2");
}

#[test]
fn a_leader_that_does_not_claim_leadership_is_no_leader() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 3)),
        (
            "q2",
            MemberView::NoLeader {
                why: "term 4, no leader".into(),
            },
        ),
    ]);
    let e = backed_leader(&v, &set(&["q1", "q2"]), membership(&["q1", "q2"])).unwrap_err();
    // q2 answers "no leader": not every live member names q2.
    assert_eq!(e.failed, Failed::NotEveryLiveMember);
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 3)),
        ("q2", MemberView::leader_at("q2", 3)),
    ]);
    // q2 names itself but is not among the members asked as live: it is not live.
    let e = backed_leader(&v, &set(&["q1"]), membership(&["q1", "q2"])).unwrap_err();
    assert_eq!(e.failed, Failed::LeaderNotLive);
}

#[test]
fn backers_at_another_term_do_not_count() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 3)),
        ("q2", MemberView::leader_at("q2", 4)),
        ("q3", down()),
    ]);
    let e = backed_leader(&v, &set(&["q1", "q2"]), membership(&["q1", "q2", "q3"])).unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(e.reason.contains("q1 names q2 at term 3"), "{e}");
}

#[test]
fn a_leader_outside_the_membership_is_refused() {
    let v = views(&[
        ("q1", MemberView::leader("q4")),
        ("q4", MemberView::leader("q4")),
    ]);
    let e = backed_leader(&v, &set(&["q1", "q4"]), membership(&["q1", "q2", "q3"])).unwrap_err();
    assert_eq!(e.failed, Failed::LeaderNotAVoter);
}

#[test]
fn an_unreadable_membership_is_no_leader() {
    let v = views(&[("q1", MemberView::leader("q1"))]);
    let e =
        backed_leader(&v, &set(&["q1"]), |_| Err("connection refused".to_string())).unwrap_err();
    assert_eq!(e.failed, Failed::MembershipUnknown);
    assert!(e.reason.contains("connection refused"));
}

#[test]
fn voters_that_are_no_node_count_against_the_majority() {
    let v = views(&[
        ("q1", MemberView::leader("q1")),
        ("q2", MemberView::leader("q1")),
    ]);
    let e = backed_leader(
        &v,
        &set(&["q1", "q2"]),
        membership(&["q1", "q2", "10.0.0.8", "10.0.0.9"]),
    )
    .unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(e.reason.contains("10.0.0.8 was not asked"), "{e}");
}

#[test]
fn nothing_live_is_nothing_to_ask() {
    let e = backed_leader(&LeaderViews::new(), &BTreeSet::new(), membership(&["q1"])).unwrap_err();
    assert_eq!(e.failed, Failed::NothingToAsk);
}

fn modes(list: &[(&str, Result<Mode, String>)]) -> BTreeMap<String, Result<Mode, String>> {
    list.iter()
        .map(|(n, m)| (n.to_string(), m.clone()))
        .collect()
}

#[test]
fn zookeeper_followers_follow_the_single_leader() {
    let v = zookeeper_views(&modes(&[
        ("q1", Ok(Mode::Follower)),
        ("q2", Ok(Mode::Leader)),
        ("q3", Ok(Mode::Follower)),
    ]));
    assert_eq!(v["q1"], MemberView::leader("q2"));
    let b = backed_leader(
        &v,
        &set(&["q1", "q2", "q3"]),
        membership(&["q1", "q2", "q3"]),
    )
    .expect("backed");
    assert_eq!(b.leader, "q2");
}

#[test]
fn a_zookeeper_leader_is_backed_no_further_than_its_synced_followers() {
    let v = zookeeper_views(&modes(&[
        ("q1", Ok(Mode::Follower)),
        ("q2", Ok(Mode::Leader)),
        ("q3", Ok(Mode::Follower)),
    ]));
    let e = backed_leader(&v, &set(&["q1", "q2", "q3"]), |_| {
        Ok(Membership {
            voters: set(&["q1", "q2", "q3", "q4", "q5"]),
            source: "the ensemble q2 runs".into(),
            synced_followers: Some(1),
        })
    })
    .unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(
        e.reason.starts_with(
            "q2 leads only 1 synced voting followers by its own count; with it, 2 of the 5 voters"
        ),
        "{e}"
    );
    // One synced follower is enough in a trio: with the leader, two of three.
    let b = backed_leader(&v, &set(&["q1", "q2", "q3"]), |_| {
        Ok(Membership {
            voters: set(&["q1", "q2", "q3"]),
            source: "the ensemble q2 runs".into(),
            synced_followers: Some(1),
        })
    })
    .expect("backed");
    assert_eq!(b.leader, "q2");
}

#[test]
fn live_members_that_name_no_leader_give_no_leader() {
    let v = views(&[
        ("q1", MemberView::NoLeader { why: "503".into() }),
        ("q2", MemberView::NoLeader { why: "503".into() }),
        ("q3", down()),
    ]);
    let e = backed_leader(&v, &set(&["q1", "q2"]), membership(&["q1", "q2", "q3"])).unwrap_err();
    assert_eq!(e.failed, Failed::NoLeader);
    assert_eq!(e.reason, "no live member names a leader");
}

#[test]
fn zookeeper_servers_that_do_not_serve_name_no_leader() {
    let v = zookeeper_views(&modes(&[
        ("q1", Ok(Mode::NotServing)),
        ("q2", Ok(Mode::Follower)),
        ("q3", Err("connection refused".into())),
        ("q4", Ok(Mode::Standalone)),
    ]));
    assert_eq!(
        v["q1"],
        MemberView::NoLeader {
            why: "not serving".into()
        }
    );
    assert_eq!(
        v["q2"],
        MemberView::NoLeader {
            why: "follower of no server seen leading".into()
        }
    );
    assert!(matches!(v["q3"], MemberView::Unreachable { .. }));
    assert!(matches!(v["q4"], MemberView::NoLeader { .. }));
    let two = zookeeper_views(&modes(&[
        ("q1", Ok(Mode::Leader)),
        ("q2", Ok(Mode::Leader)),
        ("q3", Ok(Mode::Follower)),
    ]));
    assert_eq!(
        two["q3"],
        MemberView::NoLeader {
            why: "follower while several servers lead".into()
        }
    );
}

/// A view of a small cluster drawn at random: each of up to five voters is live or not, and
/// says one of a few things.
fn arb_view() -> impl Strategy<Value = MemberView> {
    prop_oneof![
        (0usize..5, prop::option::of(1u64..3)).prop_map(|(l, term)| MemberView::Leader {
            leader: format!("n{l}"),
            term
        }),
        Just(MemberView::NoLeader { why: "none".into() }),
        Just(MemberView::Unreachable {
            why: "timeout".into()
        }),
        Just(down()),
    ]
}

proptest! {
    /// Whatever the views, a leader is accepted only if it is live, names itself, and a
    /// majority of the voters — counted here independently — are live and name it at its term.
    #[test]
    fn an_accepted_leader_always_has_a_live_majority(
        voters in 1usize..6,
        assigned in prop::collection::vec((arb_view(), any::<bool>()), 5),
    ) {
        let nodes: Vec<String> = (0..voters).map(|i| format!("n{i}")).collect();
        let mut v = LeaderViews::new();
        let mut live = BTreeSet::new();
        for (node, (view, alive)) in nodes.iter().zip(assigned) {
            if alive && !matches!(view, MemberView::Down { .. }) {
                live.insert(node.clone());
            }
            v.insert(node.clone(), if alive { view } else { down() });
        }
        let voter_set: BTreeSet<String> = nodes.iter().cloned().collect();
        let result = backed_leader(&v, &live, |_| Ok(Membership { voters: voter_set.clone(), source: "test".into(), synced_followers: None }));
        if let Ok(b) = result {
            prop_assert!(live.contains(&b.leader));
            let own_term = match &v[&b.leader] {
                MemberView::Leader { leader, term } if *leader == b.leader => *term,
                other => return Err(TestCaseError::fail(format!("leader's own view is {other:?}"))),
            };
            let mut count = 0;
            for n in &nodes {
                if let Some(MemberView::Leader { leader, term }) = v.get(n) {
                    if live.contains(n) && *leader == b.leader && *term == own_term {
                        count += 1;
                    }
                }
            }
            prop_assert!(count * 2 > nodes.len(), "{count} of {} back {}", nodes.len(), b.leader);
            for n in &live {
                prop_assert_eq!(v[n].named(), Some(b.leader.as_str()));
            }
        }
    }
}

#[test]
fn giving_up_leadership_must_be_seen() {
    let none = || MemberView::NoLeader { why: "503".into() };
    let v = views(&[("m1", none()), ("m2", none()), ("m3", down())]);
    assert_eq!(
        leadership_given_up(&v).unwrap(),
        "2 of 3 answer that they know no leader (m1 no leader (503), m2 no leader (503), m3 down (terminated))"
    );
    let v = views(&[
        ("m1", none()),
        (
            "m2",
            MemberView::Unreachable {
                why: "connection refused".into(),
            },
        ),
    ]);
    let e = leadership_given_up(&v).unwrap_err();
    assert!(e.contains("m2 does not answer"), "{e}");
    assert!(e.contains("not inferred from silence"), "{e}");
    let v = views(&[("m1", down()), ("m2", down())]);
    assert!(leadership_given_up(&v)
        .unwrap_err()
        .starts_with("no live member answers"));
    let v = views(&[("m1", none()), ("m2", MemberView::leader("m1"))]);
    assert_eq!(leadership_given_up(&v).unwrap_err(), "m2 names m1");
}
