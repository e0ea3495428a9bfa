//! Cluster-wide observations built from the probes: each live member's view of the leader,
//! member lists mapped back to nodes, and readiness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::future::join_all;

use crate::probe::etcd::{EtcdProbe, Member};
use crate::probe::leader::{zookeeper_views, LeaderViews, MemberView};
use crate::probe::masters::{self, HttpLeader};
use crate::probe::zookeeper::{four_letter, parse_conf, parse_srvr, Mode};
use crate::provider::{Cluster, NodeView};
use crate::service::{etcd, ServiceKind};

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

/// The host part of `http://10.1.2.3:2380`.
pub fn url_host(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split(['/', ':']).next().unwrap_or(rest)
}

impl Observer {
    /// Every live member's view of the leader of a service.
    pub async fn leader_views<C: Cluster>(&self, cluster: &C, service: ServiceKind) -> LeaderViews {
        let members = cluster.members(service);
        match service {
            ServiceKind::Etcd => self.etcd_views(cluster, &members).await,
            ServiceKind::MesosMaster | ServiceKind::Marathon => {
                let all = cluster.nodes();
                join_all(members.iter().map(|m| {
                    let all = &all;
                    async move {
                        let answer = match service {
                            ServiceKind::MesosMaster => {
                                masters::mesos_leader(
                                    &self.http,
                                    SocketAddr::new(m.address.into(), masters::MESOS_PORT),
                                )
                                .await
                            }
                            _ => {
                                masters::marathon_leader(
                                    &self.http,
                                    SocketAddr::new(m.address.into(), masters::MARATHON_PORT),
                                )
                                .await
                            }
                        };
                        let view = match answer {
                            HttpLeader::Leader(host) => {
                                MemberView::Leader(node_by_name(all, &host))
                            }
                            HttpLeader::None(why) => MemberView::NoLeader(why),
                            HttpLeader::Unreachable(why) => MemberView::Unreachable(why),
                        };
                        (m.fqdn.clone(), view)
                    }
                }))
                .await
                .into_iter()
                .collect()
            }
            ServiceKind::App | ServiceKind::Ingress => LeaderViews::new(),
            ServiceKind::Zookeeper => {
                let modes = join_all(members.iter().map(|m| async move {
                    let reply = four_letter(
                        SocketAddr::new(m.address.into(), zookeeper_port()),
                        "srvr",
                        ZK_TIMEOUT,
                    )
                    .await;
                    (
                        m.fqdn.clone(),
                        reply.and_then(|r| parse_srvr(&r)).map(|s| s.mode),
                    )
                }))
                .await
                .into_iter()
                .collect::<BTreeMap<String, Result<Mode, String>>>();
                zookeeper_views(&modes)
            }
        }
    }

    async fn etcd_views<C: Cluster>(&self, cluster: &C, members: &[NodeView]) -> LeaderViews {
        let statuses = join_all(members.iter().map(|m| async move {
            (
                m.fqdn.clone(),
                self.etcd.status(&etcd::client_url(m.address)).await,
            )
        }))
        .await;
        // Leader ids are mapped to nodes through a member list from any member that answers.
        let mut ids: BTreeMap<u64, String> = BTreeMap::new();
        let all = cluster.nodes();
        for m in members {
            if let Ok(list) = self.etcd.members(&etcd::client_url(m.address)).await {
                for member in list {
                    if let Some(node) = member
                        .peer_urls
                        .first()
                        .and_then(|u| node_by_address(&all, url_host(u)))
                    {
                        ids.insert(member.id, node);
                    }
                }
                break;
            }
        }
        statuses
            .into_iter()
            .map(|(node, status)| {
                let view = match status {
                    Err(e) => MemberView::Unreachable(e),
                    Ok(s) if s.leader == 0 => {
                        MemberView::NoLeader(format!("term {}, no leader", s.raft_term))
                    }
                    Ok(s) => match ids.get(&s.leader) {
                        Some(leader) => MemberView::Leader(leader.clone()),
                        None => MemberView::NoLeader(format!(
                            "leader id {:x} is no member it lists",
                            s.leader
                        )),
                    },
                };
                (node, view)
            })
            .collect()
    }

    /// The leader ZooKeeper's election znodes name for a master-tier service: the lowest
    /// sequence under `/mesos` (MasterInfo hostname) or `/marathon/leader-curator` (latch data).
    pub async fn znode_leader<C: Cluster>(
        &self,
        cluster: &C,
        service: ServiceKind,
    ) -> Result<Option<String>, String> {
        let (dir, marker) = match service {
            ServiceKind::MesosMaster => (masters::MESOS_DIR, masters::MESOS_MARKER),
            ServiceKind::Marathon => (masters::MARATHON_DIR, masters::MARATHON_MARKER),
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

    async fn zk_client<C: Cluster>(&self, cluster: &C) -> Result<zookeeper_client::Client, String> {
        let servers: Vec<std::net::Ipv4Addr> = cluster
            .members(ServiceKind::Zookeeper)
            .iter()
            .map(|n| n.address)
            .collect();
        if servers.is_empty() {
            return Err("no live ZooKeeper server to read znodes from".to_string());
        }
        let connect = crate::service::standins::zk_connect(&servers);
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
        let client = tokio::time::timeout(
            Duration::from_secs(3),
            zookeeper_client::Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .with_connection_timeout(Duration::from_secs(1))
                .connect(&connect),
        )
        .await
        .map_err(|_| format!("failed to connect to ZooKeeper at {connect}: timed out"))?
        .map_err(|e| format!("failed to connect to ZooKeeper at {connect}: {e}"))?;
        *slot = Some((connect, client.clone()));
        Ok(client)
    }

    /// Whether every live instance of a web service answers its health check.
    pub async fn http_healthy<C: Cluster>(
        &self,
        cluster: &C,
        service: ServiceKind,
    ) -> Result<(), String> {
        let (port, path) = match service {
            ServiceKind::App => (crate::standin::app::APP_PORT, "/health"),
            ServiceKind::Ingress => (crate::service::ingress::APP_PORT, "/health"),
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
            let url = format!("http://{}:{port}{path}", m.address);
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
    pub async fn etcd_members(&self, address: Ipv4Addr) -> Result<Vec<Member>, String> {
        self.etcd.members(&etcd::client_url(address)).await
    }

    /// The member list every live member reports, mapped to nodes; an error when any live
    /// member cannot be asked or they disagree.
    pub async fn member_lists<C: Cluster>(
        &self,
        cluster: &C,
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
                    ServiceKind::Etcd => self.etcd_members(m.address).await.map(|members| {
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
                    _ => self.zookeeper_members(m.address, all).await,
                };
                (m.fqdn.clone(), list)
            }
        }))
        .await;
        let mut agreed: Option<(String, BTreeMap<String, ListedMember>)> = None;
        for (node, list) in lists {
            let list = list.map_err(|e| format!("{}: {e}", crate::probe::leader::short(&node)))?;
            match &agreed {
                None => agreed = Some((node, list)),
                Some((first, seen)) if *seen != list => {
                    return Err(format!(
                        "members disagree: {} lists {}, {} lists {}",
                        crate::probe::leader::short(first),
                        describe(seen),
                        crate::probe::leader::short(&node),
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
        address: Ipv4Addr,
        all: &[NodeView],
    ) -> Result<BTreeMap<String, ListedMember>, String> {
        let addr = SocketAddr::new(address.into(), zookeeper_port());
        let conf = parse_conf(&four_letter(addr, "conf", ZK_TIMEOUT).await?)?;
        let serving = matches!(
            parse_srvr(&four_letter(addr, "srvr", ZK_TIMEOUT).await?)?.mode,
            Mode::Leader | Mode::Follower
        );
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

fn zookeeper_port() -> u16 {
    crate::service::zookeeper::CLIENT_PORT
}

/// A member list in one line.
pub fn describe(list: &BTreeMap<String, ListedMember>) -> String {
    let names: Vec<String> = list
        .values()
        .map(|m| {
            let name = crate::probe::leader::short(&m.node).to_string();
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
            .map(|n| crate::probe::leader::short(n))
            .collect();
        let extra: Vec<&str> = listed
            .difference(expected)
            .map(|n| crate::probe::leader::short(n))
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
            .map(|m| crate::probe::leader::short(&m.node))
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
    fn url_hosts_are_extracted() {
        assert_eq!(url_host("http://10.136.89.99:2380"), "10.136.89.99");
        assert_eq!(url_host("10.1.1.1:2380"), "10.1.1.1");
    }

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
}
