//! What each kind of service starts with on a node: its command line and the files it reads,
//! rendered from the topology and from what steps decided. The same on every provider.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::Supervisor;
use crate::base::ports;
use crate::provider::{Hosts, NodeRecord};
use crate::service::{etcd, ingress, standins, zookeeper, ServiceKind};

/// A service's command line, the files it needs written first, and for ZooKeeper the id and
/// ensemble it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The command line.
    pub argv: Vec<String>,
    /// Files to write on the node before it starts.
    pub files: Vec<(PathBuf, String)>,
    /// ZooKeeper's id and ensemble.
    pub zookeeper: Option<zookeeper::Assignment>,
}

impl Launch {
    fn argv(argv: Vec<String>) -> Self {
        Self {
            argv,
            files: Vec::new(),
            zookeeper: None,
        }
    }
}

/// Every node the topology gives a service, with its (unchanging) name and address.
fn peers_of<H: Hosts>(hosts: &H, service: ServiceKind) -> Vec<etcd::Peer> {
    hosts
        .topology()
        .nodes_running(service)
        .iter()
        .filter_map(|spec| {
            hosts.record().nodes.get(&spec.fqdn).map(|n| etcd::Peer {
                name: n.short.clone(),
                address: n.address,
            })
        })
        .collect()
}

/// The id and ensemble ZooKeeper on a node starts with: what a step set, or the topology's ids
/// for every ZooKeeper node.
fn zookeeper_assignment<H: Hosts>(
    sup: &Supervisor,
    hosts: &H,
    fqdn: &str,
) -> Result<zookeeper::Assignment, String> {
    if let Some(a) = sup.zookeeper_next.get(fqdn) {
        return Ok(a.clone());
    }
    let topology = hosts.topology();
    let ensemble: Vec<zookeeper::Server> = topology
        .nodes_running(ServiceKind::Zookeeper)
        .iter()
        .filter_map(|spec| {
            let node = hosts.record().nodes.get(&spec.fqdn)?;
            Some(zookeeper::Server {
                id: topology.zookeeper_id(&spec.fqdn)?,
                address: node.address,
            })
        })
        .collect();
    let id = topology
        .zookeeper_id(fqdn)
        .ok_or_else(|| "the node runs no zookeeper".to_string())?;
    Ok(zookeeper::Assignment { id, ensemble })
}

/// Renders what `service` starts with on a node.
pub(super) fn render<H: Hosts>(
    sup: &Supervisor,
    hosts: &H,
    fqdn: &str,
    node: &NodeRecord,
    service: ServiceKind,
    data: &Path,
) -> Result<Launch, String> {
    let settings = &hosts.topology().settings;
    match service {
        ServiceKind::Etcd => {
            let me = etcd::Peer {
                name: node.short.clone(),
                address: node.address,
            };
            let boot = match sup.etcd_bootstrap.get(fqdn) {
                Some(boot) => boot.clone(),
                None => etcd::Bootstrap {
                    initial_cluster: etcd::initial_cluster(&peers_of(hosts, ServiceKind::Etcd)),
                    state: etcd::ClusterState::New,
                    token: None,
                    force_new_cluster: false,
                },
            };
            let token = boot
                .token
                .clone()
                .unwrap_or_else(|| format!("succession-{}", hosts.record().id));
            let mut argv = etcd::command(
                &me,
                &boot.initial_cluster,
                boot.state,
                &token,
                data,
                settings,
            );
            if boot.force_new_cluster {
                argv.push("--force-new-cluster".to_string());
            }
            Ok(Launch::argv(argv))
        }
        ServiceKind::Zookeeper => {
            let assignment = zookeeper_assignment(sup, hosts, fqdn)?;
            let me = zookeeper::Server {
                id: assignment.id,
                address: node.address,
            };
            if !assignment.ensemble.contains(&me) {
                return Err(format!(
                    "the ensemble does not list this node as id {}",
                    me.id
                ));
            }
            let cfg = data.join("zoo.cfg");
            Ok(Launch {
                argv: zookeeper::command(&cfg),
                files: vec![
                    (
                        cfg,
                        zookeeper::config(&me, &assignment.ensemble, data, settings),
                    ),
                    // A renumbered server keeps its data directory: ZooKeeper keys nothing in
                    // it by id, and the server rejoins with a diff from the leader.
                    (data.join("myid"), format!("{}\n", me.id)),
                ],
                zookeeper: Some(assignment),
            })
        }
        ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App => {
            let zk: Vec<Ipv4Addr> = peers_of(hosts, ServiceKind::Zookeeper)
                .iter()
                .map(|p| p.address)
                .collect();
            standins::command(
                &hosts.standin_binary(),
                service,
                fqdn,
                node.address,
                &standins::zk_connect(&zk),
            )
            .map(Launch::argv)
            .ok_or_else(|| format!("{service} has no stand-in"))
        }
        ServiceKind::Ingress => {
            let topology = hosts.topology();
            let backend =
                |name: &str, kind: ServiceKind, port: u16, server_port: u16, check: &str| {
                    ingress::Backend {
                        name: name.to_string(),
                        port,
                        server_port,
                        check: check.to_string(),
                        servers: topology
                            .nodes_running(kind)
                            .iter()
                            .filter_map(|spec| {
                                hosts
                                    .record()
                                    .nodes
                                    .get(&spec.fqdn)
                                    .map(|n| (n.short.clone(), n.address))
                            })
                            .collect(),
                    }
                };
            let backends: Vec<ingress::Backend> = [
                backend(
                    "app",
                    ServiceKind::App,
                    ports::INGRESS_APP,
                    ports::APP,
                    ports::APP_HEALTH,
                ),
                backend(
                    "mesos",
                    ServiceKind::MesosMaster,
                    ports::MESOS,
                    ports::MESOS,
                    ports::MESOS_HEALTH,
                ),
                backend(
                    "marathon",
                    ServiceKind::Marathon,
                    ports::MARATHON,
                    ports::MARATHON,
                    ports::MARATHON_PING,
                ),
            ]
            .into_iter()
            .filter(|b| !b.servers.is_empty())
            .collect();
            let cfg = data.join("haproxy.cfg");
            Ok(Launch {
                argv: ingress::command(&cfg),
                files: vec![(cfg, ingress::config(node.address, &backends))],
                zookeeper: None,
            })
        }
    }
}
