//! etcd: every member healthy, one leader agreed by all, the member list the inventory's,
//! no learners or unstarted members.

use std::collections::BTreeSet;

use super::{leader, list, row, Check, Outcome};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::{EtcdSeen, Observations};
use crate::probe::etcd::url_host;
use crate::probe::etcd::Member;
use crate::probe::leader::{LeaderViews, MemberView, Membership};

/// The inventory's name for a member (by its peer address), or its id.
pub(super) fn member_label(inv: &Inventory, m: &Member) -> String {
    m.peer_urls
        .first()
        .map(|u| inv.label(url_host(u)))
        .unwrap_or_else(|| format!("member {:x}", m.id))
}

/// Each etcd node with what it answered (a node never observed counts as unreachable).
fn etcd_seen<'a>(
    inv: &'a Inventory,
    obs: &'a Observations,
) -> Vec<(&'a InventoryNode, Result<&'a EtcdSeen, String>)> {
    inv.etcd_nodes()
        .into_iter()
        .map(|n| {
            let seen = match obs.etcd.get(&n.name) {
                Some(Ok(s)) => Ok(s),
                Some(Err(e)) => Err(e.clone()),
                None => Err("not observed".to_string()),
            };
            (n, seen)
        })
        .collect()
}

/// What preflight saw of etcd: every node with its answer, those it reached, those it could
/// not.
pub(super) struct Seen<'a> {
    pub(super) inv: &'a Inventory,
    all: Vec<(&'a InventoryNode, Result<&'a EtcdSeen, String>)>,
    pub(super) reached: Vec<(&'a InventoryNode, &'a EtcdSeen)>,
    pub(super) unreachable: Vec<String>,
}

impl<'a> Seen<'a> {
    fn new(inv: &'a Inventory, obs: &'a Observations) -> Self {
        let all = etcd_seen(inv, obs);
        let unreachable = all
            .iter()
            .filter(|(_, s)| s.is_err())
            .map(|(n, _)| n.short().to_string())
            .collect();
        let reached = all
            .iter()
            .filter_map(|(n, s)| s.as_ref().ok().map(|s| (*n, *s)))
            .collect();
        Self {
            inv,
            all,
            reached,
            unreachable,
        }
    }

    pub(super) fn cant_reach(&self) -> String {
        format!("cannot reach {}", list(&self.unreachable))
    }
}

pub(super) fn checks(inv: &Inventory, obs: &Observations) -> Vec<Check> {
    let seen = Seen::new(inv, obs);
    vec![
        every_member_healthy(&seen),
        one_leader(&seen),
        members_match(&seen),
        no_learners(&seen),
        super::etcd_store::no_removed_member_answers(&seen),
        super::etcd_store::status_agrees(&seen),
        super::etcd_store::hashes_agree(&seen),
        super::etcd_store::no_alarms(&seen),
        super::etcd_store::database_size(&seen),
        super::etcd_store::version_gate(&seen),
    ]
}

/// Every member answers a linearizable read.
fn every_member_healthy(seen: &Seen<'_>) -> Check {
    let reached = &seen.reached;
    let unhealthy: Vec<String> = reached
        .iter()
        .filter_map(|(n, s)| {
            s.health
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", n.short()))
        })
        .collect();
    let revision = reached
        .iter()
        .map(|(_, s)| s.status.revision)
        .max()
        .unwrap_or(0);
    let term = reached
        .iter()
        .map(|(_, s)| s.status.raft_term)
        .max()
        .unwrap_or(0);
    let names: Vec<String> = reached
        .iter()
        .map(|(n, s)| format!("{} in {} ms", n.short(), s.read_ms))
        .collect();
    if !unhealthy.is_empty() {
        row(
            "etcd",
            "every member healthy",
            Outcome::Fail,
            list(&unhealthy),
        )
    } else if !seen.unreachable.is_empty() {
        row(
            "etcd",
            "every member healthy",
            Outcome::Unreachable,
            seen.cant_reach(),
        )
    } else {
        row(
            "etcd",
            "every member healthy",
            Outcome::Pass,
            format!(
                "{} answer a linearizable read (revision {revision}, raft term {term})",
                list(&names)
            ),
        )
    }
}

/// One leader, backed by the membership etcd itself reports and named by every member.
fn one_leader(seen: &Seen<'_>) -> Check {
    let inv = seen.inv;
    let views: LeaderViews = seen
        .all
        .iter()
        .map(|(n, s)| {
            let view = match s {
                Err(e) => MemberView::Unreachable { why: e.clone() },
                Ok(s) if s.status.leader == 0 => MemberView::NoLeader {
                    why: format!("term {}, no leader", s.status.raft_term),
                },
                Ok(s) => match s.members.iter().find(|m| m.id == s.status.leader) {
                    Some(m) => MemberView::leader_at(member_label(inv, m), s.status.raft_term),
                    None => MemberView::NoLeader {
                        why: format!("leader id {:x} is no member it lists", s.status.leader),
                    },
                },
            };
            (n.short().to_string(), view)
        })
        .collect();
    leader::row_for(
        "etcd",
        "one leader backed by a majority",
        &views,
        &seen.unreachable,
        |leader| {
            let s = leader::answer_of(&seen.reached, leader)?;
            Ok(Membership::of_etcd(
                &s.members,
                |m| member_label(inv, m),
                leader,
            ))
        },
    )
}

/// The member list equals the inventory's etcd nodes, as every member lists it.
fn members_match(seen: &Seen<'_>) -> Check {
    let inv = seen.inv;
    let expected: BTreeSet<String> = inv
        .etcd_nodes()
        .iter()
        .map(|n| n.short().to_string())
        .collect();
    let lists: Vec<(&InventoryNode, BTreeSet<String>)> = seen
        .reached
        .iter()
        .map(|(n, s)| {
            let listed = s
                .members
                .iter()
                .map(|m| {
                    m.peer_urls
                        .first()
                        .map(|u| inv.label(url_host(u)))
                        .unwrap_or_else(|| format!("member {:x} without peer URL", m.id))
                })
                .collect();
            (*n, listed)
        })
        .collect();
    let show =
        |s: &BTreeSet<String>| format!("[{}]", s.iter().cloned().collect::<Vec<_>>().join(", "));
    match lists.first() {
        None => row(
            "etcd",
            "members match the inventory",
            Outcome::Unreachable,
            seen.cant_reach(),
        ),
        Some((_, first)) if lists.iter().any(|(_, l)| l != first) => {
            let views: Vec<String> = lists
                .iter()
                .map(|(n, l)| format!("{} lists {}", n.short(), show(l)))
                .collect();
            row(
                "etcd",
                "members match the inventory",
                Outcome::Fail,
                format!("members disagree: {}", list(&views)),
            )
        }
        Some((_, listed)) if *listed != expected => {
            let missing: Vec<String> = expected.difference(listed).cloned().collect();
            let extra: Vec<String> = listed.difference(&expected).cloned().collect();
            let mut parts = vec![format!("members are {}", show(listed))];
            if !missing.is_empty() {
                parts.push(format!("missing {}", list(&missing)));
            }
            if !extra.is_empty() {
                parts.push(format!("not in the inventory: {}", list(&extra)));
            }
            row(
                "etcd",
                "members match the inventory",
                Outcome::Fail,
                parts.join("; "),
            )
        }
        Some((_, listed)) => row(
            "etcd",
            "members match the inventory",
            Outcome::Pass,
            format!("{}, as {} members list it", show(listed), lists.len()),
        ),
    }
}

/// No learner and no member that has not started.
fn no_learners(seen: &Seen<'_>) -> Check {
    let inv = seen.inv;
    match seen.reached.first() {
        None => row(
            "etcd",
            "no learners or unstarted members",
            Outcome::Unreachable,
            seen.cant_reach(),
        ),
        Some((_, s)) => {
            let odd: Vec<String> = s
                .members
                .iter()
                .filter(|m| m.is_learner || !m.is_started())
                .map(|m| {
                    let who = m
                        .peer_urls
                        .first()
                        .map(|u| inv.label(url_host(u)))
                        .unwrap_or_else(|| format!("{:x}", m.id));
                    if m.is_learner {
                        format!("{who} is a learner")
                    } else {
                        format!("{who} has not started")
                    }
                })
                .collect();
            if odd.is_empty() {
                row(
                    "etcd",
                    "no learners or unstarted members",
                    Outcome::Pass,
                    format!("{} started voting members", s.members.len()),
                )
            } else {
                row(
                    "etcd",
                    "no learners or unstarted members",
                    Outcome::Fail,
                    list(&odd),
                )
            }
        }
    }
}
