//! How each kind of server is configured, started and stopped on a node.

pub mod etcd;
mod kind;
pub mod zookeeper;

pub use kind::ServiceKind;
