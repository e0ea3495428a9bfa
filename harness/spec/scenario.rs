//! Scenario files: a topology, then named steps — actions on nodes and services, and
//! expectations polled to a deadline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

mod recovery;

pub use recovery::{LedgerSpec, RecoveryStep};

use super::reader::{closest, parse_document, Located, TableReader};
use super::topology::Topology;
use crate::service::ServiceKind;
use crate::source::{InputError, SourceFile};

/// Deadline of an expectation that names none.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(30);

/// A validated scenario, with its topology loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// The scenario file.
    pub file: PathBuf,
    /// Its name (defaults to the file stem).
    pub name: String,
    /// What it exercises, in a sentence or two.
    pub description: String,
    /// The topology it brings up.
    pub topology: Topology,
    /// A fixed seed, if the file sets one.
    pub seed: Option<u64>,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// The write ledger, when the scenario runs one (`[ledger]`).
    pub ledger: Option<LedgerSpec>,
    /// The availability monitor's settings.
    pub availability: AvailabilitySettings,
    /// Checks over the history, evaluated after the steps.
    pub checks: Vec<Check>,
}

/// One step: a name for the report and what it does.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The name shown in progress output and reports.
    pub name: String,
    /// What it does.
    pub kind: StepKind,
    /// A phase this step begins (`phase = "…"`): ledger counts are kept per phase, and an
    /// interrupted step re-runs its phase from the phase's first step.
    pub phase: Option<String>,
    /// Fail this step on purpose the first time, after it has acted, and re-run its phase from
    /// the beginning (`interrupt = true`): the procedure must be safe to re-run.
    pub interrupt: bool,
}

/// A node named in a step: literally, or through a name bound by an earlier step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRef {
    /// A node's full name.
    Node(String),
    /// `$binding`
    Bound(String),
}

/// Where a step acts: one node or every node of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One node.
    Node(NodeRef),
    /// Every live node of the role.
    Role(String),
}

/// A set of nodes a member list must equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSet {
    /// Nodes listed one by one.
    pub nodes: Vec<NodeRef>,
    /// Every node of this role …
    pub role: Option<String>,
    /// … except these.
    pub except: Vec<NodeRef>,
}

/// What neighbour entries must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighbourState {
    /// No usable MAC: absent, incomplete or failed (what `arp -a` shows as `<incomplete>`).
    Unresolved,
    /// A MAC is known, and it is the node's current one.
    Current,
}

/// Which server ids a ZooKeeper step means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZookeeperIds {
    /// The ids an earlier `zookeeper-discover-ids` step read from the running servers.
    Discovered,
    /// The ids an upgrade assigns: addresses sorted as strings, numbered from 1.
    Upgrade,
}

/// Deadline for each restarted ZooKeeper server to serve again under one leader.
pub const DEFAULT_RESTART_WITHIN: Duration = Duration::from_secs(60);
/// Where a move of leadership must end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaderGoal {
    /// This node leads.
    To(NodeRef),
    /// Any node but this one leads.
    AwayFrom(NodeRef),
}

/// How leadership is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveMethod {
    /// etcd's move-leader API, sent to the current leader.
    Api,
    /// Restart the service on whichever node leads, until the goal holds (the seed's way).
    Restart,
    /// Marathon's `DELETE /v2/leader` on the leader, until the goal holds.
    Abdicate,
}

/// Where a master-tier leader is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The services' own HTTP endpoints on every live member (`/redirect`, `/v2/leader`).
    Http,
    /// The election znodes in ZooKeeper.
    Znode,
    /// Both, and they must name the same leader.
    Both,
}

/// The availability monitor's settings (`[availability]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilitySettings {
    /// Time between rounds of requests.
    pub interval: Duration,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for AvailabilitySettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A check over the recorded history, evaluated after the steps (`[[check]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Its name in the report.
    pub name: String,
    /// The availability target it judges (`app`, `mesos`, `marathon`).
    pub target: String,
    /// The step whose start opens the window (None: the first step).
    pub from: Option<String>,
    /// The step whose end closes the window (None: the end of the run).
    pub to: Option<String>,
    /// Least share of successful requests.
    pub min_ratio: f64,
    /// Longest tolerated outage (run of failed requests); zero tolerates no failure at all.
    pub max_outage: Duration,
    /// The least number of samples, spread over the window, it is judged on; with fewer it is
    /// `unknown` (unless the samples it has already show a violation).
    pub min_samples: usize,
}

/// How many samples a check needs by default.
pub const DEFAULT_MIN_SAMPLES: usize = 20;

/// The targets the availability monitor knows, with the service that must exist for each.
pub const AVAILABILITY_TARGETS: &[(&str, ServiceKind)] = &[
    ("app", ServiceKind::App),
    ("mesos", ServiceKind::MesosMaster),
    ("marathon", ServiceKind::Marathon),
];

/// What a step does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StepKind {
    /// Find the node leading a service and bind its name.
    FindLeader { service: ServiceKind, bind: String },
    /// Move a service's leadership to a node, or away from one, by the given method; nothing
    /// to do if it holds already.
    MoveLeader {
        service: ServiceKind,
        goal: LeaderGoal,
        method: MoveMethod,
        within: Duration,
    },
    /// Kill everything on a node and delete it.
    Terminate { node: NodeRef },
    /// Create a brand-new node with the same name and IP and a new MAC.
    ReplaceNode { node: NodeRef },
    /// Start a service (`systemctl start`); etcd joins an existing cluster if it was added.
    StartService { node: NodeRef, service: ServiceKind },
    /// Stop a service gracefully, SIGKILL after the bound.
    StopService { node: NodeRef, service: ServiceKind },
    /// Stop then start a service.
    RestartService { node: NodeRef, service: ServiceKind },
    /// Delete a node's neighbour (ARP) entry on every other node (`arp -d`).
    PurgeNeighbours { node: NodeRef },
    /// `etcdctl member remove` the node's member.
    EtcdMemberRemove { node: NodeRef },
    /// `etcdctl member add` the node with its peer URL.
    EtcdMemberAdd { node: NodeRef },
    /// Run a command on a node or every node of a role; it must exit 0.
    Exec { on: Target, command: Vec<String> },
    /// Read every ZooKeeper server's id from the server itself (`conf` serverId).
    ZookeeperDiscoverIds,
    /// Write a static ensemble (sorted by address as strings) into every server's
    /// configuration, then restart the servers one at a time, each within `within` serving
    /// under one agreed leader.
    ZookeeperStaticEnsemble {
        ids: ZookeeperIds,
        order: Vec<NodeRef>,
        within: Duration,
    },
    /// Renumber every server to the upgrade's id with the safe rolling plan, each restart
    /// within `within` serving under one agreed leader.
    ZookeeperRenumber { within: Duration },
    /// Create a znode (or overwrite its data) through the ensemble.
    ZookeeperWrite { path: String, data: String },
    /// Expect one leader agreed on by every live member, optionally not / exactly a node.
    ExpectLeader {
        service: ServiceKind,
        not: Option<NodeRef>,
        is: Option<NodeRef>,
        bind: Option<String>,
        within: Duration,
        measure: Option<String>,
        /// The step whose start the measurement counts from (default: the last disruption).
        since: Option<String>,
        /// Where the master tier's leader is read: HTTP endpoints, election znodes, or both
        /// (which must then agree).
        via: Via,
        /// How long it must keep holding once it holds.
        hold: Option<Duration>,
    },
    /// Expect no live member to name a leader (every one answers "none" or cannot be reached).
    ExpectNoLeader {
        service: ServiceKind,
        within: Duration,
    },
    /// Expect a service's member list to be exactly a set of nodes.
    ExpectMembers {
        service: ServiceKind,
        set: NodeSet,
        started: bool,
        within: Duration,
    },
    /// Expect every other node's neighbour entry for a node to be in a state.
    ExpectNeighbours {
        node: NodeRef,
        state: NeighbourState,
        within: Duration,
    },
    /// Expect every service of a node (or of every node of a role) active and running.
    ExpectServicesActive { on: Target, within: Duration },
    /// Expect every ZooKeeper server to report the given id (`conf` serverId).
    ExpectZookeeperIds { ids: ZookeeperIds, within: Duration },
    /// Expect every ZooKeeper server to return a znode's data.
    ExpectZookeeperData {
        path: String,
        data: String,
        within: Duration,
    },
    /// etcd disaster recovery and the write ledger (quorum loss, snapshots, dumps, rebuilds).
    Recovery(RecoveryStep),
}

impl StepKind {
    /// Whether this step disturbs the cluster (re-election times are measured from the last one).
    pub fn is_disruption(&self) -> bool {
        matches!(
            self,
            StepKind::Terminate { .. }
                | StepKind::StopService { .. }
                | StepKind::RestartService { .. }
                | StepKind::MoveLeader { .. }
                | StepKind::ZookeeperStaticEnsemble { .. }
                | StepKind::ZookeeperRenumber { .. }
        ) || matches!(self, StepKind::Recovery(r) if r.is_disruption())
    }

    /// Whether this step is an expectation (polled to a deadline).
    pub fn is_expectation(&self) -> bool {
        matches!(
            self,
            StepKind::ExpectLeader { .. }
                | StepKind::ExpectNoLeader { .. }
                | StepKind::ExpectMembers { .. }
                | StepKind::ExpectNeighbours { .. }
                | StepKind::ExpectServicesActive { .. }
                | StepKind::ExpectZookeeperIds { .. }
                | StepKind::ExpectZookeeperData { .. }
        ) || matches!(self, StepKind::Recovery(r) if r.is_expectation())
    }
}

/// Actions of the core steps; the recovery ones are `recovery::ACTIONS`.
const ACTIONS: &[&str] = &[
    "find-leader",
    "move-leader",
    "terminate",
    "replace-node",
    "start-service",
    "stop-service",
    "restart-service",
    "purge-neighbours",
    "etcd-member-remove",
    "etcd-member-add",
    "exec",
    "zookeeper-discover-ids",
    "zookeeper-static-ensemble",
    "zookeeper-renumber",
    "zookeeper-write",
];
/// Expectations of the core steps; the recovery ones are `recovery::EXPECTATIONS`.
const EXPECTATIONS: &[&str] = &[
    "leader",
    "no-leader",
    "members",
    "neighbours",
    "services-active",
    "zookeeper-ids",
    "zookeeper-data",
];

/// Every action a step may name, for help texts and suggestions.
fn all_actions() -> Vec<&'static str> {
    ACTIONS.iter().chain(recovery::ACTIONS).copied().collect()
}

/// Every expectation a step may name, for help texts and suggestions.
fn all_expectations() -> Vec<&'static str> {
    EXPECTATIONS
        .iter()
        .chain(recovery::EXPECTATIONS)
        .copied()
        .collect()
}

impl Scenario {
    /// Reads a scenario and the topology it names; `topology_override` replaces that topology.
    pub fn load(path: &Path, topology_override: Option<&Path>) -> Result<Self, InputError> {
        let source = SourceFile::read(path)?;
        Self::parse(&source, |reference| match topology_override {
            Some(p) => Topology::load(p),
            None => Topology::load(&resolve_topology_path(path, &reference.value)).map_err(|e| {
                if e.line == 0 {
                    source.error(
                        reference.span.clone(),
                        format!(
                            "failed to load topology `{}`: {}",
                            reference.value, e.message
                        ),
                    )
                } else {
                    e
                }
            }),
        })
    }

    /// Parses and validates scenario text; `load_topology` resolves the `topology` key (pure
    /// apart from whatever it does).
    pub fn parse(
        source: &SourceFile,
        load_topology: impl FnOnce(&Located<String>) -> Result<Topology, InputError>,
    ) -> Result<Self, InputError> {
        let doc = parse_document(source)?;
        let mut top = TableReader::new(source, doc.get_ref(), doc.span(), "the scenario");
        let name = top.opt_str("name")?.map(|n| n.value).unwrap_or_else(|| {
            source
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let description = top
            .opt_str("description")?
            .map(|d| d.value)
            .unwrap_or_default();
        let seed = top.opt_u64("seed")?.map(|s| s.value);
        let topology_ref = top.str("topology")?;
        let step_tables = top.opt_tables("step", |i| format!("step {}", i + 1))?;
        let ledger = top
            .opt_table("ledger")?
            .map(|t| recovery::parse_ledger(source, t.named("`[ledger]`")))
            .transpose()?;
        let check_tables = top.opt_tables("check", |i| format!("check {}", i + 1))?;
        let mut availability = AvailabilitySettings::default();
        if let Some(a) = top.opt_table("availability")? {
            let mut a2 = a.named("`[availability]`");
            if let Some(d) = a2.opt_duration("interval")? {
                availability.interval = d.value;
            }
            if let Some(d) = a2.opt_duration("timeout")? {
                availability.timeout = d.value;
            }
            a2.finish(&["interval", "timeout"])?;
        }
        top.finish(&[
            "name",
            "description",
            "seed",
            "topology",
            "step",
            "check",
            "availability",
            "ledger",
        ])?;
        let topology = load_topology(&topology_ref)?;
        if step_tables.is_empty() {
            return Err(source.error(
                doc.span().start..doc.span().start,
                "the scenario has no `[[step]]`",
            ));
        }
        let mut checker = Validator {
            source,
            topology: &topology,
            bound: BTreeSet::new(),
            discovered: false,
            captures: Default::default(),
            ledger: ledger.is_some(),
            phase: None,
            step_names: BTreeSet::new(),
            bound_service: Default::default(),
        };
        let mut steps = Vec::new();
        for (i, table) in step_tables.into_iter().enumerate() {
            steps.push(checker.step(i, table)?);
        }
        let mut checks = Vec::new();
        for (i, table) in check_tables.into_iter().enumerate() {
            checks.push(checker.check(i, table, &steps)?);
        }
        Ok(Self {
            file: source.path.clone(),
            name,
            description,
            topology,
            seed,
            steps,
            ledger,
            availability,
            checks,
        })
    }
}

/// Where a scenario's `topology = "…"` points: a bare name is looked up in `../topologies/`.
pub fn resolve_topology_path(scenario: &Path, reference: &str) -> PathBuf {
    let dir = scenario.parent().unwrap_or(Path::new("."));
    if reference.contains('/') || reference.ends_with(".toml") {
        dir.join(reference)
    } else {
        dir.join("..")
            .join("topologies")
            .join(format!("{reference}.toml"))
    }
}

struct Validator<'s> {
    source: &'s SourceFile,
    topology: &'s Topology,
    bound: BTreeSet<String>,
    /// Whether an earlier step discovered the ZooKeeper ids.
    discovered: bool,
    /// Snapshots and dumps taken by earlier steps, by label.
    captures: std::collections::BTreeMap<String, crate::ledger::CaptureKind>,
    /// Whether the scenario runs the write ledger.
    ledger: bool,
    /// The phase begun by an earlier step, if any.
    phase: Option<String>,
    /// Names of the steps read so far.
    step_names: BTreeSet<String>,
    /// The service whose leader each binding names, where a step binds a leader.
    bound_service: std::collections::BTreeMap<String, ServiceKind>,
}

impl Validator<'_> {
    fn step(&mut self, index: usize, mut t: TableReader<'_, '_>) -> Result<Step, InputError> {
        let name = t.opt_str("name")?;
        let action = t.opt_str("action")?;
        let expect = t.opt_str("expect")?;
        let (phase, interrupt) = self.phase_keys(&mut t)?;
        let mut accepted: Vec<&str> = vec!["name", "action", "expect", "phase", "interrupt"];
        let kind = match (action, expect) {
            (Some(a), None) => self.action(&mut t, &a, &mut accepted)?,
            (None, Some(e)) => self.expectation(&mut t, &e, &mut accepted)?,
            (Some(a), Some(_)) => {
                return Err(self
                    .source
                    .error(
                        a.span,
                        format!("{} has both `action` and `expect`", t.what()),
                    )
                    .with_help("a step either acts or expects; split it in two"))
            }
            (None, None) => {
                return Err(t.missing("action", "or `expect`").with_help(format!(
                    "actions: {}; expectations: {}",
                    all_actions().join(", "),
                    all_expectations().join(", ")
                )))
            }
        };
        t.finish(&accepted)?;
        let name = name
            .map(|n| n.value)
            .unwrap_or_else(|| format!("step {}: {}", index + 1, default_name(&kind)));
        self.step_names.insert(name.clone());
        Ok(Step {
            name,
            kind,
            phase,
            interrupt,
        })
    }

    fn action(
        &mut self,
        t: &mut TableReader<'_, '_>,
        action: &Located<String>,
        accepted: &mut Vec<&'static str>,
    ) -> Result<StepKind, InputError> {
        let kind = match action.value.as_str() {
            "find-leader" => {
                accepted.extend(["service", "bind"]);
                let service = self.leader_service(t)?;
                let bind = self
                    .binding(t, "bind")?
                    .ok_or_else(|| t.missing("bind", "the name later steps use as `$name`"))?;
                self.bound_service.insert(bind.clone(), service);
                StepKind::FindLeader { service, bind }
            }
            "move-leader" => {
                accepted.extend(["service", "to", "away_from", "method", "within"]);
                let service_span = t.value_span("service");
                let service = self.service(t)?;
                let goal = match (
                    self.opt_node_running(t, "to", service)?,
                    self.opt_node_running(t, "away_from", service)?,
                ) {
                    (Some(to), None) => LeaderGoal::To(to),
                    (None, Some(away)) => LeaderGoal::AwayFrom(away),
                    _ => {
                        return Err(self.source.error(
                            t.span().start..t.span().start,
                            format!("{} needs exactly one of `to` and `away_from`", t.what()),
                        ))
                    }
                };
                let method_value = t.opt_str("method")?;
                let method_span = method_value.as_ref().map(|m| m.span.clone());
                let method =
                    match method_value.as_ref().map(|m| m.value.as_str()) {
                        None => match service {
                            ServiceKind::Etcd => MoveMethod::Api,
                            _ => MoveMethod::Restart,
                        },
                        Some("api") => MoveMethod::Api,
                        Some("restart") => MoveMethod::Restart,
                        Some("abdicate") => MoveMethod::Abdicate,
                        Some(other) => return Err(self
                            .source
                            .error(
                                method_span.clone().unwrap_or(t.span()),
                                format!("unknown method `{other}`"),
                            )
                            .with_help(
                                "methods: api (etcd), restart (any service), abdicate (marathon)",
                            )),
                    };
                let supported = match method {
                    MoveMethod::Api => service == ServiceKind::Etcd,
                    MoveMethod::Abdicate => service == ServiceKind::Marathon,
                    MoveMethod::Restart => service.elects_leader(),
                };
                if !supported {
                    let span = method_span.or(service_span).unwrap_or(t.span());
                    return Err(self
                        .source
                        .error(span, format!("`move-leader` cannot move {service}'s leadership by {method:?}").to_lowercase())
                        .with_help("etcd: api or restart; mesos-master: restart; marathon: restart or abdicate; zookeeper: restart"));
                }
                let within = t
                    .opt_duration("within")?
                    .map(|d| d.value)
                    .unwrap_or(Duration::from_secs(120));
                StepKind::MoveLeader {
                    service,
                    goal,
                    method,
                    within,
                }
            }
            "terminate" | "replace-node" | "purge-neighbours" | "etcd-member-remove"
            | "etcd-member-add" => {
                accepted.push("node");
                if action.value.starts_with("etcd-")
                    && self.topology.nodes_running(ServiceKind::Etcd).is_empty()
                {
                    return Err(self
                        .source
                        .error(action.span.clone(), "the topology runs no etcd"));
                }
                let node = if action.value.starts_with("etcd-") {
                    self.node_running(t, "node", ServiceKind::Etcd)?
                } else {
                    self.node(t, "node")?
                };
                match action.value.as_str() {
                    "terminate" => StepKind::Terminate { node },
                    "replace-node" => StepKind::ReplaceNode { node },
                    "purge-neighbours" => StepKind::PurgeNeighbours { node },
                    "etcd-member-remove" => StepKind::EtcdMemberRemove { node },
                    _ => StepKind::EtcdMemberAdd { node },
                }
            }
            "start-service" | "stop-service" | "restart-service" => {
                accepted.extend(["node", "service"]);
                let service = self.service(t)?;
                let node = self.node_running(t, "node", service)?;
                match action.value.as_str() {
                    "start-service" => StepKind::StartService { node, service },
                    "stop-service" => StepKind::StopService { node, service },
                    _ => StepKind::RestartService { node, service },
                }
            }
            "exec" => {
                accepted.extend(["on", "command"]);
                let on = self.target(t, "on")?;
                let command = t.opt_str_list("command")?.ok_or_else(|| {
                    t.missing("command", "the command and its arguments, as a list")
                })?;
                if command.value.is_empty() {
                    return Err(self.source.error(command.span, "`command` is empty"));
                }
                StepKind::Exec {
                    on,
                    command: command.value.into_iter().map(|c| c.value).collect(),
                }
            }
            "zookeeper-discover-ids"
            | "zookeeper-static-ensemble"
            | "zookeeper-renumber"
            | "zookeeper-write" => self.zookeeper_action(t, action, accepted)?,
            a if recovery::ACTIONS.contains(&a) => {
                StepKind::Recovery(self.recovery_action(t, action, accepted)?)
            }
            _ => {
                let mut err = self.source.error(
                    action.span.clone(),
                    format!("unknown action `{}`", action.value),
                );
                err = match closest(&action.value, &all_actions()) {
                    Some(c) => err.with_help(format!(
                        "did you mean `{c}`? actions: {}",
                        all_actions().join(", ")
                    )),
                    None => err.with_help(format!("actions: {}", all_actions().join(", "))),
                };
                return Err(err);
            }
        };
        Ok(kind)
    }

    fn expectation(
        &mut self,
        t: &mut TableReader<'_, '_>,
        expect: &Located<String>,
        accepted: &mut Vec<&'static str>,
    ) -> Result<StepKind, InputError> {
        accepted.push("within");
        let within = t
            .opt_duration("within")?
            .map(|d| d.value)
            .unwrap_or(DEFAULT_WITHIN);
        let kind = match expect.value.as_str() {
            "leader" => {
                accepted.extend([
                    "service", "not", "is", "bind", "measure", "since", "via", "hold",
                ]);
                let service = self.leader_service(t)?;
                let not = self.opt_node_running(t, "not", service)?;
                let is = self.opt_node_running(t, "is", service)?;
                if let (Some(_), Some(_)) = (&not, &is) {
                    return Err(self.source.error(
                        t.value_span("is").unwrap_or(t.span()),
                        "`is` and `not` together say nothing `is` alone does not; keep one",
                    ));
                }
                let bind = self.binding(t, "bind")?;
                if let Some(b) = &bind {
                    self.bound_service.insert(b.clone(), service);
                }
                let measure = t.opt_str("measure")?.map(|m| m.value);
                let since = match t.opt_str("since")? {
                    None => None,
                    Some(s) if self.step_names.contains(&s.value) => Some(s.value),
                    Some(s) => {
                        return Err(self
                            .source
                            .error(
                                s.span,
                                format!("`since` names no earlier step: \"{}\"", s.value),
                            )
                            .with_help("name an earlier step by its `name`"))
                    }
                };
                if since.is_some() && measure.is_none() {
                    return Err(self.source.error(
                        t.value_span("since").unwrap_or(t.span()),
                        "`since` says where `measure` starts; add `measure`",
                    ));
                }
                let via = self.via(t, service)?;
                let hold = t.opt_duration("hold")?.map(|d| d.value);
                StepKind::ExpectLeader {
                    service,
                    not,
                    is,
                    bind,
                    within,
                    measure,
                    since,
                    via,
                    hold,
                }
            }
            "no-leader" => {
                accepted.push("service");
                let service = self.leader_service(t)?;
                StepKind::ExpectNoLeader { service, within }
            }
            "members" => {
                accepted.extend(["service", "nodes", "role", "except", "started"]);
                let span = t.value_span("service");
                let service = self.leader_service(t)?;
                if !service.has_member_list() {
                    return Err(self
                        .source
                        .error(span.unwrap_or(t.span()), format!("{service} has no member list to expect"))
                        .with_help("member lists are read from etcd (`member list`) and ZooKeeper (`conf`)"));
                }
                let nodes = self.node_list(t, "nodes")?;
                let role = match t.opt_str("role")? {
                    Some(r) => Some(self.role(&r)?),
                    None => None,
                };
                let except = self.node_list(t, "except")?;
                if nodes.is_empty() && role.is_none() {
                    return Err(t.missing("nodes", "or `role` (with optional `except`)"));
                }
                let started = t.opt_bool("started")?.map(|b| b.value).unwrap_or(false);
                StepKind::ExpectMembers {
                    service,
                    set: NodeSet {
                        nodes,
                        role,
                        except,
                    },
                    started,
                    within,
                }
            }
            "neighbours" => {
                accepted.extend(["node", "state"]);
                let node = self.node(t, "node")?;
                let state = match t.opt_str("state")? {
                    None => NeighbourState::Unresolved,
                    Some(s) => match s.value.as_str() {
                        "unresolved" | "incomplete" | "failed" => NeighbourState::Unresolved,
                        "current" => NeighbourState::Current,
                        _ => {
                            return Err(self
                                .source
                                .error(s.span, format!("unknown neighbour state `{}`", s.value))
                                .with_help("states: unresolved (absent, incomplete or failed), current (the node's current MAC)"))
                        }
                    },
                };
                StepKind::ExpectNeighbours {
                    node,
                    state,
                    within,
                }
            }
            "services-active" => {
                accepted.push("on");
                let on = self.target(t, "on")?;
                StepKind::ExpectServicesActive { on, within }
            }
            "zookeeper-ids" => {
                self.runs_zookeeper(expect)?;
                accepted.push("ids");
                let ids = self.zookeeper_ids(t)?;
                StepKind::ExpectZookeeperIds { ids, within }
            }
            "zookeeper-data" => {
                self.runs_zookeeper(expect)?;
                accepted.extend(["path", "data"]);
                let (path, data) = self.znode(t)?;
                StepKind::ExpectZookeeperData { path, data, within }
            }
            e if recovery::EXPECTATIONS.contains(&e) => {
                StepKind::Recovery(self.recovery_expectation(t, expect, within, accepted)?)
            }
            _ => {
                let mut err = self.source.error(
                    expect.span.clone(),
                    format!("unknown expectation `{}`", expect.value),
                );
                err = match closest(&expect.value, &all_expectations()) {
                    Some(c) => err.with_help(format!(
                        "did you mean `{c}`? expectations: {}",
                        all_expectations().join(", ")
                    )),
                    None => {
                        err.with_help(format!("expectations: {}", all_expectations().join(", ")))
                    }
                };
                return Err(err);
            }
        };
        Ok(kind)
    }

    fn via(&self, t: &mut TableReader<'_, '_>, service: ServiceKind) -> Result<Via, InputError> {
        let Some(v) = t.opt_str("via")? else {
            return Ok(Via::Both);
        };
        let via =
            match v.value.as_str() {
                "http" => Via::Http,
                "znode" => Via::Znode,
                "both" => Via::Both,
                other => return Err(self
                    .source
                    .error(v.span, format!("unknown `via` `{other}`"))
                    .with_help(
                        "http (the services' endpoints), znode (ZooKeeper's election znodes), both",
                    )),
            };
        if !matches!(service, ServiceKind::MesosMaster | ServiceKind::Marathon) {
            return Err(self.source.error(
                v.span,
                format!("`via` applies to mesos-master and marathon, not {service}"),
            ));
        }
        Ok(via)
    }

    fn check(
        &self,
        index: usize,
        mut t: TableReader<'_, '_>,
        steps: &[Step],
    ) -> Result<Check, InputError> {
        let target = t.str("availability")?;
        let known: Vec<&str> = AVAILABILITY_TARGETS.iter().map(|(n, _)| *n).collect();
        let Some((_, needs)) = AVAILABILITY_TARGETS
            .iter()
            .find(|(n, _)| *n == target.value)
        else {
            return Err(self
                .source
                .error(
                    target.span,
                    format!("unknown availability target `{}`", target.value),
                )
                .with_help(format!("targets: {}", known.join(", "))));
        };
        if self.topology.nodes_running(*needs).is_empty()
            || self.topology.nodes_running(ServiceKind::Ingress).is_empty()
        {
            return Err(self.source.error(
                target.span,
                format!("availability of `{}` is probed through the border's ingress, and this topology has no {} behind an ingress", target.value, needs),
            ));
        }
        let step_ref =
            |t: &mut TableReader<'_, '_>, key: &str| -> Result<Option<String>, InputError> {
                let Some(v) = t.opt_str(key)? else {
                    return Ok(None);
                };
                if steps.iter().any(|s| s.name == v.value) {
                    Ok(Some(v.value))
                } else {
                    Err(self
                        .source
                        .error(v.span, format!("`{key}` names no step: \"{}\"", v.value))
                        .with_help("name a step by its `name`"))
                }
            };
        let from = step_ref(&mut t, "from")?;
        let to = step_ref(&mut t, "to")?;
        let min_ratio = match t.value_span("min_ratio") {
            None => 1.0,
            Some(span) => {
                let text = &self.source.text[span.clone()];
                match text.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => {
                        t.has("min_ratio");
                        r
                    }
                    _ => return Err(self.source.error(
                        span,
                        "`min_ratio` must be a number from 0 to 1 (1.0: every request succeeds)",
                    )),
                }
            }
        };
        let max_outage = match t.opt_str("max_outage")? {
            None => Duration::ZERO,
            Some(v)
                if v.value.trim() == "0" || v.value.trim() == "0s" || v.value.trim() == "0ms" =>
            {
                Duration::ZERO
            }
            Some(v) => humantime::parse_duration(v.value.trim()).map_err(|e| {
                self.source
                    .error(v.span, format!("`max_outage` is not a duration: {e}"))
                    .with_help("write a duration such as \"0s\", \"500ms\" or \"2s\"")
            })?,
        };
        let min_samples = match t.opt_u64("min_samples")? {
            None => DEFAULT_MIN_SAMPLES,
            Some(n) if n.value >= 1 => n.value as usize,
            Some(n) => {
                return Err(self
                    .source
                    .error(n.span, "`min_samples` must be at least 1")
                    .with_help(format!(
                    "the default is {DEFAULT_MIN_SAMPLES}: fewer samples make the check `unknown`"
                )))
            }
        };
        let name = t
            .opt_str("name")?
            .map(|n| n.value)
            .unwrap_or_else(|| format!("check {}: {} availability", index + 1, target.value));
        t.finish(&[
            "name",
            "availability",
            "from",
            "to",
            "min_ratio",
            "max_outage",
            "min_samples",
        ])?;
        Ok(Check {
            name,
            target: target.value,
            from,
            to,
            min_ratio,
            max_outage,
            min_samples,
        })
    }

    fn zookeeper_action(
        &mut self,
        t: &mut TableReader<'_, '_>,
        action: &Located<String>,
        accepted: &mut Vec<&'static str>,
    ) -> Result<StepKind, InputError> {
        self.runs_zookeeper(action)?;
        let restart_within = |t: &mut TableReader<'_, '_>| {
            t.opt_duration("within")
                .map(|d| d.map(|d| d.value).unwrap_or(DEFAULT_RESTART_WITHIN))
        };
        Ok(match action.value.as_str() {
            "zookeeper-discover-ids" => {
                self.discovered = true;
                StepKind::ZookeeperDiscoverIds
            }
            "zookeeper-static-ensemble" => {
                accepted.extend(["ids", "order", "within"]);
                let ids = self.zookeeper_ids(t)?;
                let order = self.node_list(t, "order")?;
                let within = restart_within(t)?;
                StepKind::ZookeeperStaticEnsemble { ids, order, within }
            }
            "zookeeper-renumber" => {
                accepted.push("within");
                StepKind::ZookeeperRenumber {
                    within: restart_within(t)?,
                }
            }
            _ => {
                accepted.extend(["path", "data"]);
                let (path, data) = self.znode(t)?;
                StepKind::ZookeeperWrite { path, data }
            }
        })
    }

    fn runs_zookeeper(&self, what: &Located<String>) -> Result<(), InputError> {
        if self
            .topology
            .nodes_running(ServiceKind::Zookeeper)
            .is_empty()
        {
            return Err(self.source.error(
                what.span.clone(),
                format!(
                    "`{}` needs zookeeper, and no node of topology `{}` runs it",
                    what.value,
                    self.topology.file.display()
                ),
            ));
        }
        Ok(())
    }

    fn zookeeper_ids(&self, t: &mut TableReader<'_, '_>) -> Result<ZookeeperIds, InputError> {
        let ids = t.str("ids")?;
        match ids.value.as_str() {
            "upgrade" => Ok(ZookeeperIds::Upgrade),
            "discovered" if self.discovered => Ok(ZookeeperIds::Discovered),
            "discovered" => Err(self
                .source
                .error(ids.span, "no earlier step discovered the ZooKeeper ids")
                .with_help("add a `zookeeper-discover-ids` step before this one")),
            _ => Err(self
                .source
                .error(ids.span, format!("unknown ids `{}`", ids.value))
                .with_help("ids: discovered (read from the running servers by `zookeeper-discover-ids`), upgrade (addresses sorted as strings, numbered from 1)")),
        }
    }

    fn znode(&self, t: &mut TableReader<'_, '_>) -> Result<(String, String), InputError> {
        let path = t.str("path")?;
        let valid = path.value.starts_with('/')
            && path.value.len() > 1
            && !path.value.ends_with('/')
            && !path.value.contains("//");
        if !valid {
            return Err(self
                .source
                .error(path.span, format!("`{}` is not a znode path", path.value))
                .with_help("an absolute path such as \"/succession/before-migration\""));
        }
        let data = t.str("data")?;
        Ok((path.value, data.value))
    }

    fn service(&self, t: &mut TableReader<'_, '_>) -> Result<ServiceKind, InputError> {
        let s = t.str("service")?;
        let kind = ServiceKind::parse(&s.value).ok_or_else(|| {
            self.source
                .error(s.span.clone(), format!("unknown service `{}`", s.value))
                .with_help(format!(
                    "known services: {}",
                    ServiceKind::names().join(", ")
                ))
        })?;
        if self.topology.nodes_running(kind).is_empty() {
            return Err(self.source.error(
                s.span,
                format!(
                    "no node of topology `{}` runs {kind}",
                    self.topology.file.display()
                ),
            ));
        }
        Ok(kind)
    }

    fn leader_service(&self, t: &mut TableReader<'_, '_>) -> Result<ServiceKind, InputError> {
        let span = t.value_span("service");
        let kind = self.service(t)?;
        if !kind.elects_leader() {
            return Err(self
                .source
                .error(span.unwrap_or(t.span()), format!("{kind} elects no leader")));
        }
        Ok(kind)
    }

    fn binding(
        &mut self,
        t: &mut TableReader<'_, '_>,
        key: &str,
    ) -> Result<Option<String>, InputError> {
        let Some(b) = t.opt_str(key)? else {
            return Ok(None);
        };
        let name = b.value.trim_start_matches('$');
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(self
                .source
                .error(b.span, format!("`{key}` \"{}\" is not a name", b.value))
                .with_help("use letters, digits, '_' and '-', e.g. \"old_leader\""));
        }
        self.bound.insert(name.to_string());
        Ok(Some(name.to_string()))
    }

    fn node_ref(&self, v: &Located<String>) -> Result<NodeRef, InputError> {
        if let Some(name) = v.value.strip_prefix('$') {
            if !self.bound.contains(name) {
                let mut err = self.source.error(
                    v.span.clone(),
                    format!("`${name}` is not bound by any earlier step"),
                );
                let known: Vec<&str> = self.bound.iter().map(String::as_str).collect();
                err = if known.is_empty() {
                    err.with_help(
                        "bind a name first, e.g. a `find-leader` step with `bind = \"leader\"`",
                    )
                } else {
                    err.with_help(format!(
                        "bound so far: {}",
                        known
                            .iter()
                            .map(|k| format!("${k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                };
                return Err(err);
            }
            return Ok(NodeRef::Bound(name.to_string()));
        }
        match self.topology.node(&v.value) {
            Some(n) => Ok(NodeRef::Node(n.fqdn)),
            None => Err(self
                .source
                .error(v.span.clone(), format!("unknown node `{}`", v.value))
                .with_help(format!(
                    "nodes of this topology: {}",
                    self.topology.short_names().join(", ")
                ))),
        }
    }

    /// A node that must run `service`: a node of a role that runs it, or a binding to a leader
    /// of a service whose every node runs it too.
    fn node_running(
        &self,
        t: &mut TableReader<'_, '_>,
        key: &str,
        service: ServiceKind,
    ) -> Result<NodeRef, InputError> {
        let v = t.str(key)?;
        let node = self.node_ref(&v)?;
        self.check_runs(&node, &v, service)?;
        Ok(node)
    }

    fn opt_node_running(
        &self,
        t: &mut TableReader<'_, '_>,
        key: &str,
        service: ServiceKind,
    ) -> Result<Option<NodeRef>, InputError> {
        let Some(v) = t.opt_str(key)? else {
            return Ok(None);
        };
        let node = self.node_ref(&v)?;
        self.check_runs(&node, &v, service)?;
        Ok(Some(node))
    }

    fn check_runs(
        &self,
        node: &NodeRef,
        at: &Located<String>,
        service: ServiceKind,
    ) -> Result<(), InputError> {
        let running: Vec<String> = self
            .topology
            .nodes_running(service)
            .into_iter()
            .map(|n| n.fqdn)
            .collect();
        let runs_it = |fqdn: &str| running.iter().any(|r| r == fqdn);
        let short = |fqdn: &str| fqdn.split('.').next().unwrap_or(fqdn).to_string();
        let help = || {
            format!(
                "nodes that run {service}: {}",
                running
                    .iter()
                    .map(|n| short(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match node {
            NodeRef::Node(fqdn) if !runs_it(fqdn) => {
                let role = self.topology.node(fqdn).map(|n| n.role).unwrap_or_default();
                Err(self
                    .source
                    .error(
                        at.span.clone(),
                        format!(
                            "{} does not run {service}: role `{role}` runs {}",
                            short(fqdn),
                            self.topology
                                .role(&role)
                                .map(|r| {
                                    if r.services.is_empty() {
                                        "nothing".to_string()
                                    } else {
                                        r.services
                                            .iter()
                                            .map(|s| s.to_string())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    }
                                })
                                .unwrap_or_else(|| "nothing".into())
                        ),
                    )
                    .with_help(help()))
            }
            NodeRef::Bound(name) => match self.bound_service.get(name) {
                Some(leader_of) if *leader_of != service => {
                    let outside: Vec<String> = self
                        .topology
                        .nodes_running(*leader_of)
                        .into_iter()
                        .filter(|n| !runs_it(&n.fqdn))
                        .map(|n| short(&n.fqdn))
                        .collect();
                    if outside.is_empty() {
                        Ok(())
                    } else {
                        Err(self
                            .source
                            .error(
                                at.span.clone(),
                                format!(
                                    "`${name}` is the {leader_of} leader, one of {}, and {service} does not run there",
                                    outside.join(", ")
                                ),
                            )
                            .with_help(help()))
                    }
                }
                _ => Ok(()),
            },
            NodeRef::Node(_) => Ok(()),
        }
    }

    fn node(&self, t: &mut TableReader<'_, '_>, key: &str) -> Result<NodeRef, InputError> {
        let v = t.str(key)?;
        self.node_ref(&v)
    }

    fn node_list(
        &self,
        t: &mut TableReader<'_, '_>,
        key: &str,
    ) -> Result<Vec<NodeRef>, InputError> {
        t.opt_str_list(key)?
            .map(|l| l.value)
            .unwrap_or_default()
            .iter()
            .map(|v| self.node_ref(v))
            .collect()
    }

    fn role(&self, r: &Located<String>) -> Result<String, InputError> {
        match self.topology.role(&r.value) {
            Some(role) => Ok(role.name.clone()),
            None => Err(self
                .source
                .error(r.span.clone(), format!("unknown role `{}`", r.value))
                .with_help(format!(
                    "roles of this topology: {}",
                    self.topology
                        .roles
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
        }
    }

    fn target(&self, t: &mut TableReader<'_, '_>, key: &str) -> Result<Target, InputError> {
        let v = t.str(key)?;
        if !v.value.starts_with('$') && self.topology.role(&v.value).is_some() {
            return Ok(Target::Role(v.value));
        }
        self.node_ref(&v).map(Target::Node).map_err(|e| {
            e.with_help(format!(
                "a node ({}) or a role ({})",
                self.topology.short_names().join(", "),
                self.topology
                    .roles
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

fn default_name(kind: &StepKind) -> String {
    let node = |n: &NodeRef| match n {
        NodeRef::Node(f) => f.split('.').next().unwrap_or(f).to_string(),
        NodeRef::Bound(b) => format!("${b}"),
    };
    match kind {
        StepKind::FindLeader { service, bind } => format!("find the {service} leader as ${bind}"),
        StepKind::MoveLeader { service, goal, .. } => match goal {
            LeaderGoal::To(to) => format!("move {service} leadership to {}", node(to)),
            LeaderGoal::AwayFrom(away) => {
                format!("move {service} leadership away from {}", node(away))
            }
        },
        StepKind::Terminate { node: n } => format!("terminate {}", node(n)),
        StepKind::ReplaceNode { node: n } => format!("replace {} with a new node", node(n)),
        StepKind::StartService { node: n, service } => format!("start {service} on {}", node(n)),
        StepKind::StopService { node: n, service } => format!("stop {service} on {}", node(n)),
        StepKind::RestartService { node: n, service } => {
            format!("restart {service} on {}", node(n))
        }
        StepKind::PurgeNeighbours { node: n } => format!("purge neighbour entries of {}", node(n)),
        StepKind::EtcdMemberRemove { node: n } => format!("etcd member remove {}", node(n)),
        StepKind::EtcdMemberAdd { node: n } => format!("etcd member add {}", node(n)),
        StepKind::Exec { command, .. } => format!("exec {}", command.join(" ")),
        StepKind::ExpectLeader { service, .. } => format!("expect a {service} leader"),
        StepKind::ExpectNoLeader { service, .. } => format!("expect no {service} leader"),
        StepKind::ExpectMembers { service, .. } => format!("expect the {service} members"),
        StepKind::ExpectNeighbours { node: n, .. } => {
            format!("expect neighbour entries of {}", node(n))
        }
        StepKind::ExpectServicesActive { .. } => "expect services active".to_string(),
        StepKind::Recovery(r) => r.default_name(&node),
        StepKind::ZookeeperDiscoverIds => "discover the ZooKeeper ids (conf serverId)".to_string(),
        StepKind::ZookeeperStaticEnsemble { ids, .. } => format!(
            "write the static ensemble with the {} ids and restart one server at a time",
            ids_word(*ids)
        ),
        StepKind::ZookeeperRenumber { .. } => {
            "renumber ZooKeeper to the upgrade's ids, one restart at a time".to_string()
        }
        StepKind::ZookeeperWrite { path, .. } => format!("write {path} to ZooKeeper"),
        StepKind::ExpectZookeeperIds { ids, .. } => {
            format!("expect the {} ZooKeeper ids", ids_word(*ids))
        }
        StepKind::ExpectZookeeperData { path, .. } => {
            format!("expect every ZooKeeper server to return {path}")
        }
    }
}

fn ids_word(ids: ZookeeperIds) -> &'static str {
    match ids {
        ZookeeperIds::Discovered => "discovered",
        ZookeeperIds::Upgrade => "upgrade's",
    }
}
