//! Waiting on leaders: readiness of every service, and a majority-backed leader polled to a
//! deadline, as every family of steps that needs one waits for it.

use std::time::{Duration, Instant};

use super::{name, poll_until_held, Held, Poll, Runner, ELECTION_POLL_INTERVAL};
use crate::cluster::Cluster;
use crate::cluster_views::{compare_members, Observer, Via};
use crate::probe::leader::{Agreement, Backed};
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// Deadline for finding a leader and for leadership to move.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// A service is healthy: a leader backed by a majority of its configured membership and named
/// by every member, and every expected member listed and started; web services answer their
/// health checks.
pub async fn service_healthy<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    service: ServiceKind,
) -> Result<(), String> {
    match service {
        ServiceKind::Etcd | ServiceKind::Zookeeper => {
            observer
                .leader(cluster, service, Agreement::All)
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
            observe_leader(observer, cluster, service, Via::Both, Agreement::All)
                .await
                .0
                .map(|_| ())
        }
        ServiceKind::App => observer.http_healthy(cluster, service).await,
        ServiceKind::Ingress => {
            observer.http_healthy(cluster, service).await?;
            border_serves(cluster).await
        }
    }
}

/// The border serves every tier it fronts as the availability monitor will judge it: until
/// then a request through it may meet a backend its health checks have not yet marked up, and
/// the run would count the cell's own start-up against the procedure.
async fn border_serves<H: Hosts>(cluster: &Cluster<H>) -> Result<(), String> {
    let client = crate::probe::masters::http_client(Duration::from_secs(2));
    let answers = futures::future::join_all(
        super::monitors::availability::targets(cluster)
            .into_iter()
            .map(|t| {
                let client = client.clone();
                async move {
                    match client.get(&t.url).send().await {
                        Ok(r) if r.status().as_u16() == t.expect => Ok(()),
                        Ok(r) => Err(format!(
                            "{} through the border answered {}",
                            t.name,
                            r.status()
                        )),
                        Err(e) => Err(format!("{} through the border: {e}", t.name)),
                    }
                }
            }),
    )
    .await;
    let errors: Vec<String> = answers.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The leader as `via` reads it, and a line saying what was seen. Over the services' own
/// views the leader must be backed as `agreement` asks; a leader read from the election
/// znodes must be a master that answers.
pub async fn observe_leader<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    service: ServiceKind,
    via: Via,
    agreement: Agreement,
) -> (Result<Backed, String>, String) {
    let masters = matches!(service, ServiceKind::MesosMaster | ServiceKind::Marathon);
    let read_http = !masters || via != Via::Znode;
    let read_znode = masters && via != Via::Http;
    // Both views are read at once, so a poll lasts as long as the slower of them.
    let (seen, znode) = tokio::join!(
        async {
            if read_http {
                Some(observer.leader(cluster, service, agreement).await)
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
    // A terminated or killed master's znode lingers until its session expires: the master it
    // names must itself answer.
    let znode = match znode {
        Ok(Some(leader)) => match observer.master_view(cluster, &leader, service).await {
            view if view.answered() => Ok(leader),
            view => Err(format!(
                "the election znodes name {}, which is not a live {service} master ({view}; its session has not expired yet)",
                name(&leader)
            )),
        },
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
                voters: cluster.topology().nodes_running(service).len(),
                silent: Default::default(),
                others: Default::default(),
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
pub async fn wait_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    within: Duration,
    accept: impl Fn(&String) -> Result<(), String>,
) -> Result<(String, Instant), String> {
    wait_leader_via(r, service, Via::Both, Agreement::Majority, within, accept)
        .await
        .map(|held| (held.value.leader, held.at))
}

/// Polls until a leader, read as `via` reads it and backed as `agreement` asks, that `accept`
/// accepts; returns it with the moment it first held.
pub async fn wait_leader_via<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    via: Via,
    agreement: Agreement,
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
        let (leader, seen) = observe_leader(observer, cluster, service, via, agreement).await;
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
        let e = e.to_string();
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

/// How long membership changes are retried: etcd refuses them while the cluster is not yet
/// healthy (`--strict-reconfig-check` wants members connected for a while after an election).
pub const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// The member list as the first live member that answers sees it, and that member's client URL.
pub async fn any_member_list<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
) -> Result<(String, Vec<crate::probe::etcd::Member>), String> {
    let mut errors = Vec::new();
    for m in cluster.members(ServiceKind::Etcd) {
        let url = cluster.etcd_url(&m);
        match observer.etcd_members(&url).await {
            Ok(list) => return Ok((url, list)),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "no live etcd member answers: {}",
        errors.join("; ")
    ))
}
