//! The hosts of one run: the narrow core a provider writes (reach a node, run a command there,
//! write a file, terminate, replace, remove the run) and everything derived from it, written
//! once as default methods. The defaults act on a node through shell commands (`node_shell`),
//! which is how a provider whose nodes are other machines (containers, EC2 instances) does it;
//! a provider with a better way (the local one signals its own children) overrides them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::node_shell::{self as shell, DATA_ROOT, STANDIN_INSIDE};
use super::record::{ProcessId, RunRecord, ServiceRecord, RUN_LABEL};
use super::run_state::RunState;
use super::{ClusterError, ExecOutput, NodeView, ProcessState, Signal, Spawn};
use crate::probe::neighbour::{parse_ip_neigh, Neighbour};
use crate::spec::Topology;

/// The hosts of one run. Every effect on a host goes through here; every implementation
/// records what it creates before creating it, and labels it with the run, so `teardown` and
/// `gc` find it.
// Implementations are used through generics, never `dyn`, so the futures' auto traits are
// known at each use.
#[allow(async_fn_in_trait)]
pub trait Hosts {
    // What each provider writes.

    /// The run's topology and record.
    fn run_state(&self) -> &RunState;
    /// The same, to change.
    fn run_state_mut(&mut self) -> &mut RunState;
    /// The address the harness dials to reach `port` on a node: the node's own, or a tunnel's
    /// local end.
    fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr;
    /// Kills everything on a node and deletes it, abruptly.
    async fn terminate(&mut self, node: &str) -> Result<(), ClusterError>;
    /// Creates a new node with the same name and address and a new MAC; starts nothing.
    async fn replace(&mut self, node: &str) -> Result<NodeView, ClusterError>;
    /// Runs a command on a node and waits for it (what a scenario's `exec` runs).
    async fn exec(&self, node: &str, argv: &[String]) -> Result<ExecOutput, ClusterError>;
    /// Writes a file on a node (its directory created if missing).
    async fn write_file(
        &self,
        node: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError>;
    /// How to run a command on a node from outside the harness (`ip netns exec NS`, `ssh …`),
    /// for inventories of the run.
    fn exec_prefix(&self, node: &str) -> Option<Vec<String>>;
    /// Removes everything the run created, now (`teardown` calls it once, unless kept).
    fn remove_run(&mut self);

    // Derived: the run's bookkeeping.

    /// The provider's name for reports (`local`).
    fn provider(&self) -> &'static str {
        self.run_state().provider
    }
    /// The topology the hosts were made from.
    fn topology(&self) -> &Topology {
        &self.run_state().topology
    }
    /// What the run created: its id, nodes and service records.
    fn record(&self) -> &RunRecord {
        &self.run_state().record
    }
    /// The run's record as written on the harness's disk (read anew each time).
    fn record_on_disk(&self) -> Result<RunRecord, ClusterError> {
        self.run_state().load()
    }
    /// Changes the service records and saves the run record.
    fn update_services(
        &mut self,
        change: &mut dyn FnMut(&mut std::collections::BTreeMap<String, ServiceRecord>),
    ) -> Result<(), ClusterError> {
        self.run_state_mut().update_services(change)
    }
    /// A directory on the harness's own host, outside every node (backups are kept there).
    fn outside_dir(&self) -> PathBuf {
        self.run_state().outside_dir()
    }
    /// The directory on a node under which its services keep their data and logs.
    fn data_root(&self, node: &str) -> Result<PathBuf, ClusterError> {
        self.run_state().node(node)?;
        Ok(PathBuf::from(DATA_ROOT))
    }
    /// Where the stand-in binary is, as a node runs it.
    fn standin_binary(&self) -> PathBuf {
        PathBuf::from(STANDIN_INSIDE)
    }
    /// The mount namespace a node's mounts are made in, as a path a command on the node opens
    /// (`nsenter --mount=…`): its first process's, on a node that is its own machine.
    fn mount_namespace(&self, node: &str) -> PathBuf {
        let _ = node;
        PathBuf::from("/proc/1/ns/mnt")
    }
    /// Makes sure a node has the node-side binary the fault tools run from (a provider that
    /// copies it only to the nodes that run stand-ins copies it now).
    async fn prepare_tools(&self, node: &str) -> Result<(), ClusterError> {
        self.run_state().node(node).map(|_| ())
    }
    /// Leaves the run up after this process exits (`up`, `run --keep`).
    fn keep(&mut self) -> Result<(), ClusterError> {
        self.run_state_mut().keep()
    }
    /// Removes everything the run created (or leaves it when kept); only the first call acts.
    fn teardown(&mut self) {
        if self.run_state_mut().take_removal() {
            self.remove_run();
        }
    }
    /// Removes a kept run and everything it runs (`down`).
    fn destroy(mut self)
    where
        Self: Sized,
    {
        self.run_state_mut().record.kept = false;
        self.teardown();
    }

    // Derived: effects on a node, as shell commands run there.

    /// Runs one of the harness's own short commands on a live node; a failure names `action`.
    /// Providers with a shorter limit for their own commands than for a scenario's override it.
    async fn run_on(
        &self,
        node: &str,
        action: &str,
        argv: &[String],
    ) -> Result<ExecOutput, ClusterError> {
        self.exec(node, argv).await.map_err(|e| match e {
            ClusterError::Node { detail, .. } => ClusterError::node(action, node, detail),
            other => other,
        })
    }
    /// Runs one of the harness's own commands that must exit 0.
    async fn run_ok(
        &self,
        node: &str,
        action: &str,
        argv: &[String],
    ) -> Result<ExecOutput, ClusterError> {
        let out = self.run_on(node, action, argv).await?;
        if out.code != Some(0) {
            return Err(ClusterError::node(
                action,
                node,
                format!("exit {:?}: {}", out.code, out.stderr.trim()),
            ));
        }
        Ok(out)
    }
    /// Starts a long-running process on a node, labelled with the run.
    async fn spawn(&mut self, node: &str, spawn: &Spawn) -> Result<ProcessId, ClusterError> {
        let action = format!("start `{}`", spawn.argv.join(" "));
        let mut argv = vec![
            "env".to_string(),
            format!("{RUN_LABEL}={}", self.record().id),
        ];
        argv.extend(shell::spawn(spawn));
        let out = self.run_on(node, &action, &argv).await?;
        shell::parse_spawned(&out.stdout).ok_or_else(|| {
            ClusterError::node(
                &action,
                node,
                format!(
                    "the process exited at once (see {}) {}",
                    spawn.log.display(),
                    out.stderr.trim()
                ),
            )
        })
    }
    /// Whether a process the run started still runs.
    async fn process_state(&self, node: &str, process: ProcessId) -> ProcessState {
        if !self.record().nodes.get(node).is_some_and(|n| n.alive) {
            return ProcessState::Exited;
        }
        match self
            .run_on(node, "read a process", &shell::stat(process.pid))
            .await
        {
            Ok(out) if shell::is_alive(process, &out.stdout) => ProcessState::Running,
            Ok(_) => ProcessState::Exited,
            // No answer: nothing is known to have stopped.
            Err(_) => ProcessState::Running,
        }
    }
    /// Sends a signal to a process the run started, if it still exists (or its pid was not
    /// reused); escalating stops are the supervisor's: it signals and polls `process_state`.
    async fn signal(
        &mut self,
        node: &str,
        process: ProcessId,
        signal: Signal,
    ) -> Result<(), ClusterError> {
        if self.process_state(node, process).await == ProcessState::Exited {
            return Ok(());
        }
        let argv = shell::kill(process.pid, signal.number());
        self.run_ok(node, "signal a process", &argv)
            .await
            .map(|_| ())
    }
    /// Reads a file on a node.
    async fn read_file(&self, node: &str, path: &Path) -> Result<Vec<u8>, ClusterError> {
        let action = format!("read {}", path.display());
        let out = self.run_ok(node, &action, &shell::cat(path)).await?;
        Ok(out.stdout.into_bytes())
    }
    /// Whether a directory on a node holds anything.
    async fn holds_files(&self, node: &str, path: &Path) -> Result<bool, ClusterError> {
        let action = format!("look into {}", path.display());
        let out = self
            .run_on(node, &action, &shell::holds_files(path))
            .await?;
        Ok(out.code == Some(0))
    }
    /// Removes a directory on a node (`rm -rf`); true when it held anything.
    async fn remove_dir(&self, node: &str, path: &Path) -> Result<bool, ClusterError> {
        let held = self.holds_files(node, path).await?;
        let action = format!("remove {}", path.display());
        self.run_ok(node, &action, &shell::remove_dir(path)).await?;
        Ok(held)
    }
    /// `observer`'s neighbour entry for `target`'s address.
    async fn neighbour(&self, observer: &str, target: &str) -> Result<Neighbour, ClusterError> {
        let address = self.run_state().node(target)?.address;
        let argv = shell::neighbour(address);
        let out = self
            .run_ok(observer, "read its neighbour table", &argv)
            .await?;
        Ok(parse_ip_neigh(&out.stdout))
    }
    /// Deletes `observer`'s neighbour entry for `target` (`arp -d`).
    async fn purge_neighbour(&self, observer: &str, target: &str) -> Result<(), ClusterError> {
        let address = self.run_state().node(target)?.address;
        let action = format!("purge its neighbour entry for {target}");
        self.run_ok(observer, &action, &shell::purge_neighbour(address))
            .await
            .map(|_| ())
    }
}
