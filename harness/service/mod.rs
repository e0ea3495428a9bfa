//! How each kind of server is configured, started and stopped on a node.

pub mod etcd;
pub mod ingress;
pub mod requirements;
pub mod standins;
pub mod zookeeper;

pub use crate::spec::ServiceKind;
