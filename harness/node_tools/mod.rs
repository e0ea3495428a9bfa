//! The node agent that runs the harness's commands on a node over one connection (`agent`),
//! and the fault tools the node-side binary (`succession-standin`) runs on a node: the packet
//! delay queue (an NFQUEUE reader that holds packets for their delay), the faulty disk (a FUSE
//! passthrough with fsync latency that can lose power) and the timers the harness verifies
//! them with. They use `base/` only: the binary that carries them runs on every node.

pub mod agent;
pub mod delay_queue;
pub mod faultfs;
pub mod timing;
