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
    match service {
        ServiceKind::Etcd => Ok(render_etcd(sup, hosts, fqdn, node, data)),
        ServiceKind::Zookeeper => render_zookeeper(sup, hosts, fqdn, node, data),
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
        ServiceKind::Ingress => Ok(render_ingress(hosts, node, data)),
    }
}

/// etcd's command line: this node's bootstrap as the supervisor planned it (a join, a
/// restore), else a member of a new cluster of every etcd node.
fn render_etcd<H: Hosts>(
    sup: &Supervisor,
    hosts: &H,
    fqdn: &str,
    node: &NodeRecord,
    data: &Path,
) -> Launch {
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
        &hosts.topology().settings,
    );
    if boot.force_new_cluster {
        argv.push("--force-new-cluster".to_string());
    }
    Launch::argv(argv)
}

/// ZooKeeper's config and myid, from the ensemble this node is assigned.
fn render_zookeeper<H: Hosts>(
    sup: &Supervisor,
    hosts: &H,
    fqdn: &str,
    node: &NodeRecord,
    data: &Path,
) -> Result<Launch, String> {
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
    let settings = &hosts.topology().settings;
    Ok(Launch {
        argv: zookeeper::command(&cfg),
        files: vec![
            (
                cfg,
                zookeeper::config(&me, &assignment.ensemble, data, settings),
            ),
            // A renumbered server keeps its data directory: ZooKeeper keys nothing in it by
            // id, and the server rejoins with a diff from the leader.
            (data.join("myid"), format!("{}\n", me.id)),
        ],
        zookeeper: Some(assignment),
    })
}

/// haproxy's config: a backend per kind of server the cell runs (apps, Mesos masters,
/// Marathon), each over the nodes that run it.
fn render_ingress<H: Hosts>(hosts: &H, node: &NodeRecord, data: &Path) -> Launch {
    let topology = hosts.topology();
    let backend = |name: &str, kind: ServiceKind, port: u16, server_port: u16, check: &str| {
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
    Launch {
        argv: ingress::command(&cfg),
        files: vec![(cfg, ingress::config(node.address, &backends))],
        zookeeper: None,
    }
}
