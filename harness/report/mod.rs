//! What a run found: the verdict, every step with its timing, the measurements and the
//! timeline — rendered for people (terminal), pipelines (JSON) and CI (JUnit).

pub mod events;
pub(crate) mod human;
mod junit;
pub mod summary;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::availability::Window;

pub use events::{Event, Fold, Quiet, Reporter, TimelineEntry, TimelineKind};
pub use human::{render_consistency, render_ledger, render_step_line, render_summary};
pub use junit::render_junit;

/// The outcome of a run; merges as fail > unknown > pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every step passed.
    Pass,
    /// A step failed: the cluster did not do what the procedure says.
    Fail,
    /// The run could not decide (interrupted, or the environment failed).
    Unknown,
}

impl Verdict {
    /// Merges two verdicts: fail > unknown > pass.
    pub fn merge(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Pass,
        }
    }

    /// The word shown to people.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

impl From<crate::workload::CheckerStatus> for Verdict {
    fn from(status: crate::workload::CheckerStatus) -> Self {
        match status {
            crate::workload::CheckerStatus::Pass => Verdict::Pass,
            crate::workload::CheckerStatus::Fail => Verdict::Fail,
            crate::workload::CheckerStatus::Unknown => Verdict::Unknown,
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Done, or the expectation held in time.
    Passed,
    /// The action failed or the expectation did not hold by its deadline.
    Failed,
    /// Not run because an earlier step failed or the run was interrupted.
    Skipped,
    /// Acted, then failed on purpose (`interrupt = true`); its phase ran again from the start.
    Interrupted,
}

/// One step in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based position.
    pub index: usize,
    /// The step's name.
    pub name: String,
    /// `action` or `expect`.
    pub kind: String,
    /// How it ended.
    pub status: StepStatus,
    /// When it started, ms after the run started (steps only; provisioning is before 0).
    pub started_ms: u64,
    /// How long it took.
    pub elapsed_ms: u64,
    /// What it found or did, in a line.
    pub detail: String,
}

impl StepReport {
    /// A step's report, `kind` `expect` or `action`.
    pub fn of(
        index: usize,
        name: &str,
        expectation: bool,
        status: StepStatus,
        started_ms: u64,
        elapsed_ms: u64,
        detail: String,
    ) -> Self {
        Self {
            index,
            name: name.to_string(),
            kind: if expectation { "expect" } else { "action" }.to_string(),
            status,
            started_ms,
            elapsed_ms,
            detail,
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The outcome.
    pub verdict: Verdict,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub scenario_file: String,
    /// Provider (`local`).
    pub provider: String,
    /// Run id (names its namespaces and state directory).
    pub run_id: String,
    /// The seed every random choice came from.
    pub seed: u64,
    /// The command that replays this run.
    pub replay: String,
    /// Wall-clock start.
    pub started_at: String,
    /// Time from the start of the command to a healthy cluster.
    pub provision_ms: u64,
    /// Per service, time from the start of the command until it was ready.
    pub ready_ms: BTreeMap<String, u64>,
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// Named measurements in ms (re-election times per service, …). An election measured with
    /// `measure = "X"` gives `X` (elected: a majority backs the new leader) and `X (serving)`
    /// (the first write acknowledged through it).
    pub measurements: BTreeMap<String, u64>,
    /// How closely each measurement is known, in ms: the moment lies within this much before
    /// the figure (the time between the last poll that did not see it and the one that did).
    #[serde(default)]
    pub measurement_resolution_ms: BTreeMap<String, u64>,
    /// How often each kind of wait polled, in ms (`election`, `expectation`).
    #[serde(default)]
    pub poll_intervals_ms: BTreeMap<String, u64>,
    /// Observations and actions in time order.
    pub timeline: Vec<TimelineEntry>,
    /// Total time of the steps.
    pub duration_ms: u64,
    /// Why the run could not finish, when it could not.
    pub error: Option<String>,
    /// What the write ledger measured, when the scenario runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<crate::ledger::LedgerVerdict>,
    /// What the consistency checkers found, when the scenario runs a workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<crate::workload::ConsistencyVerdict>,
    /// Availability through the border over the whole run, per target.
    #[serde(default)]
    pub availability: BTreeMap<String, crate::availability::Availability>,
    /// The scenario's checks over the history.
    #[serde(default)]
    pub checks: Vec<crate::availability::CheckReport>,
    /// Every request the availability monitor made.
    #[serde(default)]
    pub samples: Vec<crate::availability::Sample>,
    /// The schedule and seed of a run `succession explore` made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explored: Option<Explored>,
}

/// What `succession explore` ran: its seed, which run, the schedule, what broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explored {
    /// The explore seed the schedule was drawn from.
    pub seed: u64,
    /// `run-N` or `shrink-N`.
    pub run: String,
    /// Each fault, in order.
    pub schedule: Vec<String>,
    /// The invariant the run broke, if any.
    pub broken: Option<String>,
}

/// The window a check judges, from the steps that delimit it: a phase that ran again lists its
/// steps twice, so the window spans from the first start to the last end.
pub fn check_window(check: &crate::spec::Check, steps: &[StepReport], run_end_ms: u64) -> Window {
    let ran = |name: &str| -> Vec<&StepReport> {
        steps
            .iter()
            .filter(|s| s.name == name && s.status != StepStatus::Skipped)
            .collect()
    };
    let from_ms = match &check.from {
        Some(n) => ran(n).iter().map(|s| s.started_ms).min(),
        None => Some(0),
    };
    let to_ms = match &check.to {
        Some(n) => ran(n).iter().map(|s| s.started_ms + s.elapsed_ms).max(),
        None => Some(run_end_ms),
    };
    Window {
        reached: from_ms.is_some() && to_ms.is_some(),
        from_ms: from_ms.unwrap_or(0),
        to_ms: to_ms.unwrap_or(run_end_ms),
    }
}

impl Report {
    /// Writes `report.json` and `junit.xml` into a directory (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        std::fs::write(dir.join("junit.xml"), render_junit(self))?;
        Ok(())
    }

    /// Reads a report written by `write`.
    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read(dir.join("report.json"))?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The monitor's samples of a run: one request every 100 ms for 10.4 s, three of which
    /// failed from 2.2 s.
    fn monitor_samples() -> Vec<crate::availability::Sample> {
        (0..104u64)
            .map(|i| {
                let ok = !(22..25).contains(&i);
                crate::availability::Sample {
                    target: "app".into(),
                    at_ms: i * 100,
                    ok,
                    latency_ms: 2,
                    outcome: if ok { "200" } else { "connection failed" }.into(),
                }
            })
            .collect()
    }

    pub(crate) fn sample() -> Report {
        let step = |index, name: &str, status, elapsed_ms, detail: &str| StepReport {
            index,
            name: name.to_string(),
            kind: "expect".to_string(),
            status,
            started_ms: index as u64 * 100,
            elapsed_ms,
            detail: detail.to_string(),
        };
        let steps = vec![
            step(1, "find the ZooKeeper leader (srvr Mode)", StepStatus::Passed, 4, "zookeeper leader is quorum-3, backed by 3 of 3 configured members (quorum-1, quorum-2, quorum-3) (bound as $leader)"),
            step(2, "terminate the leader's node", StepStatus::Passed, 22, "quorum-3 terminated"),
            step(3, "ZooKeeper elects a new leader", StepStatus::Passed, 452, "zookeeper leader quorum-2, backed by 2 of 3 configured members (quorum-1, quorum-2); zookeeper re-election: elected after 414 ms (to within 31 ms), serving after 452 ms (created the ephemeral /succession-serving-0000000003)"),
            step(4, "etcd lists exactly the two survivors", StepStatus::Failed, 10_012, "not within 10.0 s: members are [quorum-1, quorum-2, quorum-3]: unexpected quorum-3"),
            step(5, "every quorum service is active", StepStatus::Skipped, 0, ""),
        ];
        let samples = monitor_samples();
        let duration_ms = 10_440;
        let check = crate::spec::Check {
            name: "the app never fails through the border".into(),
            target: "app".into(),
            from: None,
            to: None,
            min_ratio: 1.0,
            max_outage: std::time::Duration::ZERO,
            min_samples: crate::spec::DEFAULT_MIN_SAMPLES,
        };
        let checks = vec![crate::availability::evaluate(
            &check,
            &samples,
            check_window(&check, &steps, duration_ms),
            std::time::Duration::from_millis(100),
        )];
        Report {
            verdict: Verdict::Fail,
            scenario: "quorum-destroy-restore".into(),
            scenario_file: "scenarios/quorum-destroy-restore.toml".into(),
            provider: "local".into(),
            run_id: "a1b2c3".into(),
            seed: 42,
            replay: "succession run scenarios/quorum-destroy-restore.toml --seed 42".into(),
            started_at: "2026-11-21T12:00:00.000Z".into(),
            provision_ms: 2950,
            ready_ms: [("etcd".to_string(), 910), ("zookeeper".to_string(), 2950)].into(),
            steps,
            measurements: [
                ("zookeeper re-election".to_string(), 414),
                ("zookeeper re-election (serving)".to_string(), 452),
            ]
            .into(),
            measurement_resolution_ms: [
                ("zookeeper re-election".to_string(), 31),
                ("zookeeper re-election (serving)".to_string(), 24),
            ]
            .into(),
            poll_intervals_ms: [
                ("election".to_string(), 20),
                ("expectation".to_string(), 50),
            ]
            .into(),
            timeline: vec![],
            duration_ms,
            error: None,
            ledger: None,
            consistency: None,
            availability: [(
                "app".to_string(),
                crate::availability::summarize(&samples, "app", 0, duration_ms),
            )]
            .into(),
            checks,
            samples,
            explored: None,
        }
    }

    #[test]
    fn the_terminal_output_reads_well() {
        let report = sample();
        let mut out = String::new();
        for step in &report.steps {
            out.push_str(&render_step_line(step, report.steps.len()));
            out.push('\n');
        }
        out.push_str(&render_summary(&report));
        insta::assert_snapshot!(out);
    }

    #[test]
    fn a_ledger_summary_and_an_interrupted_step_read_well() {
        use crate::ledger::{LedgerVerdict, PhaseCounts};
        let step = |index, name: &str, status, started_ms, detail: &str| StepReport {
            index,
            name: name.to_string(),
            kind: "action".to_string(),
            status,
            started_ms,
            elapsed_ms: 300,
            detail: detail.to_string(),
        };
        let restored = "restored snapshot `backup` (revision 31) on quorum-1, quorum-2, quorum-3 as one cluster of exactly those members";
        let mut report = sample();
        report.verdict = Verdict::Pass;
        report.availability.clear();
        report.checks.clear();
        report.samples.clear();
        report.measurements.clear();
        // Step 3 is interrupted on purpose; its phase (from step 2) runs again.
        report.steps = vec![
            step(1, "snapshot the leader", StepStatus::Passed, 0, "snapshot of revision 31 (20 keys, 24608 bytes) from quorum-2 (the leader), kept outside the cluster"),
            step(2, "stop etcd on every member", StepStatus::Passed, 400, "etcd stopped on quorum-1, quorum-2, quorum-3"),
            step(3, "restore the snapshot on every member", StepStatus::Interrupted, 800, &format!("{restored}; interrupted on purpose: phase `restore` runs again from step 2")),
            step(2, "stop etcd on every member", StepStatus::Passed, 1200, "etcd stopped on quorum-1, quorum-2, quorum-3"),
            step(3, "restore the snapshot on every member", StepStatus::Passed, 1600, restored),
            step(4, "start etcd on every member", StepStatus::Passed, 2000, "etcd started on quorum-1, quorum-2, quorum-3"),
            step(5, crate::runner::LEDGER_STEP, StepStatus::Passed, 2400, "44 writes: 38 acknowledged (35 kept, 3 lost as tolerated, 0 lost beyond tolerance), 6 failed, 0 indeterminate"),
        ];
        report.ledger = Some(LedgerVerdict {
            pass: true,
            statements: vec![
                "restore from the 12:00:03 snapshot `backup` lost 3 acknowledged writes made after it (acknowledged 12:00:04.364–12:00:04.564); none before it".into(),
                "no acknowledged write was lost beyond what the scenario tolerates (after-snapshot)".into(),
            ],
            violations: vec![],
            phases: vec![
                PhaseCounts {
                    phase: "before the snapshot".into(),
                    sent: 20,
                    acknowledged: 20,
                    kept: 20,
                    ..Default::default()
                },
                PhaseCounts {
                    phase: "restore".into(),
                    sent: 24,
                    acknowledged: 18,
                    kept: 15,
                    lost_tolerated: 3,
                    failed_unreachable: 6,
                    loss_window: Some(("12:00:04.364".into(), "12:00:04.564".into())),
                    ..Default::default()
                },
            ],
        });
        let ledger = report.ledger.as_ref().expect("ledger");
        // The summary line is the phases summed, never a string handed in.
        assert_eq!(ledger.summary(), report.steps[6].detail);
        let counts = crate::report::human::StepCounts::of(&report.steps);
        assert_eq!((counts.steps, counts.passed, counts.interrupted), (5, 5, 1));
        let mut out = String::new();
        for step in &report.steps {
            out.push_str(&render_step_line(step, 5));
            out.push('\n');
        }
        out.push_str(&render_summary(&report));
        insta::assert_snapshot!(out);
        let junit = render_junit(&report);
        assert!(junit.contains("<system-out>restored snapshot"), "{junit}");
        assert!(!junit.contains("<failure"), "{junit}");
    }

    #[test]
    fn every_check_verdict_is_spelled_out() {
        let mut report = sample();
        let judged = |name: &str, from_ms, to_ms, ok| {
            let samples: Vec<crate::availability::Sample> = monitor_samples()
                .into_iter()
                .map(|mut s| {
                    s.ok |= ok;
                    s
                })
                .collect();
            let check = crate::spec::Check {
                name: name.into(),
                ..check_between("a", "b")
            };
            let window = Window {
                from_ms,
                to_ms,
                reached: true,
            };
            crate::availability::evaluate(
                &check,
                &samples,
                window,
                std::time::Duration::from_millis(100),
            )
        };
        report.checks = vec![
            judged("held over the run", 0, 10_400, true),
            judged("failed in the outage", 2000, 2600, false),
            judged("too short to judge", 5000, 5040, true),
        ];
        let statuses: Vec<_> = report.checks.iter().map(|c| c.status).collect();
        use crate::availability::CheckStatus;
        assert_eq!(
            statuses,
            [
                CheckStatus::Passed,
                CheckStatus::Failed,
                CheckStatus::Unknown
            ]
        );
        let summary = render_summary(&report);
        let checks: String = summary
            .lines()
            .skip_while(|l| *l != "  checks:")
            .take(4)
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!checks.contains('?'), "{checks}");
        insta::assert_snapshot!(checks);
    }

    fn step(
        index: usize,
        name: &str,
        status: StepStatus,
        started_ms: u64,
        elapsed_ms: u64,
    ) -> StepReport {
        StepReport {
            index,
            name: name.into(),
            kind: "action".into(),
            status,
            started_ms,
            elapsed_ms,
            detail: String::new(),
        }
    }

    fn check_between(from: &str, to: &str) -> crate::spec::Check {
        crate::spec::Check {
            name: "app".into(),
            target: "app".into(),
            from: Some(from.into()),
            to: Some(to.into()),
            min_ratio: 1.0,
            max_outage: std::time::Duration::ZERO,
            min_samples: 20,
        }
    }

    #[test]
    fn a_window_between_steps_spans_every_run_of_them() {
        let steps = vec![
            step(1, "a", StepStatus::Passed, 1000, 100),
            step(2, "b", StepStatus::Interrupted, 2000, 100),
            step(1, "a", StepStatus::Passed, 3000, 100),
            step(2, "b", StepStatus::Passed, 5000, 500),
        ];
        let w = check_window(&check_between("a", "b"), &steps, 10_000);
        assert_eq!(
            w,
            Window {
                from_ms: 1000,
                to_ms: 5500,
                reached: true
            }
        );
    }

    #[test]
    fn a_window_whose_step_was_skipped_is_not_reached() {
        let steps = vec![
            step(1, "a", StepStatus::Failed, 1000, 100),
            step(2, "b", StepStatus::Skipped, 1100, 0),
        ];
        let w = check_window(&check_between("a", "b"), &steps, 10_000);
        assert!(!w.reached);
        let samples: Vec<crate::availability::Sample> = monitor_samples()
            .into_iter()
            .map(|mut s| {
                s.ok = true;
                s
            })
            .collect();
        let r = crate::availability::evaluate(
            &check_between("a", "b"),
            &samples,
            w,
            std::time::Duration::from_millis(100),
        );
        assert_eq!(r.status, crate::availability::CheckStatus::Unknown);
        assert!(
            r.detail.contains("its window was never reached"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn junit_has_a_case_per_step() {
        insta::assert_snapshot!(render_junit(&sample()));
    }

    #[test]
    fn json_report_round_trips_and_has_the_documented_fields() {
        let report = sample();
        let dir = tempfile::tempdir().expect("tempdir");
        report.write(dir.path()).expect("write");
        assert_eq!(Report::read(dir.path()).expect("read"), report);
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("report.json")).expect("read"),
        )
        .expect("json");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["steps"][3]["status"], "failed");
        assert_eq!(v["steps"][0]["elapsed_ms"], 4);
        assert_eq!(v["measurements"]["zookeeper re-election"], 414);
        assert_eq!(v["measurements"]["zookeeper re-election (serving)"], 452);
        assert_eq!(v["measurement_resolution_ms"]["zookeeper re-election"], 31);
        assert_eq!(v["poll_intervals_ms"]["election"], 20);
        assert_eq!(v["checks"][0]["status"], "failed");
        assert_eq!(v["checks"][0]["evidence"]["samples"], 104);
    }
}
