//! The containers provider: each node is a Docker container on a per-run bridge network, with
//! its fixed address, its full name as hostname and every node in its /etc/hosts; the real
//! servers run inside it as processes the harness starts, from the node image
//! (`succession image build`), and the stand-ins are the harness's own build, mounted read-only.
//! Terminating a node kills and removes its container; a replacement is a new container with
//! the same name and address and a new MAC, which announces itself with a gratuitous ARP.

pub mod engine;
mod gc;
pub mod image;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use self::engine::{block_on, ContainerSpec, Engine, EngineError, NODE_LABEL, RUN_LABEL};
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
        let mut hosts = ContainerHosts {
            run: RunState::new("containers", topology.clone(), dir, record),
            engine,
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

    fn reopen(&self, dir: RunDir, record: RunRecord) -> Result<ContainerHosts, ClusterError> {
        let topology = record.parsed_topology()?;
        let engine = block_on(Engine::connect())
            .and_then(|e| e)
            .map_err(|e| ClusterError::Environment(e.to_string()))?;
        Ok(ContainerHosts {
            run: RunState::new("containers", topology, dir, record),
            engine,
            rng: SeededRng::new(0),
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
        let t0 = std::time::Instant::now();
        let this = &*self;
        let progress = crate::base::progress::Progress::bar(nodes.len() as u64, "containers");
        let progress = &progress;
        block_on(async {
            for spec in &nodes {
                progress.message(format!("creating {}", spec.fqdn));
                this.create_container(&spec.fqdn, false).await?;
                progress.advance();
            }
            for spec in &nodes {
                this.check_image_serves(&spec.fqdn).await?;
            }
            Ok::<_, ClusterError>(())
        })
        .map_err(env_error)??;
        say(&format!(
            "{} containers up in {:.1} s",
            nodes.len(),
            t0.elapsed().as_secs_f64()
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

    /// A name no other upload of this process uses.
    fn engine_nonce(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{}-{n}", self.run.record.id, std::process::id())
    }

    fn image(&self) -> &str {
        self.run.record.image.as_deref().unwrap_or("")
    }

    /// Creates and starts a recorded node's container and gives it its MAC; a replacement
    /// also announces itself.
    async fn create_container(&self, fqdn: &str, announce: bool) -> Result<(), ClusterError> {
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
        self.engine
            .run_container(&spec)
            .await
            .map_err(|e| ClusterError::node("create the node's container", fqdn, e))?;
        let argv = commands::claim_address(&node.mac, node.address, announce);
        let out = self
            .engine
            .exec(&node.host, &argv, &[], CONTROL_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node("set the node's MAC", fqdn, e))?;
        if out.stdout.trim() != node.mac {
            return Err(ClusterError::node(
                "set the node's MAC",
                fqdn,
                format!(
                    "eth0 has {} instead of {} ({})",
                    out.stdout.trim(),
                    node.mac,
                    out.stderr.trim()
                ),
            ));
        }
        // The harness reaches nodes over the run's bridge: forget a previous holder's MAC there.
        netns::flush_host_neighbour(&bridge_name(&self.run.record.id), node.address);
        Ok(())
    }

    /// Every binary the node's services need is in the image (a user's own image may lack one).
    async fn check_image_serves(&self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.run.node(fqdn)?.clone();
        for kind in &node.services {
            if kind.is_stand_in() {
                continue;
            }
            let wanted: Vec<String> =
                crate::service::requirements::of(*kind, Path::new(STANDIN_INSIDE))
                    .into_iter()
                    .map(|r| r.path.display().to_string())
                    .collect();
            let argv = commands::missing_files(&wanted);
            let out = self
                .engine
                .exec(&node.host, &argv, &[], CONTROL_TIMEOUT)
                .await
                .map_err(|e| ClusterError::node("inspect the node's image", fqdn, e))?;
            if let Some(missing) = out.stdout.lines().next() {
                return Err(ClusterError::Environment(format!(
                    "failed to provision {kind} on {fqdn}: {missing} not found in image {} (`succession image build` makes one that has it)",
                    self.image()
                )));
            }
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
        self.create_container(fqdn, true).await?;
        Ok(self.run.node(fqdn)?.view(fqdn))
    }

    async fn exec(&self, fqdn: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        let node = self.run.live_node(fqdn, "run a command")?;
        self.engine
            .exec(&node.host, argv, &[], EXEC_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node(format!("run `{}`", argv.join(" ")), fqdn, e))
    }

    async fn write_file(
        &self,
        fqdn: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError> {
        let action = format!("write {}", path.display());
        let host = self.run.live_node(fqdn, &action)?.host.clone();
        // The engine's copy API cannot reach into tmpfs mounts, where the data lives: the file
        // lands in the container's own /tmp, then moves into place inside.
        let staged = format!("succession-upload-{}", self.engine_nonce());
        self.engine
            .upload_file(&host, "/tmp", &staged, contents)
            .await
            .map_err(|e| ClusterError::node(&action, fqdn, e))?;
        let argv = commands::move_into_place(&Path::new("/tmp").join(&staged), path);
        self.run_ok(fqdn, &action, &argv).await.map(|_| ())
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
        let host = self.run.live_node(fqdn, action)?.host.clone();
        self.engine
            .exec(&host, argv, &[], CONTROL_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node(action, fqdn, e))
    }

    fn remove_run(&mut self) {
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
