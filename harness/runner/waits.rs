//! Waiting on leaders: readiness of every service, and a majority-backed leader polled to a
//! deadline, as every family of steps that needs one waits for it.

use std::time::{Duration, Instant};

use super::{name, poll_until_held, Held, NotWithin, Poll, Runner, ELECTION_POLL_INTERVAL};
use crate::cluster::Cluster;
use crate::cluster_views::{
    compare_members, MembersDiffer, MembersUnread, NotHealthy, Observer, Via, ZnodeLeaderError,
};
use crate::probe::etcd::EtcdError;
use crate::probe::leader::{Agreement, Backed, NoLeader};
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// Why no leader was seen, as a step reads leaders: by the rule over the members' own views,
/// from the election znodes, or both.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaderUnseen {
    /// The members' views name no leader the rule accepts.
    #[error(transparent)]
    NoLeader(#[from] NoLeader),
    /// The election znodes could not be read.
    #[error(transparent)]
    Znodes(#[from] ZnodeLeaderError),
    /// No master is a candidate in the election znodes.
    #[error("no candidate in the election znodes")]
    NoCandidate,
    /// The znodes name a master that does not answer: its session has not expired yet.
    #[error("the election znodes name {}, which is not a live {service} master ({view}; its session has not expired yet)", name(.named))]
    ZnodeNotLive {
        /// The master the znodes name.
        named: String,
        /// Its service.
        service: ServiceKind,
        /// What it answered.
        view: String,
    },
    /// The HTTP endpoints and the znodes name different masters.
    #[error("HTTP endpoints name {} but the znodes name {}", name(.http), name(.znode))]
    ViewsDisagree {
        /// The leader the HTTP endpoints name.
        http: String,
        /// The leader the znodes name.
        znode: String,
    },
    /// Nothing was read (the way of reading asked for nothing).
    #[error("not observed")]
    NotObserved,
    /// A leader held, but not the one the step waits for.
    #[error(transparent)]
    Unwanted(#[from] Unwanted),
}

/// A leader that holds but is not the one a step waits for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unwanted {
    /// The leader the step wants gone still leads.
    #[error("{} still leads", name(.0))]
    StillLeads(String),
    /// Another leads than the one the step wants.
    #[error("{} leads, not {}", name(.leader), name(.want))]
    NotTheOne {
        /// Who leads.
        leader: String,
        /// Who should.
        want: String,
    },
}

/// No leader the step accepts by the deadline: what the last poll saw, and up to two other
/// reasons seen earlier in the wait (a wait that ends on "no leader" may have passed through a
/// dead or minority leader first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{not_within}{}", earlier_text(.earlier))]
pub struct LeaderNotWithin {
    /// The wait that ran out.
    pub not_within: NotWithin,
    /// Other reasons seen while waiting, in order.
    pub earlier: Vec<String>,
}

fn earlier_text(earlier: &[String]) -> String {
    if earlier.is_empty() {
        String::new()
    } else {
        format!("; earlier while waiting: {}", earlier.join("; "))
    }
}

impl From<LeaderNotWithin> for super::StepError {
    fn from(e: LeaderNotWithin) -> Self {
        super::StepError::Failed(e.to_string())
    }
}

/// No live etcd member answered for its member list.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no live etcd member answers: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct NoMemberAnswers(pub Vec<EtcdError>);

impl From<NoMemberAnswers> for String {
    fn from(e: NoMemberAnswers) -> Self {
        e.to_string()
    }
}

/// Why a service is not yet healthy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unhealthy {
    /// No leader as the service's health needs one.
    #[error(transparent)]
    Leader(#[from] LeaderUnseen),
    /// The member lists are unread or disagree.
    #[error(transparent)]
    MembersUnread(#[from] MembersUnread),
    /// The members listed are not the expected members, started.
    #[error(transparent)]
    MembersDiffer(#[from] MembersDiffer),
    /// A web service's health checks do not pass.
    #[error(transparent)]
    Http(#[from] NotHealthy),
    /// The border does not yet serve each tier it fronts as expected.
    #[error("{}", .0.join("; "))]
    Border(Vec<String>),
}

/// Deadline for finding a leader and for leadership to move.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// A service is healthy: a leader backed by a majority of its configured membership and named
/// by every member, and every expected member listed and started; web services answer their
/// health checks.
pub async fn service_healthy<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    service: ServiceKind,
) -> Result<(), Unhealthy> {
    match service {
        ServiceKind::Etcd | ServiceKind::Zookeeper => {
            observer
                .leader(cluster, service, Agreement::All)
                .await
                .leader
                .map_err(LeaderUnseen::from)?;
            let expected = cluster
                .members(service)
                .into_iter()
                .map(|n| n.fqdn)
                .collect();
            let lists = observer
                .member_lists(cluster, service)
                .await
                .map_err(Unhealthy::from)?;
            compare_members(&lists, &expected, true).map_err(Unhealthy::from)
        }
        ServiceKind::MesosMaster | ServiceKind::Marathon => {
            observe_leader(observer, cluster, service, Via::Both, Agreement::All)
                .await
                .0
                .map(|_| ())
                .map_err(Unhealthy::from)
        }
        ServiceKind::App => observer
            .http_healthy(cluster, service)
            .await
            .map_err(Unhealthy::from),
        ServiceKind::Ingress => {
            observer
                .http_healthy(cluster, service)
                .await
                .map_err(Unhealthy::from)?;
            border_serves(cluster).await.map_err(Unhealthy::Border)
        }
    }
}

/// The border serves every tier it fronts as the availability monitor will judge it: until
/// then a request through it may meet a backend its health checks have not yet marked up, and
/// the run would count the cell's own start-up against the procedure.
async fn border_serves<H: Hosts>(cluster: &Cluster<H>) -> Result<(), Vec<String>> {
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
        Err(errors)
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
) -> (Result<Backed, LeaderUnseen>, String) {
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
        (seen.leader.map_err(LeaderUnseen::from), line)
    });
    let Some(znode) = znode else {
        return http.unwrap_or_else(|| (Err(LeaderUnseen::NotObserved), String::new()));
    };
    // A terminated or killed master's znode lingers until its session expires: the master it
    // names must itself answer.
    let znode = match znode {
        Ok(Some(leader)) => match observer.master_view(cluster, &leader, service).await {
            view if view.answered() => Ok(leader),
            view => Err(LeaderUnseen::ZnodeNotLive {
                named: leader,
                service,
                view: view.to_string(),
            }),
        },
        Ok(None) => Err(LeaderUnseen::NoCandidate),
        Err(e) => Err(LeaderUnseen::Znodes(e)),
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
                (Ok(h), Ok(z)) => Err(LeaderUnseen::ViewsDisagree {
                    http: h.leader,
                    znode: z,
                }),
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
    accept: impl Fn(&String) -> Result<(), Unwanted>,
) -> Result<(String, Instant), LeaderNotWithin> {
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
    accept: impl Fn(&String) -> Result<(), Unwanted>,
) -> Result<Held<Backed>, LeaderNotWithin> {
    let (cluster, observer, rec) = r.split();
    let accept = &accept;
    // Why no leader held, each reason once and in order: a wait that ends on "no leader" may
    // have passed through a dead or minority leader first, and the report says so.
    let reasons = std::cell::RefCell::new(Vec::<String>::new());
    let reasons_ref = &reasons;
    let result = poll_until_held(within, ELECTION_POLL_INTERVAL, rec, || async move {
        let (leader, seen) = observe_leader(observer, cluster, service, via, agreement).await;
        let outcome = leader.and_then(|backed| match accept(&backed.leader) {
            Ok(()) => Ok(backed),
            Err(unwanted) => Err(LeaderUnseen::from(unwanted)),
        });
        if let Err(e) = &outcome {
            // The reason without the views, which change from poll to poll.
            let reason = match e {
                LeaderUnseen::NoLeader(no) => no.reason.clone(),
                other => other.to_string(),
            };
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
    result.map_err(|not_within| {
        let last = not_within.to_string();
        let earlier = reasons
            .into_inner()
            .into_iter()
            .filter(|r| !last.contains(r.as_str()))
            .take(2)
            .collect();
        LeaderNotWithin {
            not_within,
            earlier,
        }
    })
}

/// A member that does not serve (yet).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MemberNotServing {
    /// It does not answer, or answers without naming a leader.
    #[error("{member} {view}")]
    NoLeaderNamed {
        /// The member, by its short name.
        member: String,
        /// What it showed.
        view: String,
    },
    /// A web service's health checks do not pass.
    #[error(transparent)]
    Http(#[from] NotHealthy),
}

/// Whether `node`'s `service` serves: a member of a service with a leader answers and names
/// one (one still electing, or cut off, does not serve yet); a web service's health checks
/// pass. Says what it saw.
pub async fn member_serves<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, MemberNotServing> {
    if matches!(service, ServiceKind::App | ServiceKind::Ingress) {
        observer.http_healthy(cluster, service).await?;
        return Ok(format!("{service} health checks pass"));
    }
    let views = observer.leader_views(cluster, service).await;
    let view = views
        .get(node)
        .map_or("not asked".to_string(), |v| v.to_string());
    match views.get(node).and_then(|v| v.named()) {
        Some(_) => Ok(format!("{} {view}", name(node))),
        None => Err(MemberNotServing::NoLeaderNamed {
            member: name(node).to_string(),
            view,
        }),
    }
}

/// How long membership changes are retried: etcd refuses them while the cluster is not yet
/// healthy (`--strict-reconfig-check` wants members connected for a while after an election).
pub const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// The member list as the first live member that answers sees it, and that member's client URL.
pub async fn any_member_list<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
) -> Result<(String, Vec<crate::probe::etcd::Member>), NoMemberAnswers> {
    let mut errors = Vec::new();
    for m in cluster.members(ServiceKind::Etcd) {
        let url = cluster.etcd_url(&m);
        match observer.etcd.members(&url).await {
            Ok(list) => return Ok((url, list)),
            Err(e) => errors.push(e),
        }
    }
    Err(NoMemberAnswers(errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_wait_that_ran_out_says_what_it_saw_last_and_before() {
        let not_within = NotWithin {
            within: Duration::from_secs(2),
            last: "no member that answers names a leader".to_string(),
        };
        let bare = LeaderNotWithin {
            not_within: not_within.clone(),
            earlier: vec![],
        };
        assert_eq!(
            bare.to_string(),
            "not within 2.0 s: no member that answers names a leader"
        );
        let with_earlier = LeaderNotWithin {
            not_within,
            earlier: vec!["quorum-1 still leads".to_string()],
        };
        assert_eq!(
            with_earlier.to_string(),
            "not within 2.0 s: no member that answers names a leader; earlier while waiting: quorum-1 still leads"
        );
    }

    #[test]
    fn an_unwanted_leader_is_named_short() {
        assert_eq!(
            Unwanted::StillLeads("quorum-1.cell-1.dc-1.demo.lan".into()).to_string(),
            "quorum-1 still leads"
        );
        assert_eq!(
            Unwanted::NotTheOne {
                leader: "quorum-2.cell-1.dc-1.demo.lan".into(),
                want: "quorum-3.cell-1.dc-1.demo.lan".into()
            }
            .to_string(),
            "quorum-2 leads, not quorum-3"
        );
        assert_eq!(
            LeaderUnseen::ViewsDisagree {
                http: "master-1.cell-1.dc-1.demo.lan".into(),
                znode: "master-2.cell-1.dc-1.demo.lan".into()
            }
            .to_string(),
            "HTTP endpoints name master-1 but the znodes name master-2"
        );
    }
}
