//! Providers bring a topology up as real hosts and act on them. `local` (network namespaces)
//! is the embedded default.

pub mod local;
pub mod netns;
pub mod process;
pub mod state;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Serialize;

use crate::probe::neighbour::Neighbour;
use crate::recovery::CellConfig;
use crate::service::{etcd, zookeeper, ServiceKind};
use crate::spec::Topology;

/// Failed to act on the cluster; always names the node and, where there is one, the service.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The harness cannot run here (not root, missing binary, …); nothing was started.
    #[error("{0}")]
    Environment(String),
    /// Creating or changing hosts failed.
    #[error("failed to {action} on {node}: {detail}")]
    Node {
        /// What was being done.
        action: String,
        /// The node.
        node: String,
        /// Why it failed.
        detail: String,
    },
    /// Starting or stopping a service failed.
    #[error("failed to {action} {service} on {node}: {detail}")]
    Service {
        /// What was being done.
        action: String,
        /// The service.
        service: ServiceKind,
        /// The node.
        node: String,
        /// Why it failed.
        detail: String,
    },
    /// Recording the run's state failed.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// iproute2 failed.
    #[error(transparent)]
    Net(#[from] netns::NetError),
}

/// A node as the cluster has it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// Full name.
    pub fqdn: String,
    /// Short name.
    pub short: String,
    /// Role.
    pub role: String,
    /// Address.
    pub address: Ipv4Addr,
    /// Current MAC.
    pub mac: String,
    /// Whether it exists.
    pub alive: bool,
    /// Replacements so far.
    pub generation: u32,
    /// Its services.
    pub services: Vec<ServiceKind>,
}

/// One row of the status table (like systemd's `LoadState ActiveState SubState Id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// Node full name.
    pub node: String,
    /// The service.
    pub service: ServiceKind,
    /// `active`, `inactive` or `failed`.
    pub active: &'static str,
    /// `running`, `dead` or `exited`.
    pub sub: &'static str,
    /// The pid while running.
    pub pid: Option<u32>,
    /// When it last started or stopped.
    pub since: String,
}

impl ServiceStatus {
    /// Whether it is active and running.
    pub fn is_running(&self) -> bool {
        self.active == "active" && self.sub == "running"
    }
}

/// What a command run on a node printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOutput {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A provisioned topology: every effect on a host goes through here.
// Implementations are used through generics, never `dyn`, so the futures' auto traits are
// known at each use.
#[allow(async_fn_in_trait)]
pub trait Cluster {
    /// The provider's name for reports (`local`).
    fn provider(&self) -> &'static str;
    /// The run's id.
    fn run_id(&self) -> &str;
    /// The topology it was made from.
    fn topology(&self) -> &Topology;
    /// Every node, in topology order.
    fn nodes(&self) -> Vec<NodeView>;
    /// Nodes where a service is meant to be running (node alive, service started).
    fn members(&self, service: ServiceKind) -> Vec<NodeView>;
    /// Kills everything on a node and deletes it.
    async fn terminate(&mut self, fqdn: &str) -> Result<(), ClusterError>;
    /// Creates a new node with the same name and address and a new MAC; starts nothing.
    async fn replace(&mut self, fqdn: &str) -> Result<NodeView, ClusterError>;
    /// Starts a service.
    async fn start_service(&mut self, fqdn: &str, service: ServiceKind)
        -> Result<(), ClusterError>;
    /// Stops a service gracefully, with SIGKILL after the bound; true when SIGKILL was needed.
    async fn stop_service(
        &mut self,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError>;
    /// Tells the cluster how etcd on a node must join (`--initial-cluster` after `member add`).
    fn set_etcd_join(&mut self, fqdn: &str, initial_cluster: String);
    /// Sets the id and static ensemble ZooKeeper on a node starts with from now on (what an
    /// operator writes into `myid` and zoo.cfg); a running server reads them when restarted.
    fn set_zookeeper_config(&mut self, fqdn: &str, assignment: zookeeper::Assignment);
    /// The id and ensemble ZooKeeper on a node was last started with.
    fn zookeeper_started_with(&self, fqdn: &str) -> Option<zookeeper::Assignment>;
    /// What a service logged since it last started, when the provider keeps its log.
    fn service_log_since_start(&self, fqdn: &str, service: ServiceKind) -> Option<String>;
    /// The status table.
    fn status(&mut self) -> Vec<ServiceStatus>;
    /// Runs a command on a node.
    async fn exec(&self, fqdn: &str, argv: &[String]) -> Result<ExecOutput, ClusterError>;
    /// `observer`'s neighbour entry for `target`'s address.
    async fn neighbour(&self, observer: &str, target: &str) -> Result<Neighbour, ClusterError>;
    /// Deletes `observer`'s neighbour entry for `target` (`arp -d`).
    async fn purge_neighbour(&self, observer: &str, target: &str) -> Result<(), ClusterError>;
    /// Removes everything the run created (or leaves it running when kept).
    fn teardown(&mut self);
    /// Tells the cluster how etcd on a node starts next: a new cluster over chosen members
    /// under a new token, a forced new cluster, or a join (what `set_etcd_join` sets).
    fn set_etcd_bootstrap(&mut self, fqdn: &str, bootstrap: etcd::Bootstrap);
    /// The directory a service keeps its data in on a node.
    fn data_dir(&self, fqdn: &str, service: ServiceKind) -> Result<PathBuf, ClusterError>;
    /// A directory of the node's own file system, for files copied to it.
    fn node_files(&self, fqdn: &str) -> Result<PathBuf, ClusterError>;
    /// Deletes a stopped service's data directory on a node (`rm -rf`); true when it held
    /// anything. Refuses while the service runs there.
    async fn wipe_data(&mut self, fqdn: &str, service: ServiceKind) -> Result<bool, ClusterError>;
    /// A directory on the harness's own host, outside every node (backups are kept there).
    fn outside_dir(&self) -> PathBuf;
    /// The cell's configuration as the harness keeps it on disk (read from disk each time).
    fn cell_config(&self) -> Result<CellConfig, ClusterError>;
}
