//! What exploring found, how it ends (its exit code), and why it could not go on.

use std::path::PathBuf;

use serde::Serialize;

use super::schedule::{Broken, Fault};
use crate::exit::Exit;
use crate::source::InputError;

/// A failure found, and what shrinking made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The invariant broken.
    pub broken: Broken,
    /// The schedule as first found.
    pub found: Vec<Fault>,
    /// The smallest schedule that broke it the same way.
    pub shrunk: Vec<Fault>,
    /// The scenario file that replays the smallest.
    pub scenario: PathBuf,
    /// Its run seed.
    pub seed: u64,
    /// The command that replays it.
    pub replay: String,
    /// Live runs spent shrinking.
    pub shrink_runs: usize,
}

/// How exploring ended.
#[derive(Debug, Clone, Serialize)]
pub struct ExploreOutcome {
    /// Schedules run (shrink runs not counted).
    pub runs: usize,
    /// Live runs spent shrinking.
    pub shrink_runs: usize,
    /// The first failure, shrunk.
    pub finding: Option<Finding>,
    /// Whether the budget ran out before `runs` schedules ran.
    pub budget_spent: bool,
    /// Runs that broke nothing but had a check with too little evidence to judge.
    pub inconclusive: usize,
}

impl ExploreOutcome {
    /// The exit code: a finding fails like a failed scenario.
    pub fn exit(&self) -> Exit {
        if self.finding.is_some() {
            Exit::CheckFailed
        } else if self.inconclusive > 0 || self.runs == 0 {
            // No run, no evidence: a budget spent before the first run is not a pass.
            Exit::Unknown
        } else {
            Exit::Pass
        }
    }
}

/// Exploring could not start or a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// Bad target file or options: nothing was started.
    #[error("{0}")]
    Input(#[from] InputError),
    /// A run's cluster could not be made or run (not a finding).
    #[error("run {run} could not be carried out: {why} (report: {})", report.display())]
    Environment {
        /// Which run.
        run: String,
        /// Why.
        why: String,
        /// Its report directory.
        report: PathBuf,
    },
    /// Interrupted by SIGINT or SIGTERM; the run's cluster was torn down.
    #[error("interrupted during {run}; its cluster was torn down")]
    Interrupted {
        /// Which run.
        run: String,
    },
    /// Writing a run's files failed.
    #[error("failed to write {}: {source}", path.display())]
    Write {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
