//! Cluster-wide observations built from the probes: each live member's view of the leader,
//! member lists mapped back to nodes, and readiness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::future::join_all;

use crate::probe::etcd::{EtcdProbe, Member};
use crate::probe::leader::{zookeeper_views, LeaderViews, MemberView};
use crate::probe::zookeeper::{four_letter, parse_conf, parse_srvr, Mode};
use crate::provider::{Cluster, NodeView};
use crate::service::{etcd, ServiceKind};

/// How long one four-letter exchange may take.
pub const ZK_TIMEOUT: Duration = Duration::from_millis(1000);

/// Observes a cluster through the real protocols.
#[derive(Default)]
pub struct Observer {
    /// etcd clients, one per endpoint.
    pub etcd: EtcdProbe,
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
                    ServiceKind::Zookeeper => self.zookeeper_members(m.address, all).await,
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
