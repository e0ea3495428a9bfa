//! Runs a scenario's steps against a cluster: actions change it, expectations poll probes to a
//! deadline; every outcome is timed and recorded.

mod etcd_members;
mod leadership;
mod monitor;
mod neighbours;
mod recovery;
mod serving;
mod steps;
mod zookeeper;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::availability::CheckStatus;
use crate::cluster::Cluster;
use crate::observe::Observer;
use crate::provider::Hosts;
use crate::report::{Report, StepReport, StepStatus, TimelineEntry, Verdict};
use crate::service::ServiceKind;
use crate::spec::{NodeRef, Scenario};

/// The name of the check the write ledger adds after the last step.
pub const LEDGER_STEP: &str = "write ledger: no acknowledged write lost beyond what is tolerated";

/// How often expectations poll their probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How often a wait for a leader polls: an election is measured to within one poll, so this
/// is kept to tens of milliseconds.
pub const ELECTION_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Receives progress as the run goes (the terminal printer, tests).
pub trait Progress {
    /// A line of provisioning progress.
    fn note(&self, line: &str);
    /// A step has ended.
    fn step_done(&self, step: &StepReport, total: usize);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn note(&self, _: &str) {}
    fn step_done(&self, _: &StepReport, _: usize) {}
}

/// Timestamps everything that happens, relative to the first step.
pub struct Recorder {
    origin: Instant,
    timeline: Vec<TimelineEntry>,
    last_views: BTreeMap<String, String>,
    measurements: BTreeMap<String, u64>,
    /// How closely each measurement is known (ms): the width of the poll that saw it end.
    resolutions: BTreeMap<String, u64>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            timeline: Vec::new(),
            last_views: BTreeMap::new(),
            measurements: BTreeMap::new(),
            resolutions: BTreeMap::new(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Adds an entry to the timeline.
    pub fn record(&mut self, what: String) {
        self.timeline.push(TimelineEntry {
            at_ms: self.elapsed_ms(),
            wall: crate::base::time::now_rfc3339(),
            what,
        });
    }

    /// Records a measurement from `since` to when `held` held, with how closely that is known;
    /// returns it in ms.
    pub fn measure<T>(&mut self, name: &str, since: Instant, held: &Held<T>) -> u64 {
        let ms = held.at.saturating_duration_since(since).as_millis() as u64;
        self.measurements.insert(name.to_string(), ms);
        self.resolutions
            .insert(name.to_string(), held.resolution_ms().min(ms));
        ms
    }

    /// Records an observation of a subject when it differs from the previous one.
    pub fn observe(&mut self, subject: &str, observation: &str) {
        if self.last_views.get(subject).map(String::as_str) != Some(observation) {
            self.last_views
                .insert(subject.to_string(), observation.to_string());
            self.record(format!("{subject}: {observation}"));
        }
    }
}

/// What one poll of an expectation saw: the outcome, and an observation for the timeline.
pub struct Poll<T> {
    /// Held (with a value) or not (with what was seen instead).
    pub outcome: Result<T, String>,
    /// The subject and what it showed, recorded when it changes.
    pub observation: Option<(String, String)>,
}

impl<T> Poll<T> {
    /// One attempt of an action retried to a deadline: the timeline shows its last error, or
    /// "done".
    pub fn attempt(subject: &str, outcome: Result<T, String>) -> Self {
        let seen = match &outcome {
            Ok(_) => "done".to_string(),
            Err(e) => e.clone(),
        };
        Self {
            outcome,
            observation: Some((subject.to_string(), seen)),
        }
    }
}

/// When an expectation first held, and how closely that is known.
#[derive(Debug, Clone, Copy)]
pub struct Held<T> {
    /// What the holding poll found.
    pub value: T,
    /// When the poll that first saw it hold ended.
    pub at: Instant,
    /// When the last poll that did not see it hold began (or the wait began): the state began
    /// somewhere between this and `at`.
    pub not_before: Instant,
}

impl<T> Held<T> {
    /// How closely the moment is known: the width of `[not_before, at]`, in ms.
    pub fn resolution_ms(&self) -> u64 {
        self.at
            .saturating_duration_since(self.not_before)
            .as_millis() as u64
    }
}

/// Polls `check` until it holds or `within` has passed; returns the value and the instant it
/// was first seen to hold. The error says what was seen last.
pub async fn poll_until<T, F, Fut>(
    within: Duration,
    recorder: &mut Recorder,
    check: F,
) -> Result<(T, Instant), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Poll<T>>,
{
    poll_until_held(within, POLL_INTERVAL, recorder, check)
        .await
        .map(|h| (h.value, h.at))
}

/// Polls `check` every `interval` until it holds or `within` has passed, and says when it first
/// held to within one poll.
pub async fn poll_until_held<T, F, Fut>(
    within: Duration,
    interval: Duration,
    recorder: &mut Recorder,
    mut check: F,
) -> Result<Held<T>, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Poll<T>>,
{
    let begun = Instant::now();
    let end = begun + within;
    let mut not_before = begun;
    loop {
        let poll_began = Instant::now();
        let poll = check().await;
        let now = Instant::now();
        if let Some((subject, seen)) = &poll.observation {
            recorder.observe(subject, seen);
        }
        match poll.outcome {
            Ok(value) => {
                return Ok(Held {
                    value,
                    at: now,
                    not_before,
                })
            }
            Err(e) if now >= end => {
                return Err(format!(
                    "not within {}: {e}",
                    crate::base::time::human_ms(within.as_millis() as u64)
                ))
            }
            Err(_) => {
                not_before = poll_began;
                tokio::time::sleep(interval).await
            }
        }
    }
}

/// The state one run carries from step to step.
pub struct Runner<'a, H: Hosts> {
    cluster: &'a mut Cluster<H>,
    observer: Observer,
    bindings: BTreeMap<String, String>,
    /// When the last disruption began (re-election times count from it).
    last_disruption: Option<Instant>,
    /// When each step started, by name (measurements can count from one).
    step_started: BTreeMap<String, Instant>,
    rec: Recorder,
    steps: Vec<StepReport>,
    monitor: Option<monitor::Monitor>,
    progress: &'a dyn Progress,
    /// Disaster-recovery state: the write ledger, snapshots and dumps taken.
    recovery: recovery::State,
    /// What the ZooKeeper ensemble steps found (the discovered ids).
    zookeeper: zookeeper::ZookeeperRun,
    /// The etcd membership changes this run made.
    etcd_changes: etcd_members::MembershipChanges,
}

/// The result of waiting for readiness.
pub struct Readiness {
    /// Per service, when it became ready (ms after `since`).
    pub ready_ms: BTreeMap<String, u64>,
}

impl<'a, H: Hosts> Runner<'a, H> {
    /// A runner over a provisioned cluster.
    pub fn new(cluster: &'a mut Cluster<H>, progress: &'a dyn Progress) -> Self {
        Self {
            cluster,
            observer: Observer::default(),
            bindings: BTreeMap::new(),
            last_disruption: None,
            step_started: BTreeMap::new(),
            rec: Recorder::new(),
            steps: Vec::new(),
            monitor: None,
            progress,
            recovery: recovery::State::default(),
            zookeeper: zookeeper::ZookeeperRun::default(),
            etcd_changes: etcd_members::MembershipChanges::default(),
        }
    }

    /// Waits until every service of the topology has one agreed leader and a full, started
    /// member list; returns when each became ready.
    pub async fn wait_ready(
        &mut self,
        since: Instant,
        deadline: Duration,
    ) -> Result<Readiness, String> {
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
                match leadership::service_healthy(&self.observer, &*self.cluster, service).await {
                    Ok(()) => {
                        let ms = since.elapsed().as_millis() as u64;
                        self.progress.note(&format!(
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
                let why: Vec<String> = pending
                    .iter()
                    .map(|s| {
                        format!(
                            "{s}: {}",
                            last_problem
                                .get(s)
                                .map(String::as_str)
                                .unwrap_or("not checked")
                        )
                    })
                    .collect();
                return Err(format!(
                    "failed to get a healthy cluster within {} s: {}",
                    deadline.as_secs(),
                    why.join("; ")
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(Readiness { ready_ms })
    }

    /// Runs every step; stops at the first failure and marks the rest skipped. Step reports
    /// accumulate as they end, so an interrupted run still reports what it did. A step with
    /// `interrupt` fails on purpose once, after acting, and its phase runs again from its first
    /// step. With a `[ledger]`, the ledger writes throughout and is judged at the end.
    pub async fn run(&mut self, scenario: &Scenario) -> Verdict {
        self.rec = Recorder::new();
        self.steps.clear();
        let targets = availability_targets(&*self.cluster);
        if !targets.is_empty() {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            self.progress.note(&format!(
                "probing {} through the border every {}",
                names.join(", "),
                crate::base::time::human_ms(scenario.availability.interval.as_millis() as u64)
            ));
            self.monitor = Some(monitor::Monitor::start(
                targets,
                scenario.availability.interval,
                scenario.availability.timeout,
                self.rec.origin,
            ));
        }
        let total = scenario.steps.len() + usize::from(scenario.ledger.is_some());
        if let Some(spec) = &scenario.ledger {
            self.recovery
                .start_ledger(spec, &scenario.name, &*self.cluster, &mut self.rec);
        }
        let mut failed = false;
        let mut interrupted: BTreeSet<usize> = BTreeSet::new();
        let mut phase_start: Option<usize> = None;
        let mut i = 0;
        while i < scenario.steps.len() {
            let step = &scenario.steps[i];
            if let Some(phase) = &step.phase {
                phase_start = Some(i);
                let at = self.rec.elapsed_ms();
                self.recovery.set_phase(phase, at);
                self.rec.record(format!("phase `{phase}` begins"));
            }
            let started = Instant::now();
            let started_ms = self.rec.elapsed_ms();
            self.rec.record(format!("step {}: {}", i + 1, step.name));
            self.step_started.insert(step.name.clone(), Instant::now());
            if step.kind.is_disruption() {
                self.last_disruption = Some(Instant::now());
            }
            self.recovery.step = step.name.clone();
            let result = steps::execute(self, &step.kind).await;
            self.recovery.refresh(&*self.cluster);
            let mut next = i + 1;
            let (status, detail) = match result {
                Ok(detail) if step.interrupt && interrupted.insert(i) => {
                    let from = phase_start.unwrap_or(0);
                    next = from;
                    let phase = scenario.steps[from].phase.clone().unwrap_or_default();
                    self.rec.record(format!(
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
            for (j, step) in scenario.steps.iter().enumerate().skip(i + 1) {
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
        let started = Instant::now();
        let started_ms = self.rec.elapsed_ms();
        if let Some((pass, detail)) = recovery::finish_ledger(self, failed).await {
            let report = StepReport {
                index: scenario.steps.len() + 1,
                name: LEDGER_STEP.to_string(),
                kind: "check".to_string(),
                status: if pass {
                    StepStatus::Passed
                } else {
                    StepStatus::Failed
                },
                started_ms,
                elapsed_ms: started.elapsed().as_millis() as u64,
                detail,
            };
            self.progress.step_done(&report, total);
            self.steps.push(report);
            failed |= !pass;
        }
        if failed {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_step(
        &mut self,
        index: usize,
        step: &crate::spec::Step,
        status: StepStatus,
        started_ms: u64,
        started: Instant,
        detail: String,
        total: usize,
    ) {
        let report = StepReport {
            index,
            name: step.name.clone(),
            kind: if step.kind.is_expectation() {
                "expect"
            } else {
                "action"
            }
            .to_string(),
            status,
            started_ms,
            elapsed_ms: if status == StepStatus::Skipped {
                0
            } else {
                started.elapsed().as_millis() as u64
            },
            detail,
        };
        self.progress.step_done(&report, total);
        self.steps.push(report);
    }

    /// The ledger's history, once `report` has been made (`None` without a `[ledger]`); for
    /// a run that ended early it holds what was recorded so far.
    pub fn take_ledger_history(&mut self) -> Option<crate::ledger::History> {
        self.recovery
            .history
            .take()
            .or_else(|| self.recovery.history_so_far())
    }

    /// The report of what ran; steps that never started are listed as skipped.
    pub async fn report(&mut self, scenario: &Scenario, seed: u64, verdict: Verdict) -> Report {
        let samples = match self.monitor.take() {
            Some(m) => m.finish().await,
            None => Vec::new(),
        };
        let mut steps = std::mem::take(&mut self.steps);
        let reported: BTreeSet<usize> = steps.iter().map(|s| s.index).collect();
        for (i, step) in scenario
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| !reported.contains(&(i + 1)))
        {
            steps.push(StepReport {
                index: i + 1,
                name: step.name.clone(),
                kind: if step.kind.is_expectation() {
                    "expect"
                } else {
                    "action"
                }
                .to_string(),
                status: StepStatus::Skipped,
                started_ms: self.rec.elapsed_ms(),
                elapsed_ms: 0,
                detail: String::new(),
            });
        }
        let duration_ms = self.rec.elapsed_ms();
        let mut targets: Vec<String> = samples.iter().map(|s| s.target.clone()).collect();
        targets.sort();
        targets.dedup();
        let availability = targets
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    crate::availability::summarize(&samples, t, 0, duration_ms),
                )
            })
            .collect();
        let checks: Vec<crate::availability::CheckReport> = scenario
            .checks
            .iter()
            .map(|c| {
                crate::availability::evaluate(
                    c,
                    &samples,
                    crate::report::check_window(c, &steps, duration_ms),
                    scenario.availability.interval,
                )
            })
            .collect();
        let verdict = checks.iter().fold(verdict, |v, c| {
            v.merge(match c.status {
                CheckStatus::Passed => Verdict::Pass,
                CheckStatus::Failed => Verdict::Fail,
                CheckStatus::Unknown => Verdict::Unknown,
            })
        });
        Report {
            verdict,
            scenario: scenario.name.clone(),
            scenario_file: scenario.file.display().to_string(),
            provider: self.cluster.provider().to_string(),
            run_id: self.cluster.run_id().to_string(),
            seed,
            replay: format!("succession run {} --seed {seed}", scenario.file.display()),
            started_at: String::new(),
            provision_ms: 0,
            ready_ms: BTreeMap::new(),
            steps,
            measurements: std::mem::take(&mut self.rec.measurements),
            measurement_resolution_ms: std::mem::take(&mut self.rec.resolutions),
            poll_intervals_ms: poll_intervals(),
            timeline: std::mem::take(&mut self.rec.timeline),
            duration_ms,
            error: None,
            ledger: self.recovery.verdict.clone(),
            availability,
            checks,
            samples,
        }
    }

    /// Splits the runner for a poll: the cluster and probes to read, the recorder to write.
    fn split(&mut self) -> (&Cluster<H>, &Observer, &mut Recorder) {
        (&*self.cluster, &self.observer, &mut self.rec)
    }

    fn resolve(&self, node: &NodeRef) -> Result<String, String> {
        match node {
            NodeRef::Node(fqdn) => Ok(fqdn.clone()),
            NodeRef::Bound(name) => self.bindings.get(name).cloned().ok_or_else(|| {
                format!("`${name}` was never bound (the step that binds it did not run)")
            }),
        }
    }
}

/// How often each kind of wait polls, for the report.
pub fn poll_intervals() -> BTreeMap<String, u64> {
    [
        (
            "election".to_string(),
            ELECTION_POLL_INTERVAL.as_millis() as u64,
        ),
        ("expectation".to_string(), POLL_INTERVAL.as_millis() as u64),
    ]
    .into()
}

/// The name of the serving figure that goes with an election measurement.
pub fn serving_measure(measure: &str) -> String {
    format!("{measure} (serving)")
}

/// Short name for messages.
pub(crate) use crate::base::names::short as name;

/// What the availability monitor probes: through the border's ingress, each tier it fronts.
fn availability_targets<H: Hosts>(cluster: &Cluster<H>) -> Vec<monitor::Target> {
    let Some(border) = cluster.members(ServiceKind::Ingress).into_iter().next() else {
        return Vec::new();
    };
    let topology = cluster.topology();
    let mut targets = Vec::new();
    let mut add = |name: &str, kind: ServiceKind, port: u16, path: &str, expect: u16| {
        if !topology.nodes_running(kind).is_empty() {
            targets.push(monitor::Target {
                name: name.to_string(),
                url: format!("http://{}{path}", cluster.endpoint(&border, port)),
                expect,
            });
        }
    };
    add(
        "app",
        ServiceKind::App,
        crate::base::ports::INGRESS_APP,
        "/",
        200,
    );
    add(
        "mesos",
        ServiceKind::MesosMaster,
        crate::base::ports::MESOS,
        "/redirect",
        307,
    );
    add(
        "marathon",
        ServiceKind::Marathon,
        crate::base::ports::MARATHON,
        "/v2/leader",
        200,
    );
    targets
}
