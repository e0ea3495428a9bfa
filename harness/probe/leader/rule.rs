//! The leader rule itself, and its counterpart for giving leadership up.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    describe_views, names, Agreement, Backed, Failed, LeaderViews, MemberView, Membership,
    MembershipUnread, NoLeader,
};
use crate::base::names::short;

/// Whether term `a` is known to come before term `b` (an unknown term is never known older).
fn older(a: Option<u64>, b: Option<u64>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a < b)
}

fn at(term: Option<u64>) -> String {
    term.map(|t| format!(" at term {t}")).unwrap_or_default()
}

/// The leader of a service, when every condition holds:
/// - a member that answers claims leadership at term T, and no other member claims it at T or
///   later (the latest claim is the one to judge; an older claim is a deposed leader that has
///   not noticed yet);
/// - no member that answers names another leader at T or later, or at a term that cannot be
///   told older, and none names this one at a later term than its own claim;
/// - it is a voter of the membership it reports itself (`membership_of`), and a majority of
///   those voters answer and name it at T (for ZooKeeper, no more than the leader's own count
///   of synced followers can back it);
/// - with `Agreement::All`, every configured member (every voter, and every member asked)
///   answers and names it at T.
///
/// Members that do not answer (`Unreachable`, `Down`) neither block nor count; those that know
/// no leader, or name an older one, do not block. `membership_of(leader)` gives the voters as
/// the leader itself knows them, so a cluster that legitimately shrank to one member (a forced
/// new cluster) is judged by its own membership, not by the topology.
pub fn backed_leader(
    views: &LeaderViews,
    agreement: Agreement,
    membership_of: impl FnOnce(&str) -> Result<Membership, MembershipUnread>,
) -> Result<Backed, NoLeader> {
    let fail = |failed: Failed, reason: String| NoLeader {
        failed,
        reason,
        views: describe_views(views),
    };
    let answering: Vec<(&String, &MemberView)> =
        views.iter().filter(|(_, v)| v.answered()).collect();
    if answering.is_empty() {
        return Err(fail(Failed::NothingToAsk, "no member answers".into()));
    }
    let (leader, term) = latest_claim(views, &answering, &fail)?;
    uncontested(&answering, &leader, term, &fail)?;
    let membership = membership_of(&leader).map_err(|e| {
        fail(
            Failed::MembershipUnknown,
            format!("failed to read the membership from {}: {e}", short(&leader)),
        )
    })?;
    let backers = backing(views, &leader, term, &membership, &fail)?;
    if agreement == Agreement::All {
        every_member(views, &leader, term, &membership, backers.len(), &fail)?;
    }
    let mut silent = BTreeMap::new();
    let mut others = BTreeMap::new();
    for (node, view) in views.iter().filter(|(n, _)| !backers.contains(*n)) {
        if view.answered() {
            others.insert(node.clone(), view.to_string());
        } else {
            let why = match view {
                MemberView::Down { why } => format!("(down: {why})"),
                MemberView::Unreachable { why } => format!("({why})"),
                other => format!("({other})"),
            };
            silent.insert(node.clone(), why);
        }
    }
    Ok(Backed {
        leader,
        term,
        backers,
        voters: membership.voters.len(),
        silent,
        others,
    })
}

/// The member that claims leadership at the latest term, when exactly one does.
fn latest_claim(
    views: &LeaderViews,
    answering: &[(&String, &MemberView)],
    fail: &dyn Fn(Failed, String) -> NoLeader,
) -> Result<(String, Option<u64>), NoLeader> {
    let claims: Vec<(&String, Option<u64>)> = answering
        .iter()
        .filter(|(n, v)| v.named() == Some(n.as_str()))
        .map(|(n, v)| (*n, v.term()))
        .collect();
    let Some(term) = claims.iter().map(|(_, t)| *t).max() else {
        return Err(unclaimed(views, answering, fail));
    };
    let latest: Vec<&String> = claims
        .iter()
        .filter(|(_, t)| *t == term)
        .map(|(n, _)| *n)
        .collect();
    match latest.as_slice() {
        [one] => Ok(((*one).clone(), term)),
        several => Err(fail(
            Failed::TwoLeaders,
            format!(
                "two leaders{}: {} each claim leadership",
                at(term),
                several
                    .iter()
                    .map(|n| short(n))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

/// No member that answers names another leader at `term` or later (or at a term that cannot
/// be told older), nor `leader` at a later term than its own claim.
fn uncontested(
    answering: &[(&String, &MemberView)],
    leader: &str,
    term: Option<u64>,
    fail: &dyn Fn(Failed, String) -> NoLeader,
) -> Result<(), NoLeader> {
    let blockers: Vec<String> = answering
        .iter()
        .filter_map(|(n, v)| {
            let MemberView::Leader {
                leader: named,
                term: t,
            } = v
            else {
                return None;
            };
            if *named != leader && !older(*t, term) {
                Some(format!("{} names {}{}", short(n), short(named), at(*t)))
            } else if *named == leader && older(term, *t) {
                Some(format!(
                    "{} names it at term {}, later than its own claim",
                    short(n),
                    t.unwrap_or_default()
                ))
            } else {
                None
            }
        })
        .collect();
    if blockers.is_empty() {
        Ok(())
    } else {
        Err(fail(
            Failed::Disagree,
            format!(
                "{} claims leadership{}, but {}",
                short(leader),
                at(term),
                blockers.join("; ")
            ),
        ))
    }
}

/// Whether `node`'s view names `leader` at `term`.
fn names_at(views: &LeaderViews, node: &str, leader: &str, term: Option<u64>) -> bool {
    views
        .get(node)
        .is_some_and(|v| v.named() == Some(leader) && v.term() == term)
}

/// What was seen of `node`, in a list of members that do not back the leader.
fn seen(views: &LeaderViews, node: &String) -> String {
    match views.get(node) {
        Some(view) => format!("{} {view}", short(node)),
        None => format!("{} was not asked", short(node)),
    }
}

/// The voters that name `leader` at `term`, when they are a majority of the membership and the
/// leader is one of them (and, for ZooKeeper, its own count of synced followers allows it).
fn backing(
    views: &LeaderViews,
    leader: &str,
    term: Option<u64>,
    membership: &Membership,
    fail: &dyn Fn(Failed, String) -> NoLeader,
) -> Result<BTreeSet<String>, NoLeader> {
    if !membership.voters.contains(leader) {
        return Err(fail(
            Failed::LeaderNotAVoter,
            format!(
                "{} claims leadership but is not a voter of {} ({})",
                short(leader),
                membership.source,
                names(membership.voters.iter())
            ),
        ));
    }
    let backers: BTreeSet<String> = membership
        .voters
        .iter()
        .filter(|v| names_at(views, v, leader, term))
        .cloned()
        .collect();
    if let Some(synced) = membership.synced_followers {
        if synced + 1 < membership.majority() {
            return Err(fail(
                Failed::NoMajority,
                format!(
                    "{} leads only {synced} synced voting followers by its own count; with it, {} of the {} voters of {}, and a majority needs {}",
                    short(leader),
                    synced + 1,
                    membership.voters.len(),
                    membership.source,
                    membership.majority()
                ),
            ));
        }
    }
    if backers.len() < membership.majority() {
        let others: Vec<String> = membership
            .voters
            .iter()
            .filter(|v| !backers.contains(*v))
            .map(|v| seen(views, v))
            .collect();
        return Err(fail(
            Failed::NoMajority,
            format!(
                "{} is backed by {} of the {} voters of {}; a majority needs {} (not backing: {})",
                short(leader),
                backers.len(),
                membership.voters.len(),
                membership.source,
                membership.majority(),
                others.join(", ")
            ),
        ));
    }
    Ok(backers)
}

/// With `Agreement::All`: every voter and every member asked names `leader` at `term`.
fn every_member(
    views: &LeaderViews,
    leader: &str,
    term: Option<u64>,
    membership: &Membership,
    backers: usize,
    fail: &dyn Fn(Failed, String) -> NoLeader,
) -> Result<(), NoLeader> {
    let everyone: BTreeSet<&String> = membership.voters.iter().chain(views.keys()).collect();
    let missing: Vec<String> = everyone
        .into_iter()
        .filter(|n| !names_at(views, n, leader, term))
        .map(|n| seen(views, n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(fail(
        Failed::NotEveryMember,
        format!(
            "{}{} is backed by {} of the {} voters, but not named by every member: {}",
            short(leader),
            at(term),
            backers,
            membership.voters.len(),
            missing.join(", ")
        ),
    ))
}

/// Why no member claims leadership: nobody names a leader, or the node they name does not
/// answer, or answers without claiming it.
fn unclaimed(
    views: &LeaderViews,
    answering: &[(&String, &MemberView)],
    fail: &dyn Fn(Failed, String) -> NoLeader,
) -> NoLeader {
    let named: BTreeSet<&str> = answering.iter().filter_map(|(_, v)| v.named()).collect();
    if named.is_empty() {
        return fail(
            Failed::NoLeader,
            "no member that answers names a leader".into(),
        );
    }
    let mut silent_leader = false;
    let parts: Vec<String> = named
        .iter()
        .map(|l| match views.get(*l) {
            Some(v) if !v.answered() => {
                silent_leader = true;
                format!("{} is named leader but is not live ({v})", short(l))
            }
            Some(v) => format!(
                "{} is named leader but does not claim leadership itself ({v})",
                short(l)
            ),
            None => {
                silent_leader = true;
                format!(
                    "{} is named leader but is not live (not a member of this cluster)",
                    short(l)
                )
            }
        })
        .collect();
    fail(
        if silent_leader {
            Failed::LeaderNotLive
        } else {
            Failed::LeaderDoesNotClaim
        },
        parts.join("; "),
    )
}

/// A member still seen as one that may lead, after leadership was to be given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldsOn {
    /// It answers and names a leader.
    #[error("{} names {}", short(.member), short(.leader))]
    NamesLeader {
        /// The member.
        member: String,
        /// The leader it names.
        leader: String,
    },
    /// It does not answer, so it may still lead.
    #[error("{} does not answer ({why}): giving up leadership must be seen, not inferred from silence", short(.member))]
    Silent {
        /// The member.
        member: String,
        /// Why it gave no answer.
        why: String,
    },
}

/// Why leadership is not seen given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotGivenUp {
    /// No member runs, so none was seen giving anything up.
    #[error("no member answers, so none is seen giving leadership up ({views})")]
    NothingRuns {
        /// Every member's view, in one line.
        views: String,
    },
    /// These members may still lead.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    HeldOn(Vec<HoldsOn>),
}

/// Whether every member that may still lead has been seen to give leadership up: each answers
/// and knows no leader, or is seen not running (`Down`). Silence is no evidence — a member
/// that does not answer may still lead — and with nothing running nothing was seen.
pub fn leadership_given_up(views: &LeaderViews) -> Result<String, NotGivenUp> {
    let running: Vec<(&String, &MemberView)> = views
        .iter()
        .filter(|(_, v)| !matches!(v, MemberView::Down { .. }))
        .collect();
    if running.is_empty() {
        return Err(NotGivenUp::NothingRuns {
            views: describe_views(views),
        });
    }
    let held_on: Vec<HoldsOn> = running
        .iter()
        .filter_map(|(node, view)| match view {
            MemberView::Leader { leader, .. } => Some(HoldsOn::NamesLeader {
                member: (*node).clone(),
                leader: leader.clone(),
            }),
            MemberView::Unreachable { why } => Some(HoldsOn::Silent {
                member: (*node).clone(),
                why: why.clone(),
            }),
            MemberView::NoLeader { .. } | MemberView::Down { .. } => None,
        })
        .collect();
    if held_on.is_empty() {
        Ok(format!(
            "{} of {} answer that they know no leader ({})",
            running.len(),
            views.len(),
            describe_views(views)
        ))
    } else {
        Err(NotGivenUp::HeldOn(held_on))
    }
}
