//! The files users write: topologies and scenarios, parsed and validated without side effects.

pub mod reader;
pub mod scenario;
pub mod topology;

pub use scenario::{
    AvailabilitySettings, Check, LeaderGoal, LedgerSpec, MoveMethod, NeighbourState, NodeRef,
    NodeSet, RecoveryStep, Scenario, Step, StepKind, Target, Via, ZookeeperIds,
    DEFAULT_MIN_SAMPLES,
};
pub use topology::{NodeSpec, Role, SubnetChoice, Topology};

#[cfg(test)]
mod tests;
