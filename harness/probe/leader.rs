//! Whether a service has a leader: a pure function of what each member said and of the
//! membership the service itself is configured with.
//!
//! A leader holds only on enough evidence. Survivors that still remember a dead leader, or a
//! lone server that has not yet noticed it lost its quorum, are not a leader: the named node
//! must be live and claim leadership itself, and a majority of the configured voters must be
//! live and name it (at its term, where the service has terms).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::zookeeper::Mode;
use crate::base::names::short;

/// What one member said of the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "view")]
pub enum MemberView {
    /// It names this node as leader (itself, when it claims leadership), at this term or epoch
    /// when the service has them.
    Leader {
        /// The node it names.
        leader: String,
        /// etcd's raft term or ZooKeeper's epoch.
        term: Option<u64>,
    },
    /// It answered, and knows of no leader.
    NoLeader {
        /// What it said.
        why: String,
    },
    /// It is meant to run and could not be asked (the probe's failure is an observation too).
    Unreachable {
        /// Why.
        why: String,
    },
    /// It is not running: its node was terminated or the service stopped.
    Down {
        /// Which.
        why: String,
    },
}

impl MemberView {
    /// A view naming `leader` with no term.
    pub fn leader(leader: impl Into<String>) -> Self {
        MemberView::Leader {
            leader: leader.into(),
            term: None,
        }
    }

    /// A view naming `leader` at `term`.
    pub fn leader_at(leader: impl Into<String>, term: u64) -> Self {
        MemberView::Leader {
            leader: leader.into(),
            term: Some(term),
        }
    }

    /// The node this view names as leader.
    pub fn named(&self) -> Option<&str> {
        match self {
            MemberView::Leader { leader, .. } => Some(leader),
            _ => None,
        }
    }

    fn term(&self) -> Option<u64> {
        match self {
            MemberView::Leader { term, .. } => *term,
            _ => None,
        }
    }
}

impl std::fmt::Display for MemberView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberView::Leader { leader, term } => {
                write!(f, "names {}", short(leader))?;
                if let Some(t) = term {
                    write!(f, " at term {t}")?;
                }
                Ok(())
            }
            MemberView::NoLeader { why } => write!(f, "no leader ({why})"),
            MemberView::Unreachable { why } => write!(f, "unreachable ({why})"),
            MemberView::Down { why } => write!(f, "down ({why})"),
        }
    }
}

/// Every member's view, by node: the configured voters and any other live member.
pub type LeaderViews = BTreeMap<String, MemberView>;

/// The voters a service is configured with, and where that list came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// Every voting member: node names, or the address of a member that is no node.
    pub voters: BTreeSet<String>,
    /// Where the list was read ("etcd's member list as quorum-2 reports it").
    pub source: String,
    /// How many voting followers the leader itself says are synced with it, where it says so
    /// (ZooKeeper's `zk_synced_followers`): the leader and these are all that can back it.
    pub synced_followers: Option<usize>,
}

impl Membership {
    /// The membership a leading ZooKeeper server reports: the participants of its ensemble
    /// (each named by `label` of its host), and its own count of the voting followers synced
    /// with it.
    pub fn of_zookeeper(
        state: &super::zookeeper::ServerState,
        label: impl Fn(&str) -> String,
        leader: &str,
    ) -> Result<Self, String> {
        let conf = state
            .conf
            .as_ref()
            .ok_or_else(|| format!("{leader} did not answer `conf`"))?;
        let synced = state
            .synced_followers
            .ok_or_else(|| format!("{leader}'s mntr reports no zk_synced_followers"))?;
        Ok(Self {
            voters: conf
                .servers
                .values()
                .filter(|s| s.role == "participant")
                .map(|s| label(&s.host))
                .collect(),
            source: format!("the ensemble {leader} runs"),
            synced_followers: Some(synced),
        })
    }

    /// The membership an etcd member reports: its voting members (learners do not vote), each
    /// named by `label`.
    pub fn of_etcd(
        members: &[super::etcd::Member],
        label: impl Fn(&super::etcd::Member) -> String,
        reporter: &str,
    ) -> Self {
        Self {
            voters: members
                .iter()
                .filter(|m| !m.is_learner)
                .map(label)
                .collect(),
            source: format!("etcd's member list as {reporter} reports it"),
            synced_followers: None,
        }
    }

    /// The least number of voters that is a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// A leader backed by a majority of the configured voters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backed {
    /// The leader.
    pub leader: String,
    /// Its term or epoch, when the service has them.
    pub term: Option<u64>,
    /// The voters that name it at that term (itself included).
    pub backers: BTreeSet<String>,
    /// How many voters the membership has.
    pub voters: usize,
}

impl Backed {
    /// "quorum-2 at term 4, backed by 2 of 3 configured members (quorum-1, quorum-2)".
    pub fn describe(&self) -> String {
        let term = self
            .term
            .map(|t| format!(" at term {t}"))
            .unwrap_or_default();
        format!(
            "{}{term}, backed by {} of {} configured members ({})",
            short(&self.leader),
            self.backers.len(),
            self.voters,
            names(self.backers.iter())
        )
    }
}

/// Which condition of a leader failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failed {
    /// No member is live or no membership is known.
    NothingToAsk,
    /// No member names a leader.
    NoLeader,
    /// Live members name different leaders.
    Disagree,
    /// A live member does not name the leader (unreachable, or knows none).
    NotEveryLiveMember,
    /// The named leader is not live.
    LeaderNotLive,
    /// The named leader does not claim leadership itself.
    LeaderDoesNotClaim,
    /// The membership could not be read from the leader.
    MembershipUnknown,
    /// The leader is not one of the configured voters.
    LeaderNotAVoter,
    /// Fewer than a majority of the configured voters back it.
    NoMajority,
}

/// Why there is no leader to accept: the condition that failed, and every member's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoLeader {
    /// The condition that failed.
    pub failed: Failed,
    /// What failed, in words.
    pub reason: String,
    /// Every member's view, in one line.
    pub views: String,
}

impl std::fmt::Display for NoLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.views.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{} (views: {})", self.reason, self.views)
        }
    }
}

/// Every view in one line: `quorum-1 names quorum-2 at term 4, quorum-3 down (terminated)`.
pub fn describe_views(views: &LeaderViews) -> String {
    views
        .iter()
        .map(|(n, v)| format!("{} {v}", short(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names<'a>(nodes: impl Iterator<Item = &'a String>) -> String {
    nodes.map(|n| short(n)).collect::<Vec<_>>().join(", ")
}

/// The leader of a service, when every condition holds:
/// - every live member (`live`) names one and the same leader;
/// - that leader is live and claims leadership itself;
/// - a majority of the voters in the membership the leader reports (`membership_of`) are live
///   and name it, at the leader's own term where views carry terms.
///
/// `membership_of(leader)` gives the configured voters as the leader itself knows them, so a
/// cluster that legitimately shrank to one member (a forced new cluster) is judged by its own
/// membership, not by the topology.
pub fn backed_leader(
    views: &LeaderViews,
    live: &BTreeSet<String>,
    membership_of: impl FnOnce(&str) -> Result<Membership, String>,
) -> Result<Backed, NoLeader> {
    let fail = |failed: Failed, reason: String| NoLeader {
        failed,
        reason,
        views: describe_views(views),
    };
    if live.is_empty() {
        return Err(fail(Failed::NothingToAsk, "no live member to ask".into()));
    }
    let named: BTreeSet<&str> = views
        .iter()
        .filter(|(n, _)| live.contains(*n))
        .filter_map(|(_, v)| v.named())
        .collect();
    let leader = match named.len() {
        0 => {
            return Err(fail(
                Failed::NoLeader,
                "no live member names a leader".into(),
            ))
        }
        1 => named.iter().next().copied().unwrap_or_default().to_string(),
        _ => {
            let by: Vec<String> = named
                .iter()
                .map(|l| {
                    let who: Vec<&str> = views
                        .iter()
                        .filter(|(n, v)| live.contains(*n) && v.named() == Some(l))
                        .map(|(n, _)| short(n))
                        .collect();
                    format!("{} name {}", who.join(", "), short(l))
                })
                .collect();
            return Err(fail(
                Failed::Disagree,
                format!("live members disagree: {}", by.join("; ")),
            ));
        }
    };
    let dissent: Vec<String> = views
        .iter()
        .filter(|(n, v)| live.contains(*n) && v.named() != Some(leader.as_str()))
        .map(|(n, v)| format!("{} {v}", short(n)))
        .collect();
    if !dissent.is_empty() {
        return Err(fail(
            Failed::NotEveryLiveMember,
            format!(
                "{} is named, but not by every live member: {}",
                short(&leader),
                dissent.join(", ")
            ),
        ));
    }
    if !live.contains(&leader) {
        return Err(fail(
            Failed::LeaderNotLive,
            format!(
                "{} is named leader but is not live ({})",
                short(&leader),
                views
                    .get(&leader)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "not a member of this cluster".into())
            ),
        ));
    }
    let own = views.get(&leader);
    let term = match own {
        // Every live view names `leader` by now, so a leader's own view names itself.
        Some(MemberView::Leader { term, .. }) => *term,
        other => {
            return Err(fail(
                Failed::LeaderDoesNotClaim,
                format!(
                    "{} is named leader but does not claim leadership itself ({})",
                    short(&leader),
                    other
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "it was not asked".into())
                ),
            ))
        }
    };
    let membership = membership_of(&leader).map_err(|e| {
        fail(
            Failed::MembershipUnknown,
            format!("failed to read the membership from {}: {e}", short(&leader)),
        )
    })?;
    if !membership.voters.contains(&leader) {
        return Err(fail(
            Failed::LeaderNotAVoter,
            format!(
                "{} claims leadership but is not a voter of {} ({})",
                short(&leader),
                membership.source,
                names(membership.voters.iter())
            ),
        ));
    }
    let backers: BTreeSet<String> = membership
        .voters
        .iter()
        .filter(|v| live.contains(*v))
        .filter(|v| {
            views
                .get(*v)
                .is_some_and(|view| view.named() == Some(leader.as_str()) && view.term() == term)
        })
        .cloned()
        .collect();
    if let Some(synced) = membership.synced_followers {
        if synced + 1 < membership.majority() {
            return Err(fail(
                Failed::NoMajority,
                format!(
                    "{} leads only {synced} synced voting followers by its own count; with it, {} of the {} voters of {}, and a majority needs {}",
                    short(&leader),
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
            .map(|v| match views.get(v) {
                Some(view) => format!("{} {view}", short(v)),
                None => format!("{} was not asked", short(v)),
            })
            .collect();
        return Err(fail(
            Failed::NoMajority,
            format!(
                "{} is backed by {} of the {} voters of {}; a majority needs {} (not backing: {})",
                short(&leader),
                backers.len(),
                membership.voters.len(),
                membership.source,
                membership.majority(),
                others.join(", ")
            ),
        ));
    }
    Ok(Backed {
        leader,
        term,
        backers,
        voters: membership.voters.len(),
    })
}

/// Whether every live member has been seen to give leadership up: each answers and knows no
/// leader. Silence is no evidence — an unreachable member may still lead — and with no live
/// member to answer nothing was seen.
pub fn leadership_given_up(views: &LeaderViews) -> Result<String, String> {
    let live: Vec<(&String, &MemberView)> = views
        .iter()
        .filter(|(_, v)| !matches!(v, MemberView::Down { .. }))
        .collect();
    if live.is_empty() {
        return Err(format!(
            "no live member answers, so none is seen giving leadership up ({})",
            describe_views(views)
        ));
    }
    let mut problems = Vec::new();
    for (node, view) in &live {
        match view {
            MemberView::Leader { leader, .. } => {
                problems.push(format!("{} names {}", short(node), short(leader)))
            }
            MemberView::Unreachable { why } => problems.push(format!(
                "{} does not answer ({why}): giving up leadership must be seen, not inferred from silence",
                short(node)
            )),
            MemberView::NoLeader { .. } | MemberView::Down { .. } => {}
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{} of {} answer that they know no leader ({})",
            live.len(),
            views.len(),
            describe_views(views)
        ))
    } else {
        Err(problems.join("; "))
    }
}

/// Turns ZooKeeper modes into views. `srvr` on a follower does not name its leader (and its
/// zxid keeps the old epoch until the first write of the new one), so a serving follower is
/// taken to follow the one server that says it leads, when exactly one does; the leader's own
/// count of synced followers (`Membership::synced_followers`) then bounds how many back it.
pub fn zookeeper_views(modes: &BTreeMap<String, Result<Mode, String>>) -> LeaderViews {
    let leaders: Vec<&String> = modes
        .iter()
        .filter(|(_, m)| matches!(m, Ok(Mode::Leader)))
        .map(|(n, _)| n)
        .collect();
    modes
        .iter()
        .map(|(node, mode)| {
            let view = match mode {
                Ok(Mode::Leader) => MemberView::leader(node.clone()),
                Ok(Mode::Follower) | Ok(Mode::Observer) => match leaders.as_slice() {
                    [one] => MemberView::leader((*one).clone()),
                    [] => MemberView::NoLeader {
                        why: "follower of no server seen leading".into(),
                    },
                    _ => MemberView::NoLeader {
                        why: "follower while several servers lead".into(),
                    },
                },
                Ok(Mode::Standalone) => MemberView::NoLeader {
                    why: "standalone, not in an ensemble".into(),
                },
                Ok(Mode::NotServing) => MemberView::NoLeader {
                    why: "not serving".into(),
                },
                Err(e) => MemberView::Unreachable { why: e.clone() },
            };
            (node.clone(), view)
        })
        .collect()
}

#[cfg(test)]
mod tests;
