//! Leaders: observing them (every live member, and for the masters the election znodes too),
//! waiting for them, holding them steady, and moving leadership.

use std::time::{Duration, Instant};

use super::etcd_members::member_id_at;
use super::{name, poll_until_held, Held, Poll, Runner, ELECTION_POLL_INTERVAL};
use crate::cluster::Cluster;
use crate::observe::{compare_members, Observer};
use crate::probe::leader::Backed;
use crate::provider::Hosts;
use crate::service::ServiceKind;
use crate::spec::{MoveMethod, Via};

/// Deadline for finding a leader and for leadership to move.
pub(super) const LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// A service is healthy: a leader backed by a majority of its configured membership and named
/// by every live member, and every expected member listed and started; web services answer
/// their health checks.
pub async fn service_healthy<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    service: ServiceKind,
) -> Result<(), String> {
    match service {
        ServiceKind::Etcd | ServiceKind::Zookeeper => {
            observer
                .leader(cluster, service)
                .await
                .leader
                .map_err(|e| e.to_string())?;
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

/// The leader as `via` reads it, and a line saying what was seen. Over the services' own
/// views the leader must be backed by a majority of the configured membership; a leader read
/// from the election znodes must be a live master.
pub async fn observe_leader<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    service: ServiceKind,
    via: Via,
) -> (Result<Backed, String>, String) {
    let masters = matches!(service, ServiceKind::MesosMaster | ServiceKind::Marathon);
    let read_http = !masters || via != Via::Znode;
    let read_znode = masters && via != Via::Http;
    // Both views are read at once, so a poll lasts as long as the slower of them.
    let (seen, znode) = tokio::join!(
        async {
            if read_http {
                Some(observer.leader(cluster, service).await)
            } else {
                None
            }
        },
        async {
            if read_znode {
                Some(observer.znode_leader(cluster, service).await)
            } else {
                None
            }
        }
    );
    let http = seen.map(|seen| {
        let line = match &seen.leader {
            Ok(b) => format!("leader {}", b.describe()),
            Err(e) => e.to_string(),
        };
        (seen.leader.map_err(|e| e.to_string()), line)
    });
    let Some(znode) = znode else {
        return http.unwrap_or_else(|| (Err("not observed".into()), String::new()));
    };
    let live: Vec<String> = cluster
        .members(service)
        .into_iter()
        .map(|n| n.fqdn)
        .collect();
    let znode = match znode {
        Ok(Some(leader)) if live.contains(&leader) => Ok(leader),
        Ok(Some(leader)) => Err(format!(
            "the election znodes name {}, which is not a live {service} master (its session has not expired yet)",
            name(&leader)
        )),
        Ok(None) => Err("no candidate in the election znodes".to_string()),
        Err(e) => Err(e),
    };
    let znode_seen = match &znode {
        Ok(l) => format!("znodes name {}", name(l)),
        Err(e) => format!("znodes: {e}"),
    };
    match http {
        None => (
            znode.map(|leader| Backed {
                backers: [leader.clone()].into(),
                leader,
                term: None,
                voters: live.len(),
            }),
            znode_seen,
        ),
        Some((http_result, http_seen)) => {
            let seen = format!("{http_seen}; {znode_seen}");
            let result = match (http_result, znode) {
                (Ok(h), Ok(z)) if h.leader == z => Ok(h),
                (Ok(h), Ok(z)) => Err(format!(
                    "HTTP endpoints name {} but the znodes name {}",
                    name(&h.leader),
                    name(&z)
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            (result, seen)
        }
    }
}

/// Polls until a majority-backed leader that `accept` accepts; returns it with the moment it
/// first held.
pub(super) async fn wait_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    within: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<(String, Instant), String> {
    wait_leader_via(r, service, Via::Both, within, accept)
        .await
        .map(|held| (held.value.leader, held.at))
}

pub(super) async fn wait_leader_via<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    via: Via,
    within: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<Held<Backed>, String> {
    let (cluster, observer, rec) = r.split();
    let accept = &accept;
    // Why no leader held, each reason once and in order: a wait that ends on "no leader" may
    // have passed through a dead or minority leader first, and the report says so.
    let reasons = std::cell::RefCell::new(Vec::<String>::new());
    let reasons_ref = &reasons;
    let result = poll_until_held(within, ELECTION_POLL_INTERVAL, rec, || async move {
        let (leader, seen) = observe_leader(observer, cluster, service, via).await;
        let outcome = leader.and_then(|backed| accept(&backed.leader).map(|()| backed));
        if let Err(e) = &outcome {
            let reason = e.split(" (views: ").next().unwrap_or(e).to_string();
            let mut reasons = reasons_ref.borrow_mut();
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        Poll {
            outcome,
            observation: Some((service.name().to_string(), seen)),
        }
    })
    .await;
    result.map_err(|e| {
        let reasons = reasons.into_inner();
        let earlier: Vec<&String> = reasons
            .iter()
            .filter(|r| !e.contains(r.as_str()))
            .take(2)
            .collect();
        if earlier.is_empty() {
            e
        } else {
            format!(
                "{e}; earlier while waiting: {}",
                earlier
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    })
}

/// After an expectation first held: it must go on holding for `hold`, polled all along.
pub(super) async fn keep_holding<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    via: Via,
    hold: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<(), String> {
    let end = Instant::now() + hold;
    while Instant::now() < end {
        let (leader, seen) = observe_leader(&r.observer, &*r.cluster, service, via).await;
        r.rec.observe(service.name(), &seen);
        if let Err(e) = leader.and_then(|l| accept(&l.leader)) {
            return Err(format!(
                "held, then stopped holding within {}: {e}",
                crate::base::time::human_ms(hold.as_millis() as u64)
            ));
        }
        tokio::time::sleep(super::POLL_INTERVAL).await;
    }
    Ok(())
}

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
                let node = r.cluster.node(&leader).ok_or("the leader is no node")?;
                r.last_disruption = Some(Instant::now());
                crate::probe::masters::marathon_abdicate(
                    &r.observer.http,
                    r.cluster.endpoint(&node, crate::base::ports::MARATHON),
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

pub(super) async fn etcd_move_leader<H: Hosts>(
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
    let members = r.observer.etcd_members(&leader_url).await?;
    let target_id = member_id_at(&members, target_address)
        .ok_or_else(|| format!("{} is no etcd member", name(target)))?;
    r.observer.etcd.move_leader(&leader_url, target_id).await?;
    r.rec.record(format!(
        "asked {} to hand etcd leadership to {}",
        name(leader),
        name(target)
    ));
    Ok(())
}
