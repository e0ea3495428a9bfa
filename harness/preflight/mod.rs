//! `succession preflight`: read-only validation of a live cell before an upgrade touches it.
//! An inventory names the nodes; probes observe (four-letter words, etcd reads, HTTP GETs,
//! `ip` listings) and change nothing; pure checks turn the observations into a table of
//! pass/fail with the evidence, and the ZooKeeper ids are compared with what the upgrade will
//! write.

mod checks;
pub mod inventory;
pub mod net;
mod observe;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;

pub use checks::{evaluate, Check, IdReport, Outcome, Preflight};
pub use inventory::{Inventory, InventoryNode};
pub use observe::observe;
pub use render::{render_json, render_table};

use crate::exit::Exit;
use crate::probe::etcd::{Member, Status};

/// What one etcd member answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdSeen {
    /// `endpoint status`.
    pub status: Status,
    /// `member list` as this member sees it.
    pub members: Vec<Member>,
    /// A linearizable read (what `endpoint health` does): Ok, or why it failed.
    pub health: Result<(), String>,
}

/// What one ZooKeeper server answered.
pub type ZookeeperSeen = crate::probe::zookeeper::ServerState;

/// What one master said of the leader over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "answer", content = "detail")]
pub enum LeaderSeen {
    /// It names this host.
    Leader(String),
    /// It knows of none (503 from `/redirect`, 404 from `/v2/leader`).
    NoLeader(String),
    /// It answered something the documented API does not.
    Unexpected(String),
}

/// Everything observed of a cell, by node name; an `Err` is a node that could not be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observations {
    /// etcd members.
    pub etcd: BTreeMap<String, Result<EtcdSeen, String>>,
    /// ZooKeeper servers.
    pub zookeeper: BTreeMap<String, Result<ZookeeperSeen, String>>,
    /// Mesos masters (`/redirect`).
    pub mesos: BTreeMap<String, Result<LeaderSeen, String>>,
    /// Marathons (`/v2/leader`).
    pub marathon: BTreeMap<String, Result<LeaderSeen, String>>,
    /// Interfaces and neighbour tables of the nodes the inventory can run commands on.
    pub nets: BTreeMap<String, Result<net::NodeNet, String>>,
}

/// The exit code of a preflight: 3 when a node could not be reached, 1 when a check failed,
/// 0 when every check passed.
pub fn exit_of(preflight: &Preflight) -> Exit {
    let unreachable = preflight
        .checks
        .iter()
        .any(|c| c.outcome == Outcome::Unreachable);
    if unreachable || !preflight.unreachable.is_empty() {
        Exit::Environment
    } else if preflight.checks.iter().any(|c| c.outcome == Outcome::Fail) {
        Exit::CheckFailed
    } else {
        Exit::Pass
    }
}

#[cfg(test)]
mod tests;
