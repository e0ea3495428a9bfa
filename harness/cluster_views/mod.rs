//! Cluster-wide observations built from the probes: each live member's view of the leader,
//! member lists mapped back to nodes, and readiness.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

mod member_lists;
mod znodes;

pub use member_lists::{
    compare_members, describe, ListUnread, ListedMember, MembersDiffer, MembersUnread,
};
pub use znodes::ZnodeLeaderError;

use crate::cluster::Cluster;
use crate::probe::answer::NoAnswer;
use crate::probe::etcd::{self, url_host, EtcdProbe, Member};
use crate::probe::leader::{
    backed_leader, zookeeper_views, Agreement, Backed, LeaderViews, MemberView, Membership,
    MembershipUnread, NoLeader, ZookeeperAnswer,
};
use crate::probe::masters::{self, HttpLeader};
use crate::probe::zookeeper::{self, server_state, Mode};
use crate::provider::{Hosts, NodeView};
use crate::service::ServiceKind;

/// Where a master-tier leader is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The services' own HTTP endpoints on every live member (`/redirect`, `/v2/leader`).
    Http,
    /// The election znodes in ZooKeeper.
    Znode,
    /// Both, and they must name the same leader.
    Both,
}

/// How long one four-letter exchange may take.
pub const ZK_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long one HTTP probe may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_millis(1500);

/// Observes a cluster through the real protocols.
pub struct Observer {
    /// etcd clients, one per endpoint.
    pub etcd: EtcdProbe,
    /// HTTP client that never follows redirects.
    pub http: reqwest::Client,
    /// A ZooKeeper session for reading election znodes, with the connect string it was made for.
    zk: tokio::sync::Mutex<Option<(String, zookeeper_client::Client)>>,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            etcd: EtcdProbe::default(),
            http: masters::http_client(HTTP_TIMEOUT),
            zk: tokio::sync::Mutex::new(None),
        }
    }
}

/// The node a host name names (full or short), or the name itself when it names none.
fn node_by_name(nodes: &[NodeView], host: &str) -> String {
    nodes
        .iter()
        .find(|n| n.fqdn == host || n.short == host)
        .map(|n| n.fqdn.clone())
        .unwrap_or_else(|| host.to_string())
}

fn node_by_address(nodes: &[NodeView], address: &str) -> Option<String> {
    nodes
        .iter()
        .find(|n| n.address.to_string() == address)
        .map(|n| n.fqdn.clone())
}

/// What one look at a service's leader found: every member's view and the verdict on them.
#[derive(Debug, Clone)]
pub struct LeaderSeen {
    /// Every member's view: each node the topology gives the service, and any other member.
    pub views: LeaderViews,
    /// The majority-backed leader, or which condition failed.
    pub leader: Result<Backed, NoLeader>,
}

/// A web service's instance whose health check did not pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HealthMiss {
    /// It answered with a status other than success.
    #[error("{url} answered {status}")]
    Status {
        /// The health URL.
        url: String,
        /// What it answered.
        status: reqwest::StatusCode,
    },
    /// It did not answer.
    #[error(transparent)]
    NoAnswer(#[from] NoAnswer),
}

/// The instances of a web service whose health checks did not pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct NotHealthy(pub Vec<HealthMiss>);

/// Every member's view of the leader, and the membership each reported (or why it could not
/// be read), by member.
type ViewsAndMemberships = (
    LeaderViews,
    BTreeMap<String, Result<Membership, MembershipUnread>>,
);

/// How long one member may take to answer a look at the leader: a member whose answer comes
/// later is not answering (a paused or cut-off member must not hold every poll up for long).
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(1000);

impl Observer {
    /// Every member's view of the leader of a service, and the member lists (etcd) or
    /// ensembles (ZooKeeper) each reported, from which the configured membership is read.
    ///
    /// Every node the topology gives the service is asked, whatever this run did to it (a
    /// service it stopped is asked too, and counts if it answers): liveness is observed, not
    /// remembered. Only a terminated node is not asked, being gone.
    async fn views_and_memberships<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> ViewsAndMemberships {
        let all = cluster.nodes();
        let asked: Vec<NodeView> = all
            .iter()
            .filter(|n| n.alive && n.services.contains(&service))
            .cloned()
            .collect();
        let (mut views, memberships) = match service {
            ServiceKind::Etcd => self.etcd_views(cluster, &all, &asked).await,
            ServiceKind::Zookeeper => self.zookeeper_views(cluster, &all, &asked).await,
            ServiceKind::MesosMaster | ServiceKind::Marathon => {
                let views = self.master_views(cluster, &all, &asked, service).await;
                // Mesos and Marathon keep no member list of their own: their membership is the
                // masters the topology (or inventory) configures.
                let masters = Membership {
                    voters: cluster
                        .topology()
                        .nodes_running(service)
                        .into_iter()
                        .map(|n| n.fqdn)
                        .collect(),
                    source: format!("the topology's {service} masters"),
                    synced_followers: None,
                };
                let memberships = asked
                    .iter()
                    .map(|m| (m.fqdn.clone(), Ok(masters.clone())))
                    .collect();
                (views, memberships)
            }
            ServiceKind::App | ServiceKind::Ingress => (LeaderViews::new(), BTreeMap::new()),
        };
        for n in all.iter().filter(|n| n.services.contains(&service)) {
            views
                .entry(n.fqdn.clone())
                .or_insert_with(|| MemberView::Down {
                    why: "node terminated".to_string(),
                });
        }
        (views, memberships)
    }

    /// The leader of a service as the rule judges it (`probe::leader::backed_leader`): a
    /// majority of the configured membership, or every member with `Agreement::All`.
    pub async fn leader<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
        agreement: Agreement,
    ) -> LeaderSeen {
        let (views, mut memberships) = self.views_and_memberships(cluster, service).await;
        let leader = backed_leader(&views, agreement, |leader| {
            memberships
                .remove(leader)
                .unwrap_or(Err(MembershipUnread::NotAsked))
        });
        LeaderSeen { views, leader }
    }

    /// Every member's view of the leader of a service (members that are down included).
    pub async fn leader_views<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> LeaderViews {
        self.views_and_memberships(cluster, service).await.0
    }

    /// What one master answers of the leader over HTTP (down when its node was terminated).
    pub async fn master_view<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        node: &str,
        service: ServiceKind,
    ) -> MemberView {
        let all = cluster.nodes();
        let Some(n) = all.iter().find(|n| n.fqdn == node && n.alive) else {
            return MemberView::Down {
                why: "node terminated".to_string(),
            };
        };
        self.master_views(cluster, &all, std::slice::from_ref(n), service)
            .await
            .remove(node)
            .unwrap_or(MemberView::Down {
                why: "not asked".to_string(),
            })
    }

    async fn master_views<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        all: &[NodeView],
        asked: &[NodeView],
        service: ServiceKind,
    ) -> LeaderViews {
        join_all(asked.iter().map(|m| async move {
            let answer = match service {
                ServiceKind::MesosMaster => {
                    masters::mesos_leader(
                        &self.http,
                        cluster.endpoint(m, crate::base::ports::MESOS),
                    )
                    .await
                }
                _ => {
                    masters::marathon_leader(
                        &self.http,
                        cluster.endpoint(m, crate::base::ports::MARATHON),
                    )
                    .await
                }
            };
            let view = match answer {
                HttpLeader::Leader(host) => MemberView::leader(node_by_name(all, &host)),
                HttpLeader::None(why) => MemberView::NoLeader { why },
                HttpLeader::Unreachable(e) => MemberView::from(&e),
            };
            (m.fqdn.clone(), view)
        }))
        .await
        .into_iter()
        .collect()
    }

    async fn zookeeper_views<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        all: &[NodeView],
        asked: &[NodeView],
    ) -> ViewsAndMemberships {
        let answers = join_all(asked.iter().map(|m| async move {
            let look = async {
                let state = server_state(cluster.zookeeper_addr(m), ANSWER_TIMEOUT).await?;
                // Only a follower needs to say whom it follows; a server that does not serve
                // follows nobody.
                let follows = match state.mode {
                    Mode::Follower | Mode::Observer => {
                        let admin = cluster.endpoint(m, crate::base::ports::ZOOKEEPER_ADMIN);
                        zookeeper::admin_leader(&self.http, admin).await.ok()
                    }
                    _ => None,
                };
                Ok::<_, NoAnswer>((state, follows))
            };
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, look)
                .await
                .unwrap_or_else(|_| Err(NoAnswer::timed_out("`srvr`", ANSWER_TIMEOUT)));
            (m, answer)
        }))
        .await;
        let label = |host: &str| node_by_address(all, host).unwrap_or_else(|| host.to_string());
        let mut ids: BTreeMap<u64, String> = BTreeMap::new();
        let mut found = BTreeMap::new();
        let mut memberships = BTreeMap::new();
        for (m, answer) in answers {
            let membership = match &answer {
                // The membership is read only from a server that leads: its ensemble, and its
                // own count of the voting followers synced with it.
                Ok((s, _)) if s.mode == Mode::Leader => {
                    Membership::of_zookeeper(s, label, &m.short)
                }
                Ok(_) => Err(MembershipUnread::NotLeading),
                Err(e) => Err(MembershipUnread::NoAnswer(e.clone())),
            };
            if let Ok((state, _)) = &answer {
                for (id, server) in state.conf.iter().flat_map(|c| c.servers.iter()) {
                    ids.entry(*id).or_insert_with(|| label(&server.host));
                }
            }
            found.insert(
                m.fqdn.clone(),
                answer
                    .map(|(state, follows)| ZookeeperAnswer {
                        mode: state.mode,
                        epoch: state.zxid.map(|z| z >> 32),
                        follows,
                    })
                    .map_err(|e| MemberView::from(&e)),
            );
            memberships.insert(m.fqdn.clone(), membership);
        }
        (
            zookeeper_views(&found, |id| ids.get(&id).cloned()),
            memberships,
        )
    }

    async fn etcd_views<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        all: &[NodeView],
        asked: &[NodeView],
    ) -> ViewsAndMemberships {
        let answers = join_all(asked.iter().map(|m| async move {
            let url = cluster.etcd_url(m);
            let addr = cluster.endpoint(m, crate::base::ports::ETCD_CLIENT);
            let look = async {
                tokio::join!(etcd::raft_status(&self.http, addr), self.etcd.members(&url))
            };
            let (raft, members) = tokio::time::timeout(ANSWER_TIMEOUT, look)
                .await
                .unwrap_or_else(|_| {
                    let e = NoAnswer::timed_out("/debug/vars", ANSWER_TIMEOUT);
                    (
                        Err(e),
                        Err(etcd::EtcdError::TimedOut {
                            what: "list etcd members".to_string(),
                            endpoint: url.clone(),
                            ms: ANSWER_TIMEOUT.as_millis(),
                        }),
                    )
                });
            (m, raft, members)
        }))
        .await;
        let node_of = |member: &Member| {
            let host = member
                .peer_urls
                .first()
                .map(|u| url_host(u).to_string())
                .unwrap_or_default();
            node_by_address(all, &host).unwrap_or(host)
        };
        // Member ids to nodes: each member's own id, and every member list that was read (ids
        // are per cluster, and a leader that does not answer is known only from the lists).
        let mut ids: BTreeMap<u64, String> = BTreeMap::new();
        for (m, raft, members) in &answers {
            if let Ok(r) = raft {
                ids.insert(r.id, m.fqdn.clone());
            }
            for member in members.iter().flatten() {
                ids.entry(member.id).or_insert_with(|| node_of(member));
            }
        }
        let mut views = LeaderViews::new();
        let mut memberships = BTreeMap::new();
        for (m, raft, members) in answers {
            let view = match &raft {
                Err(e) => MemberView::from(e),
                Ok(r) if r.lead == 0 => MemberView::NoLeader {
                    why: format!("term {}, no leader", r.term),
                },
                Ok(r) => MemberView::leader_at(
                    ids.get(&r.lead)
                        .cloned()
                        .unwrap_or_else(|| format!("etcd member {:x}", r.lead)),
                    r.term,
                ),
            };
            views.insert(m.fqdn.clone(), view);
            memberships.insert(
                m.fqdn.clone(),
                members
                    .map(|list| Membership::of_etcd(&list, node_of, &m.short))
                    .map_err(MembershipUnread::from),
            );
        }
        (views, memberships)
    }

    /// Whether every live instance of a web service answers its health check.
    pub async fn http_healthy<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> Result<(), NotHealthy> {
        let (port, path) = match service {
            ServiceKind::App => (crate::base::ports::APP, "/health"),
            ServiceKind::Ingress => (crate::base::ports::INGRESS_APP, "/health"),
            _ => return Ok(()),
        };
        if service == ServiceKind::Ingress
            && cluster
                .topology()
                .nodes_running(ServiceKind::App)
                .is_empty()
        {
            return Ok(());
        }
        let results = join_all(cluster.members(service).into_iter().map(|m| async move {
            let url = format!("http://{}{path}", cluster.endpoint(&m, port));
            match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(HealthMiss::Status {
                    url,
                    status: r.status(),
                }),
                Err(e) => Err(HealthMiss::NoAnswer(NoAnswer::http(&url, &e))),
            }
        }))
        .await;
        let misses: Vec<HealthMiss> = results.into_iter().filter_map(Result::err).collect();
        if misses.is_empty() {
            Ok(())
        } else {
            Err(NotHealthy(misses))
        }
    }
}
