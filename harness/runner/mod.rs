//! Runs a scenario's steps against a cluster: actions change it, expectations poll probes to a
//! deadline; every outcome is timed and recorded.

mod monitor;
mod steps;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::observe::Observer;
use crate::probe::leader::short;
use crate::provider::Cluster;
use crate::report::{Report, StepReport, StepStatus, TimelineEntry, Verdict};
use crate::service::ServiceKind;
use crate::spec::{NodeRef, Scenario};

/// How often expectations poll their probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

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
}

impl Recorder {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            timeline: Vec::new(),
            last_views: BTreeMap::new(),
            measurements: BTreeMap::new(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Adds an entry to the timeline.
    pub fn record(&mut self, what: String) {
        self.timeline.push(TimelineEntry {
            at_ms: self.elapsed_ms(),
            wall: crate::provider::state::now_rfc3339(),
            what,
        });
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

/// Polls `check` until it holds or `within` has passed; returns the value and the instant it
/// was first seen to hold. The error says what was seen last.
pub async fn poll_until<T, F, Fut>(
    within: Duration,
    recorder: &mut Recorder,
    mut check: F,
) -> Result<(T, Instant), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Poll<T>>,
{
    let end = Instant::now() + within;
    loop {
        let poll = check().await;
        let now = Instant::now();
        if let Some((subject, seen)) = &poll.observation {
            recorder.observe(subject, seen);
        }
        match poll.outcome {
            Ok(v) => return Ok((v, now)),
            Err(e) if now >= end => {
                return Err(format!(
                    "not within {}: {e}",
                    crate::report::human_ms(within.as_millis() as u64)
                ))
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// The state one run carries from step to step.
pub struct Runner<'a, C: Cluster> {
    cluster: &'a mut C,
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
}

/// The result of waiting for readiness.
pub struct Readiness {
    /// Per service, when it became ready (ms after `since`).
    pub ready_ms: BTreeMap<String, u64>,
}

impl<'a, C: Cluster> Runner<'a, C> {
    /// A runner over a provisioned cluster.
    pub fn new(cluster: &'a mut C, progress: &'a dyn Progress) -> Self {
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
                match steps::service_healthy(&self.observer, &*self.cluster, service).await {
                    Ok(()) => {
                        let ms = since.elapsed().as_millis() as u64;
                        self.progress.note(&format!(
                            "{service} ready after {}",
                            crate::report::human_ms(ms)
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
    /// accumulate as they end, so an interrupted run still reports what it did.
    pub async fn run(&mut self, scenario: &Scenario) -> Verdict {
        self.rec = Recorder::new();
        self.steps.clear();
        let targets = availability_targets(&*self.cluster);
        if !targets.is_empty() {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            self.progress.note(&format!(
                "probing {} through the border every {}",
                names.join(", "),
                crate::report::human_ms(scenario.availability.interval.as_millis() as u64)
            ));
            self.monitor = Some(monitor::Monitor::start(
                targets,
                scenario.availability.interval,
                scenario.availability.timeout,
                self.rec.origin,
            ));
        }
        let total = scenario.steps.len();
        let mut failed = false;
        for (i, step) in scenario.steps.iter().enumerate() {
            let started = Instant::now();
            let started_ms = self.rec.elapsed_ms();
            let (status, detail) = if failed {
                (StepStatus::Skipped, String::new())
            } else {
                self.rec.record(format!("step {}: {}", i + 1, step.name));
                self.step_started.insert(step.name.clone(), Instant::now());
                if step.kind.is_disruption() {
                    self.last_disruption = Some(Instant::now());
                }
                match steps::execute(self, &step.kind).await {
                    Ok(detail) => (StepStatus::Passed, detail),
                    Err(detail) => {
                        failed = true;
                        (StepStatus::Failed, detail)
                    }
                }
            };
            let report = StepReport {
                index: i + 1,
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
        if failed {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }

    /// The report of what ran; steps that never started are listed as skipped.
    pub fn report(&mut self, scenario: &Scenario, seed: u64, verdict: Verdict) -> Report {
        let samples = self
            .monitor
            .take()
            .map(monitor::Monitor::finish)
            .unwrap_or_default();
        let mut steps = std::mem::take(&mut self.steps);
        for (i, step) in scenario.steps.iter().enumerate().skip(steps.len()) {
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
            .map(|c| crate::availability::evaluate(c, &samples, &steps, duration_ms))
            .collect();
        let verdict =
            if verdict == Verdict::Pass && checks.iter().any(|c| c.status == StepStatus::Failed) {
                Verdict::Fail
            } else {
                verdict
            };
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
            timeline: std::mem::take(&mut self.rec.timeline),
            duration_ms,
            error: None,
            availability,
            checks,
            samples,
        }
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

/// Short name for messages.
pub(crate) fn name(fqdn: &str) -> &str {
    short(fqdn)
}

/// What the availability monitor probes: through the border's ingress, each tier it fronts.
fn availability_targets<C: Cluster>(cluster: &C) -> Vec<monitor::Target> {
    let Some(border) = cluster.members(ServiceKind::Ingress).into_iter().next() else {
        return Vec::new();
    };
    let topology = cluster.topology();
    let mut targets = Vec::new();
    let mut add = |name: &str, kind: ServiceKind, port: u16, path: &str, expect: u16| {
        if !topology.nodes_running(kind).is_empty() {
            targets.push(monitor::Target {
                name: name.to_string(),
                url: format!("http://{}:{port}{path}", border.address),
                expect,
            });
        }
    };
    add(
        "app",
        ServiceKind::App,
        crate::service::ingress::APP_PORT,
        "/",
        200,
    );
    add(
        "mesos",
        ServiceKind::MesosMaster,
        crate::probe::masters::MESOS_PORT,
        "/redirect",
        307,
    );
    add(
        "marathon",
        ServiceKind::Marathon,
        crate::probe::masters::MARATHON_PORT,
        "/v2/leader",
        200,
    );
    targets
}
