//! What a run created, written down before it is created, so that teardown and `gc` can remove
//! everything even after the harness was SIGKILLed.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::netns;
use super::process::{ProcessId, ProcessState};
use crate::service::ServiceKind;

/// The environment variable every service process carries: its run's id.
pub const RUN_LABEL: &str = "SUCCESSION_RUN";

/// Every live process carrying a run label, with the run id (found through /proc, whatever
/// namespace the process is in).
pub fn all_labelled_processes() -> Vec<(String, ProcessId)> {
    let prefix = format!("{RUN_LABEL}=");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let id = env
                .split(|b| *b == 0)
                .find_map(|var| var.strip_prefix(prefix.as_bytes()))
                .map(|id| String::from_utf8_lossy(id).into_owned())?;
            let process = ProcessId::of(pid)?;
            (process.state() == ProcessState::Running).then_some((id, process))
        })
        .collect()
}

/// Live processes labelled with a run's id.
pub fn labelled_processes(run_id: &str) -> Vec<ProcessId> {
    all_labelled_processes()
        .into_iter()
        .filter(|(id, _)| id == run_id)
        .map(|(_, p)| p)
        .collect()
}

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

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
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
    /// Its namespace.
    pub ns: String,
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
    /// The cell name.
    pub cell: String,
    /// The leased /24, once leased.
    pub subnet: Option<Ipv4Addr>,
    /// Whether the hub and host link were (being) created.
    pub hub: bool,
    /// Nodes by full name.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Services by `fqdn/service`.
    pub services: BTreeMap<String, ServiceRecord>,
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

fn runs_dir() -> PathBuf {
    state_root().join("runs")
}

fn leases_dir() -> PathBuf {
    state_root().join("leases")
}

/// Creates a new run directory with a fresh id and writes its first record.
pub fn create_run(purpose: &str, cell: &str) -> Result<(RunDir, RunRecord), StateError> {
    let runs = runs_dir();
    std::fs::create_dir_all(&runs).map_err(io("create", &runs))?;
    loop {
        let id = random_id();
        let path = runs.join(&id);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                let dir = RunDir { path };
                let record = RunRecord {
                    id,
                    owner: super::process::current(),
                    kept: false,
                    created: crate::base::time::now_rfc3339(),
                    purpose: purpose.to_string(),
                    cell: cell.to_string(),
                    subnet: None,
                    hub: false,
                    nodes: BTreeMap::new(),
                    services: BTreeMap::new(),
                };
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

/// The directory of a run by id.
pub fn run_dir(id: &str) -> RunDir {
    RunDir {
        path: runs_dir().join(id),
    }
}

/// Leases a /24 for a run: the fixed one, or the first free one of 10.213.0.0/16.
pub fn lease_subnet(run_id: &str, fixed: Option<Ipv4Addr>) -> Result<Ipv4Addr, StateError> {
    let dir = leases_dir();
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let routes = netns::ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default();
    let candidates: Vec<Ipv4Addr> = match fixed {
        Some(s) => vec![s],
        None => (0..=255u8).map(|n| Ipv4Addr::new(10, 213, n, 0)).collect(),
    };
    for subnet in candidates {
        if route_overlaps(&routes, subnet) {
            continue;
        }
        let lease = dir.join(subnet.to_string());
        match OpenOptions::new().write(true).create_new(true).open(&lease) {
            Ok(mut f) => {
                f.write_all(run_id.as_bytes())
                    .map_err(io("write", &lease))?;
                return Ok(subnet);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create", &lease)(e)),
        }
    }
    Err(match fixed {
        Some(s) => StateError::SubnetTaken(s),
        None => StateError::NoSubnet,
    })
}

/// Whether any host route covers addresses of `subnet`/24 (routes of other runs included).
fn route_overlaps(routes: &str, subnet: Ipv4Addr) -> bool {
    let ours = u32::from(subnet);
    routes.lines().any(|line| {
        let Some(dest) = line.split_whitespace().next() else {
            return false;
        };
        let (addr, len) = match dest.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().unwrap_or(32)),
            None => (dest, 32),
        };
        let Ok(addr) = addr.parse::<Ipv4Addr>() else {
            return false;
        };
        if len == 0 {
            return false;
        }
        let shorter = len.min(24);
        let mask = u32::MAX << (32 - shorter);
        (u32::from(addr) & mask) == (ours & mask)
    })
}

/// Releases a run's subnet lease.
pub fn release_subnet(run_id: &str, subnet: Ipv4Addr) {
    let lease = leases_dir().join(subnet.to_string());
    if std::fs::read_to_string(&lease)
        .map(|s| s == run_id)
        .unwrap_or(false)
    {
        let _ = std::fs::remove_file(lease);
    }
}

/// Leases whose run no longer has a directory (left by a harness killed mid-teardown).
pub fn orphan_leases() -> Vec<(PathBuf, String)> {
    std::fs::read_dir(leases_dir())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let owner = std::fs::read_to_string(e.path()).ok()?;
                    (!run_dir(&owner).path.exists()).then(|| (e.path(), owner))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Removes everything a run created: processes, namespaces, the host link, its lease and its
/// directory. Idempotent, synchronous, usable from Drop, teardown and gc alike.
pub fn destroy_run(dir: &RunDir, record: &RunRecord, keep_files: bool) {
    for svc in record.services.values() {
        if let Some(p) = svc.process {
            if p.state() != ProcessState::Gone {
                p.kill();
            }
        }
    }
    for node in record.nodes.values() {
        netns::destroy_namespace(&node.ns);
    }
    // Anything of the run still alive outside its namespaces (a namespace can be deleted while
    // a process still holds it).
    for p in labelled_processes(&record.id) {
        p.kill();
    }
    // Namespaces created but not yet recorded under a node (killed mid-provisioning).
    for ns in netns::list_namespaces() {
        if netns::run_id_of(&ns) == Some(record.id.as_str()) {
            netns::destroy_namespace(&ns);
        }
    }
    netns::delete_host_link(&netns::host_link_name(&record.id));
    if let Some(subnet) = record.subnet {
        release_subnet(&record.id, subnet);
    }
    if !keep_files {
        let _ = std::fs::remove_dir_all(&dir.path);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_that_cover_a_subnet_are_seen() {
        let routes = "default via 192.0.2.1 dev eth0\n10.213.4.0/24 dev succ123456 proto kernel\n10.0.0.0/8 via 1.2.3.4\n";
        assert!(route_overlaps(routes, Ipv4Addr::new(10, 213, 4, 0)));
        // 10.0.0.0/8 covers every 10.x subnet.
        assert!(route_overlaps(routes, Ipv4Addr::new(10, 213, 5, 0)));
        let routes = "default via 192.0.2.1 dev eth0\n172.17.0.0/16 dev docker0\n";
        assert!(!route_overlaps(routes, Ipv4Addr::new(10, 213, 5, 0)));
    }
}
