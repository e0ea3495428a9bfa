//! What steps carry from one to the next within a run, beside bindings: the etcd membership
//! changes this run made, the snapshots and dumps it took, the clusters it created anew, and the
//! ZooKeeper ids it discovered. Plain data; the step families decide what it means.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ledger::CaptureKind;

/// The membership changes this run made, by node, with the node's generation at the time: a
/// change found already made counts as one's own only when this run made it for this very node.
#[derive(Debug, Default)]
pub struct MembershipChanges {
    /// Members added: node → (member id, generation).
    pub added: BTreeMap<String, (u64, u32)>,
    /// Members removed: node → (member id, generation).
    pub removed: BTreeMap<String, (u64, u32)>,
}

/// A snapshot or dump file taken in this run.
#[derive(Debug, Clone)]
pub struct CaptureFile {
    /// Where it is, on the harness's host.
    pub path: PathBuf,
    /// A snapshot or a dump.
    pub kind: CaptureKind,
    /// The revision it holds.
    pub revision: i64,
}

/// What steps carry from step to step.
#[derive(Debug, Default)]
pub struct StepState {
    /// The etcd membership changes this run made.
    pub etcd_changes: MembershipChanges,
    /// Snapshots and dumps taken, by label.
    pub captures: BTreeMap<String, CaptureFile>,
    /// Clusters created anew so far (each gets a token of its own).
    pub incarnation: u32,
    /// Ids read from the running ZooKeeper servers by `zookeeper-discover-ids`, by node.
    pub zookeeper_discovered: Option<BTreeMap<String, u64>>,
    /// Faults in effect, healed by `heal` or when the steps end.
    pub faults: crate::injection::Faults,
    /// Where fault steps draw the member they pick by role (`any`, `follower`): seeded from
    /// the run's seed, so a replay picks the same.
    pub picks: crate::rng::SeededRng,
}
