//! Hosts in memory, for unit tests of what runs above the provider seam (the supervisor, the
//! cluster): files, processes and nodes are maps; nothing is created.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::record::RunDir;
use super::record::{NodeRecord, ProcessId, RunRecord, ServiceRecord};
use super::{ClusterError, ExecOutput, Hosts, NodeView, ProcessState, RunState, Signal, Spawn};
use crate::probe::neighbour::Neighbour;
use crate::spec::Topology;

/// One process the mock started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockProcess {
    /// Its node.
    pub node: String,
    /// How it was started.
    pub spawn: Spawn,
    /// Whether it still runs.
    pub running: bool,
    /// The signals sent to it, in order.
    pub signals: Vec<Signal>,
}

/// Hosts in memory.
pub struct MockHosts {
    /// Its topology and record; the record is never written (the run directory is a name).
    run: RunState,
    /// Files by node and path.
    pub files: Mutex<BTreeMap<(String, PathBuf), Vec<u8>>>,
    /// Every process started, by pid.
    pub processes: BTreeMap<u32, MockProcess>,
    /// Processes that ignore SIGTERM (stopping them needs SIGKILL), by a word of their command.
    pub hangs_on: Option<String>,
    next_pid: u32,
    /// Whether teardown ran.
    pub torn_down: bool,
}

impl MockHosts {
    /// Hosts for every node of a topology, at 10.0.0.10 onwards, all alive.
    pub fn new(topology: &Topology) -> Self {
        let nodes = topology
            .nodes()
            .into_iter()
            .map(|spec| {
                (
                    spec.fqdn.clone(),
                    NodeRecord {
                        ordinal: spec.ordinal,
                        short: spec.short.clone(),
                        role: spec.role.clone(),
                        host: format!("mock-{}", spec.short),
                        address: Ipv4Addr::new(10, 0, 0, spec.host),
                        mac: format!("02:00:00:00:00:{:02x}", spec.host),
                        generation: 0,
                        alive: true,
                        services: spec.services.clone(),
                    },
                )
            })
            .collect();
        let mut record = RunRecord::fresh("m0c0c0".into(), "mock", "test", topology);
        record.nodes = nodes;
        Self {
            run: RunState::new(
                "mock",
                topology.clone(),
                RunDir {
                    path: PathBuf::from("/mock-run"),
                },
                record,
            ),
            files: Mutex::new(BTreeMap::new()),
            processes: BTreeMap::new(),
            hangs_on: None,
            next_pid: 100,
            torn_down: false,
        }
    }

    /// The text of a file on a node.
    pub fn file(&self, node: &str, path: &Path) -> Option<String> {
        self.files
            .lock()
            .ok()?
            .get(&(node.to_string(), path.to_path_buf()))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The processes started on a node, oldest first.
    pub fn started_on(&self, node: &str) -> Vec<&MockProcess> {
        self.processes.values().filter(|p| p.node == node).collect()
    }

    /// Makes a process exit on its own (a crash).
    pub fn crash(&mut self, pid: u32) {
        if let Some(p) = self.processes.get_mut(&pid) {
            p.running = false;
        }
    }

    fn live(&self, node: &str) -> Result<&NodeRecord, ClusterError> {
        self.run.live_node(node, "act")
    }
}

impl Hosts for MockHosts {
    fn run_state(&self) -> &RunState {
        &self.run
    }

    fn run_state_mut(&mut self) -> &mut RunState {
        &mut self.run
    }

    // Nothing is written: the record on disk is the one in memory.
    fn record_on_disk(&self) -> Result<RunRecord, ClusterError> {
        Ok(self.run.record.clone())
    }

    fn update_services(
        &mut self,
        change: &mut dyn FnMut(&mut BTreeMap<String, ServiceRecord>),
    ) -> Result<(), ClusterError> {
        change(&mut self.run.record.services);
        Ok(())
    }

    fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr {
        SocketAddr::new(node.address.into(), port)
    }

    async fn terminate(&mut self, node: &str) -> Result<(), ClusterError> {
        self.live(node)?;
        for p in self.processes.values_mut().filter(|p| p.node == node) {
            p.running = false;
        }
        if let Some(n) = self.run.record.nodes.get_mut(node) {
            n.alive = false;
        }
        Ok(())
    }

    async fn replace(&mut self, node: &str) -> Result<NodeView, ClusterError> {
        let n = self
            .run
            .record
            .nodes
            .get_mut(node)
            .ok_or_else(|| ClusterError::node("find the node", node, "no such node"))?;
        n.alive = true;
        n.generation += 1;
        n.mac = format!(
            "02:00:00:00:{:02x}:{:02x}",
            n.generation,
            n.address.octets()[3]
        );
        let view = n.view(node);
        let root = PathBuf::from("/data").join(&view.short);
        if let Ok(mut files) = self.files.lock() {
            files.retain(|(n, p), _| n != node || !p.starts_with(&root));
        }
        Ok(view)
    }

    async fn exec(&self, node: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        self.live(node)?;
        Ok(ExecOutput {
            code: Some(0),
            stdout: argv.join(" "),
            stderr: String::new(),
        })
    }

    async fn spawn(&mut self, node: &str, spawn: &Spawn) -> Result<ProcessId, ClusterError> {
        self.live(node)?;
        self.next_pid += 1;
        let pid = self.next_pid;
        let mut files = self
            .files
            .lock()
            .map_err(|e| ClusterError::node("spawn", node, e))?;
        let log = files
            .entry((node.to_string(), spawn.log.clone()))
            .or_default();
        log.extend_from_slice(format!("{}\n", spawn.banner).as_bytes());
        drop(files);
        self.processes.insert(
            pid,
            MockProcess {
                node: node.to_string(),
                spawn: spawn.clone(),
                running: true,
                signals: Vec::new(),
            },
        );
        Ok(ProcessId {
            pid,
            start_time: u64::from(pid),
        })
    }

    async fn process_state(&self, _node: &str, process: ProcessId) -> ProcessState {
        match self.processes.get(&process.pid) {
            Some(p) if p.running => ProcessState::Running,
            _ => ProcessState::Exited,
        }
    }

    async fn signal(
        &mut self,
        _node: &str,
        process: ProcessId,
        signal: Signal,
    ) -> Result<(), ClusterError> {
        if let Some(p) = self.processes.get_mut(&process.pid) {
            let hangs = self
                .hangs_on
                .as_ref()
                .is_some_and(|w| p.spawn.argv.iter().any(|a| a.contains(w.as_str())));
            match signal {
                Signal::Terminate if hangs => {}
                Signal::Terminate | Signal::Kill => p.running = false,
                Signal::Pause | Signal::Resume | Signal::Hangup => {}
            }
            p.signals.push(signal);
        }
        Ok(())
    }

    async fn write_file(
        &self,
        node: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError> {
        self.live(node)?;
        self.files
            .lock()
            .map_err(|e| ClusterError::node("write", node, e))?
            .insert((node.to_string(), path.to_path_buf()), contents.to_vec());
        Ok(())
    }

    async fn read_file(&self, node: &str, path: &Path) -> Result<Vec<u8>, ClusterError> {
        self.files
            .lock()
            .map_err(|e| ClusterError::node("read", node, e))?
            .get(&(node.to_string(), path.to_path_buf()))
            .cloned()
            .ok_or_else(|| {
                ClusterError::node(format!("read {}", path.display()), node, "no such file")
            })
    }

    async fn holds_files(&self, node: &str, path: &Path) -> Result<bool, ClusterError> {
        Ok(self
            .files
            .lock()
            .map_err(|e| ClusterError::node("list", node, e))?
            .keys()
            .any(|(n, p)| n == node && p.starts_with(path) && p != path))
    }

    async fn remove_dir(&self, node: &str, path: &Path) -> Result<bool, ClusterError> {
        let mut files = self
            .files
            .lock()
            .map_err(|e| ClusterError::node("remove", node, e))?;
        let before = files.len();
        files.retain(|(n, p), _| n != node || !p.starts_with(path));
        Ok(files.len() < before)
    }

    fn data_root(&self, node: &str) -> Result<PathBuf, ClusterError> {
        let n = self
            .run
            .record
            .nodes
            .get(node)
            .ok_or_else(|| ClusterError::node("find the node", node, "no such node"))?;
        Ok(PathBuf::from("/data").join(&n.short))
    }

    fn standin_binary(&self) -> PathBuf {
        PathBuf::from("/opt/succession-standin")
    }

    async fn neighbour(&self, _observer: &str, _target: &str) -> Result<Neighbour, ClusterError> {
        Ok(Neighbour::Absent)
    }

    async fn purge_neighbour(&self, _observer: &str, _target: &str) -> Result<(), ClusterError> {
        Ok(())
    }

    fn outside_dir(&self) -> PathBuf {
        PathBuf::from("/outside")
    }

    fn exec_prefix(&self, node: &str) -> Option<Vec<String>> {
        Some(vec!["mock-exec".into(), node.into()])
    }

    fn keep(&mut self) -> Result<(), ClusterError> {
        self.run.record.kept = true;
        Ok(())
    }

    fn remove_run(&mut self) {
        self.torn_down = true;
        for p in self.processes.values_mut() {
            p.running = false;
        }
    }
}
