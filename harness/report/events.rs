//! What happens during a run, as a stream of typed events. Reporters consume it as it comes
//! (the terminal prints steps as they end); the report is a fold over the same stream, so what
//! the terminal, `report.json` and `junit.xml` say always agrees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StepReport;
use crate::availability::{CheckReport, Sample};
use crate::ledger::LedgerVerdict;
use crate::workload::ConsistencyVerdict;

/// What one timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimelineKind {
    /// A step began.
    Step,
    /// A phase began, or a step was interrupted on purpose.
    Phase,
    /// The harness acted on the cluster (terminated, started, wrote, …).
    Action,
    /// A probe saw something change.
    Observation,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// ms after the first step started.
    pub at_ms: u64,
    /// Wall-clock time.
    pub wall: String,
    /// What kind of entry it is.
    #[serde(default = "action")]
    pub kind: TimelineKind,
    /// What an observation is of (`etcd`, `zookeeper members`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What happened or was observed, in words.
    pub what: String,
}

fn action() -> TimelineKind {
    TimelineKind::Action
}

/// Something that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A line of progress before the steps (provisioning, readiness).
    Note(String),
    /// An entry of the timeline.
    Timeline(TimelineEntry),
    /// A step ended (`total` steps in all).
    StepFinished {
        /// How it ended.
        step: StepReport,
        /// How many steps the run has.
        total: usize,
    },
    /// A figure was measured.
    Measured {
        /// Its name.
        name: String,
        /// The figure, ms.
        ms: u64,
        /// How closely it is known, ms.
        resolution_ms: u64,
    },
    /// Every request the availability monitor made.
    Samples(Vec<Sample>),
    /// A check over the history was judged.
    Check(CheckReport),
    /// The write ledger was judged.
    Ledger(LedgerVerdict),
    /// The consistency workload's history was judged.
    Consistency(ConsistencyVerdict),
}

/// Receives the events of a run as they happen (the terminal, tests).
pub trait Reporter {
    /// One event.
    fn event(&self, event: &Event);
}

/// A reporter that shows nothing.
pub struct Quiet;

impl Reporter for Quiet {
    fn event(&self, _: &Event) {}
}

/// What the events of a run add up to; `Runner::report` turns it into the report.
#[derive(Debug, Default)]
pub struct Fold {
    /// Steps as they ended, re-runs included.
    pub steps: Vec<StepReport>,
    /// The timeline.
    pub timeline: Vec<TimelineEntry>,
    /// Measurements, ms.
    pub measurements: BTreeMap<String, u64>,
    /// How closely each is known, ms.
    pub resolutions: BTreeMap<String, u64>,
    /// The monitor's requests.
    pub samples: Vec<Sample>,
    /// Checks, in the scenario's order.
    pub checks: Vec<CheckReport>,
    /// The ledger's verdict.
    pub ledger: Option<LedgerVerdict>,
    /// The consistency checkers' verdicts.
    pub consistency: Option<ConsistencyVerdict>,
}

impl Fold {
    /// Adds one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Note(_) => {}
            Event::Timeline(entry) => self.timeline.push(entry.clone()),
            Event::StepFinished { step, .. } => self.steps.push(step.clone()),
            Event::Measured {
                name,
                ms,
                resolution_ms,
            } => {
                self.measurements.insert(name.clone(), *ms);
                self.resolutions.insert(name.clone(), *resolution_ms);
            }
            Event::Samples(samples) => self.samples.extend(samples.iter().cloned()),
            Event::Check(check) => self.checks.push(check.clone()),
            Event::Ledger(verdict) => self.ledger = Some(verdict.clone()),
            Event::Consistency(verdict) => self.consistency = Some(verdict.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StepStatus;

    #[test]
    fn the_fold_holds_what_the_events_say_in_order() {
        let step = |index, status| StepReport::of(index, "s", false, status, 0, 1, String::new());
        let mut fold = Fold::default();
        for e in [
            Event::Note("provisioning".into()),
            Event::Timeline(TimelineEntry {
                at_ms: 1,
                wall: String::new(),
                kind: TimelineKind::Observation,
                subject: Some("etcd".into()),
                what: "etcd: leader q1".into(),
            }),
            Event::StepFinished {
                step: step(1, StepStatus::Interrupted),
                total: 2,
            },
            Event::StepFinished {
                step: step(1, StepStatus::Passed),
                total: 2,
            },
            Event::Measured {
                name: "etcd re-election".into(),
                ms: 900,
                resolution_ms: 20,
            },
        ] {
            fold.apply(&e);
        }
        assert_eq!(fold.steps.len(), 2);
        assert_eq!(fold.steps[1].status, StepStatus::Passed);
        assert_eq!(fold.timeline[0].subject.as_deref(), Some("etcd"));
        assert_eq!(fold.measurements["etcd re-election"], 900);
        assert_eq!(fold.resolutions["etcd re-election"], 20);
        assert!(fold.samples.is_empty() && fold.checks.is_empty() && fold.ledger.is_none());
    }
}
