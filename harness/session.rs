//! One `succession run`: load, provision, wait for health, run the steps, always tear down,
//! report. Shared by the binary and the tests.

use std::path::PathBuf;
use std::time::Instant;
use tracing::Instrument;

use crate::cluster::Cluster;
use crate::exit::Exit;
use crate::provider::{ClusterError, Hosts, Provider};
use crate::report::{Event, Reporter};
use crate::report::{Report, Verdict};
use crate::runner::Runner;
use crate::scenario::Scenario;
use crate::source::InputError;
use crate::spec::Topology;

/// What `succession run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The scenario file.
    pub scenario: PathBuf,
    /// A topology replacing the scenario's own.
    pub topology: Option<PathBuf>,
    /// Where to write report.json and junit.xml.
    pub report_dir: Option<PathBuf>,
    /// Leave the cluster running afterwards (`succession down` removes it).
    pub keep: bool,
    /// Replay a seed.
    pub seed: Option<u64>,
}

/// How a run ended.
pub struct RunOutcome {
    /// The report (also written to the report directory when one was given).
    pub report: Report,
    /// The exit code it maps to.
    pub exit: Exit,
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad scenario or topology: nothing was started.
    #[error("{0}")]
    Input(#[from] InputError),
}

/// SIGINT and SIGTERM, listened to from when it is made for the whole run: a signal that
/// arrives between two waits is kept for the next, never lost.
pub struct Shutdown {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Starts listening.
    pub fn listen() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves when SIGINT or SIGTERM has arrived since listening began (or since the last one).
    pub async fn recv(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.interrupt) => {}
            _ = one(&mut self.terminate) => {}
        }
    }
}

/// Runs a scenario on a provider.
pub async fn run<P: Provider>(
    provider: &P,
    options: &RunOptions,
    progress: &dyn Reporter,
) -> Result<RunOutcome, RunError> {
    let scenario = Scenario::load(&options.scenario, options.topology.as_deref())?;
    // Before anything is created: a step this provider cannot carry out is bad input.
    scenario.refuse_unmet(provider.name(), P::capabilities())?;
    let mut shutdown = Shutdown::listen();
    let seed = options
        .seed
        .or(scenario.seed)
        .unwrap_or_else(crate::rng::fresh_seed);
    let started_at = crate::base::time::now_rfc3339();
    let t0 = Instant::now();
    progress.event(&Event::Note(format!(
        "succession run {} — scenario {} on topology {} ({} provider, seed {seed})",
        options.scenario.display(),
        scenario.name,
        scenario.topology.file.display(),
        provider.name()
    )));
    let say = |line: &str| progress.event(&Event::Note(line.to_string()));
    let purpose = format!("run {}", options.scenario.display());
    let provisioned = tokio::select! {
        p = bring_up(provider, &scenario.topology, &purpose, seed, &say).instrument(tracing::info_span!("run.bring_up", provider = provider.name())) => p,
        _ = shutdown.recv() => {
            // Dropping the provisioning future drops the half-built cluster, whose Drop removes it.
            return Ok(finish(environment_report(provider.name(), &scenario, seed, &started_at, "interrupted while provisioning"), Exit::Interrupted, options));
        }
    };
    let mut cluster = match provisioned {
        Ok(c) => c,
        Err(e) => {
            let report = environment_report(
                provider.name(),
                &scenario,
                seed,
                &started_at,
                &e.to_string(),
            );
            return Ok(finish(report, Exit::Environment, options));
        }
    };
    let (report, exit, recorded) =
        drive(&mut cluster, &scenario, seed, t0, progress, &mut shutdown).await;
    if options.keep {
        if let Err(e) = cluster.keep() {
            progress.event(&Event::Note(format!("failed to keep the cluster: {e}")));
        } else {
            progress.event(&Event::Note(format!(
                "kept run {} up: `succession status`, `succession exec NODE -- CMD`, `succession down` when done",
                cluster.run_id()
            )));
        }
    }
    tracing::info_span!("run.teardown").in_scope(|| cluster.teardown());
    let mut report = report;
    report.started_at = started_at;
    let mut outcome = finish(report, exit, options);
    let history = recorded.ledger;
    if let (Some(dir), Some(history)) = (&options.report_dir, &history) {
        // Beside report.json: `succession check DIR` recomputes the ledger's verdict from it.
        if let Err(e) = history.write(dir) {
            outcome.report.error.get_or_insert_with(|| e.to_string());
        }
    }
    if let (Some(dir), Some(workload)) = (&options.report_dir, &recorded.workload) {
        // `succession check DIR` runs every consistency checker again on it.
        if let Err(e) = workload.write(dir) {
            outcome.report.error.get_or_insert_with(|| e.to_string());
        }
    }
    if let Some(dir) = &options.report_dir {
        // `succession report DIR` draws the same picture again from the files beside it.
        if let Err(e) = crate::report::timeline::write(dir, &outcome.report, history.as_ref()) {
            outcome
                .report
                .error
                .get_or_insert_with(|| format!("failed to write the timeline: {e}"));
        }
    }
    Ok(outcome)
}

/// Creates a topology's hosts on a provider and starts every service; readiness is the
/// caller's to wait for. On error, whatever was created is removed before returning.
pub async fn bring_up<P: Provider>(
    provider: &P,
    topology: &Topology,
    purpose: &str,
    seed: u64,
    say: &dyn Fn(&str),
) -> Result<Cluster<P::Hosts>, ClusterError> {
    let hosts = provider.provision(topology, purpose, seed, say)?;
    let mut cluster = Cluster::new(hosts);
    if let Err(e) = cluster.start_all().await {
        cluster.teardown();
        return Err(e);
    }
    Ok(cluster)
}

async fn drive<H: Hosts>(
    cluster: &mut Cluster<H>,
    scenario: &Scenario,
    seed: u64,
    t0: Instant,
    progress: &dyn Reporter,
    shutdown: &mut Shutdown,
) -> (Report, Exit, Recorded) {
    let deadline = scenario.topology.settings.ready_timeout;
    let mut runner = Runner::new(cluster, progress);
    // Picks by role draw from their own stream of the seed, apart from the ledger's values.
    runner.state.picks = crate::rng::SeededRng::new(seed ^ 0x6661_756c_7473);
    let ready = tokio::select! {
        r = runner.wait_ready(t0, deadline).instrument(tracing::info_span!("run.wait_ready")) => Some(r),
        _ = shutdown.recv() => None,
    };
    let provision_ms = t0.elapsed().as_millis() as u64;
    let ready_ms = match ready {
        None => {
            let mut report = runner
                .report(&scenario.plan(), seed, Verdict::Unknown)
                .await;
            report.error = Some("interrupted while waiting for the cluster to be healthy".into());
            return (report, Exit::Interrupted, Recorded::default());
        }
        Some(Err(e)) => {
            let mut report = runner
                .report(&scenario.plan(), seed, Verdict::Unknown)
                .await;
            report.error = Some(e.to_string());
            report.provision_ms = provision_ms;
            return (report, Exit::Environment, Recorded::default());
        }
        Some(Ok(r)) => r.ready_ms,
    };
    progress.event(&Event::Note(format!(
        "cluster healthy after {}",
        crate::base::time::human_ms(provision_ms)
    )));
    let plan = scenario.plan();
    let (verdict, interrupted) = tokio::select! {
        v = runner.run(&plan).instrument(tracing::info_span!("run.steps")) => (v, false),
        _ = shutdown.recv() => (Verdict::Unknown, true),
        _ = injected_panic() => panic!("injected fault: {PANIC_FAULT_ENV}"),
    };
    let mut report = runner.report(&plan, seed, verdict).await;
    // The exit code follows the report's verdict, checks over the history included.
    let exit = if interrupted {
        report.error = Some("interrupted; the cluster was torn down".into());
        Exit::Interrupted
    } else {
        Exit::of(report.verdict)
    };
    report.provision_ms = provision_ms;
    report.ready_ms = ready_ms;
    let recorded = Recorded {
        ledger: runner.take_ledger_history(),
        workload: runner.workload_history.take(),
    };
    (report, exit, recorded)
}

/// The histories a run recorded, saved beside its report.
#[derive(Default)]
struct Recorded {
    /// The write ledger's (`history.json`).
    ledger: Option<crate::ledger::History>,
    /// The consistency workload's (`workload.json`).
    workload: Option<crate::workload::WorkloadHistory>,
}

/// Fault injection for the harness's own cleanup tests: panic this many ms into the steps.
pub const PANIC_FAULT_ENV: &str = "SUCCESSION_FAULT_PANIC_AFTER_MS";

async fn injected_panic() {
    match std::env::var(PANIC_FAULT_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // A fault timer, not a wait for a state.
        Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        None => std::future::pending().await,
    }
}

fn environment_report(
    provider: &str,
    scenario: &Scenario,
    seed: u64,
    started_at: &str,
    error: &str,
) -> Report {
    Report {
        verdict: Verdict::Unknown,
        scenario: scenario.name.clone(),
        scenario_file: scenario.file.display().to_string(),
        provider: provider.into(),
        run_id: String::new(),
        seed,
        replay: format!("succession run {} --seed {seed}", scenario.file.display()),
        started_at: started_at.to_string(),
        provision_ms: 0,
        ready_ms: Default::default(),
        steps: scenario
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                crate::report::StepReport::of(
                    i + 1,
                    &s.name,
                    s.expectation,
                    crate::report::StepStatus::Skipped,
                    0,
                    0,
                    String::new(),
                )
            })
            .collect(),
        measurements: Default::default(),
        measurement_resolution_ms: Default::default(),
        poll_intervals_ms: Default::default(),
        timeline: Vec::new(),
        duration_ms: 0,
        error: Some(error.to_string()),
        ledger: None,
        consistency: None,
        availability: Default::default(),
        checks: Vec::new(),
        samples: Vec::new(),
        explored: None,
    }
}

fn finish(report: Report, exit: Exit, options: &RunOptions) -> RunOutcome {
    let mut report = report;
    if let Some(dir) = &options.report_dir {
        if let Err(e) = report.write(dir) {
            report.error.get_or_insert_with(|| {
                format!("failed to write the report to {}: {e}", dir.display())
            });
        }
    }
    RunOutcome { report, exit }
}

/// Whether an error is the environment's (exit 3) rather than the cluster's.
pub fn is_environment(e: &ClusterError) -> bool {
    e.is_environment()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::provider::{ClusterError, GcReport, RunDir, RunRecord, StraySearch};
    use crate::spec::capability::Capability;
    use crate::spec::Topology;

    /// A provider that can run commands and nothing more, and counts what it is asked to create.
    struct CommandsOnly {
        provisioned: Cell<usize>,
    }

    impl Provider for CommandsOnly {
        type Hosts = crate::provider::local::LocalHosts;

        fn name(&self) -> &'static str {
            "commands-only"
        }

        fn provision(
            &self,
            _: &Topology,
            _: &str,
            _: u64,
            _: &dyn Fn(&str),
        ) -> Result<Self::Hosts, ClusterError> {
            self.provisioned.set(self.provisioned.get() + 1);
            Err(ClusterError::Environment(
                "nothing is created in this test".into(),
            ))
        }

        fn reopen(&self, _: RunDir, _: RunRecord) -> Result<Self::Hosts, ClusterError> {
            Err(ClusterError::Environment(
                "nothing is reopened in this test".into(),
            ))
        }

        fn configured(_: Option<String>) -> Self {
            Self {
                provisioned: Cell::new(0),
            }
        }

        fn capabilities() -> &'static [Capability] {
            &[]
        }

        fn gc(&self, _: bool, _: &StraySearch) -> GcReport {
            GcReport::default()
        }
    }

    #[tokio::test]
    async fn a_run_whose_steps_need_more_than_the_provider_offers_is_refused_before_anything_is_created(
    ) {
        let provider = CommandsOnly::configured(None);
        let options = RunOptions {
            scenario: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scenarios/minority-faults.toml"
            )),
            topology: None,
            report_dir: None,
            keep: false,
            seed: Some(1),
        };
        let Err(RunError::Input(e)) = run(&provider, &options, &crate::report::Quiet).await else {
            panic!("a run needing pauses and packet filters must be refused");
        };
        let text = e.to_string();
        assert!(text.contains("minority-faults.toml:"), "{text}");
        assert!(text.contains("commands-only"), "{text}");
        assert_eq!(
            provider.provisioned.get(),
            0,
            "nothing may be created: {text}"
        );
    }
}
