//! What each kind of step does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::{name, poll_until, Poll, Runner};
use crate::observe::{compare_members, describe, Observer};
use crate::probe::leader::{agreed_leader, LeaderViews, MemberView};
use crate::provider::Cluster;
use crate::service::{etcd, ServiceKind};
use crate::spec::{LeaderGoal, MoveMethod, NeighbourState, NodeSet, StepKind, Target, Via};

/// Deadline for finding a leader and for leadership to move.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// A service is healthy: one agreed leader (the same in every view) and every expected member
/// listed and started; web services answer their health checks.
pub async fn service_healthy<C: Cluster>(
    observer: &Observer,
    cluster: &C,
    service: ServiceKind,
) -> Result<(), String> {
    match service {
        ServiceKind::Etcd | ServiceKind::Zookeeper => {
            let views = observer.leader_views(cluster, service).await;
            agreed_leader(&views)?;
            let expected = cluster
                .members(service)
                .into_iter()
                .map(|n| n.fqdn)
                .collect();
            let lists = observer.member_lists(cluster, service).await?;
            compare_members(&lists, &expected, true)
        }
        ServiceKind::MesosMaster | ServiceKind::Marathon => {
            observe_leader(observer, cluster, service, Via::Both)
                .await
                .0
                .map(|_| ())
        }
        ServiceKind::App | ServiceKind::Ingress => observer.http_healthy(cluster, service).await,
    }
}

/// The leader as `via` reads it, and a line saying what was seen.
pub async fn observe_leader<C: Cluster>(
    observer: &Observer,
    cluster: &C,
    service: ServiceKind,
    via: Via,
) -> (Result<String, String>, String) {
    let masters = matches!(service, ServiceKind::MesosMaster | ServiceKind::Marathon);
    let http = if !masters || via != Via::Znode {
        let views = observer.leader_views(cluster, service).await;
        Some((agreed_leader(&views), summarize(&views)))
    } else {
        None
    };
    if !masters || via == Via::Http {
        let (result, seen) = http.unwrap_or_else(|| (Err("not observed".into()), String::new()));
        return (result, seen);
    }
    let znode = match observer.znode_leader(cluster, service).await {
        Ok(Some(leader)) => Ok(leader),
        Ok(None) => Err("no candidate in the election znodes".to_string()),
        Err(e) => Err(e),
    };
    let znode_seen = match &znode {
        Ok(l) => format!("znodes name {}", name(l)),
        Err(e) => format!("znodes: {e}"),
    };
    match http {
        None => (znode, znode_seen),
        Some((http_result, http_seen)) => {
            let seen = format!("{http_seen}; {znode_seen}");
            let result = match (http_result, znode) {
                (Ok(h), Ok(z)) if h == z => Ok(h),
                (Ok(h), Ok(z)) => Err(format!(
                    "HTTP endpoints name {} but the znodes name {}",
                    name(&h),
                    name(&z)
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            (result, seen)
        }
    }
}

fn summarize(views: &LeaderViews) -> String {
    match agreed_leader(views) {
        Ok(leader) => format!("leader {} agreed by {}", name(&leader), views.len()),
        Err(e) => e,
    }
}

/// Runs one step; Ok carries what it found, Err why it failed.
pub async fn execute<C: Cluster>(r: &mut Runner<'_, C>, kind: &StepKind) -> Result<String, String> {
    match kind {
        StepKind::FindLeader { service, bind } => {
            let (leader, _) = wait_leader(r, *service, LEADER_DEADLINE, |_| Ok(())).await?;
            r.bindings.insert(bind.clone(), leader.clone());
            Ok(format!(
                "{service} leader is {} (bound as ${bind})",
                name(&leader)
            ))
        }
        StepKind::ExpectLeader {
            service,
            not,
            is,
            bind,
            within,
            measure,
            since,
            via,
            hold,
        } => {
            let not = not.as_ref().map(|n| r.resolve(n)).transpose()?;
            let is = is.as_ref().map(|n| r.resolve(n)).transpose()?;
            let accept = |leader: &String| {
                if let Some(old) = &not {
                    if leader == old {
                        return Err(format!("{} still leads", name(old)));
                    }
                }
                if let Some(want) = &is {
                    if leader != want {
                        return Err(format!("{} leads, not {}", name(leader), name(want)));
                    }
                }
                Ok(())
            };
            let (leader, held_at) = wait_leader_via(r, *service, *via, *within, accept).await?;
            if let Some(hold) = hold {
                // The leader must stay the one first seen, whatever `is`/`not` allow.
                let first = leader.clone();
                keep_holding(r, *service, *via, *hold, |l| {
                    if *l == first {
                        Ok(())
                    } else {
                        Err(format!(
                            "leadership moved from {} to {}",
                            name(&first),
                            name(l)
                        ))
                    }
                })
                .await?;
            }
            let views = match (service, via) {
                (ServiceKind::MesosMaster | ServiceKind::Marathon, Via::Both) => {
                    "every live master and the election znodes"
                }
                (ServiceKind::MesosMaster | ServiceKind::Marathon, Via::Znode) => {
                    "the election znodes"
                }
                _ => "every live member",
            };
            let mut detail = format!("{service} leader {} agreed by {views}", name(&leader));
            if let Some(hold) = hold {
                detail.push_str(&format!(
                    ", steady for {}",
                    crate::report::human_ms(hold.as_millis() as u64)
                ));
            }
            if let Some(bind) = bind {
                r.bindings.insert(bind.clone(), leader.clone());
            }
            if let Some(measure) = measure {
                let since = match since {
                    Some(step) => r.step_started.get(step).copied(),
                    None => r.last_disruption,
                }
                .unwrap_or(held_at);
                let ms = held_at.saturating_duration_since(since).as_millis() as u64;
                r.rec.measurements.insert(measure.clone(), ms);
                detail.push_str(&format!("; {measure}: {ms} ms"));
            }
            Ok(detail)
        }
        StepKind::MoveLeader {
            service,
            goal,
            method,
            within,
        } => {
            let goal = match goal {
                LeaderGoal::To(n) => Goal::To(r.resolve(n)?),
                LeaderGoal::AwayFrom(n) => Goal::AwayFrom(r.resolve(n)?),
            };
            move_leader(r, *service, &goal, *method, *within).await
        }
        StepKind::Terminate { node } => {
            let node = r.resolve(node)?;
            r.cluster
                .terminate(&node)
                .await
                .map_err(|e| e.to_string())?;
            r.rec.record(format!("terminated {}", name(&node)));
            Ok(format!("{} terminated", name(&node)))
        }
        StepKind::ReplaceNode { node } => {
            let node = r.resolve(node)?;
            let view = r.cluster.replace(&node).await.map_err(|e| e.to_string())?;
            r.rec.record(format!(
                "created a new {} at {} with MAC {}",
                view.short, view.address, view.mac
            ));
            Ok(format!(
                "new {} at {} with MAC {}",
                view.short, view.address, view.mac
            ))
        }
        StepKind::StartService { node, service } => {
            let node = r.resolve(node)?;
            r.cluster
                .start_service(&node, *service)
                .await
                .map_err(|e| e.to_string())?;
            r.rec
                .record(format!("started {service} on {}", name(&node)));
            Ok(format!("{service} started on {}", name(&node)))
        }
        StepKind::StopService { node, service } => {
            let node = r.resolve(node)?;
            let killed = r
                .cluster
                .stop_service(&node, *service)
                .await
                .map_err(|e| e.to_string())?;
            r.rec
                .record(format!("stopped {service} on {}", name(&node)));
            Ok(stopped_detail(*service, &node, killed))
        }
        StepKind::RestartService { node, service } => {
            let node = r.resolve(node)?;
            let killed = r
                .cluster
                .stop_service(&node, *service)
                .await
                .map_err(|e| e.to_string())?;
            r.cluster
                .start_service(&node, *service)
                .await
                .map_err(|e| e.to_string())?;
            r.rec
                .record(format!("restarted {service} on {}", name(&node)));
            Ok(format!(
                "{}, then started again",
                stopped_detail(*service, &node, killed)
            ))
        }
        StepKind::PurgeNeighbours { node } => {
            let target = r.resolve(node)?;
            let observers: Vec<String> = r
                .cluster
                .nodes()
                .into_iter()
                .filter(|n| n.alive && n.fqdn != target)
                .map(|n| n.fqdn)
                .collect();
            for observer in &observers {
                r.cluster
                    .purge_neighbour(observer, &target)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            r.rec.record(format!(
                "purged {}'s neighbour entries on {} nodes",
                name(&target),
                observers.len()
            ));
            Ok(format!("purged on {} nodes", observers.len()))
        }
        StepKind::EtcdMemberRemove { node } => {
            let node = r.resolve(node)?;
            etcd_member_remove(r, &node).await
        }
        StepKind::EtcdMemberAdd { node } => {
            let node = r.resolve(node)?;
            etcd_member_add(r, &node).await
        }
        StepKind::Exec { on, command } => {
            let nodes = target_nodes(r, on)?;
            let mut out = Vec::new();
            for node in &nodes {
                let result = r
                    .cluster
                    .exec(node, command)
                    .await
                    .map_err(|e| e.to_string())?;
                if result.code != Some(0) {
                    return Err(format!(
                        "`{}` on {} exited with {}: {}",
                        command.join(" "),
                        name(node),
                        result
                            .code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "a signal".into()),
                        result.stderr.trim()
                    ));
                }
                out.push(format!(
                    "{}: {}",
                    name(node),
                    result.stdout.trim().lines().next().unwrap_or("")
                ));
            }
            Ok(out.join("; "))
        }
        StepKind::ExpectNoLeader { service, within } => {
            let service = *service;
            let Runner {
                cluster,
                observer,
                rec,
                ..
            } = r;
            let cluster = &**cluster;
            let observer = &*observer;
            let (seen, _) = poll_until(*within, rec, || async move {
                let views = observer.leader_views(cluster, service).await;
                let named: Vec<String> = views
                    .iter()
                    .filter_map(|(n, v)| match v {
                        MemberView::Leader(l) => Some(format!("{} names {}", name(n), name(l))),
                        _ => None,
                    })
                    .collect();
                let seen = summarize(&views);
                Poll {
                    outcome: if named.is_empty() {
                        Ok(seen.clone())
                    } else {
                        Err(named.join(", "))
                    },
                    observation: Some((service.name().to_string(), seen)),
                }
            })
            .await?;
            Ok(format!("no {service} leader: {seen}"))
        }
        StepKind::ExpectMembers {
            service,
            set,
            started,
            within,
        } => {
            let expected = resolve_set(r, set)?;
            let service = *service;
            let started = *started;
            let Runner {
                cluster,
                observer,
                rec,
                ..
            } = r;
            let cluster = &**cluster;
            let observer = &*observer;
            let (list, _) = poll_until(*within, rec, || async {
                let outcome = observer
                    .member_lists(cluster, service)
                    .await
                    .and_then(|list| compare_members(&list, &expected, started).map(|()| list));
                let seen = match &outcome {
                    Ok(list) => describe(list),
                    Err(e) => e.clone(),
                };
                Poll {
                    outcome,
                    observation: Some((format!("{service} members"), seen)),
                }
            })
            .await?;
            Ok(format!("{service} members are {}", describe(&list)))
        }
        StepKind::ZookeeperDiscoverIds => super::zookeeper::discover(r).await,
        StepKind::ZookeeperStaticEnsemble { ids, order, within } => {
            super::zookeeper::static_ensemble(r, *ids, order, *within).await
        }
        StepKind::ZookeeperRenumber { within } => super::zookeeper::renumber(r, *within).await,
        StepKind::ZookeeperWrite { path, data } => super::zookeeper::write(r, path, data).await,
        StepKind::ExpectZookeeperIds { ids, within } => {
            super::zookeeper::expect_ids(r, *ids, *within).await
        }
        StepKind::ExpectZookeeperData { path, data, within } => {
            super::zookeeper::expect_data(r, path, data, *within).await
        }
        StepKind::ExpectNeighbours {
            node,
            state,
            within,
        } => {
            let target = r.resolve(node)?;
            expect_neighbours(r, &target, *state, *within).await
        }
        StepKind::ExpectServicesActive { on, within } => {
            let nodes: BTreeSet<String> = target_nodes(r, on)?.into_iter().collect();
            let Runner { cluster, rec, .. } = r;
            let (count, _) = poll_until(*within, rec, || {
                let rows = cluster.status();
                let relevant: Vec<_> = rows
                    .into_iter()
                    .filter(|row| nodes.contains(&row.node))
                    .collect();
                let down: Vec<String> = relevant
                    .iter()
                    .filter(|row| !row.is_running())
                    .map(|row| {
                        format!(
                            "{} on {} is {}/{}",
                            row.service,
                            name(&row.node),
                            row.active,
                            row.sub
                        )
                    })
                    .collect();
                let outcome = if down.is_empty() {
                    Ok(relevant.len())
                } else {
                    Err(down.join(", "))
                };
                std::future::ready(Poll {
                    outcome,
                    observation: None,
                })
            })
            .await?;
            Ok(format!("{count} services active and running"))
        }
        StepKind::Recovery(step) => super::recovery::execute(r, step).await,
    }
}

fn stopped_detail(service: ServiceKind, node: &str, killed: bool) -> String {
    if killed {
        format!(
            "{service} on {} did not stop in time and was killed",
            name(node)
        )
    } else {
        format!("{service} stopped on {}", name(node))
    }
}

/// Polls until the live members agree on a leader that `accept` accepts.
pub(super) async fn wait_leader<C: Cluster>(
    r: &mut Runner<'_, C>,
    service: ServiceKind,
    within: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<(String, Instant), String> {
    wait_leader_via(r, service, Via::Both, within, accept).await
}

async fn wait_leader_via<C: Cluster>(
    r: &mut Runner<'_, C>,
    service: ServiceKind,
    via: Via,
    within: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<(String, Instant), String> {
    let Runner {
        cluster,
        observer,
        rec,
        ..
    } = r;
    let cluster = &**cluster;
    let observer = &*observer;
    let accept = &accept;
    poll_until(within, rec, || async move {
        let (leader, seen) = observe_leader(observer, cluster, service, via).await;
        let outcome = leader.and_then(|leader| accept(&leader).map(|()| leader));
        Poll {
            outcome,
            observation: Some((service.name().to_string(), seen)),
        }
    })
    .await
}

/// After an expectation first held: it must go on holding for `hold`, polled all along.
async fn keep_holding<C: Cluster>(
    r: &mut Runner<'_, C>,
    service: ServiceKind,
    via: Via,
    hold: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<(), String> {
    let end = Instant::now() + hold;
    while Instant::now() < end {
        let (leader, seen) = observe_leader(&r.observer, &*r.cluster, service, via).await;
        r.rec.observe(service.name(), &seen);
        if let Err(e) = leader.and_then(|l| accept(&l)) {
            return Err(format!(
                "held, then stopped holding within {}: {e}",
                crate::report::human_ms(hold.as_millis() as u64)
            ));
        }
        tokio::time::sleep(super::POLL_INTERVAL).await;
    }
    Ok(())
}

pub(super) fn target_nodes<C: Cluster>(
    r: &Runner<'_, C>,
    on: &Target,
) -> Result<Vec<String>, String> {
    match on {
        Target::Node(n) => Ok(vec![r.resolve(n)?]),
        Target::Role(role) => Ok(r
            .cluster
            .nodes()
            .into_iter()
            .filter(|n| &n.role == role && n.alive)
            .map(|n| n.fqdn)
            .collect()),
    }
}

fn resolve_set<C: Cluster>(r: &Runner<'_, C>, set: &NodeSet) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for n in &set.nodes {
        out.insert(r.resolve(n)?);
    }
    if let Some(role) = &set.role {
        out.extend(
            r.cluster
                .nodes()
                .into_iter()
                .filter(|n| &n.role == role)
                .map(|n| n.fqdn),
        );
    }
    for n in &set.except {
        out.remove(&r.resolve(n)?);
    }
    Ok(out)
}

/// Where a move of leadership must end, with nodes resolved.
enum Goal {
    To(String),
    AwayFrom(String),
}

impl Goal {
    fn holds(&self, leader: &str) -> bool {
        match self {
            Goal::To(n) => leader == n,
            Goal::AwayFrom(n) => leader != n,
        }
    }
}

/// Moves leadership until the goal holds: etcd's API, or — as the seed does for the masters —
/// restarting (or asking to abdicate) whichever node leads, over and over, each time waiting
/// for the next election.
async fn move_leader<C: Cluster>(
    r: &mut Runner<'_, C>,
    service: ServiceKind,
    goal: &Goal,
    method: MoveMethod,
    within: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + within;
    let mut moves: Vec<String> = Vec::new();
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let (leader, _) = wait_leader(r, service, left, |_| Ok(())).await?;
        if goal.holds(&leader) {
            return Ok(if moves.is_empty() {
                format!("{} leads {service}; nothing to move", name(&leader))
            } else {
                format!(
                    "{}; now {} leads {service}",
                    moves.join(", "),
                    name(&leader)
                )
            });
        }
        if Instant::now() >= deadline || moves.len() > 2 * r.cluster.members(service).len() + 2 {
            return Err(format!(
                "{} still leads {service} after {}",
                name(&leader),
                if moves.is_empty() {
                    "no move".to_string()
                } else {
                    moves.join(", ")
                }
            ));
        }
        match method {
            MoveMethod::Api => {
                let target = match goal {
                    Goal::To(n) => n.clone(),
                    Goal::AwayFrom(n) => r
                        .cluster
                        .members(service)
                        .into_iter()
                        .map(|m| m.fqdn)
                        .find(|f| f != n)
                        .ok_or("no other live member to lead")?,
                };
                etcd_move_leader(r, &leader, &target).await?;
                moves.push(format!(
                    "moved etcd leadership from {} to {}",
                    name(&leader),
                    name(&target)
                ));
            }
            MoveMethod::Restart => {
                r.last_disruption = Some(Instant::now());
                r.cluster
                    .stop_service(&leader, service)
                    .await
                    .map_err(|e| e.to_string())?;
                r.cluster
                    .start_service(&leader, service)
                    .await
                    .map_err(|e| e.to_string())?;
                r.rec
                    .record(format!("restarted {service} on {} (it led)", name(&leader)));
                moves.push(format!("restarted {service} on {}", name(&leader)));
            }
            MoveMethod::Abdicate => {
                let address = r
                    .cluster
                    .nodes()
                    .into_iter()
                    .find(|n| n.fqdn == leader)
                    .map(|n| n.address)
                    .ok_or("the leader is no node")?;
                r.last_disruption = Some(Instant::now());
                crate::probe::masters::marathon_abdicate(
                    &r.observer.http,
                    std::net::SocketAddr::new(address.into(), crate::probe::masters::MARATHON_PORT),
                )
                .await?;
                r.rec
                    .record(format!("asked marathon on {} to abdicate", name(&leader)));
                moves.push(format!("{} abdicated", name(&leader)));
            }
        }
        let old = leader.clone();
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        wait_leader(r, service, left, |l| {
            if *l == old {
                Err(format!("{} still leads", name(l)))
            } else {
                Ok(())
            }
        })
        .await?;
    }
}

async fn etcd_move_leader<C: Cluster>(
    r: &mut Runner<'_, C>,
    leader: &str,
    target: &str,
) -> Result<(), String> {
    let address_of = |fqdn: &str| {
        r.cluster
            .nodes()
            .into_iter()
            .find(|n| n.fqdn == fqdn)
            .map(|n| n.address)
            .ok_or_else(|| format!("unknown node {fqdn}"))
    };
    let leader_address = address_of(leader)?;
    let target_address = address_of(target)?;
    let members = r.observer.etcd_members(leader_address).await?;
    let target_id = member_id_at(&members, target_address)
        .ok_or_else(|| format!("{} is no etcd member", name(target)))?;
    r.observer
        .etcd
        .move_leader(&etcd::client_url(leader_address), target_id)
        .await?;
    r.rec.record(format!(
        "asked {} to hand etcd leadership to {}",
        name(leader),
        name(target)
    ));
    Ok(())
}

pub(super) fn member_id_at(
    members: &[crate::probe::etcd::Member],
    address: std::net::Ipv4Addr,
) -> Option<u64> {
    let host = address.to_string();
    members
        .iter()
        .find(|m| {
            m.peer_urls
                .iter()
                .any(|u| crate::observe::url_host(u) == host)
        })
        .map(|m| m.id)
}

/// How long membership changes are retried: etcd refuses them while the cluster is not yet
/// healthy (`--strict-reconfig-check` wants members connected for a while after an election).
pub(super) const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// The member list as the first live member that answers sees it, and that member's address.
async fn any_member_list<C: Cluster>(
    observer: &Observer,
    cluster: &C,
) -> Result<(std::net::Ipv4Addr, Vec<crate::probe::etcd::Member>), String> {
    let mut errors = Vec::new();
    for m in cluster.members(ServiceKind::Etcd) {
        match observer.etcd_members(m.address).await {
            Ok(list) => return Ok((m.address, list)),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "no live etcd member answers: {}",
        errors.join("; ")
    ))
}

async fn etcd_member_remove<C: Cluster>(
    r: &mut Runner<'_, C>,
    node: &str,
) -> Result<String, String> {
    let address = r
        .cluster
        .nodes()
        .into_iter()
        .find(|n| n.fqdn == node)
        .map(|n| n.address)
        .ok_or("unknown node")?;
    let Runner {
        cluster,
        observer,
        rec,
        ..
    } = r;
    let cluster = &**cluster;
    let observer = &*observer;
    let ((id, remaining), _) = poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
        // Re-read the list on every attempt: a removal whose answer was lost is not repeated.
        let outcome = async {
            let (endpoint, list) = any_member_list(observer, cluster).await?;
            let Some(id) = member_id_at(&list, address) else {
                return Ok((None, list.len()));
            };
            let after = observer
                .etcd
                .member_remove(&etcd::client_url(endpoint), id)
                .await?;
            Ok::<_, String>((Some(id), after.len()))
        }
        .await;
        let seen = match &outcome {
            Ok(_) => "done".to_string(),
            Err(e) => e.clone(),
        };
        Poll {
            outcome,
            observation: Some(("etcd member remove".to_string(), seen)),
        }
    })
    .await?;
    match id {
        Some(id) => {
            rec.record(format!("removed etcd member {id:x} ({})", name(node)));
            Ok(format!(
                "removed member {id:x} ({}); {remaining} members remain",
                name(node)
            ))
        }
        None => Ok(format!(
            "{} was no member already; {remaining} members",
            name(node)
        )),
    }
}

async fn etcd_member_add<C: Cluster>(r: &mut Runner<'_, C>, node: &str) -> Result<String, String> {
    let nodes = r.cluster.nodes();
    let me = nodes
        .iter()
        .find(|n| n.fqdn == node)
        .ok_or("unknown node")?
        .clone();
    let peer = etcd::peer_url(me.address);
    let Runner {
        cluster,
        observer,
        rec,
        ..
    } = r;
    let (list, _) = {
        let cluster = &**cluster;
        let observer = &*observer;
        let peer = &peer;
        poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
            let outcome = async {
                let (endpoint, list) = any_member_list(observer, cluster).await?;
                // An add whose answer was lost is not repeated: the member is listed already.
                if member_id_at(&list, me.address).is_some() {
                    return Ok(list);
                }
                let (_, after) = observer
                    .etcd
                    .member_add(&etcd::client_url(endpoint), peer)
                    .await?;
                Ok::<_, String>(after)
            }
            .await;
            let seen = match &outcome {
                Ok(_) => "done".to_string(),
                Err(e) => e.clone(),
            };
            Poll {
                outcome,
                observation: Some(("etcd member add".to_string(), seen)),
            }
        })
        .await?
    };
    // What `etcdctl member add` prints as ETCD_INITIAL_CLUSTER: every member by name, the new
    // one under the name it will start with. Unstarted members have no name yet, so each is
    // named after the node at its peer address.
    let peers: Vec<etcd::Peer> = list
        .iter()
        .filter_map(|m| {
            let host = m
                .peer_urls
                .first()
                .map(|u| crate::observe::url_host(u).to_string())?;
            let n = nodes.iter().find(|n| n.address.to_string() == host)?;
            Some(etcd::Peer {
                name: n.short.clone(),
                address: n.address,
            })
        })
        .collect();
    if peers.len() != list.len() {
        return Err(format!(
            "the member list {list:?} names addresses that are no node of this cluster"
        ));
    }
    let id = member_id_at(&list, me.address).unwrap_or(0);
    cluster.set_etcd_join(node, etcd::initial_cluster(&peers));
    rec.record(format!("added etcd member {id:x} for {}", name(node)));
    Ok(format!(
        "added member {id:x} for {}; {} members",
        name(node),
        list.len()
    ))
}

async fn expect_neighbours<C: Cluster>(
    r: &mut Runner<'_, C>,
    target: &str,
    state: NeighbourState,
    within: Duration,
) -> Result<String, String> {
    let nodes = r.cluster.nodes();
    let target_view = nodes
        .iter()
        .find(|n| n.fqdn == target)
        .cloned()
        .ok_or("unknown node")?;
    let observers: Vec<String> = nodes
        .iter()
        .filter(|n| n.alive && n.fqdn != target)
        .map(|n| n.fqdn.clone())
        .collect();
    if state == NeighbourState::Current {
        if !target_view.alive {
            return Err(format!(
                "{} is terminated; it has no current MAC",
                name(target)
            ));
        }
        // Entries are made by traffic, as the seed's `loopssh` does before `arp -a`.
        let ping: Vec<String> = [
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            &target_view.address.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cluster = &*r.cluster;
        join_all(observers.iter().map(|o| cluster.exec(o, &ping))).await;
    }
    let Runner { cluster, rec, .. } = r;
    let cluster = &**cluster;
    let observers = &observers;
    let target_view = &target_view;
    let subject = format!("neighbour entries for {}", target_view.short);
    let (count, _) = poll_until(within, rec, || {
        let subject = subject.clone();
        async move {
            let entries = join_all(observers.iter().map(|o| async move {
                (o.clone(), cluster.neighbour(o, &target_view.fqdn).await)
            }))
            .await;
            let mut wrong = Vec::new();
            for (observer, entry) in &entries {
                match entry {
                    Err(e) => wrong.push(format!("{}: {e}", name(observer))),
                    Ok(entry) => {
                        let ok = match state {
                            NeighbourState::Unresolved => entry.is_unresolved(),
                            NeighbourState::Current => {
                                entry.mac() == Some(target_view.mac.as_str())
                            }
                        };
                        if !ok {
                            wrong.push(format!("{} has {entry}", name(observer)));
                        }
                    }
                }
            }
            let outcome = if wrong.is_empty() {
                Ok(entries.len())
            } else {
                Err(wrong.join(", "))
            };
            let seen = match &outcome {
                Ok(n) => format!(
                    "{n} nodes {}",
                    match state {
                        NeighbourState::Unresolved => "hold no MAC".to_string(),
                        NeighbourState::Current => format!("hold {}", target_view.mac),
                    }
                ),
                Err(e) => e.clone(),
            };
            Poll {
                outcome,
                observation: Some((subject, seen)),
            }
        }
    })
    .await?;
    Ok(match state {
        NeighbourState::Unresolved => {
            format!("{count} nodes hold no MAC for {}", target_view.short)
        }
        NeighbourState::Current => format!(
            "{count} nodes hold {} for {}",
            target_view.mac, target_view.short
        ),
    })
}
