//! The EC2 provider: each node is an EC2 instance launched on its fixed private address in the
//! topology's subnet, tagged with the run and the node, prepared by its user data (the run's
//! key, the servers from Debian's packages, a dead-man shutdown at the run's deadline), and
//! reached over SSH through the border. Terminate = TerminateInstances; replace = wait until
//! the old instance is terminated and its address free, then a new instance on the same
//! address (a new interface, so a new MAC), as the seed's `katoctl ec2 add` does. No mutating
//! call ever touches an instance without the run's tag.

pub mod api;
mod gc;
pub mod sim;
pub mod ssh;
pub mod user_data;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use self::api::{Ec2, Launch};
use self::ssh::Ssh;
use self::user_data::{UserData, READY_MARK};
use super::agent::{AgentLinks, Opening};
use super::background::Background;
use super::node_shell::{self as commands, STANDIN_INSIDE};
use super::record::{self, NodeRecord, RunDir, RunRecord};
use super::{
    ClusterError, DryRunError, ExecOutput, GcReport, Hosts, NodeView, Provider, RunState,
    StraySearch,
};
use crate::spec::capability::Capability;
use crate::spec::ec2::{Ec2Settings, Reach};
use crate::spec::topology::{host_address, SubnetChoice};
use crate::spec::Topology;

/// How long a command run with `exec` may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the harness's own short commands on a node may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an instance may take from launch to its user data being done.
const READY_TIMEOUT: Duration = Duration::from_secs(900);
/// How long a terminated instance may take to go, and its address to be free.
const GONE_TIMEOUT: Duration = Duration::from_secs(600);

/// The EC2 provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ec2Provider;

fn env_error(detail: impl std::fmt::Display) -> ClusterError {
    ClusterError::Environment(format!("failed to provision on EC2: {detail}"))
}

fn block<F>(future: F) -> Result<F::Output, ClusterError>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    super::blocking::run(future).map_err(env_error)
}

/// The settings of a topology meant for EC2, or why it is not.
fn settings_of(topology: &Topology) -> Result<(Ec2Settings, Ipv4Addr), ClusterError> {
    let settings = topology.settings.provider_ec2.clone().ok_or_else(|| {
        env_error(format!(
            "{} has no [provider.ec2] table (region, subnet_id, security_group, ami)",
            topology.file.display()
        ))
    })?;
    let SubnetChoice::Fixed(subnet) = topology.subnet else {
        return Err(env_error(format!(
            "{}: the ec2 provider needs `subnet` set to the EC2 subnet's /24 (nodes take their host part in it)",
            topology.file.display()
        )));
    };
    Ok((settings, subnet))
}

/// A run's SSH access: its key and config under the run's directory, every node through the
/// border when there is one.
fn ssh_of(dir: &RunDir, settings: &Ec2Settings, record: &RunRecord) -> Result<Ssh, ClusterError> {
    let jump = record
        .nodes
        .values()
        .find(|n| n.role == "border")
        .map(|n| n.address);
    Ssh::create(
        &dir.path.join("ssh"),
        &settings.ssh_user,
        jump,
        record.nodes.values().map(|n| n.address).collect(),
        &format!("succession-run-{}", record.id),
    )
    .map_err(env_error)
}

impl Provider for Ec2Provider {
    type Hosts = Ec2Hosts;

    fn name(&self) -> &'static str {
        "ec2"
    }

    fn provision(
        &self,
        topology: &Topology,
        purpose: &str,
        _seed: u64,
        say: &dyn Fn(&str),
    ) -> Result<Ec2Hosts, ClusterError> {
        let (settings, subnet) = settings_of(topology)?;
        crate::service::requirements::check_stand_ins(topology)
            .map_err(ClusterError::Environment)?;
        let ec2 = block(Ec2::connect(
            &settings.region,
            settings.endpoint_url.as_deref(),
        ))?;
        let (dir, mut record) = record::create_run(self.name(), purpose, topology)?;
        record.subnet = Some(subnet);
        for spec in topology.nodes() {
            record.nodes.insert(
                spec.fqdn.clone(),
                NodeRecord {
                    ordinal: spec.ordinal,
                    short: spec.short.clone(),
                    role: spec.role.clone(),
                    host: String::new(),
                    address: host_address(subnet, spec.host),
                    mac: String::new(),
                    generation: 0,
                    alive: true,
                    services: spec.services.clone(),
                },
            );
        }
        dir.save(&record)?;
        let ssh = ssh_of(&dir, &settings, &record)?;
        let (background, agents) = agents()?;
        let mut hosts = Ec2Hosts {
            run: RunState::new("ec2", topology.clone(), dir, record),
            settings,
            ec2,
            ssh,
            agents,
            with_binary: Mutex::new(BTreeSet::new()),
            _background: background,
        };
        match hosts.build(say) {
            Ok(()) => Ok(hosts),
            Err(e) => {
                hosts.teardown();
                Err(e)
            }
        }
    }

    fn reopen(&self, dir: RunDir, record: RunRecord) -> Result<Ec2Hosts, ClusterError> {
        let topology = record.parsed_topology()?;
        let (settings, _) = settings_of(&topology)?;
        let ec2 = block(Ec2::connect(
            &settings.region,
            settings.endpoint_url.as_deref(),
        ))?;
        let ssh = ssh_of(&dir, &settings, &record)?;
        let (background, agents) = agents()?;
        Ok(Ec2Hosts {
            run: RunState::new("ec2", topology, dir, record),
            settings,
            ec2,
            ssh,
            agents,
            with_binary: Mutex::new(BTreeSet::new()),
            _background: background,
        })
    }

    fn configured(_image: Option<String>) -> Self {
        Ec2Provider
    }

    fn capabilities() -> &'static [Capability] {
        // A replacement is launched at the old private address once EC2 frees it; every
        // instance runs the shell commands, ip and iptables the defaults use. Not cheap: a
        // cluster is minutes and money, so `explore` does not run here.
        &[
            Capability::StableAddress,
            Capability::NeighbourTables,
            Capability::PacketFilters,
            Capability::Pause,
        ]
    }

    async fn dry_run(
        &self,
        topology: &Topology,
        say: &dyn Fn(&str),
    ) -> Result<String, DryRunError> {
        for line in Ec2Hosts::plan(topology)? {
            say(&line);
        }
        Ec2Hosts::dry_run(topology).await?;
        Ok("EC2 accepts every launch (DryRun); nothing was launched".to_string())
    }

    fn gc(&self, all: bool, strays: &StraySearch) -> GcReport {
        gc::collect(all, strays)
    }
}

/// The hosts' background runtime and the node agents that run on it.
fn agents() -> Result<(Background, AgentLinks), ClusterError> {
    let background = Background::new("succession-nodes").map_err(env_error)?;
    let handle = background
        .handle()
        .ok_or_else(|| env_error("the background runtime is gone"))?;
    Ok((background, AgentLinks::new(handle)))
}

/// A run's hosts as EC2 instances.
pub struct Ec2Hosts {
    run: RunState,
    settings: Ec2Settings,
    ec2: Ec2,
    ssh: Ssh,
    /// The node agents, on the nodes that hold the node binary: their commands ride one SSH
    /// session each instead of one each.
    agents: AgentLinks,
    /// The nodes that hold the node binary (stand-in nodes, and any a fault tool needed).
    with_binary: Mutex<BTreeSet<String>>,
    /// Where the agents' connections run: held only to be dropped last.
    _background: Background,
}

impl Ec2Hosts {
    /// What launching a node sends (the dry run and the real launch alike).
    fn launch_of(&self, fqdn: &str) -> Result<Launch, ClusterError> {
        let node = self.run.node(fqdn)?;
        let packages: Vec<String> = node
            .services
            .iter()
            .flat_map(|k| k.debian_packages())
            .map(|p| p.to_string())
            .chain(
                [
                    "iproute2",
                    "iptables",
                    "procps",
                    "iputils-arping",
                    "netcat-openbsd",
                ]
                .map(String::from),
            )
            .collect();
        let user_data = UserData {
            ssh_user: self.settings.ssh_user.clone(),
            public_key: self.ssh.public_key().map_err(env_error)?,
            hostname: fqdn.to_string(),
            packages,
            lifetime: self.settings.lifetime,
        };
        Ok(Launch {
            run: self.run.record.id.clone(),
            node: fqdn.to_string(),
            ami: self.settings.ami.clone(),
            instance_type: self.settings.instance_type_of(&node.role).to_string(),
            subnet_id: self.settings.subnet_id.clone(),
            security_group: self.settings.security_group.clone(),
            address: node.address,
            key_name: self.settings.key_name.clone(),
            tags: self
                .settings
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            user_data: user_data.render(),
        })
    }

    fn build(&mut self, say: &dyn Fn(&str)) -> Result<(), ClusterError> {
        // The border first: every other node is reached through it.
        let mut order: Vec<String> = self.run.record.nodes.keys().cloned().collect();
        order.sort_by_key(|n| (self.run.record.nodes[n].role != "border", n.clone()));
        say(&format!(
            "launching {} instances of {} in {} of {} (run {})",
            order.len(),
            self.run.topology.cell,
            self.settings.subnet_id,
            self.settings.region,
            self.run.record.id
        ));
        let progress = crate::base::progress::Progress::bar(order.len() as u64, "instances");
        for fqdn in &order {
            progress.message(format!("launching {fqdn}"));
            self.launch_node(fqdn)?;
            progress.advance();
        }
        drop(progress);
        for fqdn in &order {
            self.prepare(fqdn)?;
        }
        say(&format!("{} instances ready", order.len()));
        Ok(())
    }

    /// Launches a recorded node's instance and records its id and MAC.
    fn launch_node(&mut self, fqdn: &str) -> Result<(), ClusterError> {
        let launch = self.launch_of(fqdn)?;
        let ec2 = self.ec2.clone();
        let instance = block(async move { ec2.launch(&launch, GONE_TIMEOUT).await })?
            .map_err(|e| ClusterError::node("launch the node's instance", fqdn, e))?;
        if let Some(n) = self.run.record.nodes.get_mut(fqdn) {
            n.host = instance.id.clone();
            n.mac = instance.mac.unwrap_or_default();
        }
        self.run.save()
    }

    /// Waits for a node's user data and gives it the stand-in.
    fn prepare(&self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.run.node(fqdn)?.clone();
        block(self.ssh.wait_ready(node.address, READY_MARK, READY_TIMEOUT))?
            .map_err(|e| ClusterError::node("reach the node over SSH", fqdn, e))?;
        if node.services.iter().any(|k| k.is_stand_in()) {
            block(self.copy_node_binary(fqdn))??;
        }
        Ok(())
    }

    /// Copies the node-side binary (stand-ins and fault tools) to a node.
    async fn copy_node_binary(&self, fqdn: &str) -> Result<(), ClusterError> {
        let binary = crate::service::standins::binary();
        let bytes = tokio::fs::read(&binary)
            .await
            .map_err(|e| env_error(format!("failed to read {}: {e}", binary.display())))?;
        let argv = commands::receive_executable(Path::new(STANDIN_INSIDE));
        // Over a session of its own, never through an agent: the copy replaces its binary.
        let address = self.run.live_node(fqdn, "copy the stand-in")?.address;
        let out = self
            .ssh
            .exec(address, &argv, Some(&bytes), EXEC_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node("copy the stand-in", fqdn, e))?;
        if out.code != Some(0) {
            return Err(ClusterError::node(
                "copy the stand-in",
                fqdn,
                out.stderr.trim(),
            ));
        }
        self.holds_binary(fqdn);
        Ok(())
    }

    async fn over_ssh(
        &self,
        fqdn: &str,
        action: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<ExecOutput, ClusterError> {
        let address = self.run.live_node(fqdn, action)?.address;
        let has_agent = self
            .with_binary
            .lock()
            .map(|nodes| nodes.contains(fqdn))
            .unwrap_or(false);
        if !has_agent {
            return self
                .ssh
                .exec(address, argv, stdin, limit)
                .await
                .map_err(|e| ClusterError::node(action, fqdn, e));
        }
        // Called only when the node has no agent yet.
        let open = || -> Opening {
            let command = self.ssh.attach_command(address, &commands::agent());
            Box::pin(async move { ssh::transport(command).map_err(|e| e.to_string()) })
        };
        self.agents
            .run(fqdn, open, argv, stdin, limit)
            .await
            .map_err(|e| ClusterError::node(action, fqdn, e))
    }

    /// Notes that a node holds the node binary: its commands go through its agent from now.
    fn holds_binary(&self, fqdn: &str) {
        if let Ok(mut nodes) = self.with_binary.lock() {
            nodes.insert(fqdn.to_string());
        }
    }

    /// Forgets a node's agent and binary (it was terminated; a replacement starts bare).
    fn forget_node(&self, fqdn: &str) {
        self.agents.forget(fqdn);
        if let Ok(mut nodes) = self.with_binary.lock() {
            nodes.remove(fqdn);
        }
    }

    /// What the dry run prints: every instance the run would launch, and EC2's answer to
    /// launching each (its DryRun).
    pub fn plan(topology: &Topology) -> Result<Vec<String>, ClusterError> {
        let (settings, subnet) = settings_of(topology)?;
        let mut lines = vec![format!(
            "would launch {} instances in {} ({}), security group {}, image {}, shutting themselves down after {}",
            topology.nodes().len(),
            settings.subnet_id,
            settings.region,
            settings.security_group,
            settings.ami,
            humantime::format_duration(settings.lifetime)
        )];
        for n in topology.nodes() {
            lines.push(format!(
                "  {:<36} {:<15} {:<12} tags Name={} succession.run=<run id> succession.node={}{}",
                n.fqdn,
                host_address(subnet, n.host),
                settings.instance_type_of(&n.role),
                n.fqdn,
                n.fqdn,
                settings
                    .tags
                    .iter()
                    .map(|(k, v)| format!(" {k}={v}"))
                    .collect::<String>()
            ));
        }
        Ok(lines)
    }

    /// Asks EC2 to dry-run each launch of a topology; launches nothing.
    pub async fn dry_run(topology: &Topology) -> Result<(), ClusterError> {
        let (settings, subnet) = settings_of(topology)?;
        let ec2 = Ec2::connect(&settings.region, settings.endpoint_url.as_deref()).await;
        for n in topology.nodes() {
            let launch = Launch {
                run: "dry-run".into(),
                node: n.fqdn.clone(),
                ami: settings.ami.clone(),
                instance_type: settings.instance_type_of(&n.role).to_string(),
                subnet_id: settings.subnet_id.clone(),
                security_group: settings.security_group.clone(),
                address: host_address(subnet, n.host),
                key_name: settings.key_name.clone(),
                tags: settings.tags.clone().into_iter().collect(),
                user_data: String::from("#!/bin/sh\n"),
            };
            ec2.dry_run(&launch)
                .await
                .map_err(|e| ClusterError::node("dry-run the launch", &n.fqdn, e))?;
        }
        Ok(())
    }
}

impl Hosts for Ec2Hosts {
    fn endpoint(&self, node: &NodeView, port: u16) -> SocketAddr {
        let direct = SocketAddr::new(node.address.into(), port);
        match self.settings.reach {
            Reach::Direct => direct,
            // A tunnel that cannot be made leaves the direct address: the probe then fails
            // naming it, rather than the harness guessing.
            Reach::Tunnel => self.ssh.tunnel(node.address, port).unwrap_or(direct),
        }
    }

    async fn terminate(&mut self, fqdn: &str) -> Result<(), ClusterError> {
        let node = self.run.live_node(fqdn, "terminate the node")?.clone();
        self.ec2
            .terminate(&self.run.record.id, &node.host)
            .await
            .map_err(|e| ClusterError::node("terminate the node", fqdn, e))?;
        if let Some(n) = self.run.record.nodes.get_mut(fqdn) {
            n.alive = false;
        }
        self.forget_node(fqdn);
        self.ssh.forget(node.address);
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
        self.ec2
            .wait_terminated(&self.run.record.id, &old.host, GONE_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node("replace the node", fqdn, e))?;
        self.ec2
            .wait_address_free(old.address, GONE_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node("replace the node", fqdn, e))?;
        let launch = self.launch_of(fqdn)?;
        let instance = self
            .ec2
            .launch(&launch, GONE_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node("launch the replacement", fqdn, e))?;
        if let Some(n) = self.run.record.nodes.get_mut(fqdn) {
            n.generation += 1;
            n.host = instance.id.clone();
            n.mac = instance.mac.unwrap_or_default();
            n.alive = true;
        }
        self.run.save()?;
        self.ssh.forget(old.address);
        let node = self.run.node(fqdn)?.clone();
        self.ssh
            .wait_ready(node.address, READY_MARK, READY_TIMEOUT)
            .await
            .map_err(|e| ClusterError::node("reach the replacement over SSH", fqdn, e))?;
        if node.services.iter().any(|k| k.is_stand_in()) {
            self.copy_node_binary(fqdn).await?;
        }
        Ok(node.view(fqdn))
    }

    async fn prepare_tools(&self, fqdn: &str) -> Result<(), ClusterError> {
        let check = vec![
            "test".to_string(),
            "-x".to_string(),
            STANDIN_INSIDE.to_string(),
        ];
        let there = self
            .over_ssh(fqdn, "look for the node binary", &check, None, EXEC_TIMEOUT)
            .await?;
        if there.code == Some(0) {
            self.holds_binary(fqdn);
            return Ok(());
        }
        self.copy_node_binary(fqdn).await
    }

    async fn exec(&self, fqdn: &str, argv: &[String]) -> Result<ExecOutput, ClusterError> {
        self.over_ssh(
            fqdn,
            &format!("run `{}`", argv.join(" ")),
            argv,
            None,
            EXEC_TIMEOUT,
        )
        .await
    }

    async fn write_file(
        &self,
        fqdn: &str,
        path: &Path,
        contents: &[u8],
    ) -> Result<(), ClusterError> {
        let action = format!("write {}", path.display());
        let out = self
            .over_ssh(
                fqdn,
                &action,
                &commands::receive_file(path),
                Some(contents),
                CONTROL_TIMEOUT,
            )
            .await?;
        if out.code != Some(0) {
            return Err(ClusterError::node(&action, fqdn, out.stderr.trim()));
        }
        Ok(())
    }

    fn exec_prefix(&self, fqdn: &str) -> Option<Vec<String>> {
        let node = self.run.record.nodes.get(fqdn)?;
        Some(self.ssh.prefix(node.address))
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
        self.over_ssh(fqdn, action, argv, None, CONTROL_TIMEOUT)
            .await
    }

    fn remove_run(&mut self) {
        self.ssh.close();
        let failures = gc::destroy_run(&self.ec2, &self.run.dir, &self.run.record);
        for e in failures {
            eprintln!(
                "warning: run {}: {e}; `succession gc --provider ec2` will retry (and each instance shuts itself down at the run's deadline)",
                self.run.record.id
            );
        }
    }
}

impl Drop for Ec2Hosts {
    fn drop(&mut self) {
        // The last line of defence on a panic: nothing a run created outlives it.
        self.teardown();
    }
}
