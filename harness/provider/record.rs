//! What a run created, written down before it is created, so that teardown and `gc` can remove
//! everything even after the harness was SIGKILLed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::process::ProcessId;
use crate::service::ServiceKind;

/// The environment variable every service process carries: its run's id.
pub const RUN_LABEL: &str = "SUCCESSION_RUN";

/// Where runs keep their records, data directories and logs.
pub fn state_root() -> PathBuf {
    std::env::var_os("SUCCESSION_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/succession"))
}

/// Failed to record or read a run's state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory could not be written or read.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record could not be parsed.
    #[error("failed to parse run record {path}: {source}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// No free subnet was left.
    #[error("failed to lease a subnet: every /24 of 10.213.0.0/16 is held by a run or a host route (try `succession gc`)")]
    NoSubnet,
    /// The subnet a topology fixes is held already.
    #[error("failed to lease subnet {0}/24: another run or a host route holds it")]
    SubnetTaken(Ipv4Addr),
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// A node as a run created it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeRecord {
    /// Position in the topology (orders tables).
    pub ordinal: usize,
    /// `quorum-1`
    pub short: String,
    /// Its role.
    pub role: String,
    /// The provider's handle of the host: a namespace, a container, an instance.
    #[serde(alias = "ns")]
    pub host: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// Its current MAC.
    pub mac: String,
    /// 0 for the original node, +1 for each replacement.
    pub generation: u32,
    /// Whether the node exists (false once terminated).
    pub alive: bool,
    /// The services it runs, in start order.
    pub services: Vec<ServiceKind>,
}

/// Whether a service should be running.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// Started by the harness and expected up.
    Active,
    /// Stopped on purpose.
    Stopped,
}

/// A service process as a run started it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceRecord {
    /// What the harness wants.
    pub intent: Intent,
    /// The process, while one was started.
    pub process: Option<ProcessId>,
    /// Wall-clock time of the last start or stop.
    pub since: String,
}

/// Everything a run created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Six hex digits.
    pub id: String,
    /// The harness process that owns the run.
    pub owner: ProcessId,
    /// Left running on purpose (`up`, `run --keep`): `gc` leaves it to `down`.
    pub kept: bool,
    /// Wall-clock creation time.
    pub created: String,
    /// What created it (`run SCENARIO`, `up TOPOLOGY`).
    pub purpose: String,
    /// The provider that created it (`local`).
    #[serde(default = "local_provider")]
    pub provider: String,
    /// The cell name.
    pub cell: String,
    /// The topology file it was made from, and its text as it was then (kept runs are reopened
    /// from it).
    #[serde(default)]
    pub topology_file: PathBuf,
    /// The topology's text.
    #[serde(default)]
    pub topology: String,
    /// The leased /24, once leased.
    pub subnet: Option<Ipv4Addr>,
    /// Whether the hub and host link were (being) created.
    pub hub: bool,
    /// The image the nodes run (containers provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Nodes by full name.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Services by `fqdn/service`.
    pub services: BTreeMap<String, ServiceRecord>,
}

impl NodeRecord {
    /// The node as the run has it now.
    pub fn view(&self, fqdn: &str) -> super::NodeView {
        super::NodeView {
            fqdn: fqdn.to_string(),
            short: self.short.clone(),
            role: self.role.clone(),
            address: self.address,
            mac: self.mac.clone(),
            alive: self.alive,
            generation: self.generation,
            services: self.services.clone(),
        }
    }
}

fn local_provider() -> String {
    "local".to_string()
}

/// The key of a service in a run record.
pub fn service_key(fqdn: &str, service: ServiceKind) -> String {
    format!("{fqdn}/{service}")
}

/// Paths of one run's state directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// `STATE_ROOT/runs/ID`
    pub path: PathBuf,
}

impl RunRecord {
    /// The record of a run about to be made by this process: no nodes, no services yet.
    pub fn fresh(
        id: String,
        provider: &str,
        purpose: &str,
        topology: &crate::spec::Topology,
    ) -> RunRecord {
        RunRecord {
            id,
            owner: super::process::current(),
            kept: false,
            created: crate::base::time::now_rfc3339(),
            purpose: purpose.to_string(),
            provider: provider.to_string(),
            cell: topology.cell.clone(),
            topology_file: topology.file.clone(),
            topology: topology.text.clone(),
            subnet: None,
            hub: false,
            image: None,
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
        }
    }

    /// The topology the run was made from, parsed again from the text it recorded (kept runs
    /// are reopened from it, and `gc` finds where a run's hosts are).
    pub fn parsed_topology(&self) -> Result<crate::spec::Topology, super::ClusterError> {
        let source = crate::source::SourceFile::from_text(&self.topology_file, &self.topology);
        crate::spec::Topology::parse(&source).map_err(|e| {
            super::ClusterError::Environment(format!(
                "failed to read the topology run {} was made from: {e}",
                self.id
            ))
        })
    }
}

impl RunDir {
    /// The run's record file.
    pub fn record_path(&self) -> PathBuf {
        self.path.join("run.json")
    }

    /// A node's directory (data directories and logs live below it).
    pub fn node_dir(&self, short: &str) -> PathBuf {
        self.path.join("nodes").join(short)
    }

    /// Writes the record atomically.
    pub fn save(&self, record: &RunRecord) -> Result<(), StateError> {
        let tmp = self.path.join("run.json.tmp");
        let text = serde_json::to_vec_pretty(record).map_err(|e| StateError::Parse {
            path: tmp.clone(),
            source: e,
        })?;
        std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, self.record_path()).map_err(io("rename", &tmp))
    }

    /// Reads the record.
    pub fn load(&self) -> Result<RunRecord, StateError> {
        let path = self.record_path();
        let text = std::fs::read(&path).map_err(io("read", &path))?;
        serde_json::from_slice(&text).map_err(|e| StateError::Parse { path, source: e })
    }
}

/// Where every run's directory is.
pub fn runs_dir() -> PathBuf {
    state_root().join("runs")
}

/// Creates a new run directory with a fresh id and writes its first record.
pub fn create_run(
    provider: &str,
    purpose: &str,
    topology: &crate::spec::Topology,
) -> Result<(RunDir, RunRecord), StateError> {
    let runs = runs_dir();
    std::fs::create_dir_all(&runs).map_err(io("create", &runs))?;
    loop {
        let id = random_id();
        let path = runs.join(&id);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                let dir = RunDir { path };
                let record = RunRecord::fresh(id, provider, purpose, topology);
                dir.save(&record)?;
                return Ok((dir, record));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create", &path)(e)),
        }
    }
}

/// Every run directory on this host.
pub fn all_runs() -> Vec<RunDir> {
    let mut out: Vec<RunDir> = std::fs::read_dir(runs_dir())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| RunDir { path: e.path() })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Every run left up on purpose (`up`, `run --keep`), on any provider.
pub fn kept_runs() -> Vec<(RunDir, RunRecord)> {
    all_runs()
        .into_iter()
        .filter_map(|dir| dir.load().ok().map(|record| (dir, record)))
        .filter(|(_, r)| r.kept)
        .collect()
}

/// The runs of one provider that `gc` removes: those whose owner is gone, unless kept (and kept
/// ones too with `all`); says in `report` why each other one is left alone.
pub fn collectable(
    provider: &str,
    all: bool,
    report: &mut super::GcReport,
) -> Vec<(RunDir, RunRecord)> {
    let mut out = Vec::new();
    for dir in all_runs() {
        let Ok(record) = dir.load() else { continue };
        if record.provider != provider {
            continue;
        }
        let id = &record.id;
        if record.owner.is_alive() && record.owner.pid != std::process::id() && !record.kept {
            report
                .left
                .push(format!("run {id}: in use by pid {}", record.owner.pid));
            continue;
        }
        if record.kept && !all {
            report.left.push(format!(
                "run {id}: kept ({}); `succession down --run {id}` or `gc --all` removes it",
                record.purpose
            ));
            continue;
        }
        out.push((dir, record));
    }
    out
}

/// The directory of a run by id.
pub fn run_dir(id: &str) -> RunDir {
    RunDir {
        path: runs_dir().join(id),
    }
}

/// Six random hex digits.
fn random_id() -> String {
    let mut bytes = [0u8; 3];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        bytes = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
