//! The files users write, read without side effects: the span-keeping reader, topologies, what
//! steps name (nodes, targets), the context steps are read in and the reader each step's keys
//! go through, and what a scenario asks of the whole run (availability, checks, the ledger).
//! Scenarios themselves are read in `scenario`, each step through its row in `steps`.

pub mod args;
pub mod capability;
pub mod context;
pub mod ec2;
pub mod monitors;
pub mod reader;
pub mod roles;
pub mod service_kind;
pub mod step_reader;
pub mod topology;

pub use args::{NodeRef, NodeSet, Target, DEFAULT_WITHIN};
pub use monitors::{
    parse_ledger, parse_workload, AvailabilitySettings, Check, LedgerSpec, WorkloadSettings,
    AVAILABILITY_TARGETS, DEFAULT_MIN_SAMPLES,
};
pub use service_kind::ServiceKind;
pub use topology::{NodeSpec, Role, SubnetChoice, Topology};

#[cfg(test)]
mod tests;
