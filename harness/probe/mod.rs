//! Probes observe and never throw: a failure to observe is itself an observation.

pub mod answer;
pub mod etcd;
pub mod leader;
pub mod masters;
pub mod neighbour;
pub mod znodes;
pub mod zookeeper;
