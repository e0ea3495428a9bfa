//! The ZooKeeper ensemble steps: discover the running ids, write a static ensemble and restart
//! one server at a time, renumber to the upgrade's ids with the safe rolling plan, and write
//! and read back data. Every restart is gated on the ensemble serving under one leader.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::{name, poll_until, Poll, Runner};
use crate::cluster::Cluster;
use crate::ensemble::{self, Ensemble, Reason, Rollout};
use crate::observe::Observer;
use crate::probe::znodes;
use crate::probe::zookeeper::{server_state, Mode};
use crate::provider::Hosts;
use crate::service::{zookeeper, ServiceKind};
use crate::spec::{NodeRef, ZookeeperIds};

/// How long one four-letter exchange may take.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long one data read or write may take.
const DATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long discovery waits for every server to serve.
const DISCOVER_WITHIN: Duration = Duration::from_secs(30);

/// What the ZooKeeper steps of one run remember.
#[derive(Debug, Default)]
pub struct ZookeeperRun {
    /// Ids read from the running servers by `zookeeper-discover-ids`, by node.
    pub discovered: Option<BTreeMap<String, u64>>,
}

/// One server as its four-letter words show it now.
#[derive(Debug, Clone)]
struct Seen {
    mode: Result<Mode, String>,
    /// `conf` serverId (ZooKeeper answers `conf` only while it serves).
    id: Option<u64>,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Err(e) => write!(f, "unreachable ({e})"),
            Ok(Mode::NotServing) => f.write_str("not serving"),
            Ok(mode) => {
                let word = match mode {
                    Mode::Leader => "leader",
                    Mode::Follower => "follower",
                    Mode::Observer => "observer",
                    _ => "standalone",
                };
                match self.id {
                    Some(id) => write!(f, "{word} as id {id}"),
                    None => f.write_str(word),
                }
            }
        }
    }
}

/// Every live ZooKeeper server, as `srvr` and `conf` show it, and the leader a majority of
/// the configured ensemble backs (or why none does).
async fn look<H: Hosts>(observer: &Observer, cluster: &Cluster<H>) -> Look {
    let (seen, backed) = tokio::join!(
        join_all(
            cluster
                .members(ServiceKind::Zookeeper)
                .into_iter()
                .map(|m| async move {
                    let state = server_state(cluster.zookeeper_addr(&m), FOUR_LETTER_TIMEOUT).await;
                    let id = state
                        .as_ref()
                        .ok()
                        .and_then(|s| s.conf.as_ref())
                        .and_then(|c| c.server_id);
                    let mode = state.map(|s| s.mode);
                    (m.fqdn, Seen { mode, id })
                }),
        ),
        observer.leader(cluster, ServiceKind::Zookeeper)
    );
    Look {
        seen: seen.into_iter().collect(),
        backed: backed.leader.map(|b| b.leader).map_err(|e| e.to_string()),
    }
}

/// One look at the ensemble.
#[derive(Debug, Clone)]
struct Look {
    seen: BTreeMap<String, Seen>,
    backed: Result<String, String>,
}

/// The leader, when every live server serves, exactly one leads, a majority of the configured
/// ensemble backs it and no two claim one id.
fn health(look: &Look) -> Result<String, String> {
    let seen = &look.seen;
    if seen.is_empty() {
        return Err("no live zookeeper server".to_string());
    }
    let mut problems: Vec<String> = seen
        .iter()
        .filter(|(_, s)| !matches!(s.mode, Ok(Mode::Leader | Mode::Follower)))
        .map(|(n, s)| format!("{} is {s}", name(n)))
        .collect();
    let mut claims: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (n, s) in seen {
        if let Some(id) = s.id {
            claims.entry(id).or_default().push(name(n));
        }
    }
    for (id, nodes) in &claims {
        if nodes.len() > 1 {
            problems.push(format!(
                "two servers claim id {id}: {}",
                nodes.join(" and ")
            ));
        }
    }
    let leaders: Vec<&String> = seen
        .iter()
        .filter(|(_, s)| matches!(s.mode, Ok(Mode::Leader)))
        .map(|(n, _)| n)
        .collect();
    match leaders.as_slice() {
        [one] if problems.is_empty() => match &look.backed {
            Ok(backed) if backed == *one => Ok((*one).clone()),
            Ok(backed) => Err(format!(
                "{} leads, but the majority-backed leader is {}",
                name(one),
                name(backed)
            )),
            Err(e) => Err(e.clone()),
        },
        [] => {
            problems.push("no server leads".to_string());
            Err(problems.join("; "))
        }
        [_] => Err(problems.join("; ")),
        many => {
            let names: Vec<&str> = many.iter().map(|n| name(n)).collect();
            problems.push(format!("several servers lead: {}", names.join(", ")));
            Err(problems.join("; "))
        }
    }
}

fn summary(seen: &BTreeMap<String, Seen>) -> String {
    seen.iter()
        .map(|(n, s)| format!("{} {s}", name(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ZooKeeper nodes' addresses, by node.
fn addresses<H: Hosts>(cluster: &Cluster<H>) -> BTreeMap<String, Ipv4Addr> {
    cluster
        .nodes()
        .into_iter()
        .filter(|n| n.services.contains(&ServiceKind::Zookeeper))
        .map(|n| (n.fqdn, n.address))
        .collect()
}

/// Node names by ensemble host (the address as a string).
fn nodes_by_host(addresses: &BTreeMap<String, Ipv4Addr>) -> BTreeMap<String, String> {
    addresses
        .iter()
        .map(|(n, a)| (a.to_string(), n.clone()))
        .collect()
}

fn ensemble_of(
    addresses: &BTreeMap<String, Ipv4Addr>,
    ids: &BTreeMap<String, u64>,
) -> Result<Ensemble, String> {
    Ensemble::new(
        ids.iter()
            .filter_map(|(node, id)| addresses.get(node).map(|a| (*id, a.to_string()))),
    )
    .map_err(|e| format!("the ids are no valid ensemble: {e}"))
}

fn target_of(addresses: &BTreeMap<String, Ipv4Addr>) -> Result<Ensemble, String> {
    let hosts: Vec<String> = addresses.values().map(|a| a.to_string()).collect();
    ensemble::upgrade_target(&hosts)
        .map_err(|e| format!("failed to compute the upgrade's ids: {e}"))
}

/// What a server's zoo.cfg and myid get: its id in the ensemble, and the ensemble in
/// lexicographic order of address.
fn assignment(ensemble: &Ensemble, host: &str) -> Result<zookeeper::Assignment, String> {
    let id = ensemble
        .id_of(host)
        .ok_or_else(|| format!("{host} is not in the ensemble {ensemble}"))?;
    let servers = ensemble
        .members()
        .iter()
        .map(|m| {
            m.host
                .parse::<Ipv4Addr>()
                .map(|address| zookeeper::Server { id: m.id, address })
                .map_err(|_| format!("{} is no address", m.host))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(zookeeper::Assignment {
        id,
        ensemble: servers,
    })
}

/// Every live server's id, once all serve (polled, as servers may be settling).
async fn running_ids<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
) -> Result<BTreeMap<String, u64>, String> {
    let (cluster, observer, rec) = r.split();
    let (ids, _) = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        let outcome = health(&looked).and_then(|_| {
            seen.iter()
                .map(|(n, s)| {
                    s.id.map(|id| (n.clone(), id))
                        .ok_or_else(|| format!("{} does not report its id", name(n)))
                })
                .collect::<Result<BTreeMap<_, _>, String>>()
        });
        Poll {
            outcome,
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await?;
    Ok(ids)
}

/// The leader, once every live server serves under it with distinct ids.
async fn healthy_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
) -> Result<String, String> {
    let (cluster, observer, rec) = r.split();
    let (leader, _) = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        Poll {
            outcome: health(&looked),
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await?;
    Ok(leader)
}

/// `zookeeper-discover-ids`
pub(super) async fn discover<H: Hosts>(r: &mut Runner<'_, H>) -> Result<String, String> {
    let ids = running_ids(r, DISCOVER_WITHIN).await?;
    let ensemble = ensemble_of(&addresses(&*r.cluster), &ids)?;
    let by_node: Vec<String> = ids
        .iter()
        .map(|(n, id)| format!("{} {id}", name(n)))
        .collect();
    r.rec
        .record(format!("discovered the running ZooKeeper ids: {ensemble}"));
    r.zookeeper.discovered = Some(ids);
    Ok(format!(
        "ids from conf serverId: {}; sorted by address: {ensemble}",
        by_node.join(", ")
    ))
}

/// Restarts ZooKeeper on a node and waits until it serves as `id` under one agreed leader.
async fn restart_and_wait<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    id: u64,
    within: Duration,
) -> Result<Duration, String> {
    r.cluster
        .stop_service(node, ServiceKind::Zookeeper)
        .await
        .map_err(|e| e.to_string())?;
    r.cluster
        .start_service(node, ServiceKind::Zookeeper)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (cluster, observer, rec) = r.split();
    let result = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        let outcome = match seen.get(node) {
            Some(s) if s.id == Some(id) => health(&looked).map(|_| ()),
            Some(s) => {
                let mine = match s.id {
                    Some(other) => format!("{} serves as id {other}, not {id}", name(node)),
                    None => format!("{} is {s} (restarted as id {id})", name(node)),
                };
                let mut others = looked.clone();
                others.seen.remove(node);
                let mut why = vec![mine];
                if let Err(e) = health(&others) {
                    why.push(e);
                }
                Err(why.join("; "))
            }
            None => Err(format!("{} is no live zookeeper server", name(node))),
        };
        Poll {
            outcome,
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await;
    match result {
        Ok(_) => Ok(started.elapsed()),
        Err(e) => {
            // Who else still serves with the id this server was restarted with.
            let seen = look(observer, cluster).await.seen;
            let holders: Vec<&str> = seen
                .iter()
                .filter(|(n, s)| n.as_str() != node && s.id == Some(id))
                .map(|(n, _)| name(n))
                .collect();
            let joined = seen.get(node).is_some_and(|s| s.id.is_some());
            Err(match holders.as_slice() {
                _ if joined => e,
                [] => e,
                _ => format!(
                    "{e} — two servers claim id {id}: {} (restarted with it, cannot join) and {} (serving with it)",
                    name(node),
                    holders.join(", ")
                ),
            })
        }
    }
}

fn human(d: Duration) -> String {
    crate::base::time::human_ms(d.as_millis() as u64)
}

/// `zookeeper-static-ensemble`
pub(super) async fn static_ensemble<H: Hosts>(
    r: &mut Runner<'_, H>,
    ids: ZookeeperIds,
    order: &[NodeRef],
    within: Duration,
) -> Result<String, String> {
    let addrs = addresses(&*r.cluster);
    let by_host = nodes_by_host(&addrs);
    let label = |host: &str| {
        by_host
            .get(host)
            .map(|n| name(n).to_string())
            .unwrap_or_else(|| host.to_string())
    };
    let running = ensemble_of(&addrs, &running_ids(r, within).await?)?;
    let ensemble = match ids {
        ZookeeperIds::Discovered => {
            let discovered = r
                .zookeeper
                .discovered
                .clone()
                .ok_or("no ids were discovered (add a `zookeeper-discover-ids` step)")?;
            ensemble_of(&addrs, &discovered)?
        }
        ZookeeperIds::Upgrade => target_of(&addrs)?,
    };
    let order: Vec<String> = if order.is_empty() {
        ensemble
            .hosts()
            .iter()
            .filter_map(|h| by_host.get(*h).cloned())
            .collect()
    } else {
        order
            .iter()
            .map(|n| r.resolve(n))
            .collect::<Result<_, _>>()?
    };
    let order_hosts: Vec<String> = order
        .iter()
        .filter_map(|n| addrs.get(n).map(|a| a.to_string()))
        .collect();
    let conflicts = ensemble::upgrade_conflicts(&running, &ensemble, &order_hosts)
        .map_err(|e| e.to_string())?;
    let predicted: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "restart {} of {}: {} (id {}) takes id {}, which {} holds until restart {}",
                c.restart,
                c.of,
                label(&c.host),
                c.previous_id,
                c.id,
                label(&c.holder),
                c.holder_restart
            )
        })
        .collect();
    r.rec.record(format!(
        "writing the static ensemble {ensemble} on every server, then restarting {}",
        order.iter().map(|n| name(n)).collect::<Vec<_>>().join(", ")
    ));
    for p in &predicted {
        r.rec.record(format!("predicted id conflict: {p}"));
    }
    // As the seed does: the file changes on every server before any restarts.
    for (node, address) in &addrs {
        let a = assignment(&ensemble, &address.to_string())?;
        r.cluster.set_zookeeper_config(node, a);
    }
    let mut slowest = Duration::ZERO;
    for (i, node) in order.iter().enumerate() {
        let host = addrs.get(node).map(|a| a.to_string()).unwrap_or_default();
        let id = ensemble.id_of(&host).unwrap_or(0);
        match restart_and_wait(r, node, id, within).await {
            Ok(took) => {
                slowest = slowest.max(took);
                r.rec.record(format!(
                    "restart {} of {}: {} serves as id {id} after {}",
                    i + 1,
                    order.len(),
                    name(node),
                    human(took)
                ));
            }
            Err(e) => {
                let mut detail = format!(
                    "restart {} of {}: {} restarted as id {id}: {e}",
                    i + 1,
                    order.len(),
                    name(node)
                );
                if !predicted.is_empty() {
                    detail.push_str(&format!(
                        " (predicted before any restart: {})",
                        predicted.join("; ")
                    ));
                }
                return Err(detail);
            }
        }
    }
    Ok(format!(
        "{ensemble}: {} servers restarted one at a time, each serving again within {}",
        order.len(),
        human(slowest)
    ))
}

/// How a restarted follower caught up with the leader, from its own log.
fn sync_kind(log: &str) -> Option<&'static str> {
    if log.contains("Getting a snapshot from leader") {
        Some("snapshot")
    } else if log.contains("Getting a diff from the leader") {
        Some("diff")
    } else if log.contains("Truncating log") {
        Some("truncation")
    } else {
        None
    }
}

/// The highest zxid a server loaded from its own data directory when it started
/// (`Snapshot loaded in … ms, highest zxid is 0x…`).
fn loaded_zxid(log: &str) -> Option<u64> {
    let at = log.find("highest zxid is 0x")? + "highest zxid is 0x".len();
    let hex: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u64::from_str_radix(&hex, 16).ok()
}

/// `zookeeper-renumber`
pub(super) async fn renumber<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
) -> Result<String, String> {
    let addrs = addresses(&*r.cluster);
    let by_host = nodes_by_host(&addrs);
    let ids = running_ids(r, within).await?;
    let running = ensemble_of(&addrs, &ids)?;
    let target = target_of(&addrs)?;
    // Each server still runs the ensemble it was started with, whatever its file says now.
    let mut views = BTreeMap::new();
    for (node, address) in &addrs {
        let started = r
            .cluster
            .zookeeper_started_with(node)
            .ok_or_else(|| format!("the ensemble {} was started with is unknown", name(node)))?;
        if ids.get(node) != Some(&started.id) {
            return Err(format!(
                "{} serves as id {:?} but was started as id {}",
                name(node),
                ids.get(node),
                started.id
            ));
        }
        let view = Ensemble::new(
            started
                .ensemble
                .iter()
                .map(|s| (s.id, s.address.to_string())),
        )
        .map_err(|e| format!("{} was started with an invalid ensemble: {e}", name(node)))?;
        views.insert(address.to_string(), view);
    }
    let mut rollout = Rollout::new(&running, views, &target).map_err(|e| e.to_string())?;
    let moves = rollout.pending_moves();
    r.rec.record(format!(
        "renumbering {running} to {target}: {}",
        if moves.is_empty() {
            "nothing to move".to_string()
        } else {
            moves
                .iter()
                .map(|m| {
                    format!(
                        "{} {}→{}",
                        by_host.get(&m.host).map(|n| name(n)).unwrap_or(&m.host),
                        m.from,
                        m.to
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let bound = (moves.len() + 1) * (addrs.len() + 1) + 1;
    let (mut renumbered, mut refreshed, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let mut syncs: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut kept = 0usize;
    for count in 1.. {
        if count > bound {
            return Err(format!("the rollout did not end after {bound} restarts"));
        }
        let leader = healthy_leader(r, within)
            .await
            .map_err(|e| format!("the ensemble is not healthy: {e}"))?;
        let leader_host = addrs.get(&leader).map(|a| a.to_string());
        let Some(restart) = rollout.next(leader_host.as_deref()) else {
            break;
        };
        let node = by_host
            .get(&restart.host)
            .cloned()
            .ok_or_else(|| format!("{} is no node", restart.host))?;
        if let Some(h) = &restart.hazard {
            return Err(format!("stopped before restarting {}: {h}", name(&node)));
        }
        let a = assignment(&restart.ensemble, &restart.host)?;
        r.cluster.set_zookeeper_config(&node, a);
        let what = match restart.reason {
            Reason::Renumber => format!(
                "{} id {} → {}",
                name(&node),
                restart.previous_id,
                restart.id
            ),
            Reason::Refresh => format!("{} (id {}) reloads the ensemble", name(&node), restart.id),
        };
        let took = restart_and_wait(r, &node, restart.id, within)
            .await
            .map_err(|e| format!("restart {count}, {what}: {e}"))?;
        slowest = slowest.max(took);
        let mut note = String::new();
        if restart.reason == Reason::Renumber {
            renumbered += 1;
            let log = r
                .cluster
                .service_log_since_start(&node, ServiceKind::Zookeeper)
                .await;
            if let Some(log) = log {
                // ZooKeeper keys nothing in the data directory by id: a renumbered server
                // loads its own snapshot and log, then catches up with the leader (by a diff,
                // or by a snapshot when a new leader's epoch began since it last synced).
                match loaded_zxid(&log) {
                    Some(z) if z > 0 => {
                        kept += 1;
                        note = format!(", kept its data (loaded up to 0x{z:x})");
                    }
                    _ => {
                        return Err(format!(
                            "restart {count}, {what}: it did not load its own data when it started"
                        ))
                    }
                }
                if let Some(kind) = sync_kind(&log) {
                    *syncs.entry(kind).or_default() += 1;
                    note.push_str(&format!(", synced by {kind}"));
                }
            }
        } else {
            refreshed += 1;
        }
        rollout.apply(&restart).map_err(|e| e.to_string())?;
        r.rec.record(format!(
            "restart {count}: {what}{}{note}, serving after {}",
            if restart.leader { " (was leading)" } else { "" },
            human(took)
        ));
    }
    if !rollout.is_done() {
        return Err(format!(
            "stopped at {} before reaching {target}",
            rollout.truth()
        ));
    }
    let kept = if kept == 0 {
        String::new()
    } else {
        format!(
            "; the {kept} renumbered servers kept their data and caught up by {}",
            syncs
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(format!(
        "{target}: {} restarts ({renumbered} renumbered, {refreshed} reloaded the ensemble), no id ever held twice, each serving again within {}{kept}",
        renumbered + refreshed,
        human(slowest)
    ))
}

/// `zookeeper-write`
pub(super) async fn write<H: Hosts>(
    r: &mut Runner<'_, H>,
    path: &str,
    data: &str,
) -> Result<String, String> {
    let servers: Vec<SocketAddr> = r
        .cluster
        .members(ServiceKind::Zookeeper)
        .iter()
        .map(|m| r.cluster.zookeeper_addr(m))
        .collect();
    znodes::write(&servers, path, data.as_bytes(), DATA_TIMEOUT).await?;
    r.rec.record(format!("wrote {path} = {data:?}"));
    Ok(format!(
        "wrote {path} = {data:?} through {} servers",
        servers.len()
    ))
}

/// `expect = "zookeeper-ids"`
pub(super) async fn expect_ids<H: Hosts>(
    r: &mut Runner<'_, H>,
    ids: ZookeeperIds,
    within: Duration,
) -> Result<String, String> {
    let addrs = addresses(&*r.cluster);
    let expected: BTreeMap<String, u64> = match ids {
        ZookeeperIds::Discovered => r
            .zookeeper
            .discovered
            .clone()
            .ok_or("no ids were discovered (add a `zookeeper-discover-ids` step)")?,
        ZookeeperIds::Upgrade => {
            let target = target_of(&addrs)?;
            addrs
                .iter()
                .filter_map(|(n, a)| target.id_of(&a.to_string()).map(|id| (n.clone(), id)))
                .collect()
        }
    };
    let (cluster, observer, rec) = r.split();
    let expected = &expected;
    let (line, _) = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        let mut wrong = Vec::new();
        for (node, want) in expected {
            match seen.get(node) {
                Some(s) if s.id == Some(*want) => {}
                Some(s) => wrong.push(format!("{} is {s}, not id {want}", name(node))),
                None => wrong.push(format!("{} is not running", name(node))),
            }
        }
        let outcome = match health(&looked) {
            Ok(_) if wrong.is_empty() => Ok(expected
                .iter()
                .map(|(n, id)| format!("{} {id}", name(n)))
                .collect::<Vec<_>>()
                .join(", ")),
            Ok(_) => Err(wrong.join(", ")),
            Err(e) => {
                wrong.push(e);
                Err(wrong.join("; "))
            }
        };
        Poll {
            outcome,
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await?;
    Ok(format!("every server reports its id: {line}"))
}

/// `expect = "zookeeper-data"`
pub(super) async fn expect_data<H: Hosts>(
    r: &mut Runner<'_, H>,
    path: &str,
    data: &str,
    within: Duration,
) -> Result<String, String> {
    let (cluster, _, rec) = r.split();
    let (count, _) = poll_until(within, rec, || async move {
        let members = cluster.members(ServiceKind::Zookeeper);
        let reads = join_all(members.iter().map(|m| async move {
            (
                m.fqdn.clone(),
                znodes::read(cluster.zookeeper_addr(m), path, DATA_TIMEOUT).await,
            )
        }))
        .await;
        let wrong: Vec<String> = reads
            .iter()
            .filter_map(|(n, got)| match got {
                Ok(bytes) if bytes == data.as_bytes() => None,
                Ok(bytes) => Some(format!(
                    "{} returns {:?}",
                    name(n),
                    String::from_utf8_lossy(bytes)
                )),
                Err(e) => Some(format!("{}: {e}", name(n))),
            })
            .collect();
        let outcome = if wrong.is_empty() && !reads.is_empty() {
            Ok(reads.len())
        } else if reads.is_empty() {
            Err("no live zookeeper server".to_string())
        } else {
            Err(wrong.join(", "))
        };
        let seen = match &outcome {
            Ok(n) => format!("{n} servers return it"),
            Err(e) => e.clone(),
        };
        Poll {
            outcome,
            observation: Some((format!("zookeeper {path}"), seen)),
        }
    })
    .await?;
    Ok(format!("{count} servers return {path} = {data:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(list: &[(&str, Result<Mode, String>, Option<u64>)]) -> Look {
        backed(list, Ok("q2.c".to_string()))
    }

    fn backed(
        list: &[(&str, Result<Mode, String>, Option<u64>)],
        backed: Result<String, String>,
    ) -> Look {
        let seen = list
            .iter()
            .map(|(n, mode, id)| {
                (
                    n.to_string(),
                    Seen {
                        mode: mode.clone(),
                        id: *id,
                    },
                )
            })
            .collect();
        Look { seen, backed }
    }

    #[test]
    fn health_wants_everyone_serving_one_leader_and_distinct_ids() {
        let ok = seen(&[
            ("q1.c", Ok(Mode::Follower), Some(1)),
            ("q2.c", Ok(Mode::Leader), Some(2)),
        ]);
        assert_eq!(health(&ok), Ok("q2.c".to_string()));
        let dup = seen(&[
            ("q1.c", Ok(Mode::Follower), Some(1)),
            ("q2.c", Ok(Mode::Leader), Some(1)),
        ]);
        assert_eq!(
            health(&dup),
            Err("two servers claim id 1: q1 and q2".to_string())
        );
        let stuck = seen(&[
            ("q1.c", Ok(Mode::NotServing), None),
            ("q2.c", Ok(Mode::Leader), Some(2)),
            ("q3.c", Err("refused".to_string()), None),
        ]);
        assert_eq!(
            health(&stuck),
            Err("q1 is not serving; q3 is unreachable (refused)".to_string())
        );
        // Every live server serving under one leader is not enough without a majority.
        let minority = backed(
            &[("q2.c", Ok(Mode::Leader), Some(2))],
            Err("q2 is backed by 1 of the 3 voters".to_string()),
        );
        assert_eq!(
            health(&minority),
            Err("q2 is backed by 1 of the 3 voters".to_string())
        );
    }

    #[test]
    fn the_sync_kind_is_read_from_the_followers_log() {
        assert_eq!(
            sync_kind("… INFO org.apache.zookeeper.server.quorum.Learner - Getting a diff from the leader 0x200000003"),
            Some("diff")
        );
        assert_eq!(
            sync_kind("Learner - Getting a snapshot from leader 0x200000000"),
            Some("snapshot")
        );
        assert_eq!(sync_kind("LOOKING"), None);
        assert_eq!(
            loaded_zxid("ZKDatabase - Snapshot loaded in 31 ms, highest zxid is 0x100000004, digest is 1371985504"),
            Some(0x1_0000_0004)
        );
        assert_eq!(loaded_zxid("nothing"), None);
    }
}
