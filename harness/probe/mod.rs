//! Probes observe and never throw: a failure to observe is itself an observation.

pub mod etcd;
pub mod leader;
pub mod masters;
pub mod neighbour;
pub mod zookeeper;
