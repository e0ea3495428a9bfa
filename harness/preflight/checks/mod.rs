//! The checks of a preflight: pure functions of the inventory and what was observed, one
//! module per service.

mod etcd;
mod etcd_store;
mod leader;
mod masters;
mod neighbours;
mod zookeeper;
mod zookeeper_words;

use std::collections::BTreeMap;

use serde::Serialize;

use super::inventory::{Inventory, InventoryNode};
use super::Observations;
use crate::static_ensemble::{Conflict, Ensemble, Restart};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It holds, but something in the evidence needs attention before an upgrade.
    Warn,
    /// It does not.
    Fail,
    /// What it needs could not be shown (a four-letter word not allowed, an answer missing):
    /// never a pass.
    Unknown,
    /// Nothing to check (the inventory gives no way to).
    Skip,
    /// A node it needs could not be reached.
    Unreachable,
}

impl Outcome {
    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Unknown => "UNKNOWN",
            Outcome::Skip => "skip",
            Outcome::Unreachable => "UNREACHABLE",
        }
    }
}

/// One row of the preflight table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What it is about (`etcd`, `zookeeper`, `mesos`, `marathon`, `neighbours`).
    pub service: String,
    /// What it checks.
    pub check: String,
    /// How it came out.
    pub outcome: Outcome,
    /// What was seen.
    pub evidence: String,
}

/// The running ZooKeeper ids against the upgrade's, when they differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdReport {
    /// The running ensemble (each server's own `conf` serverId).
    pub running: Ensemble,
    /// What the upgrade writes: the inventory's ZooKeeper addresses sorted as strings,
    /// numbered from 1.
    pub upgrade: Ensemble,
    /// The order the upgrade is assumed to restart the servers in (the inventory's).
    pub restart_order: Vec<String>,
    /// Every id conflict that upgrade would cause, in the order they appear.
    pub conflicts: Vec<Conflict>,
    /// The rolling renumbering that avoids them, from the current leader.
    pub plan: Vec<Restart>,
    /// Node short names by host, for display.
    pub labels: BTreeMap<String, String>,
}

/// A whole preflight: the checks, the id comparison, and who could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// The inventory file.
    pub inventory: String,
    /// The cell, when the inventory names it.
    pub cell: Option<String>,
    /// Every check, in table order.
    pub checks: Vec<Check>,
    /// The ZooKeeper id comparison, when the ids differ from the upgrade's.
    pub zookeeper_ids: Option<IdReport>,
    /// Nodes that could not be reached, and why.
    pub unreachable: Vec<String>,
    /// Whether warnings alone still exit 0 (`--allow-warnings`).
    pub allow_warnings: bool,
}

pub(super) fn row(
    service: &str,
    name: &str,
    outcome: Outcome,
    evidence: impl Into<String>,
) -> Check {
    Check {
        service: service.to_string(),
        check: name.to_string(),
        outcome,
        evidence: evidence.into(),
    }
}

pub(super) fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Every read through the border answers (2xx or 3xx): the app and each master tier as their
/// clients reach them. Read-only GETs, as kubeadm's workload probe is a real request.
fn border_reads(obs: &Observations) -> Check {
    const NAME: &str = "the app and master tiers answer through the border";
    let mut answered = Vec::new();
    let mut failed = Vec::new();
    for (url, status) in &obs.border_reads {
        match status {
            Ok(code) if (200..400).contains(code) => answered.push(format!("{url} {code}")),
            Ok(code) => failed.push(format!("{url} answered {code}")),
            Err(e) => failed.push(e.clone()),
        }
    }
    if failed.is_empty() {
        row("border", NAME, Outcome::Pass, list(&answered))
    } else {
        row("border", NAME, Outcome::Fail, list(&failed))
    }
}

/// Runs every check on what was observed.
pub fn evaluate(inv: &Inventory, obs: &Observations) -> Preflight {
    let mut checks = Vec::new();
    let mut unreachable = Vec::new();
    for (service, map) in [
        (
            "etcd",
            obs.etcd
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect::<Vec<_>>(),
        ),
        (
            "zookeeper",
            obs.zookeeper
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
        (
            "mesos",
            obs.mesos
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
        (
            "marathon",
            obs.marathon
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
        (
            "exec",
            obs.nets
                .iter()
                .map(|(n, r)| (n, r.as_ref().err()))
                .collect(),
        ),
    ] {
        for (node, err) in map {
            if let Some(e) = err {
                unreachable.push(format!("{} ({service}): {e}", inv.label(node)));
            }
        }
    }
    if !inv.etcd_nodes().is_empty() {
        checks.extend(etcd::checks(inv, obs));
    }
    let mut zookeeper_ids = None;
    if !inv.zookeeper_nodes().is_empty() {
        let (zk, ids) = zookeeper::checks(inv, obs);
        checks.extend(zk);
        checks.extend(zookeeper_words::checks(inv, obs));
        zookeeper_ids = ids;
    }
    for (service, endpoint, seen) in [
        ("mesos", "/redirect", &obs.mesos),
        ("marathon", "/v2/leader", &obs.marathon),
    ] {
        let masters: Vec<&InventoryNode> = inv
            .nodes
            .iter()
            .filter(|n| match service {
                "mesos" => n.mesos.is_some(),
                _ => n.marathon.is_some(),
            })
            .collect();
        if !masters.is_empty() {
            checks.push(masters::check(inv, service, endpoint, &masters, seen));
        }
    }
    if inv.nodes.iter().any(|n| !n.border_reads.is_empty()) {
        checks.push(border_reads(obs));
    }
    checks.push(neighbours::check(inv, obs));
    Preflight {
        inventory: inv.file.display().to_string(),
        cell: inv.cell.clone(),
        checks,
        zookeeper_ids,
        unreachable,
        allow_warnings: false,
    }
}
