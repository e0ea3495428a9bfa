//! Whether a service has a leader: a pure function of what each member said and of the
//! membership the service itself is configured with.
//!
//! A leader is what a majority of the configured membership backs at one term. Members that
//! cannot answer (killed, paused, cut off, terminated) neither block nor count; a member that
//! answers and names another leader at the same or a later term blocks, since that is two
//! leaders (or a deposed one). Survivors that still remember a dead leader, or a lone server
//! that has not yet noticed it lost its quorum, are not a leader.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::answer::{NoAnswer, Silence};
use crate::base::names::short;

mod rule;
mod zookeeper;

pub use rule::{backed_leader, leadership_given_up, HoldsOn, NotGivenUp};

pub use zookeeper::{zookeeper_views, ZookeeperAnswer};

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
    /// It was asked and gave no answer in time (paused, cut off, overloaded): it may still
    /// believe it leads, so its silence proves nothing either way.
    Unreachable {
        /// Why.
        why: String,
    },
    /// It is seen not running: its node was terminated, or nothing listens where it serves.
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

    /// The term this view names its leader at, if it names one at a known term.
    pub fn term(&self) -> Option<u64> {
        match self {
            MemberView::Leader { term, .. } => *term,
            _ => None,
        }
    }

    /// Whether the member answered (named a leader or said it knows none).
    pub fn answered(&self) -> bool {
        matches!(
            self,
            MemberView::Leader { .. } | MemberView::NoLeader { .. }
        )
    }
}

impl From<&NoAnswer> for MemberView {
    /// A member that gave no answer: down when nothing listens (a refused connection), not
    /// answering otherwise — silence is no proof a server is not leading.
    fn from(e: &NoAnswer) -> Self {
        match e.silence {
            Silence::Refused => MemberView::Down {
                why: "connection refused".into(),
            },
            Silence::TimedOut | Silence::Failed => MemberView::Unreachable {
                why: e.detail.clone(),
            },
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
            MemberView::Unreachable { why } => write!(f, "not answering ({why})"),
            MemberView::Down { why } => write!(f, "down ({why})"),
        }
    }
}

/// Every member's view, by node: the configured voters and any other member asked.
pub type LeaderViews = BTreeMap<String, MemberView>;

/// How many members must name the leader for it to hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agreement {
    /// A majority of the configured voters answer and name it at its term; members that do not
    /// answer neither block nor count.
    #[default]
    Majority,
    /// Every configured member answers and names it at its term (what an operator checks once
    /// a recovery is done: "one leader agreed by all").
    All,
}

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

/// Why the membership a leader reports could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipUnread {
    /// The leader was not among the members asked.
    #[error("it was not asked")]
    NotAsked,
    /// The leader was asked but not reached.
    #[error("{leader} was not reached")]
    NotReached {
        /// The leader, by its short name.
        leader: String,
    },
    /// A ZooKeeper server that does not lead has no say on the membership.
    #[error("it does not lead")]
    NotLeading,
    /// A ZooKeeper leader did not answer `conf`.
    #[error("{leader} did not answer `conf`")]
    NoConf {
        /// The leader, by its short name.
        leader: String,
    },
    /// A ZooKeeper leader's `mntr` left out its count of synced followers.
    #[error("{leader}'s mntr reports no zk_synced_followers")]
    NoSyncedFollowers {
        /// The leader, by its short name.
        leader: String,
    },
    /// The member gave no answer.
    #[error(transparent)]
    NoAnswer(#[from] NoAnswer),
    /// etcd's member list could not be read.
    #[error(transparent)]
    Etcd(#[from] super::etcd::EtcdError),
}

impl Membership {
    /// The membership a leading ZooKeeper server reports: the participants of its ensemble
    /// (each named by `label` of its host), and its own count of the voting followers synced
    /// with it.
    pub fn of_zookeeper(
        state: &super::zookeeper::ServerState,
        label: impl Fn(&str) -> String,
        leader: &str,
    ) -> Result<Self, MembershipUnread> {
        let conf = state
            .conf
            .as_ref()
            .ok_or_else(|| MembershipUnread::NoConf {
                leader: leader.to_string(),
            })?;
        let synced = state
            .synced_followers
            .ok_or_else(|| MembershipUnread::NoSyncedFollowers {
                leader: leader.to_string(),
            })?;
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
    /// Members that did not answer, with what was seen of them: they neither block nor count.
    pub silent: BTreeMap<String, String>,
    /// Members that answered without backing it (no leader, or an older one), with what they
    /// said.
    pub others: BTreeMap<String, String>,
}

impl Backed {
    /// "quorum-2 at term 4, backed by 2 of 3 configured members (quorum-1, quorum-2); not
    /// answering: quorum-3 (down: connection refused)".
    pub fn describe(&self) -> String {
        let term = self
            .term
            .map(|t| format!(" at term {t}"))
            .unwrap_or_default();
        let mut text = format!(
            "{}{term}, backed by {} of {} configured members ({})",
            short(&self.leader),
            self.backers.len(),
            self.voters,
            names(self.backers.iter())
        );
        for (label, map) in [
            ("not answering", &self.silent),
            ("not backing", &self.others),
        ] {
            if !map.is_empty() {
                let listed: Vec<String> = map
                    .iter()
                    .map(|(n, why)| format!("{} {why}", short(n)))
                    .collect();
                text.push_str(&format!("; {label}: {}", listed.join(", ")));
            }
        }
        text
    }
}

/// Which condition of a leader failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failed {
    /// No member answers.
    NothingToAsk,
    /// No member that answers names a leader.
    NoLeader,
    /// Two members claim leadership at one term, or one claims it at a later term than the
    /// leader others name.
    TwoLeaders,
    /// A member that answers names another leader at the leader's term or later (or at a term
    /// that cannot be told older).
    Disagree,
    /// `agreement = "all"`: a configured member does not answer, or does not name the leader.
    NotEveryMember,
    /// The named leader does not answer.
    LeaderNotLive,
    /// The named leader answers but does not claim leadership itself.
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

impl std::error::Error for NoLeader {}

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

#[cfg(test)]
mod tests;
