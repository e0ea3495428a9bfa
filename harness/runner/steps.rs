//! What each kind of step does.

use std::collections::BTreeSet;
use std::time::Instant;

use super::etcd_members::{etcd_member_add, etcd_member_remove};
use super::leadership::{keep_holding, move_leader, wait_leader_via, Goal, LEADER_DEADLINE};
use super::neighbours::expect_neighbours;
use super::serving;
use super::{name, poll_until, serving_measure, Poll, Runner};
use crate::observe::{compare_members, describe};
use crate::probe::leader::{describe_views, leadership_given_up};
use crate::provider::Hosts;
use crate::service::ServiceKind;
use crate::spec::{LeaderGoal, NodeSet, StepKind, Target, Via};

/// Runs one step; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, kind: &StepKind) -> Result<String, String> {
    match kind {
        StepKind::FindLeader { service, bind } => {
            let held = wait_leader_via(r, *service, Via::Both, LEADER_DEADLINE, |_| Ok(())).await?;
            r.bindings.insert(bind.clone(), held.value.leader.clone());
            Ok(format!(
                "{service} leader is {} (bound as ${bind})",
                held.value.describe()
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
            let step_began = Instant::now();
            let held = wait_leader_via(r, *service, *via, *within, accept).await?;
            let leader = held.value.leader.clone();
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
            let backed = match (service, via) {
                (ServiceKind::MesosMaster | ServiceKind::Marathon, Via::Both) => {
                    format!("{}; the election znodes agree", held.value.describe())
                }
                (ServiceKind::MesosMaster | ServiceKind::Marathon, Via::Znode) => {
                    format!("{} (the election znodes)", name(&leader))
                }
                _ => held.value.describe(),
            };
            let mut detail = format!("{service} leader {backed}");
            if let Some(hold) = hold {
                detail.push_str(&format!(
                    ", steady for {}",
                    crate::base::time::human_ms(hold.as_millis() as u64)
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
                .unwrap_or(held.at);
                let ms = r.rec.measure(measure, since, &held);
                detail.push_str(&format!(
                    "; {measure}: elected after {ms} ms (to within {} ms)",
                    held.resolution_ms()
                ));
                if serving::measurable(*service) {
                    let left = within.saturating_sub(step_began.elapsed());
                    let wrote = serving::first_write(r, *service, &leader, left)
                        .await
                        .map_err(|e| {
                            format!(
                                "{} was elected but no write was acknowledged through it: {e}",
                                name(&leader)
                            )
                        })?;
                    let serving_name = serving_measure(measure);
                    let ms = r.rec.measure(&serving_name, since, &wrote);
                    detail.push_str(&format!(", serving after {ms} ms ({})", wrote.value));
                }
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
            // Starting what runs already does nothing, as `systemctl start` does; the report
            // says so rather than claim a start.
            let running = r.cluster.is_running(&node, *service).await;
            r.cluster
                .start_service(&node, *service)
                .await
                .map_err(|e| e.to_string())?;
            if running {
                return Ok(format!(
                    "{service} was already running on {}; nothing started",
                    name(&node)
                ));
            }
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
            let (cluster, observer, rec) = r.split();
            let (seen, _) = poll_until(*within, rec, || async move {
                let views = observer.leader_views(cluster, service).await;
                let outcome = leadership_given_up(&views);
                Poll {
                    observation: Some((service.name().to_string(), describe_views(&views))),
                    outcome,
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
            let (cluster, observer, rec) = r.split();
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
            let (cluster, _, rec) = r.split();
            let nodes = &nodes;
            let (count, _) = poll_until(*within, rec, || async move {
                let rows = cluster.status().await;
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
                Poll {
                    outcome,
                    observation: None,
                }
            })
            .await?;
            Ok(format!("{count} services active and running"))
        }
        StepKind::Recovery(step) => super::recovery::execute(r, step).await,
    }
}

pub(super) fn stopped_detail(service: ServiceKind, node: &str, killed: bool) -> String {
    if killed {
        format!(
            "{service} on {} did not stop in time and was killed",
            name(node)
        )
    } else {
        format!("{service} stopped on {}", name(node))
    }
}

pub(super) fn target_nodes<H: Hosts>(
    r: &Runner<'_, H>,
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

pub(super) fn resolve_set<H: Hosts>(
    r: &Runner<'_, H>,
    set: &NodeSet,
) -> Result<BTreeSet<String>, String> {
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
