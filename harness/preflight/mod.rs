//! `succession preflight`: read-only validation of a live cell before an upgrade touches it.
//! An inventory names the nodes; probes observe (four-letter words, etcd reads, HTTP GETs,
//! `ip` listings) and change nothing; pure checks turn the observations into a table of
//! pass/fail with the evidence, and the ZooKeeper ids are compared with what the upgrade will
//! write.

mod checks;
pub mod inventory;
mod junit;
pub mod net;
mod observe;
pub mod rehearse;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;

pub use checks::{evaluate, Check, IdReport, Outcome, Preflight};
pub use inventory::{Inventory, InventoryNode};
pub use junit::render_junit;
pub use observe::observe;
pub use render::{render_json, render_table};

use crate::exit::Exit;
use crate::probe::etcd::{KvHash, Member, Status};

/// What one etcd member answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdSeen {
    /// `endpoint status`.
    pub status: Status,
    /// `member list` as this member sees it.
    pub members: Vec<Member>,
    /// A linearizable read (what `endpoint health` does): Ok, or why it failed.
    pub health: Result<(), String>,
    /// How long that read took, ms.
    pub read_ms: u64,
    /// The backend quota (`etcd_server_quota_backend_bytes` of its `/metrics`).
    pub quota_bytes: Result<u64, String>,
    /// `hashkv` at the revision every member reached (none when no such revision was asked).
    pub hash: Option<Result<KvHash, String>>,
}

/// What one ZooKeeper server answered.
pub type ZookeeperSeen = crate::probe::zookeeper::ServerState;

/// What one ZooKeeper server answered to the four-letter words beyond `srvr`: the words it
/// refused (not in its `4lw.commands.whitelist`), `mntr`'s figures and `isro`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ZookeeperWords {
    /// Words it answered with a refusal.
    pub refused: Vec<String>,
    /// `mntr`, when it answered.
    pub mntr: Option<BTreeMap<String, String>>,
    /// `isro` (`rw` or `ro`), when it answered.
    pub isro: Option<String>,
}

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
    /// What the ZooKeeper servers that answered `srvr` said to the other words.
    pub zookeeper_words: BTreeMap<String, ZookeeperWords>,
    /// Mesos masters (`/redirect`).
    pub mesos: BTreeMap<String, Result<LeaderSeen, String>>,
    /// Marathons (`/v2/leader`).
    pub marathon: BTreeMap<String, Result<LeaderSeen, String>>,
    /// Interfaces and neighbour tables of the nodes the inventory can run commands on.
    pub nets: BTreeMap<String, Result<net::NodeNet, String>>,
    /// The reads through a border, by URL: the HTTP status, or why none came.
    pub border_reads: BTreeMap<String, Result<u16, String>>,
}

/// The exit code of a preflight: 3 when a node could not be reached, 1 when a check failed,
/// 4 when a check could not be shown, 5 when a check warned (0 with `--allow-warnings`), 0
/// when every check passed.
pub fn exit_of(preflight: &Preflight) -> Exit {
    let any = |o: Outcome| preflight.checks.iter().any(|c| c.outcome == o);
    if any(Outcome::Unreachable) || !preflight.unreachable.is_empty() {
        Exit::Environment
    } else if any(Outcome::Fail) {
        Exit::CheckFailed
    } else if any(Outcome::Unknown) {
        Exit::Unknown
    } else if any(Outcome::Warn) && !preflight.allow_warnings {
        Exit::Warnings
    } else {
        Exit::Pass
    }
}

/// The verdict word pipelines read (`verdict` in the JSON).
pub fn verdict_of(preflight: &Preflight) -> &'static str {
    match exit_of(preflight) {
        Exit::Pass if preflight.checks.iter().any(|c| c.outcome == Outcome::Warn) => {
            "pass-with-warnings"
        }
        Exit::Pass => "pass",
        Exit::CheckFailed => "fail",
        Exit::Unknown => "unknown",
        Exit::Warnings => "warn",
        _ => "unreachable",
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_border;
#[cfg(test)]
mod tests_etcd;
#[cfg(test)]
mod tests_zookeeper;
