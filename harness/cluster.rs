//! A run's cluster: its hosts (whichever provider made them) and the services supervised on
//! them. Everything the runner, the probes and the command line do to a run goes through here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tracing::Instrument;

use crate::backups::CellConfig;
use crate::probe::neighbour::Neighbour;
use crate::provider::{
    ClusterError, ExecOutput, Hosts, Intent, NodeView, ProcessId, ProcessState, Signal,
};
use crate::service::{etcd, zookeeper, ServiceKind};
use crate::spec::Topology;
use crate::supervisor::{ServiceStatus, Supervisor};

/// Hosts and the services on them.
pub struct Cluster<H: Hosts> {
    hosts: H,
    supervisor: Supervisor,
}

impl<H: Hosts> Cluster<H> {
    /// A cluster over hosts whose services are not started yet (or were started by an earlier
    /// process, for a kept run).
    pub fn new(hosts: H) -> Self {
        Self {
            hosts,
            supervisor: Supervisor::default(),
        }
    }

    /// Starts every service of the topology: every server of a kind before any is waited on,
    /// since etcd bootstraps only once a majority of its initial cluster is up.
    pub async fn start_all(&mut self) -> Result<(), ClusterError> {
        let nodes = self.hosts.topology().nodes();
        for kind in ServiceKind::ALL {
            for spec in nodes.iter().filter(|n| n.services.contains(kind)) {
                self.start_service(&spec.fqdn, *kind).await?;
            }
        }
        Ok(())
    }

    /// The hosts.
    pub fn hosts(&self) -> &H {
        &self.hosts
    }

    /// The provider's name for reports (`local`).
    pub fn provider(&self) -> &'static str {
        self.hosts.provider()
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.hosts.record().id
    }

    /// The topology it was made from.
    pub fn topology(&self) -> &Topology {
        self.hosts.topology()
    }

    /// Every node, in topology order.
    pub fn nodes(&self) -> Vec<NodeView> {
        let record = self.hosts.record();
        self.topology()
            .nodes()
            .iter()
            .filter_map(|spec| record.nodes.get(&spec.fqdn).map(|n| n.view(&spec.fqdn)))
            .collect()
    }

    /// One node, by full name.
    pub fn node(&self, fqdn: &str) -> Option<NodeView> {
        self.hosts.record().nodes.get(fqdn).map(|n| n.view(fqdn))
    }

    /// Nodes where a service is meant to be running (node alive, service started).
    pub fn members(&self, service: ServiceKind) -> Vec<NodeView> {
        let services = &self.hosts.record().services;
        self.nodes()
            .into_iter()
            .filter(|n| {
                n.alive
                    && services
                        .get(&crate::provider::service_key(&n.fqdn, service))
                        .is_some_and(|s| s.intent == Intent::Active)
            })
            .collect()
    }

    /// The address the harness dials to reach `port` on a node.
    pub fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr {
        self.hosts.endpoint(node, port)
    }

    /// The URL of a node's etcd client endpoint, as the harness dials it.
    pub fn etcd_url(&self, node: &NodeView) -> String {
        crate::probe::etcd::client_url(self.endpoint(node, crate::base::ports::ETCD_CLIENT))
    }

    /// The address of a node's ZooKeeper client port, as the harness dials it.
    pub fn zookeeper_addr(&self, node: &NodeView) -> SocketAddr {
        self.endpoint(node, crate::base::ports::ZOOKEEPER_CLIENT)
    }

    /// Kills everything on a node and deletes it.
    pub async fn terminate(&mut self, node: &str) -> Result<(), ClusterError> {
        self.hosts.terminate(node).await?;
        self.supervisor.node_terminated(&mut self.hosts, node)
    }

    /// Creates a new node with the same name and address and a new MAC; starts nothing.
    pub async fn replace(&mut self, node: &str) -> Result<NodeView, ClusterError> {
        let view = self.hosts.replace(node).await?;
        self.supervisor.node_replaced(&self.hosts, node);
        Ok(view)
    }

    /// Starts a service (nothing happens when it runs already).
    pub async fn start_service(
        &mut self,
        node: &str,
        service: ServiceKind,
    ) -> Result<(), ClusterError> {
        let span = tracing::info_span!("service.start", node, service = service.name());
        self.supervisor
            .start(&mut self.hosts, node, service)
            .instrument(span)
            .await
    }

    /// Stops a service gracefully, with SIGKILL after the bound; true when SIGKILL was needed.
    pub async fn stop_service(
        &mut self,
        node: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError> {
        self.supervisor.stop(&mut self.hosts, node, service).await
    }

    /// Tells the cluster how etcd on a node must join (`--initial-cluster` after `member add`).
    pub fn set_etcd_join(&mut self, node: &str, initial_cluster: String) {
        self.supervisor
            .set_etcd_bootstrap(node, etcd::Bootstrap::join(initial_cluster));
    }

    /// Tells the cluster how etcd on a node starts next.
    pub fn set_etcd_bootstrap(&mut self, node: &str, bootstrap: etcd::Bootstrap) {
        self.supervisor.set_etcd_bootstrap(node, bootstrap);
    }

    /// Sets the id and static ensemble ZooKeeper on a node starts with from now on.
    pub fn set_zookeeper_config(&mut self, node: &str, assignment: zookeeper::Assignment) {
        self.supervisor.set_zookeeper_config(node, assignment);
    }

    /// The id and ensemble ZooKeeper on a node was last started with.
    pub fn zookeeper_started_with(&self, node: &str) -> Option<zookeeper::Assignment> {
        self.supervisor.zookeeper_started_with(node)
    }

    /// What a service logged since it last started.
    pub async fn service_log_since_start(
        &self,
        node: &str,
        service: ServiceKind,
    ) -> Option<String> {
        Supervisor::log_since_start(&self.hosts, node, service).await
    }

    /// Why a service the harness means to run does not serve, when its process has exited:
    /// the last lines it logged since it started (a server that failed to bind or to lock its
    /// data says so there). None while it runs.
    pub async fn exit_note(&self, node: &str, service: ServiceKind) -> Option<String> {
        if self.is_running(node, service).await {
            return None;
        }
        let log = self
            .service_log_since_start(node, service)
            .await
            .unwrap_or_default();
        let mut last: Vec<&str> = log
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(2)
            .collect();
        last.reverse();
        let said = if last.is_empty() {
            "nothing".to_string()
        } else {
            last.join(" | ")
        };
        Some(format!(
            "{service} on {} has exited; it last logged: {said}",
            crate::base::names::short(node)
        ))
    }

    /// The status table.
    pub async fn status(&self) -> Vec<ServiceStatus> {
        Supervisor::status(&self.hosts).await
    }

    /// Whether a service runs on a node now.
    pub async fn is_running(&self, node: &str, service: ServiceKind) -> bool {
        self.status()
            .await
            .iter()
            .any(|s| s.node == node && s.service == service && s.is_running())
    }

    /// The process a service was last started as on a node, while the harness means it to run.
    pub fn process_of(&self, node: &str, service: ServiceKind) -> Option<ProcessId> {
        self.hosts
            .record()
            .services
            .get(&crate::provider::service_key(node, service))
            .filter(|s| s.intent == Intent::Active)
            .and_then(|s| s.process)
    }

    /// Sends a signal to a service's process behind the supervisor's back (a fault: the
    /// supervisor still means it to run, as systemd would).
    pub async fn signal_service(
        &mut self,
        node: &str,
        service: ServiceKind,
        signal: Signal,
    ) -> Result<ProcessId, ClusterError> {
        let process = self
            .process_of(node, service)
            .ok_or_else(|| ClusterError::Service {
                action: format!("signal ({signal:?})"),
                service,
                node: node.to_string(),
                detail: "it is not running".to_string(),
            })?;
        self.hosts.signal(node, process, signal).await?;
        Ok(process)
    }

    /// Whether a process on a node still exists.
    pub async fn process_state(&self, node: &str, process: ProcessId) -> ProcessState {
        self.hosts.process_state(node, process).await
    }

    /// Runs a command on a node.
    pub async fn exec(&self, node: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        self.hosts.exec(node, argv).await
    }

    /// `observer`'s neighbour entry for `target`'s address.
    pub async fn neighbour(&self, observer: &str, target: &str) -> Result<Neighbour, ClusterError> {
        self.hosts.neighbour(observer, target).await
    }

    /// Deletes `observer`'s neighbour entry for `target` (`arp -d`).
    pub async fn purge_neighbour(&self, observer: &str, target: &str) -> Result<(), ClusterError> {
        self.hosts.purge_neighbour(observer, target).await
    }

    /// Whether a service's data sits on the faulty disk.
    pub fn faulty_disk(&self, service: ServiceKind) -> bool {
        crate::supervisor::disk::enabled(&self.hosts, service)
    }

    /// Where a service's faulty disk keeps its parts on a node.
    pub fn disk_paths(
        &self,
        node: &str,
        service: ServiceKind,
    ) -> Result<crate::supervisor::disk::DiskPaths, ClusterError> {
        crate::supervisor::disk::paths(&self.hosts, node, service)
    }

    /// Sets the latencies of a service's faulty disk on a node.
    pub async fn set_disk_latencies(
        &mut self,
        node: &str,
        service: ServiceKind,
        latencies: crate::node_tools::faultfs::Latencies,
    ) -> Result<(), ClusterError> {
        crate::supervisor::disk::set_latencies(&mut self.hosts, node, service, latencies).await
    }

    /// Cuts the power of a service's faulty disk on a node: what it did not sync is lost.
    pub async fn cut_disk_power(
        &mut self,
        node: &str,
        service: ServiceKind,
    ) -> Result<(), ClusterError> {
        crate::supervisor::disk::cut_power(&mut self.hosts, node, service).await
    }

    /// Mounts a service's faulty disk again (after a power cut) without starting the service.
    pub async fn mount_disk(
        &mut self,
        node: &str,
        service: ServiceKind,
    ) -> Result<(), ClusterError> {
        crate::supervisor::disk::ensure_mounted(&mut self.hosts, node, service).await
    }

    /// Where the node-side binary (stand-ins and fault tools) is, as a node runs it.
    pub fn node_binary(&self) -> PathBuf {
        self.hosts.standin_binary()
    }

    /// Makes sure a node has the node-side binary the fault tools run from.
    pub async fn prepare_tools(&self, node: &str) -> Result<(), ClusterError> {
        self.hosts.prepare_tools(node).await
    }

    /// Starts one of the node-side fault tools on a node, labelled with the run (teardown and
    /// gc remove it with the run).
    pub async fn spawn_tool(
        &mut self,
        node: &str,
        argv: Vec<String>,
        log: PathBuf,
    ) -> Result<ProcessId, ClusterError> {
        let workdir = self.hosts.data_root(node)?;
        self.hosts
            .spawn(
                node,
                &crate::provider::Spawn {
                    argv,
                    workdir,
                    log,
                    banner: format!(
                        "--- succession: starting a fault tool at {} ---",
                        crate::base::time::now_rfc3339()
                    ),
                },
            )
            .await
    }

    /// Sends a signal to a process the run started (a fault tool).
    pub async fn signal_process(
        &mut self,
        node: &str,
        process: ProcessId,
        signal: Signal,
    ) -> Result<(), ClusterError> {
        self.hosts.signal(node, process, signal).await
    }

    /// Reads a file on a node.
    pub async fn read_file(&self, node: &str, path: &Path) -> Result<Vec<u8>, ClusterError> {
        self.hosts.read_file(node, path).await
    }

    /// The directory a service keeps its data in on a node.
    pub fn data_dir(&self, node: &str, service: ServiceKind) -> Result<PathBuf, ClusterError> {
        Supervisor::data_dir(&self.hosts, node, service)
    }

    /// Whether a service's data directory on a node holds anything.
    pub async fn holds_data(&self, node: &str, service: ServiceKind) -> Result<bool, ClusterError> {
        Supervisor::holds_data(&self.hosts, node, service).await
    }

    /// Deletes a stopped service's data directory on a node; true when it held anything.
    pub async fn wipe_data(
        &mut self,
        node: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError> {
        self.supervisor.wipe(&mut self.hosts, node, service).await
    }

    /// A directory of the node's own file system, for files copied to it.
    pub fn files_dir(&self, node: &str) -> Result<PathBuf, ClusterError> {
        self.hosts.data_root(node)
    }

    /// Copies a file of the harness's host onto a node.
    pub async fn copy_to_node(
        &self,
        node: &str,
        from: &Path,
        to: &Path,
    ) -> Result<(), ClusterError> {
        let bytes = tokio::fs::read(from)
            .await
            .map_err(|e| ClusterError::node(format!("read {}", from.display()), node, e))?;
        self.hosts.write_file(node, to, &bytes).await
    }

    /// A directory on the harness's own host, outside every node (backups are kept there).
    pub fn outside_dir(&self) -> PathBuf {
        self.hosts.outside_dir()
    }

    /// The cell's configuration as the harness keeps it on disk (read from disk each time).
    pub fn cell_config(&self) -> Result<CellConfig, ClusterError> {
        Ok(CellConfig::of(&self.hosts.record_on_disk()?))
    }

    /// Leaves the run up after this process exits.
    pub fn keep(&mut self) -> Result<(), ClusterError> {
        self.hosts.keep()
    }

    /// Removes everything the run created (or leaves it running when kept).
    pub fn teardown(&mut self) {
        self.hosts.teardown();
    }

    /// The hosts, for what only they know (`LocalHosts::state_dir`).
    pub fn into_hosts(self) -> H {
        self.hosts
    }
}
