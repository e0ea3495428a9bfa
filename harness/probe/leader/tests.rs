use super::*;
use crate::probe::zookeeper::Mode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn set(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.to_string()).collect()
}

fn views(list: &[(&str, MemberView)]) -> LeaderViews {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

fn membership(voters: &[&str]) -> impl FnOnce(&str) -> Result<Membership, MembershipUnread> {
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

fn silent() -> MemberView {
    MemberView::Unreachable {
        why: "no answer within 1000 ms".into(),
    }
}

fn majority(v: &LeaderViews, voters: &[&str]) -> Result<Backed, NoLeader> {
    backed_leader(v, Agreement::Majority, membership(voters))
}

#[test]
fn a_leader_named_by_every_voter_at_its_term_is_backed() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 4)),
        ("q2", MemberView::leader_at("q2", 4)),
        ("q3", MemberView::leader_at("q2", 4)),
    ]);
    let b = majority(&v, &["q1", "q2", "q3"]).expect("backed");
    assert_eq!(b.leader, "q2");
    assert_eq!(b.term, Some(4));
    assert_eq!(b.backers, set(&["q1", "q2", "q3"]));
    assert_eq!(
        b.describe(),
        "q2 at term 4, backed by 3 of 3 configured members (q1, q2, q3)"
    );
    let all = backed_leader(&v, Agreement::All, membership(&["q1", "q2", "q3"]));
    assert_eq!(all.expect("backed by all").leader, "q2");
}

/// Issue case 1: five ZooKeeper servers, two followers killed; three serve and follow.
#[test]
fn members_that_do_not_answer_neither_block_nor_count() {
    let v = views(&[
        (
            "q1",
            MemberView::Down {
                why: "connection refused".into(),
            },
        ),
        ("q2", MemberView::leader_at("q3", 2)),
        ("q3", MemberView::leader_at("q3", 2)),
        ("q4", silent()),
        ("q5", MemberView::leader_at("q3", 2)),
    ]);
    let b = majority(&v, &["q1", "q2", "q3", "q4", "q5"]).expect("backed");
    assert_eq!(b.backers, set(&["q2", "q3", "q5"]));
    assert_eq!(
        b.describe(),
        "q3 at term 2, backed by 3 of 5 configured members (q2, q3, q5); not answering: q1 (down: connection refused), q4 (no answer within 1000 ms)"
    );
    // Asking for every member fails while any is down, and names them.
    let e = backed_leader(
        &v,
        Agreement::All,
        membership(&["q1", "q2", "q3", "q4", "q5"]),
    )
    .unwrap_err();
    assert_eq!(e.failed, Failed::NotEveryMember);
    assert!(
        e.reason.starts_with("q3 at term 2 is backed by 3 of the 5 voters, but not named by every member: q1 down (connection refused), q4 not answering"),
        "{e}"
    );
}

/// Issue case 2: the old etcd leader cut off in a minority still remembers its old term.
#[test]
fn an_older_leader_named_by_a_cut_off_member_does_not_block() {
    let v = views(&[
        ("q1", MemberView::leader_at("q1", 7)),
        ("q2", MemberView::leader_at("q2", 6)),
        ("q3", MemberView::leader_at("q1", 7)),
    ]);
    let b = majority(&v, &["q1", "q2", "q3"]).expect("backed");
    assert_eq!(b.leader, "q1");
    assert_eq!(
        b.others,
        [("q2".to_string(), "names q2 at term 6".to_string())].into()
    );
    // The cut-off old leader is never the one accepted, whatever a step expects of it.
    assert_ne!(b.leader, "q2");
}

#[test]
fn two_claims_at_one_term_are_two_leaders() {
    let v = views(&[
        ("q1", MemberView::leader_at("q1", 5)),
        ("q2", MemberView::leader_at("q1", 5)),
        ("q3", MemberView::leader_at("q3", 5)),
        ("q4", MemberView::leader_at("q3", 5)),
        ("q5", MemberView::leader_at("q1", 5)),
    ]);
    let e = majority(&v, &["q1", "q2", "q3", "q4", "q5"]).unwrap_err();
    assert_eq!(e.failed, Failed::TwoLeaders);
    assert_eq!(
        e.reason,
        "two leaders at term 5: q1 and q3 each claim leadership"
    );
}

#[test]
fn a_member_naming_another_leader_at_a_later_term_blocks() {
    // q3 names q2 at term 6 while q1 claims term 5 with a majority: q1 is deposed.
    let v = views(&[
        ("q1", MemberView::leader_at("q1", 5)),
        ("q2", MemberView::leader_at("q1", 5)),
        ("q3", MemberView::leader_at("q2", 6)),
    ]);
    let e = majority(&v, &["q1", "q2", "q3"]).unwrap_err();
    assert_eq!(e.failed, Failed::Disagree);
    assert_eq!(
        e.reason,
        "q1 claims leadership at term 5, but q3 names q2 at term 6"
    );
    // Naming another leader at the same term blocks too; so does one whose term is unknown.
    let v = views(&[
        ("q1", MemberView::leader_at("q1", 5)),
        ("q2", MemberView::leader_at("q1", 5)),
        ("q3", MemberView::leader("q2")),
    ]);
    assert_eq!(
        majority(&v, &["q1", "q2", "q3"]).unwrap_err().reason,
        "q1 claims leadership at term 5, but q3 names q2"
    );
    // And the leader named at a later term than its own claim is a stale claim.
    let v = views(&[
        ("q1", MemberView::leader_at("q1", 5)),
        ("q2", MemberView::leader_at("q1", 5)),
        ("q3", MemberView::leader_at("q1", 8)),
    ]);
    assert_eq!(
        majority(&v, &["q1", "q2", "q3"]).unwrap_err().reason,
        "q1 claims leadership at term 5, but q3 names it at term 8, later than its own claim"
    );
}

#[test]
fn masters_without_terms_that_name_two_leaders_block() {
    let v = views(&[
        ("m1", MemberView::leader("m1")),
        ("m2", MemberView::leader("m1")),
        ("m3", MemberView::leader("m2")),
    ]);
    let e = majority(&v, &["m1", "m2", "m3"]).unwrap_err();
    assert_eq!(e.failed, Failed::Disagree);
    let v = views(&[
        ("m1", MemberView::leader("m1")),
        ("m2", MemberView::leader("m2")),
    ]);
    assert_eq!(
        majority(&v, &["m1", "m2"]).unwrap_err().failed,
        Failed::TwoLeaders
    );
}

/// The survivor of two terminations still remembers the terminated leader.
#[test]
fn a_dead_leader_remembered_by_a_survivor_is_no_leader() {
    let v = views(&[
        ("q1", MemberView::leader_at("q3", 2)),
        ("q2", down()),
        ("q3", down()),
    ]);
    let e = majority(&v, &["q1", "q2", "q3"]).unwrap_err();
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
    let e = majority(&v, &["q1", "q2", "q3"]).unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(
        e.reason.starts_with(
            "q3 is backed by 1 of the 3 voters of the member list; a majority needs 2 (not backing: q1 down (terminated), q2 down (terminated))"
        ),
        "{e}"
    );
}

/// A majority cut off: the minority's leader answers, the rest are silent.
#[test]
fn a_leader_whose_majority_is_cut_off_is_no_leader() {
    let v = views(&[
        ("q1", MemberView::leader_at("q1", 3)),
        ("q2", MemberView::leader_at("q1", 3)),
        ("q3", silent()),
        ("q4", silent()),
        ("q5", silent()),
    ]);
    let e = majority(&v, &["q1", "q2", "q3", "q4", "q5"]).unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(
        e.reason.starts_with("q1 is backed by 2 of the 5 voters"),
        "{e}"
    );
}

#[test]
fn a_one_member_cluster_is_judged_by_its_own_membership() {
    let v = views(&[("q3", MemberView::leader_at("q3", 7))]);
    let b = majority(&v, &["q3"]).expect("backed");
    assert_eq!(b.backers, set(&["q3"]));
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
    let e = majority(&v, &["q1", "q2"]).unwrap_err();
    assert_eq!(e.failed, Failed::LeaderDoesNotClaim);
    assert_eq!(
        e.reason,
        "q2 is named leader but does not claim leadership itself (no leader (term 4, no leader))"
    );
    // A paused leader still named by its followers is not live.
    let v = views(&[("q1", MemberView::leader_at("q2", 3)), ("q2", silent())]);
    let e = majority(&v, &["q1", "q2"]).unwrap_err();
    assert_eq!(e.failed, Failed::LeaderNotLive);
}

#[test]
fn backers_at_another_term_do_not_count() {
    let v = views(&[
        ("q1", MemberView::leader_at("q2", 3)),
        ("q2", MemberView::leader_at("q2", 4)),
        ("q3", down()),
    ]);
    let e = majority(&v, &["q1", "q2", "q3"]).unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(e.reason.contains("q1 names q2 at term 3"), "{e}");
}

#[test]
fn a_leader_outside_the_membership_is_refused() {
    let v = views(&[
        ("q1", MemberView::leader("q4")),
        ("q4", MemberView::leader("q4")),
    ]);
    let e = majority(&v, &["q1", "q2", "q3"]).unwrap_err();
    assert_eq!(e.failed, Failed::LeaderNotAVoter);
}

#[test]
fn an_unreadable_membership_is_no_leader() {
    let v = views(&[("q1", MemberView::leader("q1"))]);
    let e = backed_leader(&v, Agreement::Majority, |_| {
        Err(MembershipUnread::NoAnswer(NoAnswer {
            silence: Silence::Refused,
            detail: "connection refused".to_string(),
        }))
    })
    .unwrap_err();
    assert_eq!(e.failed, Failed::MembershipUnknown);
    assert!(e.reason.contains("connection refused"));
}

#[test]
fn voters_that_are_no_node_count_against_the_majority() {
    let v = views(&[
        ("q1", MemberView::leader("q1")),
        ("q2", MemberView::leader("q1")),
    ]);
    let e = majority(&v, &["q1", "q2", "10.0.0.8", "10.0.0.9"]).unwrap_err();
    assert_eq!(e.failed, Failed::NoMajority);
    assert!(e.reason.contains("10.0.0.8 was not asked"), "{e}");
}

#[test]
fn nothing_that_answers_is_nothing_to_ask() {
    let e = majority(&LeaderViews::new(), &["q1"]).unwrap_err();
    assert_eq!(e.failed, Failed::NothingToAsk);
    let v = views(&[("q1", down()), ("q2", silent())]);
    assert_eq!(
        majority(&v, &["q1", "q2"]).unwrap_err().failed,
        Failed::NothingToAsk
    );
}

#[test]
fn members_that_name_no_leader_give_no_leader() {
    let v = views(&[
        ("q1", MemberView::NoLeader { why: "503".into() }),
        ("q2", MemberView::NoLeader { why: "503".into() }),
        ("q3", down()),
    ]);
    let e = majority(&v, &["q1", "q2", "q3"]).unwrap_err();
    assert_eq!(e.failed, Failed::NoLeader);
    assert_eq!(e.reason, "no member that answers names a leader");
}

fn zk(mode: Mode, epoch: Option<u64>, follows: Option<u64>) -> Result<ZookeeperAnswer, MemberView> {
    Ok(ZookeeperAnswer {
        mode,
        epoch,
        follows,
    })
}

fn zk_views(list: Vec<(&str, Result<ZookeeperAnswer, MemberView>)>) -> LeaderViews {
    let answers: BTreeMap<String, Result<ZookeeperAnswer, MemberView>> =
        list.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
    zookeeper_views(&answers, |id| Some(format!("q{id}")))
}

#[test]
fn zookeeper_followers_name_whom_their_admin_server_says_they_follow() {
    // q5, the old leader, is cut off with q4 and still leads at epoch 1; the majority moved
    // to q3 at epoch 2.
    let v = zk_views(vec![
        ("q1", zk(Mode::Follower, None, Some(3))),
        ("q2", zk(Mode::Follower, None, Some(3))),
        ("q3", zk(Mode::Leader, Some(2), None)),
        ("q4", zk(Mode::Follower, None, Some(5))),
        ("q5", zk(Mode::Leader, Some(1), None)),
    ]);
    assert_eq!(v["q1"], MemberView::leader_at("q3", 2));
    assert_eq!(v["q4"], MemberView::leader_at("q5", 1));
    let b = majority(&v, &["q1", "q2", "q3", "q4", "q5"]).expect("backed");
    assert_eq!(b.leader, "q3");
    assert_eq!(b.backers, set(&["q1", "q2", "q3"]));
}

#[test]
fn zookeeper_followers_without_an_admin_server_follow_the_single_leader() {
    let v = zk_views(vec![
        ("q1", zk(Mode::Follower, None, None)),
        ("q2", zk(Mode::Leader, Some(1), None)),
        ("q3", zk(Mode::Follower, None, None)),
    ]);
    assert_eq!(v["q1"], MemberView::leader_at("q2", 1));
    let two = zk_views(vec![
        ("q1", zk(Mode::Leader, Some(1), None)),
        ("q2", zk(Mode::Leader, Some(2), None)),
        ("q3", zk(Mode::Follower, None, None)),
    ]);
    assert!(matches!(two["q3"], MemberView::NoLeader { .. }));
}

#[test]
fn a_zookeeper_leader_is_backed_no_further_than_its_synced_followers() {
    let v = zk_views(vec![
        ("q1", zk(Mode::Follower, None, Some(2))),
        ("q2", zk(Mode::Leader, Some(1), None)),
        ("q3", zk(Mode::Follower, None, Some(2))),
    ]);
    let e = backed_leader(&v, Agreement::Majority, |_| {
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
    let b = backed_leader(&v, Agreement::Majority, |_| {
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
fn zookeeper_servers_that_do_not_serve_name_no_leader() {
    let v = zk_views(vec![
        ("q1", zk(Mode::NotServing, None, None)),
        ("q2", zk(Mode::Follower, None, None)),
        ("q3", Err(silent())),
        ("q4", zk(Mode::Standalone, None, None)),
    ]);
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
    assert_eq!(v["q3"], silent());
    assert!(matches!(v["q4"], MemberView::NoLeader { .. }));
}

/// A view of a small cluster drawn at random: a leader named at a term, no leader, or silence.
fn arb_view() -> impl Strategy<Value = MemberView> {
    prop_oneof![
        4 => (0usize..5, prop::option::weighted(0.9, 1u64..4)).prop_map(|(l, term)| MemberView::Leader {
            leader: format!("n{l}"),
            term
        }),
        1 => Just(MemberView::NoLeader { why: "none".into() }),
        1 => Just(silent()),
        1 => Just(down()),
    ]
}

/// A drawn cluster: up to five voters, about half of them naming one leader at one term (the
/// leader itself among them, most of the time), the others saying anything at all.
fn arb_cluster() -> impl Strategy<Value = (usize, Vec<MemberView>)> {
    (
        1usize..6,
        0usize..5,
        1u64..4,
        prop::collection::vec((any::<bool>(), arb_view()), 5),
    )
        .prop_map(|(voters, leader, term, drawn)| {
            let leader = leader % voters;
            let views = drawn
                .into_iter()
                .enumerate()
                .map(|(i, (backs, other))| {
                    if backs || i == leader {
                        MemberView::leader_at(format!("n{leader}"), term)
                    } else {
                        other
                    }
                })
                .collect();
            (voters, views)
        })
}

/// The rule stated the other way round, by brute force over every node: `n` leads exactly
/// when it names itself at some term `t`; at least `voters / 2 + 1` voters name `n` at `t`;
/// and no answering member names anyone else at a term that is not known to be below `t`, or
/// names `n` at a term known to be above `t`.
fn oracle(v: &LeaderViews, voters: &[String], all: bool) -> Option<(String, Option<u64>)> {
    let answering =
        |x: &MemberView| matches!(x, MemberView::Leader { .. } | MemberView::NoLeader { .. });
    let mut found = Vec::new();
    for n in voters {
        let Some(MemberView::Leader { leader, term: t }) = v.get(n) else {
            continue;
        };
        if leader != n {
            continue;
        }
        let naming = voters
            .iter()
            .filter(|x| {
                v.get(*x)
                    == Some(&MemberView::Leader {
                        leader: n.clone(),
                        term: *t,
                    })
            })
            .count();
        let below = |a: Option<u64>| match (a, t) {
            (Some(a), Some(t)) => a < *t,
            _ => false,
        };
        let above = |a: Option<u64>| match (a, t) {
            (Some(a), Some(t)) => a > *t,
            _ => false,
        };
        let contested = v.values().filter(|x| answering(x)).any(|x| match x {
            MemberView::Leader { leader: m, term: u } => {
                (m != n && !below(*u)) || (m == n && above(*u))
            }
            _ => false,
        });
        let everyone = voters.iter().all(|x| {
            v.get(x)
                == Some(&MemberView::Leader {
                    leader: n.clone(),
                    term: *t,
                })
        });
        if naming > voters.len() / 2 && !contested && (!all || everyone) {
            found.push((n.clone(), *t));
        }
    }
    assert!(found.len() <= 1, "two leaders by the oracle: {found:?}");
    found.pop()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The rule agrees with the brute-force oracle on every drawn cluster.
    #[test]
    fn the_rule_agrees_with_a_brute_force_oracle(
        (voters, assigned) in prop_oneof![arb_cluster(), (1usize..6, prop::collection::vec(arb_view(), 5))],
        all in any::<bool>(),
    ) {
        let nodes: Vec<String> = (0..voters).map(|i| format!("n{i}")).collect();
        let v: LeaderViews = nodes.iter().cloned().zip(assigned).collect();
        let voter_set: BTreeSet<String> = nodes.iter().cloned().collect();
        let agreement = if all { Agreement::All } else { Agreement::Majority };
        let result = backed_leader(&v, agreement, |_| Ok(Membership { voters: voter_set.clone(), source: "test".into(), synced_followers: None }));
        let expected = oracle(&v, &nodes, all);
        prop_assert_eq!(result.as_ref().ok().map(|b| (b.leader.clone(), b.term)), expected.clone(), "{:?} -> {:?}", v, result);
        // Silence never turns a rejection into an acceptance, nor changes who is accepted:
        // a member that stops answering neither blocks nor counts.
        if let Ok(b) = &result {
            for n in nodes.iter().filter(|n| !b.backers.contains(*n)) {
                let mut quieter = v.clone();
                quieter.insert(n.clone(), silent());
                let again = backed_leader(&quieter, Agreement::Majority, |_| Ok(Membership { voters: voter_set.clone(), source: "test".into(), synced_followers: None }));
                prop_assert_eq!(again.ok().map(|a| a.leader), Some(b.leader.clone()));
            }
        }
    }
}

/// The property above is worth only what it draws: its strategy must make clusters that have
/// a leader, not only ones that do not.
#[test]
fn the_strategy_draws_accepted_clusters() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(500));
    let mut accepted = 0usize;
    let strategy = prop_oneof![
        arb_cluster(),
        (1usize..6, prop::collection::vec(arb_view(), 5))
    ];
    for _ in 0..500 {
        let (voters, assigned) = strategy
            .new_tree(&mut runner)
            .expect("a drawn case")
            .current();
        let nodes: Vec<String> = (0..voters).map(|i| format!("n{i}")).collect();
        let v: LeaderViews = nodes.iter().cloned().zip(assigned).collect();
        if oracle(&v, &nodes, false).is_some() {
            accepted += 1;
        }
    }
    assert!(
        accepted >= 100,
        "only {accepted} of 500 drawn clusters have a leader: the property would test rejections only"
    );
}

#[test]
fn giving_up_leadership_must_be_seen() {
    let none = || MemberView::NoLeader { why: "503".into() };
    let v = views(&[("m1", none()), ("m2", none()), ("m3", down())]);
    assert_eq!(
        leadership_given_up(&v).unwrap(),
        "2 of 3 answer that they know no leader (m1 no leader (503), m2 no leader (503), m3 down (terminated))"
    );
    let v = views(&[("m1", none()), ("m2", silent())]);
    let e = leadership_given_up(&v).unwrap_err().to_string();
    assert!(e.contains("m2 does not answer"), "{e}");
    assert!(e.contains("not inferred from silence"), "{e}");
    let v = views(&[("m1", down()), ("m2", down())]);
    assert!(leadership_given_up(&v)
        .unwrap_err()
        .to_string()
        .starts_with("no member answers"));
    let v = views(&[("m1", none()), ("m2", MemberView::leader("m1"))]);
    assert_eq!(
        leadership_given_up(&v).unwrap_err(),
        NotGivenUp::HeldOn(vec![HoldsOn::NamesLeader {
            member: "m2".into(),
            leader: "m1".into()
        }])
    );
    assert_eq!(
        leadership_given_up(&v).unwrap_err().to_string(),
        "m2 names m1"
    );
}
