//! Cluster-wide observations built from the probes: each live member's view of the leader,
//! member lists mapped back to nodes, and readiness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::probe::answer::NoAnswer;
use crate::probe::etcd::{self, url_host, EtcdError, EtcdProbe, Member};
use crate::probe::leader::{
    backed_leader, zookeeper_views, Agreement, Backed, LeaderViews, MemberView, Membership,
    MembershipUnread, NoLeader, ZookeeperAnswer,
};
use crate::probe::masters::{self, HttpLeader};
use crate::probe::zookeeper::{self, four_letter, parse_conf, server_state, Mode};
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

/// A member as a service lists it, mapped to a node where its address is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// The node it maps to (full name), or its address when it maps to none.
    pub node: String,
    /// Started (etcd) / serving participant (ZooKeeper).
    pub started: bool,
    /// Service-specific id (etcd member id, ZooKeeper server id).
    pub id: u64,
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
    ) -> (
        LeaderViews,
        BTreeMap<String, Result<Membership, MembershipUnread>>,
    ) {
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
    ) -> (
        LeaderViews,
        BTreeMap<String, Result<Membership, MembershipUnread>>,
    ) {
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
    ) -> (
        LeaderViews,
        BTreeMap<String, Result<Membership, MembershipUnread>>,
    ) {
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

    /// The leader ZooKeeper's election znodes name for a master-tier service: the lowest
    /// sequence under `/mesos` (MasterInfo hostname) or `/marathon/leader-curator` (latch data).
    pub async fn znode_leader<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> Result<Option<String>, String> {
        let (dir, marker) = match service {
            ServiceKind::MesosMaster => (
                crate::base::ports::MESOS_DIR,
                crate::base::ports::MESOS_MARKER,
            ),
            ServiceKind::Marathon => (
                crate::base::ports::MARATHON_DIR,
                crate::base::ports::MARATHON_MARKER,
            ),
            _ => return Err(format!("{service} does not elect through ZooKeeper")),
        };
        let client = self.zk_client(cluster).await?;
        let children = match client.list_children(dir).await {
            Ok(c) => c,
            Err(zookeeper_client::Error::NoNode) => return Ok(None),
            Err(e) => {
                self.zk.lock().await.take();
                return Err(format!("failed to list {dir}: {e}"));
            }
        };
        let Some(lowest) = crate::standin::election::lowest(&children, marker) else {
            return Ok(None);
        };
        let path = format!("{dir}/{lowest}");
        let data = match client.get_data(&path).await {
            Ok((d, _)) => d,
            Err(zookeeper_client::Error::NoNode) => {
                return Err(format!("{path} vanished while read"))
            }
            Err(e) => return Err(format!("failed to read {path}: {e}")),
        };
        let host = match service {
            ServiceKind::MesosMaster => masters::parse_master_info(&data)?.hostname,
            _ => masters::latch_host(&data)?,
        };
        Ok(Some(node_by_name(&cluster.nodes(), &host)))
    }

    async fn zk_client<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
    ) -> Result<zookeeper_client::Client, String> {
        let servers: Vec<SocketAddr> = cluster
            .members(ServiceKind::Zookeeper)
            .iter()
            .map(|n| cluster.zookeeper_addr(n))
            .collect();
        if servers.is_empty() {
            return Err("no live ZooKeeper server to read znodes from".to_string());
        }
        let connect = crate::probe::znodes::connect_string(&servers);
        let mut slot = self.zk.lock().await;
        if let Some((c, client)) = slot.as_ref() {
            let usable = !matches!(
                client.state(),
                zookeeper_client::SessionState::Expired
                    | zookeeper_client::SessionState::Closed
                    | zookeeper_client::SessionState::AuthFailed
            );
            if *c == connect && usable {
                return Ok(client.clone());
            }
        }
        // Short: a poll of the master tier waits on this, and an election is measured to
        // within one poll.
        let client = tokio::time::timeout(
            Duration::from_millis(1500),
            zookeeper_client::Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .with_connection_timeout(Duration::from_millis(500))
                .connect(&connect),
        )
        .await
        .map_err(|_| format!("failed to connect to ZooKeeper at {connect}: timed out"))?
        .map_err(|e| format!("failed to connect to ZooKeeper at {connect}: {e}"))?;
        *slot = Some((connect, client.clone()));
        Ok(client)
    }

    /// Whether every live instance of a web service answers its health check.
    pub async fn http_healthy<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> Result<(), String> {
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
                Ok(r) => Err(format!("{url} answered {}", r.status())),
                Err(e) => Err(format!("failed to GET {url}: {e}")),
            }
        }))
        .await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The etcd member list as `endpoint` sees it.
    pub async fn etcd_members(&self, url: &str) -> Result<Vec<Member>, EtcdError> {
        self.etcd.members(url).await
    }

    /// The member list every live member reports, mapped to nodes; an error when any live
    /// member cannot be asked or they disagree.
    pub async fn member_lists<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> Result<BTreeMap<String, ListedMember>, String> {
        if !service.has_member_list() {
            return Err(format!("{service} has no member list"));
        }
        let live = cluster.members(service);
        if live.is_empty() {
            return Err(format!("no live {service} member to ask"));
        }
        let all = cluster.nodes();
        let lists = join_all(live.iter().map(|m| {
            let all = &all;
            async move {
                let list = match service {
                    ServiceKind::Etcd => self
                        .etcd_members(&cluster.etcd_url(m))
                        .await
                        .map_err(String::from)
                        .map(|members| {
                            members
                                .into_iter()
                                .map(|member| {
                                    let host = member
                                        .peer_urls
                                        .first()
                                        .map(|u| url_host(u).to_string())
                                        .unwrap_or_default();
                                    let node = node_by_address(all, &host).unwrap_or(host);
                                    (
                                        node.clone(),
                                        ListedMember {
                                            node,
                                            started: member.is_started() && !member.is_learner,
                                            id: member.id,
                                        },
                                    )
                                })
                                .collect::<BTreeMap<_, _>>()
                        }),
                    _ => self.zookeeper_members(cluster.zookeeper_addr(m), all).await,
                };
                (m.fqdn.clone(), list)
            }
        }))
        .await;
        let mut agreed: Option<(String, BTreeMap<String, ListedMember>)> = None;
        for (node, list) in lists {
            let list = list.map_err(|e| format!("{}: {e}", crate::base::names::short(&node)))?;
            match &agreed {
                None => agreed = Some((node, list)),
                Some((first, seen)) if *seen != list => {
                    return Err(format!(
                        "members disagree: {} lists {}, {} lists {}",
                        crate::base::names::short(first),
                        describe(seen),
                        crate::base::names::short(&node),
                        describe(&list)
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(agreed.map(|(_, l)| l).unwrap_or_default())
    }

    async fn zookeeper_members(
        &self,
        addr: SocketAddr,
        all: &[NodeView],
    ) -> Result<BTreeMap<String, ListedMember>, String> {
        let state = server_state(addr, ZK_TIMEOUT).await?;
        // A server that does not serve still says which ensemble it was started with.
        let conf = match state.conf.clone() {
            Some(c) => c,
            None => parse_conf(&four_letter(addr, "conf", ZK_TIMEOUT).await?)?,
        };
        let serving = state.serves();
        Ok(conf
            .servers
            .iter()
            .map(|(id, s)| {
                let node = node_by_address(all, &s.host).unwrap_or_else(|| s.host.clone());
                (
                    node.clone(),
                    ListedMember {
                        node,
                        started: serving && s.role == "participant",
                        id: *id,
                    },
                )
            })
            .collect())
    }
}

/// A member list in one line.
pub fn describe(list: &BTreeMap<String, ListedMember>) -> String {
    let names: Vec<String> = list
        .values()
        .map(|m| {
            let name = crate::base::names::short(&m.node).to_string();
            if m.started {
                name
            } else {
                format!("{name} (unstarted)")
            }
        })
        .collect();
    format!("[{}]", names.join(", "))
}

/// Compares a member list with the expected nodes; `Ok` when equal (and started, if asked).
pub fn compare_members(
    list: &BTreeMap<String, ListedMember>,
    expected: &BTreeSet<String>,
    started: bool,
) -> Result<(), String> {
    let listed: BTreeSet<String> = list.keys().cloned().collect();
    if &listed != expected {
        let missing: Vec<&str> = expected
            .difference(&listed)
            .map(|n| crate::base::names::short(n))
            .collect();
        let extra: Vec<&str> = listed
            .difference(expected)
            .map(|n| crate::base::names::short(n))
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("unexpected {}", extra.join(", ")));
        }
        return Err(format!(
            "members are {}: {}",
            describe(list),
            parts.join("; ")
        ));
    }
    if started {
        let unstarted: Vec<&str> = list
            .values()
            .filter(|m| !m.started)
            .map(|m| crate::base::names::short(&m.node))
            .collect();
        if !unstarted.is_empty() {
            return Err(format!(
                "members are {}: not started: {}",
                describe(list),
                unstarted.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_comparison_names_what_is_missing_and_extra() {
        let list: BTreeMap<String, ListedMember> = ["q1.c", "q3.c"]
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    ListedMember {
                        node: n.to_string(),
                        started: true,
                        id: 1,
                    },
                )
            })
            .collect();
        let expected: BTreeSet<String> = ["q1.c".to_string(), "q2.c".to_string()].into();
        let e = compare_members(&list, &expected, true).unwrap_err();
        assert_eq!(e, "members are [q1, q3]: missing q2; unexpected q3");
    }

    #[test]
    fn an_unstarted_member_fails_only_when_started_ones_are_expected() {
        let list: BTreeMap<String, ListedMember> = [("q1.c", true), ("q2.c", false)]
            .iter()
            .map(|(n, started)| {
                (
                    n.to_string(),
                    ListedMember {
                        node: n.to_string(),
                        started: *started,
                        id: 1,
                    },
                )
            })
            .collect();
        let expected: BTreeSet<String> = ["q1.c".to_string(), "q2.c".to_string()].into();
        let e = compare_members(&list, &expected, true).unwrap_err();
        assert!(e.ends_with(": not started: q2"), "{e}");
        assert_eq!(compare_members(&list, &expected, false), Ok(()));
        let mut all_started = list;
        if let Some(m) = all_started.get_mut("q2.c") {
            m.started = true;
        }
        assert_eq!(compare_members(&all_started, &expected, true), Ok(()));
    }
}
