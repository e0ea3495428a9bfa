//! What `succession explore` is asked to do.

use std::path::PathBuf;
use std::time::Duration;

/// What `succession explore` was asked to do.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    /// A topology, or a scenario whose topology is explored.
    pub target: PathBuf,
    /// The seed schedules are drawn from.
    pub seed: u64,
    /// How many schedules to run (shrinking comes on top, within the budget).
    pub runs: usize,
    /// Wall-clock budget for everything.
    pub budget: Duration,
    /// Where runs, reports and the shrunk scenario go.
    pub out: PathBuf,
    /// Most faults in a schedule.
    pub max_faults: usize,
    /// Shortest and longest hold of a fault, ms.
    pub hold_ms: (u64, u64),
    /// How many members may be down at once (None: a minority of the smallest service).
    pub max_down: Option<usize>,
    /// The bound on a leader named by every member after each heal.
    pub leader_within: Duration,
    /// Least share of requests through the border that must succeed.
    pub min_availability: f64,
    /// Most live runs spent shrinking one failure.
    pub max_shrinks: usize,
}
