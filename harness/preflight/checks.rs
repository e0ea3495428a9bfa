//! The checks of a preflight: pure functions of the inventory and what was observed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::inventory::{Inventory, InventoryNode};
use super::{EtcdSeen, LeaderSeen, Observations, ZookeeperSeen};
use crate::ensemble::{self, Conflict, Ensemble, Restart, Rollout};
use crate::observe::url_host;
use crate::probe::zookeeper::Mode;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It does not.
    Fail,
    /// Nothing to check (the inventory gives no way to).
    Skip,
    /// A node it needs could not be reached.
    Unreachable,
}

impl Outcome {
    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
            Outcome::Unreachable => "UNREACHABLE",
        }
    }
}

/// One row of the preflight table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What it is about (`etcd`, `zookeeper`, `mesos`, `marathon`, `neighbours`).
    pub service: String,
    /// What it checks.
    pub check: String,
    /// How it came out.
    pub outcome: Outcome,
    /// What was seen.
    pub evidence: String,
}

/// The running ZooKeeper ids against the upgrade's, when they differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdReport {
    /// The running ensemble (each server's own `conf` serverId).
    pub running: Ensemble,
    /// What the upgrade writes: the inventory's ZooKeeper addresses sorted as strings,
    /// numbered from 1.
    pub upgrade: Ensemble,
    /// The order the upgrade is assumed to restart the servers in (the inventory's).
    pub restart_order: Vec<String>,
    /// Every id conflict that upgrade would cause, in the order they appear.
    pub conflicts: Vec<Conflict>,
    /// The rolling renumbering that avoids them, from the current leader.
    pub plan: Vec<Restart>,
    /// Node short names by host, for display.
    pub labels: BTreeMap<String, String>,
}

/// A whole preflight: the checks, the id comparison, and who could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// The inventory file.
    pub inventory: String,
    /// The cell, when the inventory names it.
    pub cell: Option<String>,
    /// Every check, in table order.
    pub checks: Vec<Check>,
    /// The ZooKeeper id comparison, when the ids differ from the upgrade's.
    pub zookeeper_ids: Option<IdReport>,
    /// Nodes that could not be reached, and why.
    pub unreachable: Vec<String>,
}

fn check(service: &str, name: &str, outcome: Outcome, evidence: impl Into<String>) -> Check {
    Check {
        service: service.to_string(),
        check: name.to_string(),
        outcome,
        evidence: evidence.into(),
    }
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Runs every check on what was observed.
pub fn evaluate(inv: &Inventory, obs: &Observations) -> Preflight {
    let mut checks = Vec::new();
    let mut unreachable = Vec::new();
    for (service, map) in [
        (
            "etcd",
            obs.etcd
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect::<Vec<_>>(),
        ),
        (
            "zookeeper",
            obs.zookeeper
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
        (
            "mesos",
            obs.mesos
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
        (
            "marathon",
            obs.marathon
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
        (
            "exec",
            obs.nets
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
    ] {
        for (node, err) in map {
            if let Some(e) = err {
                unreachable.push(format!("{} ({service}): {e}", inv.label(node)));
            }
        }
    }
    if !inv.etcd_nodes().is_empty() {
        checks.extend(etcd_checks(inv, obs));
    }
    let mut zookeeper_ids = None;
    if !inv.zookeeper_nodes().is_empty() {
        let (zk, ids) = zookeeper_checks(inv, obs);
        checks.extend(zk);
        zookeeper_ids = ids;
    }
    for (service, endpoint, seen) in [
        ("mesos", "/redirect", &obs.mesos),
        ("marathon", "/v2/leader", &obs.marathon),
    ] {
        let masters: Vec<&InventoryNode> = inv
            .nodes
            .iter()
            .filter(|n| match service {
                "mesos" => n.mesos.is_some(),
                _ => n.marathon.is_some(),
            })
            .collect();
        if !masters.is_empty() {
            checks.push(master_check(inv, service, endpoint, &masters, seen));
        }
    }
    checks.push(neighbour_check(inv, obs));
    Preflight {
        inventory: inv.file.display().to_string(),
        cell: inv.cell.clone(),
        checks,
        zookeeper_ids,
        unreachable,
    }
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

fn etcd_checks(inv: &Inventory, obs: &Observations) -> Vec<Check> {
    let seen = etcd_seen(inv, obs);
    let unreachable: Vec<String> = seen
        .iter()
        .filter(|(_, s)| s.is_err())
        .map(|(n, _)| n.short().to_string())
        .collect();
    let reached: Vec<(&InventoryNode, &EtcdSeen)> = seen
        .iter()
        .filter_map(|(n, s)| s.as_ref().ok().map(|s| (*n, *s)))
        .collect();
    let cant_reach = || format!("cannot reach {}", list(&unreachable));
    let mut out = Vec::new();

    // Every member healthy.
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
    let names: Vec<String> = reached.iter().map(|(n, _)| n.short().to_string()).collect();
    out.push(if !unhealthy.is_empty() {
        check(
            "etcd",
            "every member healthy",
            Outcome::Fail,
            list(&unhealthy),
        )
    } else if !unreachable.is_empty() {
        check(
            "etcd",
            "every member healthy",
            Outcome::Unreachable,
            cant_reach(),
        )
    } else {
        check(
            "etcd",
            "every member healthy",
            Outcome::Pass,
            format!(
                "{} answer a linearizable read (revision {revision}, raft term {term})",
                list(&names)
            ),
        )
    });

    // Member ids → node labels, from any list.
    let label_of_member = |id: u64| -> Option<String> {
        reached.iter().find_map(|(_, s)| {
            s.members
                .iter()
                .find(|m| m.id == id)
                .and_then(|m| m.peer_urls.first())
                .map(|u| inv.label(url_host(u)))
        })
    };

    // One leader agreed by all.
    let leaders: BTreeSet<u64> = reached.iter().map(|(_, s)| s.status.leader).collect();
    let no_leader: Vec<String> = reached
        .iter()
        .filter(|(_, s)| s.status.leader == 0)
        .map(|(n, s)| {
            format!(
                "{} knows no leader (term {})",
                n.short(),
                s.status.raft_term
            )
        })
        .collect();
    out.push(if !no_leader.is_empty() {
        check(
            "etcd",
            "one leader agreed by all",
            Outcome::Fail,
            list(&no_leader),
        )
    } else if leaders.len() > 1 {
        let views: Vec<String> = reached
            .iter()
            .map(|(n, s)| {
                format!(
                    "{} names {}",
                    n.short(),
                    label_of_member(s.status.leader)
                        .unwrap_or_else(|| format!("{:x}", s.status.leader))
                )
            })
            .collect();
        check(
            "etcd",
            "one leader agreed by all",
            Outcome::Fail,
            format!("members disagree: {}", list(&views)),
        )
    } else if let Some(leader) = leaders.iter().next() {
        match label_of_member(*leader) {
            None => check(
                "etcd",
                "one leader agreed by all",
                Outcome::Fail,
                format!("leader {leader:x} is no member any member lists"),
            ),
            Some(label) if unreachable.is_empty() => check(
                "etcd",
                "one leader agreed by all",
                Outcome::Pass,
                format!(
                    "{label} (member {leader:x}), named by all {}",
                    reached.len()
                ),
            ),
            Some(label) => check(
                "etcd",
                "one leader agreed by all",
                Outcome::Unreachable,
                format!(
                    "{label} named by {} reached; {}",
                    reached.len(),
                    cant_reach()
                ),
            ),
        }
    } else {
        check(
            "etcd",
            "one leader agreed by all",
            Outcome::Unreachable,
            cant_reach(),
        )
    });

    // Member list equal to the inventory's etcd nodes, as every member lists it.
    let expected: BTreeSet<String> = inv
        .etcd_nodes()
        .iter()
        .map(|n| n.short().to_string())
        .collect();
    let lists: Vec<(&InventoryNode, BTreeSet<String>)> = reached
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
    out.push(match lists.first() {
        None => check(
            "etcd",
            "members match the inventory",
            Outcome::Unreachable,
            cant_reach(),
        ),
        Some((_, first)) if lists.iter().any(|(_, l)| l != first) => {
            let views: Vec<String> = lists
                .iter()
                .map(|(n, l)| format!("{} lists {}", n.short(), show(l)))
                .collect();
            check(
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
            check(
                "etcd",
                "members match the inventory",
                Outcome::Fail,
                parts.join("; "),
            )
        }
        Some((_, listed)) => check(
            "etcd",
            "members match the inventory",
            Outcome::Pass,
            format!("{}, as {} members list it", show(listed), lists.len()),
        ),
    });

    // No learners or unstarted members.
    out.push(match reached.first() {
        None => check(
            "etcd",
            "no learners or unstarted members",
            Outcome::Unreachable,
            cant_reach(),
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
                check(
                    "etcd",
                    "no learners or unstarted members",
                    Outcome::Pass,
                    format!("{} started voting members", s.members.len()),
                )
            } else {
                check(
                    "etcd",
                    "no learners or unstarted members",
                    Outcome::Fail,
                    list(&odd),
                )
            }
        }
    });
    out
}

fn zookeeper_checks(inv: &Inventory, obs: &Observations) -> (Vec<Check>, Option<IdReport>) {
    let nodes = inv.zookeeper_nodes();
    let seen: Vec<(&InventoryNode, Result<&ZookeeperSeen, String>)> = nodes
        .iter()
        .map(|n| {
            let s = match obs.zookeeper.get(&n.name) {
                Some(Ok(s)) => Ok(s),
                Some(Err(e)) => Err(e.clone()),
                None => Err("not observed".to_string()),
            };
            (*n, s)
        })
        .collect();
    let unreachable: Vec<String> = seen
        .iter()
        .filter(|(_, s)| s.is_err())
        .map(|(n, _)| n.short().to_string())
        .collect();
    let cant_reach = || format!("cannot reach {}", list(&unreachable));
    let reached: Vec<(&InventoryNode, &ZookeeperSeen)> = seen
        .iter()
        .filter_map(|(n, s)| s.as_ref().ok().map(|s| (*n, *s)))
        .collect();
    let mut out = Vec::new();

    // Every server serving.
    let idle: Vec<String> = reached
        .iter()
        .filter(|(_, s)| !matches!(s.mode, Mode::Leader | Mode::Follower | Mode::Observer))
        .map(|(n, s)| {
            format!(
                "{} is {}",
                n.short(),
                match s.mode {
                    Mode::Standalone => "standalone",
                    _ => "not serving",
                }
            )
        })
        .collect();
    let count = |m: Mode| reached.iter().filter(|(_, s)| s.mode == m).count();
    out.push(if !idle.is_empty() {
        check(
            "zookeeper",
            "every server serving",
            Outcome::Fail,
            list(&idle),
        )
    } else if !unreachable.is_empty() {
        check(
            "zookeeper",
            "every server serving",
            Outcome::Unreachable,
            cant_reach(),
        )
    } else {
        let observers = count(Mode::Observer);
        check(
            "zookeeper",
            "every server serving",
            Outcome::Pass,
            format!(
                "{} of {} serve ({} leader, {} followers{})",
                reached.len(),
                nodes.len(),
                count(Mode::Leader),
                count(Mode::Follower),
                if observers > 0 {
                    format!(", {observers} observers")
                } else {
                    String::new()
                }
            ),
        )
    });

    // Exactly one leader.
    let leaders: Vec<&InventoryNode> = reached
        .iter()
        .filter(|(_, s)| s.mode == Mode::Leader)
        .map(|(n, _)| *n)
        .collect();
    let leader_names: Vec<String> = leaders.iter().map(|n| n.short().to_string()).collect();
    out.push(match leaders.as_slice() {
        [] if unreachable.is_empty() => check(
            "zookeeper",
            "exactly one leader",
            Outcome::Fail,
            "no server leads",
        ),
        [] => check(
            "zookeeper",
            "exactly one leader",
            Outcome::Unreachable,
            format!("none of those reached leads; {}", cant_reach()),
        ),
        [one] if unreachable.is_empty() => check(
            "zookeeper",
            "exactly one leader",
            Outcome::Pass,
            one.short(),
        ),
        [one] => check(
            "zookeeper",
            "exactly one leader",
            Outcome::Unreachable,
            format!(
                "{} leads among those reached; {}",
                one.short(),
                cant_reach()
            ),
        ),
        _ => check(
            "zookeeper",
            "exactly one leader",
            Outcome::Fail,
            format!("several servers lead: {}", list(&leader_names)),
        ),
    });

    // Membership: every serving server lists exactly the inventory's servers, with one
    // id→host map.
    let expected: BTreeSet<String> = nodes.iter().map(|n| n.short().to_string()).collect();
    let confs: Vec<(&InventoryNode, BTreeMap<u64, String>, Vec<String>)> = reached
        .iter()
        .filter_map(|(n, s)| {
            s.conf.as_ref().map(|c| {
                let map: BTreeMap<u64, String> = c
                    .servers
                    .iter()
                    .map(|(id, srv)| (*id, inv.label(&srv.host)))
                    .collect();
                let observers: Vec<String> = c
                    .servers
                    .iter()
                    .filter(|(_, srv)| srv.role != "participant")
                    .map(|(_, srv)| inv.label(&srv.host))
                    .collect();
                (*n, map, observers)
            })
        })
        .collect();
    let show = |m: &BTreeMap<u64, String>| {
        m.iter()
            .map(|(id, h)| format!("{id}:{h}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    out.push(match confs.first() {
        None if !unreachable.is_empty() => check(
            "zookeeper",
            "members match the inventory",
            Outcome::Unreachable,
            cant_reach(),
        ),
        None => check(
            "zookeeper",
            "members match the inventory",
            Outcome::Fail,
            "no server serves `conf`",
        ),
        Some((_, first, _)) if confs.iter().any(|(_, m, _)| m != first) => {
            let views: Vec<String> = confs
                .iter()
                .map(|(n, m, _)| format!("{} lists {}", n.short(), show(m)))
                .collect();
            check(
                "zookeeper",
                "members match the inventory",
                Outcome::Fail,
                format!("servers disagree: {}", list(&views)),
            )
        }
        Some((_, map, observers)) => {
            let listed: BTreeSet<String> = map.values().cloned().collect();
            let missing: Vec<String> = expected.difference(&listed).cloned().collect();
            let extra: Vec<String> = listed.difference(&expected).cloned().collect();
            if missing.is_empty() && extra.is_empty() && observers.is_empty() {
                check(
                    "zookeeper",
                    "members match the inventory",
                    Outcome::Pass,
                    format!(
                        "{} participants, {}, as {} servers list them",
                        listed.len(),
                        show(map),
                        confs.len()
                    ),
                )
            } else {
                let mut parts = vec![format!("servers are {}", show(map))];
                if !missing.is_empty() {
                    parts.push(format!("missing {}", list(&missing)));
                }
                if !extra.is_empty() {
                    parts.push(format!("not in the inventory: {}", list(&extra)));
                }
                if !observers.is_empty() {
                    parts.push(format!("observers: {}", list(observers)));
                }
                check(
                    "zookeeper",
                    "members match the inventory",
                    Outcome::Fail,
                    parts.join("; "),
                )
            }
        }
    });

    // Ids against the upgrade's.
    let (ids_check, report) = id_check(inv, &nodes, &reached, &unreachable, &leaders);
    out.push(ids_check);
    (out, report)
}

fn id_check(
    inv: &Inventory,
    nodes: &[&InventoryNode],
    reached: &[(&InventoryNode, &ZookeeperSeen)],
    unreachable: &[String],
    leaders: &[&InventoryNode],
) -> (Check, Option<IdReport>) {
    const NAME: &str = "ids match what the upgrade writes";
    let hosts: Vec<String> = nodes.iter().map(|n| n.address.to_string()).collect();
    let upgrade = match ensemble::upgrade_target(&hosts) {
        Ok(e) => e,
        Err(e) => return (check("zookeeper", NAME, Outcome::Fail, e.to_string()), None),
    };
    let unknown: Vec<String> = reached
        .iter()
        .filter(|(_, s)| s.conf.as_ref().and_then(|c| c.server_id).is_none())
        .map(|(n, _)| n.short().to_string())
        .collect();
    if !unreachable.is_empty() {
        return (
            check(
                "zookeeper",
                NAME,
                Outcome::Unreachable,
                format!(
                    "cannot reach {}; the upgrade writes {upgrade}",
                    list(unreachable)
                ),
            ),
            None,
        );
    }
    if !unknown.is_empty() {
        return (
            check(
                "zookeeper",
                NAME,
                Outcome::Fail,
                format!("the id of {} is unknown (it does not serve `conf`); the upgrade writes {upgrade}", list(&unknown)),
            ),
            None,
        );
    }
    let pairs: Vec<(u64, String)> = reached
        .iter()
        .filter_map(|(n, s)| {
            s.conf
                .as_ref()
                .and_then(|c| c.server_id)
                .map(|id| (id, n.address.to_string()))
        })
        .collect();
    let running = match Ensemble::new(pairs) {
        Ok(e) => e,
        Err(e) => {
            let detail = match &e {
                ensemble::EnsembleError::DuplicateId { id, first, second } => format!(
                    "two servers claim id {id}: {} and {}",
                    inv.label(first),
                    inv.label(second)
                ),
                other => other.to_string(),
            };
            return (check("zookeeper", NAME, Outcome::Fail, detail), None);
        }
    };
    if running == upgrade {
        return (
            check(
                "zookeeper",
                NAME,
                Outcome::Pass,
                format!("{running} is what the upgrade writes"),
            ),
            None,
        );
    }
    let labels: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.address.to_string(), n.short().to_string()))
        .collect();
    let conflicts = ensemble::upgrade_conflicts(&running, &upgrade, &hosts).unwrap_or_default();
    // Each server runs the ensemble its `conf` lists; when that names hosts the inventory
    // does not, assume all run the same one.
    let views: Option<BTreeMap<String, Ensemble>> = reached
        .iter()
        .map(|(n, s)| {
            let conf = s.conf.as_ref()?;
            let view =
                Ensemble::new(conf.servers.iter().map(|(id, srv)| (*id, srv.host.clone()))).ok()?;
            let same_hosts = view.hosts().iter().all(|h| labels.contains_key(*h));
            same_hosts.then(|| (n.address.to_string(), view))
        })
        .collect();
    let rollout = match views {
        Some(v) if v.len() == nodes.len() => Rollout::new(&running, v, &upgrade),
        _ => Rollout::uniform(&running, &upgrade),
    }
    .or_else(|_| Rollout::uniform(&running, &upgrade));
    let leader = leaders.first().map(|n| n.address.to_string());
    let plan = rollout
        .and_then(|r| r.preview(leader.as_deref()))
        .unwrap_or_default();
    let changing = nodes
        .iter()
        .filter(|n| {
            let h = n.address.to_string();
            running.id_of(&h) != upgrade.id_of(&h)
        })
        .count();
    let evidence = format!(
        "running {running}, the upgrade writes {upgrade}: {changing} servers change id, {} conflicts; renumber first ({} restarts, below)",
        conflicts.len(),
        plan.len()
    );
    (
        check("zookeeper", NAME, Outcome::Fail, evidence),
        Some(IdReport {
            running,
            upgrade,
            restart_order: nodes.iter().map(|n| n.short().to_string()).collect(),
            conflicts,
            plan,
            labels,
        }),
    )
}

fn master_check(
    inv: &Inventory,
    service: &str,
    endpoint: &str,
    masters: &[&InventoryNode],
    seen: &BTreeMap<String, Result<LeaderSeen, String>>,
) -> Check {
    let name = "one leader agreed by every master";
    let mut unreachable = Vec::new();
    let mut problems = Vec::new();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in masters {
        match seen.get(&m.name) {
            None => unreachable.push(m.short().to_string()),
            Some(Err(_)) => unreachable.push(m.short().to_string()),
            Some(Ok(LeaderSeen::Leader(host))) => named
                .entry(inv.label(host))
                .or_default()
                .push(m.short().to_string()),
            Some(Ok(LeaderSeen::NoLeader(why))) => {
                problems.push(format!("{} knows no leader ({why})", m.short()))
            }
            Some(Ok(LeaderSeen::Unexpected(what))) => {
                problems.push(format!("{}: {what}", m.short()))
            }
        }
    }
    if named.len() > 1 {
        let views: Vec<String> = named
            .iter()
            .map(|(leader, by)| format!("{} name {leader}", list(by)))
            .collect();
        problems.push(format!("masters disagree: {}", views.join("; ")));
    }
    if let Some(leader) = named.keys().next() {
        let is_master = masters.iter().any(|m| m.short() == leader);
        if named.len() == 1 && !is_master {
            problems.push(format!(
                "{endpoint} names {leader}, which is no {service} master of the inventory"
            ));
        }
    }
    if !problems.is_empty() {
        return check(service, name, Outcome::Fail, problems.join("; "));
    }
    match named.iter().next() {
        Some((leader, by)) if unreachable.is_empty() => check(
            service,
            name,
            Outcome::Pass,
            format!("{leader}, named by all {} ({endpoint})", by.len()),
        ),
        Some((leader, by)) => check(
            service,
            name,
            Outcome::Unreachable,
            format!(
                "{leader} named by {}; cannot reach {}",
                by.len(),
                list(&unreachable)
            ),
        ),
        None => check(
            service,
            name,
            Outcome::Unreachable,
            format!("cannot reach {}", list(&unreachable)),
        ),
    }
}

fn neighbour_check(inv: &Inventory, obs: &Observations) -> Check {
    let name = "no stale entry for a changed MAC";
    let with_exec: Vec<&InventoryNode> = inv.nodes.iter().filter(|n| n.exec.is_some()).collect();
    if with_exec.is_empty() {
        return check(
            "neighbours",
            name,
            Outcome::Skip,
            "the inventory gives no node an `exec` to run commands with",
        );
    }
    let mut unreachable = Vec::new();
    let mut nets = Vec::new();
    for n in &with_exec {
        match obs.nets.get(&n.name) {
            Some(Ok(net)) => nets.push((*n, net)),
            _ => unreachable.push(n.short().to_string()),
        }
    }
    // Each node's current MAC, as the node itself has it.
    let current: BTreeMap<std::net::Ipv4Addr, (&str, &str)> = nets
        .iter()
        .filter_map(|(n, net)| {
            net.macs
                .get(&n.address)
                .map(|m| (n.address, (n.short(), m.as_str())))
        })
        .collect();
    let mut stale = Vec::new();
    let mut entries = 0;
    for (observer, net) in &nets {
        for (addr, entry) in &net.neighbours {
            let Some((target, mac)) = current.get(addr) else {
                continue;
            };
            entries += 1;
            if let Some(held) = entry.mac() {
                if !held.eq_ignore_ascii_case(mac) {
                    stale.push(format!(
                        "{} holds {held} for {target}, whose MAC is {mac}",
                        observer.short()
                    ));
                }
            }
        }
    }
    if !stale.is_empty() {
        return check("neighbours", name, Outcome::Fail, list(&stale));
    }
    if !unreachable.is_empty() {
        return check(
            "neighbours",
            name,
            Outcome::Unreachable,
            format!("cannot run commands on {}", list(&unreachable)),
        );
    }
    check(
        "neighbours",
        name,
        Outcome::Pass,
        format!(
            "{} nodes' tables hold {entries} entries for {} nodes, none stale",
            nets.len(),
            current.len()
        ),
    )
}
