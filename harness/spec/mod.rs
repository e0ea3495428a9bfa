//! The files users write: topologies and scenarios, parsed and validated without side effects.

pub mod reader;
pub mod scenario;
pub mod topology;

pub use scenario::{
    LedgerSpec, NeighbourState, NodeRef, NodeSet, RecoveryStep, Scenario, Step, StepKind, Target,
};
pub use topology::{NodeSpec, Role, SubnetChoice, Topology};

#[cfg(test)]
mod tests;
