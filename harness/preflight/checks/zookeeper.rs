//! ZooKeeper: every server serving, exactly one leader, the membership the inventory's, and
//! the running ids against the ones the upgrade will write.

use std::collections::{BTreeMap, BTreeSet};

use super::{leader, list, row, Check, IdReport, Outcome};
use crate::ensemble::{self, Ensemble, Rollout};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::{Observations, ZookeeperSeen};
use crate::probe::leader::{zookeeper_views, MemberView, Membership, ZookeeperAnswer};
use crate::probe::zookeeper::Mode;

pub(super) fn checks(inv: &Inventory, obs: &Observations) -> (Vec<Check>, Option<IdReport>) {
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
        row(
            "zookeeper",
            "every server serving",
            Outcome::Fail,
            list(&idle),
        )
    } else if !unreachable.is_empty() {
        row(
            "zookeeper",
            "every server serving",
            Outcome::Unreachable,
            cant_reach(),
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
    });

    // One leader, backed by a majority of the ensemble it runs.
    let leaders: Vec<&InventoryNode> = reached
        .iter()
        .filter(|(_, s)| s.mode == Mode::Leader)
        .map(|(n, _)| *n)
        .collect();
    // Preflight reads no admin server: a follower is taken to follow the one server that
    // says it leads.
    let answers: BTreeMap<String, Result<ZookeeperAnswer, MemberView>> = seen
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
    out.push(leader::row_for(
        "zookeeper",
        "one leader backed by a majority",
        &zookeeper_views(&answers, |_| None),
        &unreachable,
        |leader| {
            let s = leader::answer_of(&reached, leader)?;
            Membership::of_zookeeper(s, |host| inv.label(host), leader)
        },
    ));

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
        None if !unreachable.is_empty() => row(
            "zookeeper",
            "members match the inventory",
            Outcome::Unreachable,
            cant_reach(),
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
        Err(e) => return (row("zookeeper", NAME, Outcome::Fail, e.to_string()), None),
    };
    let unknown: Vec<String> = reached
        .iter()
        .filter(|(_, s)| s.conf.as_ref().and_then(|c| c.server_id).is_none())
        .map(|(n, _)| n.short().to_string())
        .collect();
    if !unreachable.is_empty() {
        return (
            row(
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
            row(
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
            return (row("zookeeper", NAME, Outcome::Fail, detail), None);
        }
    };
    if running == upgrade {
        return (
            row(
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
        row("zookeeper", NAME, Outcome::Fail, evidence),
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
