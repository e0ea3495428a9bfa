//! The files users write: topologies and scenarios, parsed and validated without side effects.

pub mod reader;
pub mod scenario;
pub mod topology;

pub use scenario::{
    NeighbourState, NodeRef, NodeSet, Scenario, Step, StepKind, Target, ZookeeperIds,
};
pub use topology::{NodeSpec, Role, SubnetChoice, Topology};

#[cfg(test)]
mod tests;
