//! The local provider: each node is a network namespace on a per-run bridge, running the real
//! servers from Debian's packages as supervised processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::netns;
use super::process::{ProcessId, ProcessState};
use super::state::{self, service_key, Intent, NodeRecord, RunDir, RunRecord, ServiceRecord};
use super::{Cluster, ClusterError, ExecOutput, NodeView, ServiceStatus};
use crate::probe::neighbour::{parse_ip_neigh, Neighbour};
use crate::rng::SeededRng;
use crate::service::{etcd, ingress, standins, zookeeper, ServiceKind};
use crate::spec::topology::{host_address, ServiceSettings, SubnetChoice};
use crate::spec::Topology;

/// How long a command run with `exec` may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

fn standin_app_port() -> u16 {
    crate::base::ports::APP
}

/// A topology brought up in network namespaces on this host.
pub struct LocalCluster {
    topology: Topology,
    dir: RunDir,
    record: RunRecord,
    children: BTreeMap<String, tokio::process::Child>,
    etcd_join: BTreeMap<String, etcd::Bootstrap>,
    /// Nodes whose etcd lost its data (the node was replaced, or the data wiped) and has not
    /// been told how to start since: starting it as it was would revive the old member's
    /// identity with nothing in it.
    etcd_without_data: BTreeSet<String>,
    /// ZooKeeper ids and ensembles set by steps, used at the next start instead of the
    /// topology's.
    zookeeper_next: BTreeMap<String, zookeeper::Assignment>,
    /// What each ZooKeeper server was last started with.
    zookeeper_started: BTreeMap<String, zookeeper::Assignment>,
    rng: SeededRng,
    finished: bool,
}

/// What must hold before anything is created: root, iproute2, the services' binaries.
pub fn preflight(topology: &Topology) -> Result<(), ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ClusterError::Environment(
            "failed to provision locally: the local provider needs root (network namespaces); run as root or with sudo".into(),
        ));
    }
    if netns::ip(&["-V"]).is_err() {
        return Err(ClusterError::Environment(
            "failed to provision locally: `ip` (iproute2) not found; run ci/setup-host".into(),
        ));
    }
    let mut needed: Vec<(ServiceKind, &str, &str)> = Vec::new();
    for role in &topology.roles {
        for s in &role.services {
            match s {
                ServiceKind::Etcd => needed.push((*s, etcd::BINARY, "etcd-server")),
                ServiceKind::Zookeeper => {
                    needed.push((*s, zookeeper::JAVA, "zookeeper"));
                    needed.push((*s, zookeeper::JAR, "zookeeper"));
                    needed.push((*s, zookeeper::LOG_JAR, "libslf4j-java"));
                }
                ServiceKind::Ingress => needed.push((*s, ingress::BINARY, "haproxy")),
                ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App => {
                    if topology.nodes_running(ServiceKind::Zookeeper).is_empty() {
                        return Err(ClusterError::Environment(format!(
                            "failed to provision {s}: it elects or registers through ZooKeeper, and topology {} runs none",
                            topology.file.display()
                        )));
                    }
                    let bin = standins::binary();
                    if !bin.exists() {
                        return Err(ClusterError::Environment(format!(
                            "failed to provision the {s} stand-in: {} not found (build it with `cargo build`, or set SUCCESSION_STANDIN)",
                            bin.display()
                        )));
                    }
                    standins::check_build(&bin).map_err(|e| {
                        ClusterError::Environment(format!(
                            "failed to provision the {s} stand-in: {e}"
                        ))
                    })?;
                }
            }
        }
    }
    for (service, path, package) in needed {
        if !Path::new(path).exists() {
            return Err(ClusterError::Environment(format!(
                "failed to provision {service}: {path} not found (install Debian's {package} package: ci/setup-host)"
            )));
        }
    }
    Ok(())
}

impl LocalCluster {
    /// Creates every node and starts every service; readiness is the caller's to wait for.
    /// On error, whatever was created is removed before returning.
    pub async fn provision(
        topology: &Topology,
        purpose: &str,
        seed: u64,
        say: &dyn Fn(&str),
    ) -> Result<Self, ClusterError> {
        preflight(topology)?;
        let (dir, record) = state::create_run(purpose, &topology.cell)?;
        let mut cluster = Self {
            topology: topology.clone(),
            dir,
            record,
            children: BTreeMap::new(),
            etcd_join: BTreeMap::new(),
            etcd_without_data: BTreeSet::new(),
            zookeeper_next: BTreeMap::new(),
            zookeeper_started: BTreeMap::new(),
            rng: SeededRng::new(seed),
            finished: false,
        };
        match cluster.build(say).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                cluster.teardown();
                Err(e)
            }
        }
    }

    async fn build(&mut self, say: &dyn Fn(&str)) -> Result<(), ClusterError> {
        let fixed = match self.topology.subnet {
            SubnetChoice::Auto => None,
            SubnetChoice::Fixed(s) => Some(s),
        };
        let subnet = state::lease_subnet(&self.record.id, fixed)?;
        self.record.subnet = Some(subnet);
        self.record.hub = true;
        self.save()?;
        let [a, b, c, _] = subnet.octets();
        netns::create_hub(&self.record.id, Ipv4Addr::new(a, b, c, 1)).map_err(|e| {
            ClusterError::Node {
                action: "create the run's switch".into(),
                node: netns::hub_name(&self.record.id),
                detail: e.to_string(),
            }
        })?;
        let nodes = self.topology.nodes();
        say(&format!(
            "provisioning {} nodes of {} on {subnet}/24 (run {})",
            nodes.len(),
            self.topology.cell,
            self.record.id
        ));
        // Every node is recorded before any is created, so each hosts file names all of them.
        for spec in &nodes {
            let record = NodeRecord {
                ordinal: spec.ordinal,
                short: spec.short.clone(),
                role: spec.role.clone(),
                ns: netns::node_ns_name(&self.record.id, &spec.short),
                address: host_address(subnet, spec.host),
                mac: self.rng.mac(),
                generation: 0,
                alive: true,
                services: spec.services.clone(),
            };
            self.record.nodes.insert(spec.fqdn.clone(), record);
        }
        self.save()?;
        for spec in &nodes {
            self.create_host(&spec.fqdn)?;
        }
        // Every server of a kind starts before any is waited on: etcd bootstraps only once a
        // majority of its initial cluster is up.
        for kind in ServiceKind::ALL {
            for spec in nodes.iter().filter(|n| n.services.contains(kind)) {
                self.start_service(&spec.fqdn, *kind).await?;
            }
        }
        Ok(())
    }

    fn save(&self) -> Result<(), ClusterError> {
        Ok(self.dir.save(&self.record)?)
    }

    fn node_record(&self, fqdn: &str) -> Result<&NodeRecord, ClusterError> {
        self.record
            .nodes
            .get(fqdn)
            .ok_or_else(|| ClusterError::Node {
                action: "find the node".into(),
                node: fqdn.to_string(),
                detail: "no such node in this run".into(),
            })
    }

    fn live_node(&self, fqdn: &str, action: &str) -> Result<&NodeRecord, ClusterError> {
        let node = self.node_record(fqdn)?;
        if !node.alive {
            return Err(ClusterError::Node {
                action: action.into(),
                node: fqdn.to_string(),
                detail: "the node was terminated".into(),
            });
        }
        Ok(node)
    }

    /// Creates the namespace of a recorded node, with its hosts file.
    fn create_host(&self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.node_record(fqdn)?;
        let fail = |action: &str, detail: String| ClusterError::Node {
            action: action.into(),
            node: fqdn.to_string(),
            detail,
        };
        let etc = netns::etc_netns_dir(&node.ns);
        std::fs::create_dir_all(&etc)
            .map_err(|e| fail("write its hosts file", format!("{}: {e}", etc.display())))?;
        std::fs::write(etc.join("hosts"), self.hosts_file())
            .map_err(|e| fail("write its hosts file", format!("{}: {e}", etc.display())))?;
        let spec_ordinal = self.topology.node(fqdn).map(|n| n.ordinal).unwrap_or(0);
        let port = format!("n{spec_ordinal}g{}", node.generation);
        netns::create_node(
            &netns::hub_name(&self.record.id),
            &node.ns,
            &port,
            node.address,
            &node.mac,
        )
        .map_err(|e| fail("create the node", e.to_string()))?;
        std::fs::create_dir_all(self.dir.node_dir(&node.short))
            .map_err(|e| fail("create its state directory", e.to_string()))?;
        Ok(())
    }

    /// /etc/hosts as every node sees it: each node by full and short name.
    fn hosts_file(&self) -> String {
        let mut out =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (fqdn, node) in &self.record.nodes {
            out.push_str(&format!("{}\t{fqdn} {}\n", node.address, node.short));
        }
        out
    }

    fn service_dir(&self, node: &NodeRecord, service: ServiceKind) -> PathBuf {
        self.dir.node_dir(&node.short).join(service.name())
    }

    fn log_path(&self, node: &NodeRecord, service: ServiceKind) -> PathBuf {
        self.dir
            .node_dir(&node.short)
            .join(format!("{}.log", service.name()))
    }

    /// The command line (and files it needs) for a service on a node.
    fn service_command(
        &self,
        fqdn: &str,
        node: &NodeRecord,
        service: ServiceKind,
    ) -> Result<Vec<String>, String> {
        let data = self.service_dir(node, service);
        std::fs::create_dir_all(&data)
            .map_err(|e| format!("failed to create {}: {e}", data.display()))?;
        let settings: &ServiceSettings = &self.topology.settings;
        match service {
            ServiceKind::Etcd => {
                let me = etcd::Peer {
                    name: node.short.clone(),
                    address: node.address,
                };
                let boot = match self.etcd_join.get(fqdn) {
                    Some(boot) => boot.clone(),
                    None if self.etcd_without_data.contains(fqdn) => {
                        return Err(format!(
                            "etcd on {} lost its data ({}) and was never added back: started as it was, it would take over its old member identity with nothing in it — remove the member and add it anew (etcd-member-remove, then etcd-member-add) first",
                            node.short,
                            if node.generation > 0 {
                                "the node was replaced"
                            } else {
                                "its data was wiped"
                            }
                        ))
                    }
                    None => etcd::Bootstrap {
                        initial_cluster: etcd::initial_cluster(&self.peers_of(ServiceKind::Etcd)),
                        state: etcd::ClusterState::New,
                        token: None,
                        force_new_cluster: false,
                    },
                };
                let token = boot
                    .token
                    .clone()
                    .unwrap_or_else(|| format!("succession-{}", self.record.id));
                let mut argv = etcd::command(
                    &me,
                    &boot.initial_cluster,
                    boot.state,
                    &token,
                    &data,
                    settings,
                );
                if boot.force_new_cluster {
                    argv.push("--force-new-cluster".to_string());
                }
                Ok(argv)
            }
            ServiceKind::Zookeeper => {
                let assignment = self.zookeeper_assignment(fqdn)?;
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
                let cfg_path = data.join("zoo.cfg");
                std::fs::write(
                    &cfg_path,
                    zookeeper::config(&me, &assignment.ensemble, &data, settings),
                )
                .map_err(|e| format!("failed to write {}: {e}", cfg_path.display()))?;
                // A renumbered server keeps its data directory: ZooKeeper keys nothing in it
                // by id, and the server rejoins with a diff from the leader.
                std::fs::write(data.join("myid"), format!("{}\n", me.id))
                    .map_err(|e| format!("failed to write myid: {e}"))?;
                Ok(zookeeper::command(&cfg_path))
            }
            ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App => {
                let zk: Vec<Ipv4Addr> = self
                    .peers_of(ServiceKind::Zookeeper)
                    .iter()
                    .map(|p| p.address)
                    .collect();
                standins::command(service, fqdn, node.address, &standins::zk_connect(&zk))
                    .ok_or_else(|| format!("{service} has no stand-in"))
            }
            ServiceKind::Ingress => {
                let backend =
                    |name: &str, kind: ServiceKind, port: u16, server_port: u16, check: &str| {
                        ingress::Backend {
                            name: name.to_string(),
                            port,
                            server_port,
                            check: check.to_string(),
                            servers: self
                                .topology
                                .nodes_running(kind)
                                .iter()
                                .filter_map(|spec| {
                                    self.record
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
                        crate::base::ports::INGRESS_APP,
                        standin_app_port(),
                        "/health",
                    ),
                    backend(
                        "mesos",
                        ServiceKind::MesosMaster,
                        crate::base::ports::MESOS,
                        crate::base::ports::MESOS,
                        "/health",
                    ),
                    backend(
                        "marathon",
                        ServiceKind::Marathon,
                        crate::base::ports::MARATHON,
                        crate::base::ports::MARATHON,
                        "/ping",
                    ),
                ]
                .into_iter()
                .filter(|b| !b.servers.is_empty())
                .collect();
                let cfg_path = data.join("haproxy.cfg");
                std::fs::write(&cfg_path, ingress::config(node.address, &backends))
                    .map_err(|e| format!("failed to write {}: {e}", cfg_path.display()))?;
                Ok(ingress::command(&cfg_path))
            }
        }
    }

    /// The id and ensemble ZooKeeper on a node starts with: what a step set, or the
    /// topology's ids for every ZooKeeper node.
    fn zookeeper_assignment(&self, fqdn: &str) -> Result<zookeeper::Assignment, String> {
        if let Some(a) = self.zookeeper_next.get(fqdn) {
            return Ok(a.clone());
        }
        let ensemble: Vec<zookeeper::Server> = self
            .topology
            .nodes_running(ServiceKind::Zookeeper)
            .iter()
            .filter_map(|spec| {
                let node = self.record.nodes.get(&spec.fqdn)?;
                Some(zookeeper::Server {
                    id: self.topology.zookeeper_id(&spec.fqdn)?,
                    address: node.address,
                })
            })
            .collect();
        let id = self
            .topology
            .zookeeper_id(fqdn)
            .ok_or_else(|| "the node runs no zookeeper".to_string())?;
        Ok(zookeeper::Assignment { id, ensemble })
    }

    /// Every node the topology gives a service, with its (unchanging) address.
    fn peers_of(&self, service: ServiceKind) -> Vec<etcd::Peer> {
        self.topology
            .nodes_running(service)
            .into_iter()
            .filter_map(|spec| {
                self.record.nodes.get(&spec.fqdn).map(|n| etcd::Peer {
                    name: n.short.clone(),
                    address: n.address,
                })
            })
            .collect()
    }

    fn view(&self, fqdn: &str, node: &NodeRecord) -> NodeView {
        NodeView {
            fqdn: fqdn.to_string(),
            short: node.short.clone(),
            role: node.role.clone(),
            address: node.address,
            mac: node.mac.clone(),
            alive: node.alive,
            generation: node.generation,
            services: node.services.clone(),
        }
    }

    /// Leaves the run up after this process exits (`up`, `run --keep`).
    pub fn keep(&mut self) -> Result<(), ClusterError> {
        self.record.kept = true;
        self.save()
    }

    /// The run's state directory (logs live below it).
    pub fn state_dir(&self) -> &Path {
        &self.dir.path
    }

    /// Log file of a service on a node.
    pub fn service_log(&self, fqdn: &str, service: ServiceKind) -> Option<PathBuf> {
        self.record
            .nodes
            .get(fqdn)
            .map(|n| self.log_path(n, service))
    }

    /// Whether a child the harness started has exited (reaping it if so).
    fn reap(&mut self, key: &str) -> Option<std::process::ExitStatus> {
        let child = self.children.get_mut(key)?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.children.remove(key);
                Some(status)
            }
            _ => None,
        }
    }
}

impl Cluster for LocalCluster {
    fn provider(&self) -> &'static str {
        "local"
    }

    fn run_id(&self) -> &str {
        &self.record.id
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn nodes(&self) -> Vec<NodeView> {
        self.topology
            .nodes()
            .iter()
            .filter_map(|spec| {
                self.record
                    .nodes
                    .get(&spec.fqdn)
                    .map(|n| self.view(&spec.fqdn, n))
            })
            .collect()
    }

    fn members(&self, service: ServiceKind) -> Vec<NodeView> {
        self.nodes()
            .into_iter()
            .filter(|n| {
                n.alive
                    && self
                        .record
                        .services
                        .get(&service_key(&n.fqdn, service))
                        .is_some_and(|s| s.intent == Intent::Active)
            })
            .collect()
    }

    async fn terminate(&mut self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.live_node(fqdn, "terminate the node")?.clone();
        // Abrupt, like an instance terminated under its servers: everything is SIGKILLed.
        let ns = node.ns.clone();
        tokio::task::spawn_blocking(move || netns::destroy_namespace(&ns))
            .await
            .map_err(|e| ClusterError::Node {
                action: "terminate the node".into(),
                node: fqdn.to_string(),
                detail: e.to_string(),
            })?;
        for service in &node.services {
            let key = service_key(fqdn, *service);
            if let Some(mut child) = self.children.remove(&key) {
                let _ = child.wait().await;
            }
            if let Some(rec) = self.record.services.get_mut(&key) {
                rec.intent = Intent::Stopped;
                rec.process = None;
                rec.since = crate::base::time::now_rfc3339();
            }
        }
        if let Some(n) = self.record.nodes.get_mut(fqdn) {
            n.alive = false;
        }
        // The harness reaches nodes through its own link: forget the dead MAC there too, or
        // probes of a replacement would go to it until the kernel gives up on the entry.
        netns::flush_host_neighbour(&self.record.id, node.address);
        self.save()
    }

    async fn replace(&mut self, fqdn: &str) -> Result<NodeView, ClusterError> {
        let old = self.node_record(fqdn)?.clone();
        if old.alive {
            return Err(ClusterError::Node {
                action: "replace the node".into(),
                node: fqdn.to_string(),
                detail: "it is still alive; terminate it first".into(),
            });
        }
        // The old instance's files go aside (its logs stay readable); the new one starts empty.
        let dir = self.dir.node_dir(&old.short);
        if dir.exists() {
            let aside = self
                .dir
                .path
                .join("nodes")
                .join(format!("{}.gen{}", old.short, old.generation));
            let _ = std::fs::rename(&dir, aside);
        }
        let mut mac = self.rng.mac();
        while mac == old.mac {
            mac = self.rng.mac();
        }
        if let Some(n) = self.record.nodes.get_mut(fqdn) {
            n.generation += 1;
            n.mac = mac;
            n.alive = true;
        }
        self.etcd_join.remove(fqdn);
        if old.services.contains(&ServiceKind::Etcd) {
            self.etcd_without_data.insert(fqdn.to_string());
        }
        self.save()?;
        self.create_host(fqdn)?;
        let node = self.node_record(fqdn)?;
        netns::flush_host_neighbour(&self.record.id, node.address);
        Ok(self.view(fqdn, node))
    }

    async fn start_service(
        &mut self,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<(), ClusterError> {
        let node = self.live_node(fqdn, &format!("start {service}"))?.clone();
        let fail = |detail: String| ClusterError::Service {
            action: "start".into(),
            service,
            node: fqdn.to_string(),
            detail,
        };
        if !node.services.contains(&service) {
            return Err(fail(format!(
                "the topology does not run {service} on role {}",
                node.role
            )));
        }
        let key = service_key(fqdn, service);
        if let Some(p) = self.record.services.get(&key).and_then(|s| s.process) {
            if p.is_alive() {
                return Ok(());
            }
        }
        let argv = self.service_command(fqdn, &node, service).map_err(fail)?;
        let log_path = self.log_path(&node, service);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| fail(format!("failed to open {}: {e}", log_path.display())))?;
        let _ = writeln!(
            log,
            "--- succession: starting {service} at {} ---",
            crate::base::time::now_rfc3339()
        );
        let err_log = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &node.ns])
            .args(&argv)
            .current_dir(self.service_dir(&node, service))
            // Labels the process with its run, so teardown and gc find it even outside any
            // namespace.
            .env(state::RUN_LABEL, &self.record.id)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            // Its own process group: a Ctrl-C at the terminal reaches the harness only, which
            // then tears everything down in order.
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("failed to spawn `{}`: {e}", argv.join(" "))))?;
        let pid = child
            .id()
            .ok_or_else(|| fail("the process exited at once".into()))?;
        let process = ProcessId::of(pid);
        self.children.insert(key.clone(), child);
        if service == ServiceKind::Zookeeper {
            if let Ok(a) = self.zookeeper_assignment(fqdn) {
                self.zookeeper_started.insert(fqdn.to_string(), a);
            }
        }
        self.record.services.insert(
            key,
            ServiceRecord {
                intent: Intent::Active,
                process,
                since: crate::base::time::now_rfc3339(),
            },
        );
        self.save()
    }

    async fn stop_service(
        &mut self,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError> {
        self.live_node(fqdn, &format!("stop {service}"))?;
        let key = service_key(fqdn, service);
        let grace = self.topology.settings.stop_timeout;
        let process = self.record.services.get(&key).and_then(|s| s.process);
        let escalated = match process {
            Some(p) => tokio::task::spawn_blocking(move || p.stop(grace))
                .await
                .map_err(|e| ClusterError::Service {
                    action: "stop".into(),
                    service,
                    node: fqdn.to_string(),
                    detail: e.to_string(),
                })?,
            None => false,
        };
        if let Some(mut child) = self.children.remove(&key) {
            let _ = child.wait().await;
        }
        if let Some(rec) = self.record.services.get_mut(&key) {
            rec.intent = Intent::Stopped;
            rec.process = None;
            rec.since = crate::base::time::now_rfc3339();
        }
        self.save()?;
        Ok(escalated)
    }

    fn set_etcd_join(&mut self, fqdn: &str, initial_cluster: String) {
        self.etcd_without_data.remove(fqdn);
        self.etcd_join
            .insert(fqdn.to_string(), etcd::Bootstrap::join(initial_cluster));
    }

    fn set_zookeeper_config(&mut self, fqdn: &str, assignment: zookeeper::Assignment) {
        self.zookeeper_next.insert(fqdn.to_string(), assignment);
    }

    fn zookeeper_started_with(&self, fqdn: &str) -> Option<zookeeper::Assignment> {
        self.zookeeper_started.get(fqdn).cloned()
    }

    fn service_log_since_start(&self, fqdn: &str, service: ServiceKind) -> Option<String> {
        let node = self.record.nodes.get(fqdn)?;
        let text = std::fs::read_to_string(self.log_path(node, service)).ok()?;
        let marker = format!("--- succession: starting {service} at ");
        Some(match text.rfind(&marker) {
            Some(i) => text[i..].to_string(),
            None => text,
        })
    }

    fn status(&mut self) -> Vec<ServiceStatus> {
        let keys: Vec<String> = self.children.keys().cloned().collect();
        let mut exited = BTreeMap::new();
        for key in keys {
            if let Some(status) = self.reap(&key) {
                exited.insert(key, status);
            }
        }
        status_rows(&self.record, &exited)
    }

    async fn exec(&self, fqdn: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        let node = self.live_node(fqdn, "run a command")?;
        let fail = |detail: String| ClusterError::Node {
            action: format!("run `{}`", argv.join(" ")),
            node: fqdn.to_string(),
            detail,
        };
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &node.ns])
            .args(argv)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(EXEC_TIMEOUT, child)
            .await
            .map_err(|_| fail(format!("no exit within {} s", EXEC_TIMEOUT.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(ExecOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    async fn neighbour(&self, observer: &str, target: &str) -> Result<Neighbour, ClusterError> {
        let ns = self
            .live_node(observer, "read its neighbour table")?
            .ns
            .clone();
        let address = self.node_record(target)?.address;
        let out = netns::neighbour_entry(&ns, address).map_err(|e| ClusterError::Node {
            action: "read its neighbour table".into(),
            node: observer.to_string(),
            detail: e.to_string(),
        })?;
        Ok(parse_ip_neigh(&out))
    }

    async fn purge_neighbour(&self, observer: &str, target: &str) -> Result<(), ClusterError> {
        let ns = self
            .live_node(observer, "purge a neighbour entry")?
            .ns
            .clone();
        let address = self.node_record(target)?.address;
        netns::purge_neighbour(&ns, address).map_err(|e| ClusterError::Node {
            action: format!("purge its neighbour entry for {target}"),
            node: observer.to_string(),
            detail: e.to_string(),
        })
    }

    fn teardown(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.record.kept {
            return;
        }
        for child in self.children.values_mut() {
            let _ = child.start_kill();
        }
        state::destroy_run(&self.dir, &self.record, false);
        for child in self.children.values_mut() {
            let _ = child.try_wait();
        }
        self.children.clear();
    }

    fn set_etcd_bootstrap(&mut self, fqdn: &str, bootstrap: etcd::Bootstrap) {
        self.etcd_without_data.remove(fqdn);
        self.etcd_join.insert(fqdn.to_string(), bootstrap);
    }

    fn data_dir(&self, fqdn: &str, service: ServiceKind) -> Result<PathBuf, ClusterError> {
        let node = self.node_record(fqdn)?;
        Ok(self.service_dir(node, service))
    }

    fn node_files(&self, fqdn: &str) -> Result<PathBuf, ClusterError> {
        let node = self.live_node(fqdn, "reach its files")?;
        Ok(self.dir.node_dir(&node.short))
    }

    async fn wipe_data(&mut self, fqdn: &str, service: ServiceKind) -> Result<bool, ClusterError> {
        let node = self
            .live_node(fqdn, &format!("wipe {service}'s data"))?
            .clone();
        let fail = |detail: String| ClusterError::Service {
            action: "wipe the data of".into(),
            service,
            node: fqdn.to_string(),
            detail,
        };
        let running = self
            .record
            .services
            .get(&service_key(fqdn, service))
            .and_then(|s| s.process)
            .is_some_and(|p| p.is_alive());
        if running {
            return Err(fail("it is running; stop it first".into()));
        }
        let dir = self.service_dir(&node, service);
        let held = std::fs::read_dir(&dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if service == ServiceKind::Etcd {
            // How it starts next must be decided anew (join after member add, a new cluster,
            // a restore): the old start flags would revive the old member with no data.
            self.etcd_join.remove(fqdn);
            self.etcd_without_data.insert(fqdn.to_string());
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(held),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(fail(format!("failed to remove {}: {e}", dir.display()))),
        }
    }

    fn outside_dir(&self) -> PathBuf {
        self.dir.path.join("outside")
    }

    fn cell_config(&self) -> Result<crate::recovery::CellConfig, ClusterError> {
        let record = self.dir.load()?;
        let mut nodes: Vec<(&String, &NodeRecord)> = record.nodes.iter().collect();
        nodes.sort_by_key(|(_, n)| n.ordinal);
        Ok(crate::recovery::CellConfig {
            cell: record.cell.clone(),
            nodes: nodes
                .into_iter()
                .map(|(fqdn, n)| crate::recovery::ConfigNode {
                    fqdn: fqdn.clone(),
                    short: n.short.clone(),
                    role: n.role.clone(),
                    address: n.address,
                    services: n.services.clone(),
                })
                .collect(),
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // The last line of defence on a panic: nothing a run created outlives it.
        self.teardown();
    }
}

/// The status table rows of a run record (also used by `succession status` on a kept run).
pub fn status_rows(
    record: &RunRecord,
    exited: &BTreeMap<String, std::process::ExitStatus>,
) -> Vec<ServiceStatus> {
    let mut nodes: Vec<(&String, &NodeRecord)> = record.nodes.iter().collect();
    nodes.sort_by_key(|(_, n)| n.ordinal);
    let mut rows = Vec::new();
    for (fqdn, node) in nodes {
        for service in &node.services {
            let key = service_key(fqdn, *service);
            let rec = record.services.get(&key);
            let (active, sub, pid) = match (node.alive, rec) {
                (false, _) => ("inactive", "dead", None),
                (true, None) => ("inactive", "dead", None),
                (true, Some(r)) => match (r.intent, r.process) {
                    (Intent::Stopped, _) | (_, None) => ("inactive", "dead", None),
                    (Intent::Active, Some(p)) => {
                        if exited.contains_key(&key) {
                            ("failed", "exited", None)
                        } else {
                            match p.state() {
                                ProcessState::Running => ("active", "running", Some(p.pid)),
                                ProcessState::Zombie | ProcessState::Gone => {
                                    ("failed", "exited", None)
                                }
                            }
                        }
                    }
                },
            };
            rows.push(ServiceStatus {
                node: fqdn.clone(),
                service: *service,
                active,
                sub,
                pid,
                since: rec.map(|r| r.since.clone()).unwrap_or_default(),
            });
        }
    }
    rows
}

/// A run left up by `up` or `run --keep`, reopened by `status`, `exec` and `down`.
pub struct KeptRun {
    /// Its directory.
    pub dir: RunDir,
    /// Its record.
    pub record: RunRecord,
}

impl KeptRun {
    /// The node record for a short or full name.
    pub fn node(&self, name: &str) -> Option<(&String, &NodeRecord)> {
        self.record
            .nodes
            .iter()
            .find(|(fqdn, n)| *fqdn == name || n.short == name)
    }

    /// Nodes of a role, in topology order.
    pub fn role(&self, role: &str) -> Vec<(&String, &NodeRecord)> {
        let mut nodes: Vec<_> = self
            .record
            .nodes
            .iter()
            .filter(|(_, n)| n.role == role)
            .collect();
        nodes.sort_by_key(|(_, n)| n.ordinal);
        nodes
    }

    /// Tears it down.
    pub fn destroy(self) {
        state::destroy_run(&self.dir, &self.record, false);
    }
}
