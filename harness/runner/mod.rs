//! Runs a scenario's steps against a cluster: actions change it, expectations poll probes to a
//! deadline; every outcome is timed and recorded.

mod error;
pub mod monitors;
mod poll;
pub mod serving;
pub mod state;
pub mod waits;

pub use error::{NotReady, StepError, StepResult, Unbound};
pub use monitors::{leader_watch, ledger};
pub use poll::{
    poll_intervals, poll_until, poll_until_held, Held, NotWithin, Poll, Recorder,
    ELECTION_POLL_INTERVAL, POLL_INTERVAL,
};

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::availability::CheckStatus;
use crate::cluster::Cluster;
use crate::cluster_views::Observer;
use crate::provider::Hosts;
use crate::report::{Event, Report, Reporter, StepReport, StepStatus, TimelineKind, Verdict};
use crate::service::ServiceKind;
use crate::spec::{
    AvailabilitySettings, Check, LedgerSpec, NodeRef, NodeSet, Target, WorkloadSettings,
};

/// The name of the check the write ledger adds after the last step.
pub const LEDGER_STEP: &str = monitors::ledger::LEDGER_CHECK;

/// The step that heals the faults still in effect when the steps end.
pub const HEAL_STEP: &str = "heal every fault still in effect";

/// The name of the check that at most one leader led at each term of a service.
pub fn one_leader_per_term_step(service: ServiceKind) -> String {
    monitors::leader_watch::one_leader_per_term_check(service)
}

/// What the run loop needs of a step: its name and flags, and how to carry it out.
// Used through generics, never `dyn`, so the futures' auto traits are known at each use.
#[allow(async_fn_in_trait)]
pub trait RunStep<H: Hosts> {
    /// The name shown in progress output and reports.
    fn name(&self) -> &str;
    /// The phase it begins, if any.
    fn phase(&self) -> Option<&str>;
    /// Whether it fails on purpose once, after acting, to re-run its phase.
    fn interrupt(&self) -> bool;
    /// Whether it is an expectation (polled to a deadline).
    fn is_expectation(&self) -> bool;
    /// Whether it disturbs the cluster (re-election times count from the last one).
    fn is_disruption(&self) -> bool;
    /// Carries it out; Ok says what it found, Err why it failed.
    async fn execute(&self, r: &mut Runner<'_, H>) -> StepResult;
}

/// What a run is made of beside its steps: what the scenario asks of the whole run.
pub struct Plan<'s, S> {
    /// The scenario's name.
    pub name: &'s str,
    /// Its file (the replay line names it).
    pub file: &'s std::path::Path,
    /// Its steps.
    pub steps: &'s [S],
    /// The write ledger, when it runs one.
    pub ledger: Option<&'s LedgerSpec>,
    /// The consistency workload, when it runs one.
    pub workload: Option<&'s WorkloadSettings>,
    /// The availability monitor's settings.
    pub availability: &'s AvailabilitySettings,
    /// Checks over the history.
    pub checks: &'s [Check],
    /// Services whose leaders are watched all along, for "at most one leader per term".
    pub one_leader_per_term: &'s [ServiceKind],
}

/// The state one run carries from step to step.
pub struct Runner<'a, H: Hosts> {
    /// The cluster it acts on.
    pub cluster: &'a mut Cluster<H>,
    /// Probes of the cluster.
    pub observer: Observer,
    /// Names bound by steps (`bind = "leader"`), to full node names.
    pub bindings: BTreeMap<String, String>,
    /// When the last disruption began (re-election times count from it).
    pub last_disruption: Option<Instant>,
    /// When each step started, by name (measurements can count from one).
    pub step_started: BTreeMap<String, Instant>,
    /// The timeline and measurements.
    pub rec: Recorder,
    /// What watches the cluster beside the steps (the ledger, which steps talk to, is apart).
    monitors: Vec<Box<dyn monitors::RunMonitor<H> + 'a>>,
    reporter: &'a dyn Reporter,
    /// The write ledger, when the scenario runs one.
    pub ledger: ledger::Ledger,
    /// What steps carry from step to step.
    pub state: state::StepState,
    /// What the consistency workload recorded, once it has stopped.
    pub workload_history: Option<crate::workload::WorkloadHistory>,
}

/// The result of waiting for readiness.
pub struct Readiness {
    /// Per service, when it became ready (ms after `since`).
    pub ready_ms: BTreeMap<String, u64>,
}

impl<'a, H: Hosts> Runner<'a, H> {
    /// A runner over a provisioned cluster.
    pub fn new(cluster: &'a mut Cluster<H>, reporter: &'a dyn Reporter) -> Self {
        Self {
            cluster,
            observer: Observer::default(),
            bindings: BTreeMap::new(),
            last_disruption: None,
            step_started: BTreeMap::new(),
            rec: Recorder::new(),
            monitors: Vec::new(),
            reporter,
            ledger: ledger::Ledger::default(),
            state: state::StepState::default(),
            workload_history: None,
        }
    }

    /// Waits until every service of the topology has one agreed leader and a full, started
    /// member list; returns when each became ready.
    pub async fn wait_ready(
        &mut self,
        since: Instant,
        deadline: Duration,
    ) -> Result<Readiness, NotReady> {
        let mut pending: Vec<ServiceKind> = ServiceKind::ALL
            .iter()
            .copied()
            .filter(|k| !self.cluster.topology().nodes_running(*k).is_empty())
            .collect();
        let mut ready_ms = BTreeMap::new();
        let mut last_problem = BTreeMap::new();
        let end = since + deadline;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for service in pending {
                match waits::service_healthy(&self.observer, &*self.cluster, service).await {
                    Ok(()) => {
                        let ms = since.elapsed().as_millis() as u64;
                        self.note(format!(
                            "{service} ready after {}",
                            crate::base::time::human_ms(ms)
                        ));
                        ready_ms.insert(service.name().to_string(), ms);
                    }
                    Err(e) => {
                        last_problem.insert(service, e);
                        still.push(service);
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= end {
                let problems: Vec<String> = pending
                    .iter()
                    .map(|s| {
                        format!(
                            "{s}: {}",
                            last_problem
                                .get(s)
                                .map(|p: &waits::Unhealthy| p.to_string())
                                .unwrap_or_else(|| "not checked".to_string())
                        )
                    })
                    .collect();
                return Err(NotReady { deadline, problems });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(Readiness { ready_ms })
    }

    /// Runs every step; stops at the first failure and marks the rest skipped. Step reports
    /// accumulate as they end, so an interrupted run still reports what it did. A step with
    /// `interrupt` fails on purpose once, after acting, and its phase runs again from its first
    /// step. With a `[ledger]`, the ledger writes throughout and is judged at the end.
    pub async fn run<S: RunStep<H>>(&mut self, plan: &Plan<'_, S>) -> Verdict {
        self.rec = Recorder::new();
        self.start_monitors(plan);
        if let Some(settings) = plan.workload {
            let monitor = monitors::workload::WorkloadMonitor::start(
                settings,
                plan.name,
                &*self.cluster,
                &mut self.rec,
            )
            .await;
            self.monitors.push(Box::new(monitor));
        }
        let mut total = plan.steps.len()
            + self.monitors.iter().map(|m| m.checks()).sum::<usize>()
            + monitors::RunMonitor::<H>::checks(&self.ledger);
        let mut failed = self.run_steps(plan, total).await;
        let mut index = plan.steps.len();
        if !self.state.faults.is_empty() {
            // Whatever failed, no fault outlives the steps: the ledger's read-back and the
            // checks judge a healed cluster, and a heal that does not take is itself a failure.
            index += 1;
            total += 1;
            failed |= self.heal_what_remains(index, total).await;
        }
        failed |= self.stop_monitors(failed, &mut index, total).await;
        if failed {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }

    /// Starts the monitors the plan asks for: the availability monitor when there is a border,
    /// the leader watch, the write ledger.
    fn start_monitors<S>(&mut self, plan: &Plan<'_, S>) {
        let targets = monitors::availability::targets(&*self.cluster);
        if !targets.is_empty() {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            self.note(format!(
                "probing {} through the border every {}",
                names.join(", "),
                crate::base::time::human_ms(plan.availability.interval.as_millis() as u64)
            ));
            self.monitors.push(Box::new(
                monitors::availability::AvailabilityMonitor::start(
                    targets,
                    plan.availability.interval,
                    plan.availability.timeout,
                    self.rec.origin,
                ),
            ));
        }
        if !plan.one_leader_per_term.is_empty() {
            self.monitors
                .push(Box::new(monitors::leader_watch::LeaderWatch::start(
                    &*self.cluster,
                    plan.one_leader_per_term,
                    self.rec.origin,
                )));
        }
        if let Some(spec) = plan.ledger {
            self.ledger
                .start_ledger(spec, plan.name, &*self.cluster, &mut self.rec);
        }
    }

    /// Runs the steps in order; stops at the first failure and reports the rest skipped. A step
    /// with `interrupt` fails on purpose once, after acting, and its phase runs again from its
    /// first step. True when a step failed.
    async fn run_steps<S: RunStep<H>>(&mut self, plan: &Plan<'_, S>, total: usize) -> bool {
        let mut failed = false;
        let mut interrupted: BTreeSet<usize> = BTreeSet::new();
        let mut phase_start: Option<usize> = None;
        let mut i = 0;
        while i < plan.steps.len() {
            let step = &plan.steps[i];
            if let Some(phase) = step.phase() {
                phase_start = Some(i);
                let at = self.rec.elapsed_ms();
                self.ledger.set_phase(phase, at);
                self.rec
                    .mark(TimelineKind::Phase, format!("phase `{phase}` begins"));
            }
            let started = Instant::now();
            let started_ms = self.rec.elapsed_ms();
            self.rec.mark(
                TimelineKind::Step,
                format!("step {}: {}", i + 1, step.name()),
            );
            self.step_started
                .insert(step.name().to_string(), Instant::now());
            if step.is_disruption() {
                self.last_disruption = Some(Instant::now());
            }
            self.ledger.step = step.name().to_string();
            let result = step.execute(self).await;
            self.ledger.refresh(&*self.cluster);
            let mut next = i + 1;
            let (status, detail) = match result.map_err(|e| e.to_string()) {
                Ok(detail) if step.interrupt() && interrupted.insert(i) => {
                    let from = phase_start.unwrap_or(0);
                    next = from;
                    let phase = plan.steps[from].phase().unwrap_or_default().to_string();
                    self.rec.mark(TimelineKind::Phase, format!(
                        "interrupted on purpose after step {}; phase `{phase}` runs again from step {}",
                        i + 1,
                        from + 1
                    ));
                    (
                        StepStatus::Interrupted,
                        format!(
                            "{detail}; interrupted on purpose: phase `{phase}` runs again from step {}",
                            from + 1
                        ),
                    )
                }
                Ok(detail) => (StepStatus::Passed, detail),
                Err(detail) => {
                    failed = true;
                    (StepStatus::Failed, detail)
                }
            };
            self.push_step(i + 1, step, status, started_ms, started, detail, total);
            if failed {
                break;
            }
            i = next;
        }
        if failed {
            for (j, step) in plan.steps.iter().enumerate().skip(i + 1) {
                let at = self.rec.elapsed_ms();
                self.push_step(
                    j + 1,
                    step,
                    StepStatus::Skipped,
                    at,
                    Instant::now(),
                    String::new(),
                    total,
                );
            }
        }
        failed
    }

    /// Heals every fault still in effect, as one more step; true when a heal failed.
    async fn heal_what_remains(&mut self, index: usize, total: usize) -> bool {
        let started = Instant::now();
        let started_ms = self.rec.elapsed_ms();
        let (status, detail) = match self.state.faults.heal_all(&mut *self.cluster).await {
            Ok(healed) => (StepStatus::Passed, format!("healed: {}", healed.join("; "))),
            Err(e) => (StepStatus::Failed, e.to_string()),
        };
        self.rec.record(format!("{HEAL_STEP}: {detail}"));
        let step = StepReport {
            index,
            name: HEAL_STEP.to_string(),
            kind: "action".to_string(),
            status,
            started_ms,
            elapsed_ms: started.elapsed().as_millis() as u64,
            detail,
        };
        self.emit(Event::StepFinished { step, total });
        status == StepStatus::Failed
    }

    /// Stops every monitor — the judging ones in the order they started, the ledger, then the
    /// sampling ones — and adds what each found to the run; true when a check failed.
    async fn stop_monitors(&mut self, run_failed: bool, index: &mut usize, total: usize) -> bool {
        let mut failed = false;
        let mut monitors = std::mem::take(&mut self.monitors);
        monitors.sort_by_key(|m| m.stage());
        let (judges, samplers): (Vec<_>, Vec<_>) = monitors
            .into_iter()
            .partition(|m| m.stage() == monitors::Stage::Judge);
        let mut ledger = std::mem::take(&mut self.ledger);
        let order = judges
            .into_iter()
            .map(Some)
            .chain(std::iter::once(None))
            .chain(samplers.into_iter().map(Some));
        for mut monitor in order {
            let cx = monitors::StopContext {
                cluster: &*self.cluster,
                observer: &self.observer,
                rec: &mut self.rec,
                run_failed,
            };
            let started_ms = cx.rec.elapsed_ms();
            let findings = match monitor.as_mut() {
                Some(m) => m.stop(cx).await,
                None => monitors::RunMonitor::<H>::stop(&mut ledger, cx).await,
            };
            for finding in findings {
                match finding {
                    monitors::Finding::Check(check) => {
                        *index += 1;
                        failed |= !check.passed;
                        let step = StepReport {
                            index: *index,
                            name: check.name,
                            kind: "check".to_string(),
                            status: if check.passed {
                                StepStatus::Passed
                            } else {
                                StepStatus::Failed
                            },
                            started_ms,
                            elapsed_ms: check.elapsed_ms,
                            detail: check.detail,
                        };
                        self.emit(Event::StepFinished { step, total });
                    }
                    monitors::Finding::Samples(samples) => self.emit(Event::Samples(samples)),
                    monitors::Finding::Ledger(verdict) => self.emit(Event::Ledger(verdict)),
                    monitors::Finding::Consistency { verdict, history } => {
                        failed |= verdict.status() == crate::workload::CheckerStatus::Fail;
                        self.workload_history = history.map(|h| *h);
                        self.emit(Event::Consistency(verdict));
                    }
                }
            }
        }
        self.ledger = ledger;
        failed
    }

    #[allow(clippy::too_many_arguments)]
    fn push_step<S: RunStep<H>>(
        &mut self,
        index: usize,
        step: &S,
        status: StepStatus,
        started_ms: u64,
        started: Instant,
        detail: String,
        total: usize,
    ) {
        let elapsed_ms = if status == StepStatus::Skipped {
            0
        } else {
            started.elapsed().as_millis() as u64
        };
        let step = StepReport::of(
            index,
            step.name(),
            step.is_expectation(),
            status,
            started_ms,
            elapsed_ms,
            detail,
        );
        self.emit(Event::StepFinished { step, total });
    }

    /// Adds an event to the run's fold and shows it, with any the recorder holds, to the
    /// reporter.
    fn emit(&mut self, event: Event) {
        self.rec.emit(event);
        for e in std::mem::take(&mut self.rec.pending) {
            self.reporter.event(&e);
        }
    }

    /// A line of progress.
    fn note(&self, line: String) {
        self.reporter.event(&Event::Note(line));
    }

    /// The ledger's history, once `report` has been made (`None` without a `[ledger]`); for
    /// a run that ended early it holds what was recorded so far.
    pub fn take_ledger_history(&mut self) -> Option<crate::ledger::History> {
        self.ledger
            .history
            .take()
            .or_else(|| self.ledger.history_so_far())
    }

    /// The report of what ran; steps that never started are listed as skipped.
    pub async fn report<S: RunStep<H>>(
        &mut self,
        plan: &Plan<'_, S>,
        seed: u64,
        verdict: Verdict,
    ) -> Report {
        let reported: BTreeSet<usize> = self.rec.fold.steps.iter().map(|s| s.index).collect();
        let total = plan.steps.len();
        for (i, step) in plan
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| !reported.contains(&(i + 1)))
        {
            let step = StepReport::of(
                i + 1,
                step.name(),
                step.is_expectation(),
                StepStatus::Skipped,
                self.rec.elapsed_ms(),
                0,
                String::new(),
            );
            self.emit(Event::StepFinished { step, total });
        }
        let duration_ms = self.rec.elapsed_ms();
        let checks: Vec<crate::availability::CheckReport> = plan
            .checks
            .iter()
            .map(|c| {
                crate::availability::evaluate(
                    c,
                    &self.rec.fold.samples,
                    crate::report::check_window(c, &self.rec.fold.steps, duration_ms),
                    plan.availability.interval,
                )
            })
            .collect();
        for check in checks {
            self.emit(Event::Check(check));
        }
        // The report is what the run's events add up to.
        let fold = std::mem::take(&mut self.rec.fold);
        let mut targets: Vec<&String> = fold.samples.iter().map(|s| &s.target).collect();
        targets.sort();
        targets.dedup();
        let availability = targets
            .into_iter()
            .map(|t| {
                (
                    t.clone(),
                    crate::availability::summarize(&fold.samples, t, 0, duration_ms),
                )
            })
            .collect();
        let verdict = fold.checks.iter().fold(verdict, |v, c| {
            v.merge(match c.status {
                CheckStatus::Passed => Verdict::Pass,
                CheckStatus::Failed => Verdict::Fail,
                CheckStatus::Unknown => Verdict::Unknown,
            })
        });
        let verdict = fold
            .consistency
            .iter()
            .fold(verdict, |v, c| v.merge(c.status().into()));
        Report {
            verdict,
            scenario: plan.name.to_string(),
            scenario_file: plan.file.display().to_string(),
            provider: self.cluster.provider().to_string(),
            run_id: self.cluster.run_id().to_string(),
            seed,
            replay: format!("succession run {} --seed {seed}", plan.file.display()),
            started_at: String::new(),
            provision_ms: 0,
            ready_ms: BTreeMap::new(),
            steps: fold.steps,
            measurements: fold.measurements,
            measurement_resolution_ms: fold.resolutions,
            poll_intervals_ms: poll_intervals(),
            timeline: fold.timeline,
            duration_ms,
            error: None,
            ledger: fold.ledger,
            consistency: fold.consistency,
            availability,
            checks: fold.checks,
            samples: fold.samples,
            explored: None,
        }
    }

    /// Splits the runner for a poll: the cluster and probes to read, the recorder to write.
    pub fn split(&mut self) -> (&Cluster<H>, &Observer, &mut Recorder) {
        (&*self.cluster, &self.observer, &mut self.rec)
    }

    pub fn resolve(&self, node: &NodeRef) -> Result<String, Unbound> {
        match node {
            NodeRef::Node(fqdn) => Ok(fqdn.clone()),
            NodeRef::Bound(name) => self
                .bindings
                .get(name)
                .cloned()
                .ok_or_else(|| Unbound(name.clone())),
        }
    }
}

/// The name of the serving figure that goes with an election measurement.
pub fn serving_measure(measure: &str) -> String {
    format!("{measure} (serving)")
}

/// The nodes a target names: one node, or every live node of a role.
pub fn target_nodes<H: Hosts>(r: &Runner<'_, H>, on: &Target) -> Result<Vec<String>, Unbound> {
    match on {
        Target::Node(n) => Ok(vec![r.resolve(n)?]),
        Target::Role(role) => Ok(r
            .cluster
            .nodes()
            .into_iter()
            .filter(|n| &n.role == role && n.alive)
            .map(|n| n.fqdn)
            .collect()),
    }
}

/// The nodes a node set names.
pub fn resolve_set<H: Hosts>(
    r: &Runner<'_, H>,
    set: &NodeSet,
) -> Result<BTreeSet<String>, Unbound> {
    let mut out = BTreeSet::new();
    for n in &set.nodes {
        out.insert(r.resolve(n)?);
    }
    if let Some(role) = &set.role {
        out.extend(
            r.cluster
                .nodes()
                .into_iter()
                .filter(|n| &n.role == role)
                .map(|n| n.fqdn),
        );
    }
    for n in &set.except {
        out.remove(&r.resolve(n)?);
    }
    Ok(out)
}

/// Short name for messages.
pub(crate) use crate::base::names::short as name;
