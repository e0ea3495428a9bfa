//! ZooKeeper: every server serving, exactly one leader, the membership the inventory's, and
//! the running ids against the ones the upgrade will write.

use std::collections::{BTreeMap, BTreeSet};

use super::{leader, list, row, Check, IdReport, Outcome};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::{Observations, ZookeeperSeen};
use crate::probe::leader::{zookeeper_views, MemberView, Membership, ZookeeperAnswer};
use crate::probe::zookeeper::Mode;
use crate::static_ensemble::{self, Ensemble, Rollout};

/// What preflight saw of ZooKeeper: every server with its answer, those it reached, those it
/// could not, and those that say they lead.
struct Seen<'a> {
    inv: &'a Inventory,
    nodes: Vec<&'a InventoryNode>,
    all: Vec<(&'a InventoryNode, Result<&'a ZookeeperSeen, String>)>,
    reached: Vec<(&'a InventoryNode, &'a ZookeeperSeen)>,
    unreachable: Vec<String>,
    leaders: Vec<&'a InventoryNode>,
    /// Servers whose whitelist refuses `conf`: what it would show is unknown, not wrong.
    conf_refused: Vec<String>,
}

impl<'a> Seen<'a> {
    fn new(inv: &'a Inventory, obs: &'a Observations) -> Self {
        let nodes = inv.zookeeper_nodes();
        let all: Vec<(&InventoryNode, Result<&ZookeeperSeen, String>)> = nodes
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
        let unreachable = all
            .iter()
            .filter(|(_, s)| s.is_err())
            .map(|(n, _)| n.short().to_string())
            .collect();
        let reached: Vec<(&InventoryNode, &ZookeeperSeen)> = all
            .iter()
            .filter_map(|(n, s)| s.as_ref().ok().map(|s| (*n, *s)))
            .collect();
        let leaders = reached
            .iter()
            .filter(|(_, s)| s.mode == Mode::Leader)
            .map(|(n, _)| *n)
            .collect();
        let conf_refused = reached
            .iter()
            .filter(|(n, _)| {
                obs.zookeeper_words
                    .get(&n.name)
                    .is_some_and(|w| w.refused.iter().any(|r| r == "conf"))
            })
            .map(|(n, _)| n.short().to_string())
            .collect();
        Self {
            inv,
            nodes,
            all,
            reached,
            unreachable,
            leaders,
            conf_refused,
        }
    }

    fn cant_reach(&self) -> String {
        format!("cannot reach {}", list(&self.unreachable))
    }

    /// The row saying `conf` could not be read where the whitelist refuses it.
    fn conf_unknown(&self, name: &str) -> Option<Check> {
        (!self.conf_refused.is_empty()).then(|| {
            row(
                "zookeeper",
                name,
                Outcome::Unknown,
                format!(
                    "`conf` is not allowed on {} (add it to 4lw.commands.whitelist): the ensemble and ids cannot be read",
                    list(&self.conf_refused)
                ),
            )
        })
    }
}

pub(super) fn checks(inv: &Inventory, obs: &Observations) -> (Vec<Check>, Option<IdReport>) {
    let seen = Seen::new(inv, obs);
    let (ids_check, report) = id_check(&seen);
    (
        vec![
            every_server_serving(&seen),
            one_leader(&seen),
            members_match(&seen),
            ids_check,
        ],
        report,
    )
}

/// Every server serves, as a leader, follower or observer.
fn every_server_serving(seen: &Seen<'_>) -> Check {
    let (nodes, reached) = (&seen.nodes, &seen.reached);
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
    if !idle.is_empty() {
        row(
            "zookeeper",
            "every server serving",
            Outcome::Fail,
            list(&idle),
        )
    } else if !seen.unreachable.is_empty() {
        row(
            "zookeeper",
            "every server serving",
            Outcome::Unreachable,
            seen.cant_reach(),
        )
    } else {
        let observers = count(Mode::Observer);
        row(
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
    }
}

/// One leader, backed by a majority of the ensemble it runs and named by every server.
fn one_leader(seen: &Seen<'_>) -> Check {
    let inv = seen.inv;
    // Preflight reads no admin server: a follower is taken to follow the one server that
    // says it leads.
    let answers: BTreeMap<String, Result<ZookeeperAnswer, MemberView>> = seen
        .all
        .iter()
        .map(|(n, s)| {
            (
                n.short().to_string(),
                s.as_ref()
                    .map(|s| ZookeeperAnswer {
                        mode: s.mode,
                        epoch: s.zxid.map(|z| z >> 32),
                        follows: None,
                    })
                    .map_err(|e| MemberView::Unreachable { why: e.clone() }),
            )
        })
        .collect();
    leader::row_for(
        "zookeeper",
        "one leader backed by a majority",
        &zookeeper_views(&answers, |_| None),
        &seen.unreachable,
        |leader| {
            let s = leader::answer_of(&seen.reached, leader)?;
            Membership::of_zookeeper(s, |host| inv.label(host), leader)
        },
    )
}

/// Every serving server lists exactly the inventory's servers, with one id→host map.
fn members_match(seen: &Seen<'_>) -> Check {
    let (inv, nodes, reached) = (seen.inv, &seen.nodes, &seen.reached);
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
    if let Some(unknown) = seen.conf_unknown("members match the inventory") {
        return unknown;
    }
    match confs.first() {
        None if !seen.unreachable.is_empty() => row(
            "zookeeper",
            "members match the inventory",
            Outcome::Unreachable,
            seen.cant_reach(),
        ),
        None => row(
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
            row(
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
                row(
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
                row(
                    "zookeeper",
                    "members match the inventory",
                    Outcome::Fail,
                    parts.join("; "),
                )
            }
        }
    }
}

/// The name of the id check.
const IDS: &str = "ids match what the upgrade writes";

/// The running ids against the ones the upgrade will write, and the safe renumbering when they
/// differ.
fn id_check(seen: &Seen<'_>) -> (Check, Option<IdReport>) {
    let hosts: Vec<String> = seen.nodes.iter().map(|n| n.address.to_string()).collect();
    let upgrade = match static_ensemble::upgrade_target(&hosts) {
        Ok(e) => e,
        Err(e) => return (row("zookeeper", IDS, Outcome::Fail, e.to_string()), None),
    };
    let running = match running_ids(seen, &upgrade) {
        Ok(running) => running,
        Err(check) => return (check, None),
    };
    if running == upgrade {
        return (
            row(
                "zookeeper",
                IDS,
                Outcome::Pass,
                format!("{running} is what the upgrade writes"),
            ),
            None,
        );
    }
    let (check, report) = renumbering(seen, running, upgrade, &hosts);
    (check, Some(report))
}

/// The ensemble the servers run, by the ids each reports; a check saying why it cannot be
/// read (a server out of reach, an id unknown, two servers claiming one id).
fn running_ids(seen: &Seen<'_>, upgrade: &Ensemble) -> Result<Ensemble, Check> {
    let (inv, reached, unreachable) = (seen.inv, &seen.reached, &seen.unreachable);
    let unknown: Vec<String> = reached
        .iter()
        .filter(|(_, s)| s.conf.as_ref().and_then(|c| c.server_id).is_none())
        .map(|(n, _)| n.short().to_string())
        .collect();
    if !unreachable.is_empty() {
        return Err(row(
            "zookeeper",
            IDS,
            Outcome::Unreachable,
            format!(
                "cannot reach {}; the upgrade writes {upgrade}",
                list(unreachable)
            ),
        ));
    }
    if let Some(unknown) = seen.conf_unknown(IDS) {
        return Err(unknown);
    }
    if !unknown.is_empty() {
        return Err(row(
            "zookeeper",
            IDS,
            Outcome::Fail,
            format!(
                "the id of {} is unknown (it does not serve `conf`); the upgrade writes {upgrade}",
                list(&unknown)
            ),
        ));
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
    Ensemble::new(pairs).map_err(|e| {
        let detail = match &e {
            static_ensemble::EnsembleError::DuplicateId { id, first, second } => format!(
                "two servers claim id {id}: {} and {}",
                inv.label(first),
                inv.label(second)
            ),
            other => other.to_string(),
        };
        row("zookeeper", IDS, Outcome::Fail, detail)
    })
}

/// The servers whose ids change, the conflicts an upgrade would meet, and the safe renumbering
/// to do first.
fn renumbering(
    seen: &Seen<'_>,
    running: Ensemble,
    upgrade: Ensemble,
    hosts: &[String],
) -> (Check, IdReport) {
    let (nodes, reached, leaders) = (&seen.nodes, &seen.reached, &seen.leaders);
    let labels: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.address.to_string(), n.short().to_string()))
        .collect();
    let conflicts =
        static_ensemble::upgrade_conflicts(&running, &upgrade, hosts).unwrap_or_default();
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
    // Every server was reached (`running_ids` refuses otherwise), so there is a view of each.
    let rollout = match views {
        Some(v) => Rollout::new(&running, v, &upgrade),
        None => Rollout::uniform(&running, &upgrade),
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
        row("zookeeper", IDS, Outcome::Fail, evidence),
        IdReport {
            running,
            upgrade,
            restart_order: nodes.iter().map(|n| n.short().to_string()).collect(),
            conflicts,
            plan,
            labels,
        },
    )
}
