//! Monitors: what watches the cluster all run long beside the steps — the availability monitor
//! (requests through the border), the leader watch (who led at which term), the write ledger, the consistency workload —
//! each started with the run, stopped after the steps and the final heal, and folded into the
//! report as findings. One trait, so a new workload is one more implementation.

pub mod availability;
pub mod leader_watch;
pub mod ledger;
pub mod workload;

use futures::future::LocalBoxFuture;

use super::Recorder;
use crate::availability::Sample;
use crate::cluster::Cluster;
use crate::cluster_views::Observer;
use crate::ledger::LedgerVerdict;
use crate::provider::Hosts;
use crate::workload::{ConsistencyVerdict, WorkloadHistory};

/// When a monitor is stopped, relative to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Right after the steps and the final heal, in the order the monitors were started: it
    /// judges what it saw.
    Judge,
    /// Last, after every judging monitor: it samples the cluster, and its samples must cover
    /// the whole run, the judges' own work included (a ledger's read-back takes seconds).
    Sample,
}

/// What the runner hands a monitor when it stops it.
pub struct StopContext<'a, H: Hosts> {
    /// The cluster.
    pub cluster: &'a Cluster<H>,
    /// Probes of the cluster.
    pub observer: &'a Observer,
    /// The run's timeline and clock.
    pub rec: &'a mut Recorder,
    /// Whether a step failed (reads back are cut short: the verdict is a failure already).
    pub run_failed: bool,
}

/// A check a monitor adds to the step list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// Its name in the report.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
    /// How long judging took.
    pub elapsed_ms: u64,
}

/// What a stopped monitor found, for the report.
#[derive(Debug)]
pub enum Finding {
    /// A check in the step list.
    Check(CheckRow),
    /// Samples for the report's availability figures and `[[check]]`s.
    Samples(Vec<Sample>),
    /// The write ledger's verdict.
    Ledger(LedgerVerdict),
    /// The consistency checkers' verdicts, and the history they judged (none when the
    /// workload could not start).
    Consistency {
        /// Every checker's result.
        verdict: ConsistencyVerdict,
        /// What the workload recorded.
        history: Option<Box<WorkloadHistory>>,
    },
}

/// A monitor of the run.
pub trait RunMonitor<H: Hosts> {
    /// When it is stopped.
    fn stage(&self) -> Stage;
    /// How many checks it adds to the step list when stopped.
    fn checks(&self) -> usize;
    /// Stops it and says what it found.
    fn stop<'a>(&'a mut self, cx: StopContext<'a, H>) -> LocalBoxFuture<'a, Vec<Finding>>;
}
