//! The local provider: each node is a network namespace on a per-run bridge, and what runs on it
//! runs as processes of this host inside that namespace. Terminating a node deletes its
//! namespace with everything in it; a replacement is a new namespace with the same name and
//! address and a new MAC.

mod cleanup;
mod gc;
mod mounts;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use super::netns;
use super::process::ProcessState as ProcState;
use super::record::{self, NodeRecord, ProcessId, RunDir, RunRecord, RUN_LABEL};
use super::{
    ClusterError, ExecOutput, GcReport, Hosts, NodeView, ProcessState, Provider, RunState, Signal,
    Spawn, StraySearch,
};
use crate::rng::SeededRng;
use crate::spec::capability::{self, Capability};
use crate::spec::topology::{host_address, SubnetChoice};
use crate::spec::Topology;

pub use cleanup::all_labelled_processes;

/// How long a command run with `exec` may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// A run's hosts as network namespaces on this host.
pub struct LocalHosts {
    run: RunState,
    /// Processes this harness started, by pid, with their node: their exit is reaped here.
    children: Mutex<BTreeMap<u32, (String, tokio::process::Child)>>,
    rng: SeededRng,
}

/// What the local provider needs of this host before it creates anything: root and iproute2.
pub fn check_environment() -> Result<(), ClusterError> {
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
    Ok(())
}

/// The local provider: every node a network namespace on this host, bridged on a hub.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Provider for Local {
    type Hosts = LocalHosts;

    fn name(&self) -> &'static str {
        "local"
    }

    fn provision(
        &self,
        topology: &Topology,
        purpose: &str,
        seed: u64,
        say: &dyn Fn(&str),
    ) -> Result<LocalHosts, ClusterError> {
        LocalHosts::provision(topology, purpose, seed, say)
    }

    fn reopen(&self, dir: RunDir, record: RunRecord) -> Result<LocalHosts, ClusterError> {
        LocalHosts::reopen(dir, record)
    }

    fn configured(_image: Option<String>) -> Self {
        Local
    }

    fn capabilities() -> &'static [Capability] {
        capability::EVERY
    }

    fn gc(&self, all: bool, _strays: &StraySearch) -> GcReport {
        gc::collect(all)
    }
}

impl LocalHosts {
    /// Creates every node of a topology (recording each before it is created); starts nothing.
    /// On error, whatever was created is removed before returning.
    pub fn provision(
        topology: &Topology,
        purpose: &str,
        seed: u64,
        say: &dyn Fn(&str),
    ) -> Result<Self, ClusterError> {
        check_environment()?;
        crate::service::requirements::check_this_host(topology)
            .map_err(ClusterError::Environment)?;
        let (dir, record) = record::create_run(Local.name(), purpose, topology)?;
        let mut hosts = Self {
            run: RunState::new(Local.name(), topology.clone(), dir, record),
            children: Mutex::new(BTreeMap::new()),
            rng: SeededRng::new(seed),
        };
        match hosts.build(say) {
            Ok(()) => Ok(hosts),
            Err(e) => {
                hosts.teardown();
                Err(e)
            }
        }
    }

    /// Reopens a run left up on purpose (`up`, `run --keep`): `status`, `exec`, `down`.
    pub fn reopen(dir: RunDir, record: RunRecord) -> Result<Self, ClusterError> {
        let topology = record.parsed_topology()?;
        Ok(Self {
            run: RunState::new(Local.name(), topology, dir, record),
            children: Mutex::new(BTreeMap::new()),
            rng: SeededRng::new(0),
        })
    }

    /// The run's state directory (logs live below it).
    pub fn state_dir(&self) -> &Path {
        &self.run.dir.path
    }

    fn build(&mut self, say: &dyn Fn(&str)) -> Result<(), ClusterError> {
        let fixed = match self.run.topology.subnet {
            SubnetChoice::Auto => None,
            SubnetChoice::Fixed(s) => Some(s),
        };
        let subnet = super::leases::lease_subnet(&self.run.record.id, fixed)?;
        self.run.record.subnet = Some(subnet);
        self.run.record.hub = true;
        self.run.save()?;
        let [a, b, c, _] = subnet.octets();
        netns::create_hub(&self.run.record.id, Ipv4Addr::new(a, b, c, 1)).map_err(|e| {
            ClusterError::node(
                "create the run's switch",
                &netns::hub_name(&self.run.record.id),
                e,
            )
        })?;
        let nodes = self.run.topology.nodes();
        say(&format!(
            "provisioning {} nodes of {} on {subnet}/24 (run {})",
            nodes.len(),
            self.run.topology.cell,
            self.run.record.id
        ));
        // Every node is recorded before any is created, so each hosts file names all of them.
        for spec in &nodes {
            let record = NodeRecord {
                ordinal: spec.ordinal,
                short: spec.short.clone(),
                role: spec.role.clone(),
                host: netns::node_ns_name(&self.run.record.id, &spec.short),
                address: host_address(subnet, spec.host),
                mac: self.rng.mac(),
                generation: 0,
                alive: true,
                services: spec.services.clone(),
            };
            self.run.record.nodes.insert(spec.fqdn.clone(), record);
        }
        self.run.save()?;
        let progress = crate::base::progress::Progress::bar(nodes.len() as u64, "nodes");
        for spec in &nodes {
            progress.message(format!("creating {}", spec.fqdn));
            self.create_host(&spec.fqdn)?;
            progress.advance();
        }
        Ok(())
    }

    /// Creates the namespace of a recorded node, with its hosts file and state directory.
    fn create_host(&self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.run.node(fqdn)?;
        let etc = netns::etc_netns_dir(&node.host);
        let write_hosts = || -> std::io::Result<()> {
            std::fs::create_dir_all(&etc)?;
            std::fs::write(etc.join("hosts"), self.hosts_file())
        };
        write_hosts().map_err(|e| {
            ClusterError::node(
                "write its hosts file",
                fqdn,
                format!("{}: {e}", etc.display()),
            )
        })?;
        let port = format!("n{}g{}", node.ordinal, node.generation);
        netns::create_node(
            &netns::hub_name(&self.run.record.id),
            &node.host,
            &port,
            node.address,
            &node.mac,
        )
        .map_err(|e| ClusterError::node("create the node", fqdn, e))?;
        std::fs::create_dir_all(self.run.dir.node_dir(&node.short))
            .map_err(|e| ClusterError::node("create its state directory", fqdn, e))?;
        Ok(())
    }

    /// /etc/hosts as every node sees it: each node by full and short name.
    fn hosts_file(&self) -> String {
        let mut out =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (fqdn, node) in &self.run.record.nodes {
            out.push_str(&format!("{}\t{fqdn} {}\n", node.address, node.short));
        }
        out
    }

    fn children(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<u32, (String, tokio::process::Child)>> {
        // A panic while the lock was held leaves the map as it was: still usable.
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Hosts for LocalHosts {
    fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr {
        // The harness reaches every node directly, through its link into the run's hub.
        SocketAddr::new(node.address.into(), port)
    }

    async fn terminate(&mut self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.run.live_node(fqdn, "terminate the node")?.clone();
        // Abrupt, like an instance terminated under its servers: everything is SIGKILLed, and
        // the node's link goes only once its servers are dead — every thread, so every socket
        // closed and its peers told (see `netns::kill_everything_in`).
        let ns = node.host.clone();
        let killing = ns.clone();
        tokio::task::spawn_blocking(move || netns::kill_everything_in(&killing))
            .await
            .map_err(|e| ClusterError::node("terminate the node", fqdn, e))?;
        let mut gone: Vec<tokio::process::Child> = Vec::new();
        {
            let mut children = self.children();
            let pids: Vec<u32> = children
                .iter()
                .filter(|(_, (n, _))| n == fqdn)
                .map(|(pid, _)| *pid)
                .collect();
            for pid in pids {
                if let Some((_, child)) = children.remove(&pid) {
                    gone.push(child);
                }
            }
        }
        // A child is reaped only once all its threads have exited (a process's namespace link
        // goes with its first thread): only then are its sockets closed.
        for mut child in gone {
            let _ = child.wait().await;
        }
        tokio::task::spawn_blocking(move || netns::destroy_namespace(&ns))
            .await
            .map_err(|e| ClusterError::node("terminate the node", fqdn, e))?;
        // Its faulty disks went with it: their daemons are dead, their mounts are detached.
        mounts::detach_under(&self.run.record.id, &self.run.dir.node_dir(&node.short));
        if let Some(n) = self.run.record.nodes.get_mut(fqdn) {
            n.alive = false;
        }
        // The harness reaches nodes through its own link: forget the dead MAC there too, or
        // probes of a replacement would go to it until the kernel gives up on the entry.
        netns::flush_host_neighbour(&netns::host_link_name(&self.run.record.id), node.address);
        self.run.save()
    }

    async fn replace(&mut self, fqdn: &str) -> Result<NodeView, ClusterError> {
        let old = self.run.node(fqdn)?.clone();
        if old.alive {
            return Err(ClusterError::node(
                "replace the node",
                fqdn,
                "it is still alive; terminate it first",
            ));
        }
        // The old instance's files go aside (its logs stay readable); the new one starts empty.
        let dir = self.run.dir.node_dir(&old.short);
        if dir.exists() {
            let aside = self
                .run
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
        if let Some(n) = self.run.record.nodes.get_mut(fqdn) {
            n.generation += 1;
            n.mac = mac;
            n.alive = true;
        }
        self.run.save()?;
        self.create_host(fqdn)?;
        let node = self.run.node(fqdn)?;
        netns::flush_host_neighbour(&netns::host_link_name(&self.run.record.id), node.address);
        Ok(node.view(fqdn))
    }

    #[tracing::instrument(name = "local.exec", skip_all, fields(node = fqdn, program = argv.first().map(String::as_str).unwrap_or("")))]
    async fn exec(&self, fqdn: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        let node = self.run.live_node(fqdn, "run a command")?;
        let action = format!("run `{}`", argv.join(" "));
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &node.host])
            .args(argv)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(EXEC_TIMEOUT, child)
            .await
            .map_err(|_| {
                ClusterError::node(
                    &action,
                    fqdn,
                    format!("no exit within {} s", EXEC_TIMEOUT.as_secs()),
                )
            })?
            .map_err(|e| ClusterError::node(&action, fqdn, e))?;
        Ok(ExecOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    async fn spawn(&mut self, fqdn: &str, spawn: &Spawn) -> Result<ProcessId, ClusterError> {
        let node = self.run.live_node(fqdn, "start a process")?.clone();
        let fail = |detail: String| {
            ClusterError::node(format!("start `{}`", spawn.argv.join(" ")), fqdn, detail)
        };
        std::fs::create_dir_all(&spawn.workdir)
            .map_err(|e| fail(format!("failed to create {}: {e}", spawn.workdir.display())))?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spawn.log)
            .map_err(|e| fail(format!("failed to open {}: {e}", spawn.log.display())))?;
        let _ = writeln!(log, "{}", spawn.banner);
        let err_log = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &node.host])
            .args(&spawn.argv)
            .current_dir(&spawn.workdir)
            // Labels the process with its run, so teardown and gc find it even outside any
            // namespace.
            .env(RUN_LABEL, &self.run.record.id)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            // Its own process group: a Ctrl-C at the terminal reaches the harness only, which
            // then tears everything down in order.
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("failed to spawn: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| fail("the process exited at once".into()))?;
        let process =
            ProcessId::of(pid).ok_or_else(|| fail("the process exited at once".into()))?;
        self.children().insert(pid, (fqdn.to_string(), child));
        Ok(process)
    }

    async fn process_state(&self, _node: &str, process: ProcessId) -> ProcessState {
        {
            let mut children = self.children();
            if let Some((_, child)) = children.get_mut(&process.pid) {
                if let Ok(Some(_)) = child.try_wait() {
                    children.remove(&process.pid);
                    return ProcessState::Exited;
                }
            }
        }
        match process.state() {
            ProcState::Running => ProcessState::Running,
            ProcState::Zombie | ProcState::Gone => ProcessState::Exited,
        }
    }

    async fn signal(
        &mut self,
        _node: &str,
        process: ProcessId,
        signal: Signal,
    ) -> Result<(), ClusterError> {
        // A process that already exited (or whose pid was reused) is left alone.
        process.signal(signal.number());
        Ok(())
    }

    async fn write_file(
        &self,
        fqdn: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError> {
        self.run.live_node(fqdn, "write a file")?;
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, contents)
        };
        write().map_err(|e| ClusterError::node(format!("write {}", path.display()), fqdn, e))
    }

    async fn read_file(&self, fqdn: &str, path: &Path) -> Result<Vec<u8>, ClusterError> {
        std::fs::read(path)
            .map_err(|e| ClusterError::node(format!("read {}", path.display()), fqdn, e))
    }

    async fn holds_files(&self, _fqdn: &str, path: &Path) -> Result<bool, ClusterError> {
        Ok(std::fs::read_dir(path)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false))
    }

    async fn remove_dir(&self, fqdn: &str, path: &Path) -> Result<bool, ClusterError> {
        let held = self.holds_files(fqdn, path).await?;
        match std::fs::remove_dir_all(path) {
            Ok(()) => Ok(held),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ClusterError::node(
                format!("remove {}", path.display()),
                fqdn,
                e,
            )),
        }
    }

    fn data_root(&self, fqdn: &str) -> Result<PathBuf, ClusterError> {
        Ok(self.run.dir.node_dir(&self.run.node(fqdn)?.short))
    }

    fn standin_binary(&self) -> PathBuf {
        crate::service::standins::binary()
    }

    fn mount_namespace(&self, _node: &str) -> PathBuf {
        // Nodes share the harness's file system; every command on a node runs under `ip netns
        // exec`, which gives it a private mount namespace, so mounts are made in the
        // harness's own (where teardown and gc find them).
        PathBuf::from(format!("/proc/{}/ns/mnt", std::process::id()))
    }

    fn exec_prefix(&self, fqdn: &str) -> Option<Vec<String>> {
        let node = self.run.record.nodes.get(fqdn)?;
        Some(vec![
            "ip".to_string(),
            "netns".to_string(),
            "exec".to_string(),
            node.host.clone(),
        ])
    }

    fn run_state(&self) -> &RunState {
        &self.run
    }

    fn run_state_mut(&mut self) -> &mut RunState {
        &mut self.run
    }

    fn remove_run(&mut self) {
        let mut children = self.children();
        for (_, child) in children.values_mut() {
            let _ = child.start_kill();
        }
        cleanup::destroy_run(&self.run.dir, &self.run.record, false);
        for (_, child) in children.values_mut() {
            let _ = child.try_wait();
        }
        children.clear();
    }
}

impl Drop for LocalHosts {
    fn drop(&mut self) {
        // The last line of defence on a panic: nothing a run created outlives it.
        self.teardown();
    }
}
