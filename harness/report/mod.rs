//! What a run found: the verdict, every step with its timing, the measurements and the
//! timeline — rendered for people (terminal), pipelines (JSON) and CI (JUnit).

mod human;
mod junit;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use human::{human_ms, render_ledger, render_step_line, render_summary};
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
    /// The word shown to people.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
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

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// ms after the first step started.
    pub at_ms: u64,
    /// Wall-clock time.
    pub wall: String,
    /// What happened or was observed.
    pub what: String,
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
    /// Named measurements in ms (re-election times per service, …).
    pub measurements: BTreeMap<String, u64>,
    /// Observations and actions in time order.
    pub timeline: Vec<TimelineEntry>,
    /// Total time of the steps.
    pub duration_ms: u64,
    /// Why the run could not finish, when it could not.
    pub error: Option<String>,
    /// What the write ledger measured, when the scenario runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<crate::ledger::LedgerVerdict>,
    /// Availability through the border over the whole run, per target.
    #[serde(default)]
    pub availability: BTreeMap<String, crate::availability::Availability>,
    /// The scenario's checks over the history.
    #[serde(default)]
    pub checks: Vec<crate::availability::CheckReport>,
    /// Every request the availability monitor made.
    #[serde(default)]
    pub samples: Vec<crate::availability::Sample>,
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

    pub(crate) fn sample() -> Report {
        let app = crate::availability::Availability {
            requests: 104,
            ok: 101,
            ratio: 101.0 / 104.0,
            longest_outage_ms: 300,
            longest_outage_at_ms: Some(2_200),
            failures: vec![],
        };
        let step = |index, name: &str, status, elapsed_ms, detail: &str| StepReport {
            index,
            name: name.to_string(),
            kind: "expect".to_string(),
            status,
            started_ms: index as u64 * 100,
            elapsed_ms,
            detail: detail.to_string(),
        };
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
            steps: vec![
                step(1, "find the ZooKeeper leader (srvr Mode)", StepStatus::Passed, 4, "zookeeper leader is quorum-3 (bound as $leader)"),
                step(2, "terminate the leader's node", StepStatus::Passed, 22, "quorum-3 terminated"),
                step(3, "ZooKeeper elects a new leader", StepStatus::Passed, 402, "zookeeper leader quorum-2 agreed by every live member; zookeeper re-election: 414 ms"),
                step(4, "etcd lists exactly the two survivors", StepStatus::Failed, 10_012, "not within 10.0 s: members are [quorum-1, quorum-2, quorum-3]: unexpected quorum-3"),
                step(5, "every quorum service is active", StepStatus::Skipped, 0, ""),
            ],
            measurements: [("zookeeper re-election".to_string(), 414), ("etcd re-election".to_string(), 1012)].into(),
            timeline: vec![],
            duration_ms: 10_440,
            error: None,
            ledger: None,
            availability: [(
                "app".to_string(),
                app.clone(),
            )]
            .into(),
            checks: vec![crate::availability::CheckReport {
                name: "the app never fails through the border".into(),
                status: StepStatus::Failed,
                detail: "101/104 requests ok (97.1%), longest outage 300 ms: 3 requests failed where none may (first at 2200 ms: connection failed)".into(),
                target: "app".into(),
                from_ms: 0,
                to_ms: 10_440,
                measured: app.clone(),
            }],
            samples: Vec::new(),
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
        let mut report = sample();
        report.verdict = Verdict::Pass;
        report.availability.clear();
        report.checks.clear();
        report.steps[3].status = StepStatus::Interrupted;
        report.steps[3].detail = "restored snapshot `backup` on quorum-1, quorum-2, quorum-3; interrupted on purpose: phase `restore` runs again from step 2".into();
        report.steps.truncate(4);
        report.ledger = Some(LedgerVerdict {
            pass: true,
            summary: "76 writes: 70 acknowledged (45 kept, 25 lost as tolerated, 0 lost beyond tolerance), 6 failed, 0 indeterminate".into(),
            statements: vec![
                "restore from the 12:00:03 snapshot `backup` lost 25 acknowledged writes made after it (acknowledged 12:00:03.285–12:00:04.564); none before it".into(),
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
        let mut out = String::new();
        for step in &report.steps {
            out.push_str(&render_step_line(step, report.steps.len()));
            out.push('\n');
        }
        out.push_str(&render_summary(&report));
        insta::assert_snapshot!(out);
        let junit = render_junit(&report);
        assert!(junit.contains("<system-out>restored snapshot"), "{junit}");
        assert!(!junit.contains("<failure"), "{junit}");
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
    }
}
