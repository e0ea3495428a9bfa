//! Providers: what differs between the places a run's hosts live (network namespaces on this
//! host, Docker containers, EC2 instances), and nothing else. Each implements [`Hosts`]; the
//! service lifecycle above them is written once, in `supervisor`.

pub mod agent;
pub mod background;
pub mod blocking;
pub mod choice;
pub mod containers;
#[cfg(feature = "ec2")]
pub mod ec2;
mod hosts;
pub mod leases;
pub mod local;
#[cfg(test)]
pub mod mock;
pub mod netns;
pub mod node_shell;
pub mod process;
pub mod record;
pub mod run_state;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Serialize;

use crate::service::ServiceKind;
use crate::spec::capability::Capability;
use crate::spec::Topology;

pub use hosts::Hosts;
pub use record::{service_key, Intent, NodeRecord, ProcessId, RunDir, RunRecord, ServiceRecord};
pub use run_state::RunState;

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
    /// SIGHUP: re-read settings (the node-side fault tools' control files).
    Hangup,
}

impl Signal {
    /// The signal's number on Linux.
    pub fn number(self) -> i32 {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Pause => libc::SIGSTOP,
            Signal::Resume => libc::SIGCONT,
            Signal::Hangup => libc::SIGHUP,
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

/// Why `run --dry-run` did not pass.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// The provider cannot check a creation without making it.
    #[error("the {0} provider has no dry run (`--dry-run` asks the provider to check each launch without making it, as EC2 does)")]
    NotOffered(&'static str),
    /// The provider refused a creation, or could not be asked.
    #[error(transparent)]
    Refused(#[from] ClusterError),
}

/// Where `gc` looks for hosts of runs this machine has no record of, for a provider whose hosts
/// outlive this machine's records (EC2: instances in a region, through an endpoint, launched
/// long enough ago); providers whose hosts live here ignore it.
#[derive(Debug, Clone, Default)]
pub struct StraySearch {
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
    /// The provider as a command configures it: the node image where it takes one (none: its
    /// default).
    fn configured(image: Option<String>) -> Self
    where
        Self: Sized;
    /// What it can do to its hosts beyond running commands on them: a scenario whose steps
    /// need more is refused before anything is created.
    fn capabilities() -> &'static [Capability]
    where
        Self: Sized;
    /// `run --dry-run`: says what a run would create (each line through `say`), has the
    /// provider check every creation without making it, and returns the closing line; a
    /// provider that cannot check says so.
    fn dry_run(
        &self,
        topology: &Topology,
        say: &dyn Fn(&str),
    ) -> impl std::future::Future<Output = Result<String, DryRunError>> {
        let _ = (topology, say);
        let name = self.name();
        async move { Err(DryRunError::NotOffered(name)) }
    }
    /// Removes what this provider's runs left behind when the harness was killed (kept runs
    /// too with `all`; `strays` says where to look for what no record names, for a provider
    /// whose hosts outlive this machine's records).
    fn gc(&self, all: bool, strays: &StraySearch) -> GcReport;
}
