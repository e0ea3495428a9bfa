//! The containers provider: each node is a Docker container on a per-run bridge network, with
//! its fixed address, its full name as hostname and every node in its /etc/hosts; the real
//! servers run inside it as processes the harness starts, from the node image
//! (`succession image build`), and the stand-ins are the harness's own build, mounted read-only.
//! Terminating a node kills and removes its container; a replacement is a new container with
//! the same name and address and a new MAC, which announces itself with a gratuitous ARP.

mod creation;
pub mod engine;
mod gc;
pub mod image;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tracing::Instrument;

use self::creation::Creations;
use self::engine::{block_on, ContainerSpec, Engine, EngineError, NODE_LABEL, RUN_LABEL};
use super::agent::{AgentLinks, Opening};
use super::background::Background;
use super::leases::{lease_subnet, release_subnet};
use super::netns;
use super::node_shell::{self as commands, DATA_ROOT, STANDIN_INSIDE};
use super::record::{self, NodeRecord, RunDir, RunRecord};
use super::{ClusterError, ExecOutput, GcReport, Hosts, NodeView, Provider, RunState, StraySearch};
use crate::rng::SeededRng;
use crate::spec::capability::{self, Capability};
use crate::spec::topology::{host_address, SubnetChoice};
use crate::spec::Topology;

/// How long a command run with `exec` may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
/// How many containers are created at once.
const CREATE_AT_ONCE: usize = 4;
/// How long the harness's own short commands on a node (a file, a signal) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// The containers provider, with the image its nodes run.
#[derive(Debug, Clone)]
pub struct Containers {
    /// The image reference; the recipe's own tag when not given.
    pub image: String,
}

impl Default for Containers {
    fn default() -> Self {
        Self {
            image: image::default_image(),
        }
    }
}

/// A container's name: `succ-<run id>-<node>`.
pub fn container_name(run_id: &str, short: &str) -> String {
    format!("succ-{run_id}-{short}")
}

/// The run's network.
fn network_name(run_id: &str) -> String {
    format!("succ-{run_id}")
}

/// The host side of the run's network (at most 15 characters).
fn bridge_name(run_id: &str) -> String {
    format!("scn{run_id}")
}

fn env_error(detail: impl std::fmt::Display) -> ClusterError {
    ClusterError::Environment(format!("failed to provision containers: {detail}"))
}

impl Provider for Containers {
    type Hosts = ContainerHosts;

    fn name(&self) -> &'static str {
        "containers"
    }

    fn provision(
        &self,
        topology: &Topology,
        purpose: &str,
        seed: u64,
        say: &dyn Fn(&str),
    ) -> Result<ContainerHosts, ClusterError> {
        let engine = block_on(Engine::connect())
            .and_then(|e| e)
            .map_err(env_error)?;
        match block_on(engine.has_image(&self.image)).and_then(|e| e) {
            Ok(true) => {}
            Ok(false) => {
                return Err(env_error(format!(
                    "image {} not found; `succession image build` makes it (or pass --image)",
                    self.image
                )))
            }
            Err(e) => return Err(env_error(e)),
        }
        crate::service::requirements::check_stand_ins(topology)
            .map_err(ClusterError::Environment)?;
        let (dir, mut record) = record::create_run(self.name(), purpose, topology)?;
        record.image = Some(self.image.clone());
        let background = Background::new("succession-nodes").map_err(env_error)?;
        let mut hosts = ContainerHosts {
            run: RunState::new("containers", topology.clone(), dir, record),
            engine,
            rng: SeededRng::new(seed),
            agents: AgentLinks::new(background.handle().ok_or_else(|| env_error("no runtime"))?),
            creations: Creations::default(),
            background,
        };
        match hosts.build(say) {
            Ok(()) => Ok(hosts),
            Err(e) => {
                hosts.teardown();
                Err(e)
            }
        }
    }

    fn reopen(&self, dir: RunDir, record: RunRecord) -> Result<ContainerHosts, ClusterError> {
        let topology = record.parsed_topology()?;
        let engine = block_on(Engine::connect())
            .and_then(|e| e)
            .map_err(|e| ClusterError::Environment(e.to_string()))?;
        let background = Background::new("succession-nodes")
            .map_err(|e| ClusterError::Environment(e.to_string()))?;
        let handle = background
            .handle()
            .ok_or_else(|| ClusterError::Environment("no runtime".into()))?;
        Ok(ContainerHosts {
            run: RunState::new("containers", topology, dir, record),
            engine,
            rng: SeededRng::new(0),
            agents: AgentLinks::new(handle),
            creations: Creations::default(),
            background,
        })
    }

    fn configured(image: Option<String>) -> Self {
        match image {
            Some(image) => Containers { image },
            None => Containers::default(),
        }
    }

    fn capabilities() -> &'static [Capability] {
        capability::EVERY
    }

    fn gc(&self, all: bool, _strays: &StraySearch) -> GcReport {
        gc::collect(all)
    }
}

/// A run's hosts as containers.
pub struct ContainerHosts {
    run: RunState,
    engine: Engine,
    rng: SeededRng,
    /// The node agents every command goes through: one engine exec per node, not per command.
    agents: AgentLinks,
    /// The containers still being created at provisioning, each awaited by its node's commands.
    creations: Creations,
    /// Where the agents' connections and the creations run; dropped last.
    background: Background,
}

impl ContainerHosts {
    fn build(&mut self, say: &dyn Fn(&str)) -> Result<(), ClusterError> {
        let subnet = self.create_network()?;
        let nodes = self.run.topology.nodes();
        say(&format!(
            "provisioning {} containers of {} on {subnet}/24 from image {} over Docker API {} (run {})",
            nodes.len(),
            self.run.topology.cell,
            self.image(),
            self.engine.api_version(),
            self.run.record.id
        ));
        // Every node is recorded before any is created, so each hosts file names all of them.
        for spec in &nodes {
            let record = NodeRecord {
                ordinal: spec.ordinal,
                short: spec.short.clone(),
                role: spec.role.clone(),
                host: container_name(&self.run.record.id, &spec.short),
                address: host_address(subnet, spec.host),
                mac: self.rng.mac(),
                generation: 0,
                alive: true,
                services: spec.services.clone(),
            };
            self.run.record.nodes.insert(spec.fqdn.clone(), record);
        }
        self.run.save()?;
        // In the order the services start, so the first servers start first (creation.rs).
        let mut order: Vec<String> = Vec::new();
        for kind in crate::service::ServiceKind::ALL {
            for spec in nodes.iter().filter(|n| n.services.contains(kind)) {
                if !order.contains(&spec.fqdn) {
                    order.push(spec.fqdn.clone());
                }
            }
        }
        for spec in &nodes {
            if !order.contains(&spec.fqdn) {
                order.push(spec.fqdn.clone());
            }
        }
        let mut jobs: Vec<(String, creation::Creation)> = Vec::new();
        for fqdn in &order {
            let job = self
                .creation(fqdn, false)?
                .instrument(tracing::info_span!(parent: None, "containers.create", node = %fqdn));
            jobs.push((
                fqdn.clone(),
                Box::pin(async move { job.await.map_err(|e| e.to_string()) }),
            ));
        }
        let runtime = self
            .background
            .handle()
            .ok_or_else(|| env_error("the background runtime is gone"))?;
        self.creations = Creations::start(&runtime, jobs, CREATE_AT_ONCE);
        let first = order.first().cloned().unwrap_or_default();
        let this = &*self;
        block_on(async {
            this.creations
                .ready(&first)
                .await
                .map_err(ClusterError::Environment)?;
            this.check_image_serves(&first).await
        })
        .map_err(env_error)??;
        say(&format!(
            "creating the containers {CREATE_AT_ONCE} at a time, in the order their services start; each node's services start once its own is up"
        ));
        Ok(())
    }

    /// Leases a subnet and creates the run's network on it; a subnet the engine already uses
    /// for a network of its own is given back and the next one tried.
    fn create_network(&mut self) -> Result<Ipv4Addr, ClusterError> {
        let fixed = match self.run.topology.subnet {
            SubnetChoice::Auto => None,
            SubnetChoice::Fixed(s) => Some(s),
        };
        let mut refused = Vec::new();
        loop {
            let subnet = lease_subnet(&self.run.record.id, fixed)?;
            self.run.record.subnet = Some(subnet);
            self.run.save()?;
            let labels = HashMap::from([(RUN_LABEL.to_string(), self.run.record.id.clone())]);
            let created = block_on(self.engine.create_network(
                &network_name(&self.run.record.id),
                &bridge_name(&self.run.record.id),
                subnet,
                labels,
            ))
            .and_then(|e| e);
            match created {
                Ok(()) => {
                    for other in refused {
                        release_subnet(&self.run.record.id, other);
                    }
                    return Ok(subnet);
                }
                // Held leases are kept until a free subnet is found, so the next lease differs.
                Err(e) if fixed.is_none() && e.to_string().contains("overlap") => {
                    refused.push(subnet)
                }
                Err(e) => {
                    for other in refused {
                        release_subnet(&self.run.record.id, other);
                    }
                    return Err(ClusterError::node(
                        "create the run's network",
                        &network_name(&self.run.record.id),
                        e,
                    ));
                }
            }
        }
    }

    fn image(&self) -> &str {
        self.run.record.image.as_deref().unwrap_or("")
    }

    /// Creating and starting a recorded node's container and giving it its MAC (a replacement
    /// also announces itself), as work that owns what it needs, to run now or in the
    /// background.
    fn creation(
        &self,
        fqdn: &str,
        announce: bool,
    ) -> Result<
        impl std::future::Future<Output = Result<(), ClusterError>> + Send + 'static,
        ClusterError,
    > {
        let node = self.run.node(fqdn)?.clone();
        let spec = ContainerSpec {
            name: node.host.clone(),
            image: self.image().to_string(),
            hostname: fqdn.to_string(),
            network: network_name(&self.run.record.id),
            address: node.address,
            mac: node.mac.clone(),
            labels: HashMap::from([
                (RUN_LABEL.to_string(), self.run.record.id.clone()),
                (NODE_LABEL.to_string(), fqdn.to_string()),
            ]),
            extra_hosts: self
                .run
                .record
                .nodes
                .iter()
                .flat_map(|(name, n)| {
                    [
                        format!("{name}:{}", n.address),
                        format!("{}:{}", n.short, n.address),
                    ]
                })
                .collect(),
            read_only_binds: vec![(
                crate::service::standins::binary().display().to_string(),
                STANDIN_INSIDE.to_string(),
            )],
            tmpfs: vec![DATA_ROOT.to_string()],
            fuse: !self.run.topology.settings.faulty_disk.is_empty(),
        };
        let engine = self.engine.clone();
        let bridge = bridge_name(&self.run.record.id);
        let fqdn = fqdn.to_string();
        Ok(async move {
            engine
                .run_container(&spec)
                .await
                .map_err(|e| ClusterError::node("create the node's container", &fqdn, e))?;
            let argv = commands::claim_address(&node.mac, node.address, announce);
            let out = engine
                .exec(&node.host, &argv, &[], CONTROL_TIMEOUT)
                .await
                .map_err(|e| ClusterError::node("set the node's MAC", &fqdn, e))?;
            if out.stdout.trim() != node.mac {
                return Err(ClusterError::node(
                    "set the node's MAC",
                    &fqdn,
                    format!(
                        "eth0 has {} instead of {} ({})",
                        out.stdout.trim(),
                        node.mac,
                        out.stderr.trim()
                    ),
                ));
            }
            // The harness reaches nodes over the run's bridge: forget a previous holder's MAC
            // there.
            netns::flush_host_neighbour(&bridge, node.address);
            Ok(())
        })
    }

    /// Runs a command on a live node through its agent, started on first use by one exec of
    /// `succession-standin agent` (the harness's own binary, mounted in every container).
    async fn through_agent(
        &self,
        fqdn: &str,
        action: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<ExecOutput, ClusterError> {
        let host = self.run.live_node(fqdn, action)?.host.clone();
        self.creations
            .ready(fqdn)
            .await
            .map_err(|e| ClusterError::node(action, fqdn, e))?;
        let open = || -> Opening {
            let host = host.clone();
            Box::pin(async move {
                // A client of the agents' own runtime: the engine's connections stay there.
                let engine = Engine::connect().await.map_err(|e| e.to_string())?;
                engine
                    .attach(&host, &commands::agent())
                    .await
                    .map_err(|e| e.to_string())
            })
        };
        self.agents
            .run(&host, open, argv, stdin, limit)
            .await
            .map_err(|e| ClusterError::node(action, fqdn, e))
    }

    /// Every binary the topology's services need is in the image (a user's own image may lack
    /// one): every node runs the same image, so one command on one node looks for all of them.
    async fn check_image_serves(&self, on: &str) -> Result<(), ClusterError> {
        let mut wanted: Vec<(String, crate::service::ServiceKind, String)> = Vec::new();
        for (fqdn, node) in &self.run.record.nodes {
            for kind in node.services.iter().filter(|k| !k.is_stand_in()) {
                if wanted.iter().any(|(_, k, _)| k == kind) {
                    continue;
                }
                for r in crate::service::requirements::of(*kind, Path::new(STANDIN_INSIDE)) {
                    wanted.push((r.path.display().to_string(), *kind, fqdn.clone()));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let host = self.run.node(on)?.host.clone();
        let files: Vec<String> = wanted.iter().map(|(f, _, _)| f.clone()).collect();
        let out = self
            .engine
            .exec(
                &host,
                &commands::missing_files(&files),
                &[],
                CONTROL_TIMEOUT,
            )
            .await
            .map_err(|e| ClusterError::node("inspect the node's image", on, e))?;
        if let Some(missing) = out.stdout.lines().next() {
            let (_, kind, fqdn) = wanted
                .iter()
                .find(|(f, _, _)| f == missing)
                .unwrap_or(&wanted[0]);
            return Err(ClusterError::Environment(format!(
                "failed to provision {kind} on {fqdn}: {missing} not found in image {} (`succession image build` makes one that has it)",
                self.image()
            )));
        }
        Ok(())
    }
}

/// Removes everything of a run: its containers (found by label, recorded or not), network,
/// volumes, lease and directory. Idempotent; what the engine refused is returned.
fn destroy_run(engine: &Engine, dir: &RunDir, record: &RunRecord) -> Vec<EngineError> {
    let id = record.id.clone();
    let failures = block_on(async {
        let mut failures = Vec::new();
        match engine.labelled_containers(RUN_LABEL, Some(&id)).await {
            Ok(found) => {
                let removals = found.iter().map(|(name, _)| engine.remove_container(name));
                failures.extend(
                    futures::future::join_all(removals)
                        .await
                        .into_iter()
                        .filter_map(Result::err),
                );
            }
            Err(e) => failures.push(e),
        }
        if let Err(e) = engine.remove_network(&network_name(&id)).await {
            failures.push(e);
        }
        match engine.labelled_volumes(RUN_LABEL, Some(&id)).await {
            Ok(found) => {
                for (name, _) in found {
                    if let Err(e) = engine.remove_volume(&name).await {
                        failures.push(e);
                    }
                }
            }
            Err(e) => failures.push(e),
        }
        failures
    })
    .unwrap_or_else(|e| vec![e]);
    if failures.is_empty() {
        if let Some(subnet) = record.subnet {
            release_subnet(&record.id, subnet);
        }
        let _ = std::fs::remove_dir_all(&dir.path);
    }
    // Otherwise the record stays, so `succession gc` can finish the job.
    failures
}

impl Hosts for ContainerHosts {
    fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr {
        // The host is on the run's bridge network: it reaches every container directly.
        SocketAddr::new(node.address.into(), port)
    }

    async fn terminate(&mut self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.run.live_node(fqdn, "terminate the node")?.clone();
        // One still being made is made first, so that removing it leaves nothing behind.
        let _ = self.creations.ready(fqdn).await;
        self.agents.forget(&node.host);
        // Abrupt, like an instance terminated under its servers: SIGKILL, then gone.
        self.engine
            .remove_container(&node.host)
            .await
            .map_err(|e| ClusterError::node("terminate the node", fqdn, e))?;
        if let Some(n) = self.run.record.nodes.get_mut(fqdn) {
            n.alive = false;
        }
        netns::flush_host_neighbour(&bridge_name(&self.run.record.id), node.address);
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
        self.agents.forget(&old.host);
        self.creation(fqdn, true)?.await?;
        Ok(self.run.node(fqdn)?.view(fqdn))
    }

    async fn exec(&self, fqdn: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        let action = format!("run `{}`", argv.join(" "));
        self.through_agent(fqdn, &action, argv, None, EXEC_TIMEOUT)
            .await
    }

    async fn write_file(
        &self,
        fqdn: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError> {
        let action = format!("write {}", path.display());
        let argv = commands::receive_file(path);
        let out = self
            .through_agent(fqdn, &action, &argv, Some(contents), CONTROL_TIMEOUT)
            .await?;
        if out.code != Some(0) {
            return Err(ClusterError::node(&action, fqdn, out.stderr.trim()));
        }
        Ok(())
    }

    fn exec_prefix(&self, fqdn: &str) -> Option<Vec<String>> {
        let node = self.run.record.nodes.get(fqdn)?;
        Some(vec![
            "docker".to_string(),
            "exec".to_string(),
            "-i".to_string(),
            node.host.clone(),
        ])
    }

    fn run_state(&self) -> &RunState {
        &self.run
    }

    fn run_state_mut(&mut self) -> &mut RunState {
        &mut self.run
    }

    // The harness's own commands get a shorter limit than a scenario's `exec`.
    async fn run_on(
        &self,
        fqdn: &str,
        action: &str,
        argv: &[String],
    ) -> Result<ExecOutput, ClusterError> {
        self.through_agent(fqdn, action, argv, None, CONTROL_TIMEOUT)
            .await
    }

    fn remove_run(&mut self) {
        // Nothing may be created after the removal has listed what there is.
        self.creations.finish();
        for e in destroy_run(&self.engine, &self.run.dir, &self.run.record) {
            eprintln!(
                "warning: run {}: {e}; `succession gc` will retry",
                self.run.record.id
            );
        }
    }
}

impl Drop for ContainerHosts {
    fn drop(&mut self) {
        // The last line of defence on a panic: nothing a run created outlives it.
        self.teardown();
    }
}
