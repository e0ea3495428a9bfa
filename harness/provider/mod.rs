//! Providers: what differs between the places a run's hosts live (network namespaces on this
//! host, Docker containers, EC2 instances), and nothing else. Each implements [`Hosts`]; the
//! service lifecycle above them is written once, in `supervisor`.

pub mod blocking;
pub mod choice;
pub mod containers;
#[cfg(feature = "ec2")]
pub mod ec2;
pub mod leases;
pub mod local;
#[cfg(test)]
pub mod mock;
pub mod netns;
pub mod node_shell;
pub mod process;
pub mod record;
pub mod remote;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::probe::neighbour::Neighbour;
use crate::service::ServiceKind;
use crate::spec::Topology;

pub use record::{service_key, Intent, NodeRecord, ProcessId, RunDir, RunRecord, ServiceRecord};

/// Failed to act on a host or a service; always names the node and, where there is one, the
/// service.
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
    State(#[from] record::StateError),
}

impl ClusterError {
    /// Whether it is the environment's (exit 3) rather than the cluster's.
    pub fn is_environment(&self) -> bool {
        matches!(self, ClusterError::Environment(_) | ClusterError::State(_))
    }

    /// A failure to act on a node.
    pub fn node(action: impl Into<String>, node: &str, detail: impl std::fmt::Display) -> Self {
        ClusterError::Node {
            action: action.into(),
            node: node.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// A node as the run has it now.
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

/// A long-running process to start on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    /// The command line.
    pub argv: Vec<String>,
    /// Its working directory on the node (created if missing).
    pub workdir: PathBuf,
    /// The file on the node its output is appended to.
    pub log: PathBuf,
    /// A line written to the log before it starts (marks where this start's output begins).
    pub banner: String,
}

/// A signal the harness sends to a process the run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop gracefully.
    Terminate,
    /// SIGKILL.
    Kill,
    /// SIGSTOP: freeze it (it keeps its sockets, answers nothing).
    Pause,
    /// SIGCONT: let a paused process go on.
    Resume,
}

impl Signal {
    /// The signal's number on Linux.
    pub fn number(self) -> i32 {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Pause => libc::SIGSTOP,
            Signal::Resume => libc::SIGCONT,
        }
    }
}

/// Whether a process the run started still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Running (or sleeping).
    Running,
    /// It exited.
    Exited,
}

/// Where `gc` looks for EC2 instances of runs this machine has no record of.
#[derive(Debug, Clone, Default)]
pub struct Ec2Strays {
    /// The region (none: only recorded runs are collected).
    pub region: Option<String>,
    /// An emulator's endpoint.
    pub endpoint_url: Option<String>,
    /// Only instances launched at least this long ago.
    pub older_than: std::time::Duration,
}

/// What gc found and did, line by line.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Runs removed.
    pub removed: Vec<String>,
    /// Runs left alone (owner alive, or kept) and why.
    pub left: Vec<String>,
    /// Stray namespaces, links, leases or files removed.
    pub strays: Vec<String>,
}

/// A kind of host a run can be made of: what `run`, `up`, the commands on kept runs and `gc`
/// need of a provider beyond one run's hosts.
pub trait Provider {
    /// One run's hosts on this provider.
    type Hosts: Hosts;
    /// Its name in run records, reports and output (`local`).
    fn name(&self) -> &'static str;
    /// Creates every node of a topology, recording each before it is created; starts nothing.
    /// When this machine cannot host the topology (privileges, tools, the services' binaries)
    /// it says so with an environment error and creates nothing; on a later error, whatever
    /// was created is removed before returning.
    fn provision(
        &self,
        topology: &Topology,
        purpose: &str,
        seed: u64,
        say: &dyn Fn(&str),
    ) -> Result<Self::Hosts, ClusterError>;
    /// Reopens a run left up on purpose (`up`, `run --keep`) from its record.
    fn reopen(&self, dir: RunDir, record: RunRecord) -> Result<Self::Hosts, ClusterError>;
    /// Removes what this provider's runs left behind when the harness was killed (kept runs
    /// too with `all`).
    fn gc(&self, all: bool) -> GcReport;
}

/// The hosts of one run. Every effect on a host goes through here; every implementation
/// records what it creates before creating it, and labels it with the run, so `teardown` and
/// `gc` find it.
// Implementations are used through generics, never `dyn`, so the futures' auto traits are
// known at each use.
#[allow(async_fn_in_trait)]
pub trait Hosts {
    /// The provider's name for reports (`local`).
    fn provider(&self) -> &'static str;
    /// The topology the hosts were made from.
    fn topology(&self) -> &Topology;
    /// What the run created: its id, nodes and service records.
    fn record(&self) -> &RunRecord;
    /// The run's record as written on the harness's disk (read anew each time).
    fn record_on_disk(&self) -> Result<RunRecord, ClusterError>;
    /// Changes the service records and saves the run record.
    fn update_services(
        &mut self,
        change: &mut dyn FnMut(&mut std::collections::BTreeMap<String, ServiceRecord>),
    ) -> Result<(), ClusterError>;
    /// The address the harness dials to reach `port` on a node: the node's own, or a tunnel's
    /// local end.
    fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr;
    /// Kills everything on a node and deletes it, abruptly.
    async fn terminate(&mut self, node: &str) -> Result<(), ClusterError>;
    /// Creates a new node with the same name and address and a new MAC; starts nothing.
    async fn replace(&mut self, node: &str) -> Result<NodeView, ClusterError>;
    /// Runs a command on a node and waits for it.
    async fn exec(&self, node: &str, argv: &[String]) -> Result<ExecOutput, ClusterError>;
    /// Starts a long-running process on a node, labelled with the run.
    async fn spawn(&mut self, node: &str, spawn: &Spawn) -> Result<ProcessId, ClusterError>;
    /// Whether a process the run started still runs.
    async fn process_state(&self, node: &str, process: ProcessId) -> ProcessState;
    /// Sends a signal to a process the run started, if it still exists (escalating stops are
    /// the supervisor's: it signals and polls `process_state`).
    async fn signal(
        &mut self,
        node: &str,
        process: ProcessId,
        signal: Signal,
    ) -> Result<(), ClusterError>;
    /// Writes a file on a node (its directory created if missing).
    async fn write_file(
        &self,
        node: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError>;
    /// Reads a file on a node.
    async fn read_file(&self, node: &str, path: &Path) -> Result<Vec<u8>, ClusterError>;
    /// Whether a directory on a node holds anything.
    async fn holds_files(&self, node: &str, path: &Path) -> Result<bool, ClusterError>;
    /// Removes a directory on a node (`rm -rf`); true when it held anything.
    async fn remove_dir(&self, node: &str, path: &Path) -> Result<bool, ClusterError>;
    /// The directory on a node under which its services keep their data and logs.
    fn data_root(&self, node: &str) -> Result<PathBuf, ClusterError>;
    /// Where the stand-in binary is, as a node runs it.
    fn standin_binary(&self) -> PathBuf;
    /// `observer`'s neighbour entry for `target`'s address.
    async fn neighbour(&self, observer: &str, target: &str) -> Result<Neighbour, ClusterError>;
    /// Deletes `observer`'s neighbour entry for `target` (`arp -d`).
    async fn purge_neighbour(&self, observer: &str, target: &str) -> Result<(), ClusterError>;
    /// A directory on the harness's own host, outside every node (backups are kept there).
    fn outside_dir(&self) -> PathBuf;
    /// How to run a command on a node from outside the harness (`ip netns exec NS`, `ssh …`),
    /// for inventories of the run.
    fn exec_prefix(&self, node: &str) -> Option<Vec<String>>;
    /// Leaves the run up after this process exits (`up`, `run --keep`).
    fn keep(&mut self) -> Result<(), ClusterError>;
    /// Removes everything the run created (or leaves it when kept).
    fn teardown(&mut self);
    /// Removes a kept run and everything it runs (`down`).
    fn destroy(self)
    where
        Self: Sized;
}
