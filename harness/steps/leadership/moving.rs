//! Moving leadership until it sits where a step wants it: through etcd's API, or by
//! restarting (or asking to abdicate) whichever master leads.

use std::time::{Duration, Instant};

use super::MoveMethod;
use crate::probe::etcd::Member;
use crate::provider::Hosts;
use crate::runner::waits::{wait_leader, Unwanted};
use crate::runner::{name, Runner, StepResult};
use crate::service::ServiceKind;

/// Where a move of leadership must end, with nodes resolved.
pub(super) enum Goal {
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
pub(super) async fn move_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    goal: &Goal,
    method: MoveMethod,
    within: Duration,
) -> StepResult {
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
            )
            .into());
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
                r.cluster.stop_service(&leader, service).await?;
                r.cluster.start_service(&leader, service).await?;
                r.rec
                    .record(format!("restarted {service} on {} (it led)", name(&leader)));
                moves.push(format!("restarted {service} on {}", name(&leader)));
            }
            MoveMethod::Abdicate => {
                let node = r.cluster.node(&leader).ok_or("the leader is no node")?;
                r.last_disruption = Some(Instant::now());
                crate::probe::masters::marathon_abdicate(
                    &r.observer.http,
                    r.cluster.endpoint(&node, crate::base::ports::MARATHON),
                )
                .await
                .map_err(String::from)?;
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
                Err(Unwanted::StillLeads(l.clone()))
            } else {
                Ok(())
            }
        })
        .await?;
    }
}

async fn etcd_move_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    leader: &str,
    target: &str,
) -> Result<(), String> {
    let node_of = |fqdn: &str| {
        r.cluster
            .node(fqdn)
            .ok_or_else(|| format!("unknown node {fqdn}"))
    };
    let leader_url = r.cluster.etcd_url(&node_of(leader)?);
    let target_address = node_of(target)?.address;
    let members = r.observer.etcd.members(&leader_url).await?;
    let target_id = Member::at(&members, target_address)
        .map(|m| m.id)
        .ok_or_else(|| format!("{} is no etcd member", name(target)))?;
    r.observer.etcd.move_leader(&leader_url, target_id).await?;
    r.rec.record(format!(
        "asked {} to hand etcd leadership to {}",
        name(leader),
        name(target)
    ));
    Ok(())
}
