//! Scenario files: a topology, then named steps — actions on nodes and services, and
//! expectations polled to a deadline — and checks over the run's history. Steps are read through
//! the step registry (`steps`); each becomes something the runner can run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::provider::Hosts;
use crate::runner::{Plan, RunStep, Runner, StepResult};
use crate::service::ServiceKind;
use crate::source::{InputError, SourceFile};
use crate::spec::capability::{refuse_unmet, Capability, Need};
use crate::spec::context::Validator;
use crate::spec::reader::{parse_document, Located, TableReader};
use crate::spec::{
    parse_ledger, parse_workload, AvailabilitySettings, Check, LedgerSpec, Topology,
    WorkloadSettings, AVAILABILITY_TARGETS, DEFAULT_MIN_SAMPLES,
};
use crate::steps::{self, StepKind};

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
    /// The consistency workload, when the scenario runs one (`[workload]`).
    pub workload: Option<WorkloadSettings>,
    /// The availability monitor's settings.
    pub availability: AvailabilitySettings,
    /// Checks over the history, evaluated after the steps.
    pub checks: Vec<Check>,
    /// Services whose leaders are watched all run long: at most one leader per term
    /// (`one_leader_per_term = ["etcd", "zookeeper"]`).
    pub one_leader_per_term: Vec<ServiceKind>,
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
    /// Whether it is an expectation (polled to a deadline).
    pub expectation: bool,
    /// Whether it disturbs the cluster (re-election times count from the last one).
    pub disruption: bool,
    /// What it needs of its provider, each with where the file asks for it.
    #[serde(skip)]
    pub needs: Vec<Need>,
}

impl<H: Hosts> RunStep<H> for Step {
    fn name(&self) -> &str {
        &self.name
    }

    fn phase(&self) -> Option<&str> {
        self.phase.as_deref()
    }

    fn interrupt(&self) -> bool {
        self.interrupt
    }

    fn is_expectation(&self) -> bool {
        self.expectation
    }

    fn is_disruption(&self) -> bool {
        self.disruption
    }

    async fn execute(&self, r: &mut Runner<'_, H>) -> StepResult {
        self.kind.execute(r).await
    }
}

impl Scenario {
    /// What the runner runs: the steps and what the scenario asks of the whole run.
    pub fn plan(&self) -> Plan<'_, Step> {
        Plan {
            name: &self.name,
            file: &self.file,
            steps: &self.steps,
            ledger: self.ledger.as_ref(),
            workload: self.workload.as_ref(),
            availability: &self.availability,
            checks: &self.checks,
            one_leader_per_term: &self.one_leader_per_term,
        }
    }

    /// Refuses a provider without what the steps need, naming the first step that needs more
    /// (file, line and column).
    pub fn refuse_unmet(&self, provider: &str, has: &[Capability]) -> Result<(), InputError> {
        let needs: Vec<Need> = self.steps.iter().flat_map(|s| s.needs.clone()).collect();
        refuse_unmet(&needs, provider, has)?;
        let on_faulty_disk = &self.topology.settings.faulty_disk;
        if !on_faulty_disk.is_empty() && !has.contains(&Capability::FaultyDisk) {
            let services: Vec<&str> = on_faulty_disk.iter().map(|s| s.name()).collect();
            let mut error = InputError::about_file(
                &self.topology.file,
                format!(
                    "the topology puts the data of {} on the faulty disk (`faulty_disk = true`), which the {provider} provider does not offer",
                    services.join(", ")
                ),
            );
            error.help = Some("run it on the local or the containers provider".to_string());
            return Err(error);
        }
        Ok(())
    }

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
            .map(|t| parse_ledger(source, t.named("`[ledger]`")))
            .transpose()?;
        let workload_table = top.opt_table("workload")?;
        let check_tables = top.opt_tables("check", |i| format!("check {}", i + 1))?;
        let term_watch = top.opt_str_list("one_leader_per_term")?;
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
            "workload",
            "one_leader_per_term",
        ])?;
        let topology = load_topology(&topology_ref)?;
        let workload = workload_table
            .map(|t| {
                parse_workload(
                    source,
                    t.named("`[workload]`"),
                    topology.nodes_running(ServiceKind::Etcd).len(),
                    topology.nodes_running(ServiceKind::Zookeeper).len(),
                )
            })
            .transpose()?;
        let one_leader_per_term = match term_watch {
            None => Vec::new(),
            Some(list) => term_services(source, &topology, &list)?,
        };
        if step_tables.is_empty() {
            return Err(source.error(
                doc.span().start..doc.span().start,
                "the scenario has no `[[step]]`",
            ));
        }
        let mut cx = Validator::new(source, &topology, ledger.is_some());
        let mut steps = Vec::new();
        for (i, table) in step_tables.into_iter().enumerate() {
            steps.push(step(&mut cx, i, table)?);
        }
        let mut checks = Vec::new();
        for (i, table) in check_tables.into_iter().enumerate() {
            checks.push(check(&cx, i, table, &steps)?);
        }
        Ok(Self {
            file: source.path.clone(),
            name,
            description,
            topology,
            seed,
            steps,
            ledger,
            workload,
            availability,
            checks,
            one_leader_per_term,
        })
    }
}

/// The services of `one_leader_per_term`: ones with terms, that the topology runs.
fn term_services(
    source: &SourceFile,
    topology: &Topology,
    list: &Located<Vec<Located<String>>>,
) -> Result<Vec<ServiceKind>, InputError> {
    let mut services = Vec::new();
    for name in &list.value {
        let service = match ServiceKind::parse(&name.value) {
            Some(s @ (ServiceKind::Etcd | ServiceKind::Zookeeper)) => s,
            _ => {
                return Err(source
                    .error(
                        name.span.clone(),
                        format!("`{}` has no terms to watch", name.value),
                    )
                    .with_help("services with terms: etcd, zookeeper"))
            }
        };
        if topology.nodes_running(service).is_empty() {
            return Err(source.error(
                name.span.clone(),
                format!(
                    "no node of topology `{}` runs {service}",
                    topology.file.display()
                ),
            ));
        }
        if !services.contains(&service) {
            services.push(service);
        }
    }
    Ok(services)
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

fn step<'s>(
    cx: &mut Validator<'s>,
    index: usize,
    mut t: TableReader<'s, 's>,
) -> Result<Step, InputError> {
    let name = t.opt_str("name")?;
    let action = t.opt_str("action")?;
    let expect = t.opt_str("expect")?;
    let (phase, interrupt) = cx.phase_keys(&mut t)?;
    let (kind, row, word) = match (action, expect) {
        (Some(a), None) => {
            let (kind, row) = steps::parse(cx, t, &a, false)?;
            (kind, row, a)
        }
        (None, Some(e)) => {
            let (kind, row) = steps::parse(cx, t, &e, true)?;
            (kind, row, e)
        }
        (Some(a), Some(_)) => {
            return Err(cx
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
                steps::names(false).join(", "),
                steps::names(true).join(", ")
            )))
        }
    };
    let name = name
        .map(|n| n.value)
        .unwrap_or_else(|| format!("step {}: {}", index + 1, kind.default_name()));
    cx.step_names.insert(name.clone());
    let needs = row
        .needs
        .iter()
        .map(|&capability| Need {
            capability,
            step: row.name,
            at: cx.source.error(word.span.clone(), ""),
        })
        .collect();
    Ok(Step {
        name,
        kind,
        needs,
        phase,
        interrupt,
        expectation: row.expectation,
        disruption: row.disrupts,
    })
}

fn check(
    cx: &Validator<'_>,
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
        return Err(cx
            .source
            .error(
                target.span,
                format!("unknown availability target `{}`", target.value),
            )
            .with_help(format!("targets: {}", known.join(", "))));
    };
    if cx.topology.nodes_running(*needs).is_empty()
        || cx.topology.nodes_running(ServiceKind::Ingress).is_empty()
    {
        return Err(cx.source.error(
            target.span,
            format!("availability of `{}` is probed through the border's ingress, and this topology has no {} behind an ingress", target.value, needs),
        ));
    }
    let from = step_ref(cx, &mut t, steps, "from")?;
    let to = step_ref(cx, &mut t, steps, "to")?;
    let min_ratio = min_ratio(cx, &mut t)?;
    let max_outage = max_outage(cx, &mut t)?;
    let min_samples = min_samples(cx, &mut t)?;
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

/// A check's `from`/`to`: the name of one of the scenario's steps.
fn step_ref(
    cx: &Validator<'_>,
    t: &mut TableReader<'_, '_>,
    steps: &[Step],
    key: &str,
) -> Result<Option<String>, InputError> {
    let Some(v) = t.opt_str(key)? else {
        return Ok(None);
    };
    if steps.iter().any(|s| s.name == v.value) {
        Ok(Some(v.value))
    } else {
        Err(cx
            .source
            .error(v.span, format!("`{key}` names no step: \"{}\"", v.value))
            .with_help("name a step by its `name`"))
    }
}

/// `min_ratio`: a number from 0 to 1, written as an integer or a float (1.0 by default).
fn min_ratio(cx: &Validator<'_>, t: &mut TableReader<'_, '_>) -> Result<f64, InputError> {
    let Some(span) = t.value_span("min_ratio") else {
        return Ok(1.0);
    };
    let text = &cx.source.text[span.clone()];
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => {
            t.has("min_ratio");
            Ok(r)
        }
        _ => Err(cx.source.error(
            span,
            "`min_ratio` must be a number from 0 to 1 (1.0: every request succeeds)",
        )),
    }
}

/// `max_outage`: a duration (none allowed by default).
fn max_outage(cx: &Validator<'_>, t: &mut TableReader<'_, '_>) -> Result<Duration, InputError> {
    match t.opt_str("max_outage")? {
        None => Ok(Duration::ZERO),
        Some(v) if v.value.trim() == "0" || v.value.trim() == "0s" || v.value.trim() == "0ms" => {
            Ok(Duration::ZERO)
        }
        Some(v) => humantime::parse_duration(v.value.trim()).map_err(|e| {
            cx.source
                .error(v.span, format!("`max_outage` is not a duration: {e}"))
                .with_help("write a duration such as \"0s\", \"500ms\" or \"2s\"")
        }),
    }
}

/// `min_samples`: at least one.
fn min_samples(cx: &Validator<'_>, t: &mut TableReader<'_, '_>) -> Result<usize, InputError> {
    match t.opt_u64("min_samples")? {
        None => Ok(DEFAULT_MIN_SAMPLES),
        Some(n) if n.value >= 1 => Ok(n.value as usize),
        Some(n) => Err(cx
            .source
            .error(n.span, "`min_samples` must be at least 1")
            .with_help(format!(
                "the default is {DEFAULT_MIN_SAMPLES}: fewer samples make the check `unknown`"
            ))),
    }
}
