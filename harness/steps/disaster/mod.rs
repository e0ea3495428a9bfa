//! etcd disaster recovery (seeds 001–003): rebuild from configuration, restore snapshots and
//! dumps, force a new cluster from a survivor — each measured by the write ledger — and what
//! they expect of the cluster afterwards.

mod captures;
mod checks;
mod rebuild;

use std::time::Duration;

use serde::Serialize;

use super::StepDef;
use crate::ledger::CaptureKind;
use crate::provider::{Hosts, NodeView};
use crate::runner::{target_nodes, Runner, StepResult};
use crate::service::{etcd, ServiceKind};
use crate::source::InputError;
use crate::spec::context::Validator;
use crate::spec::reader::{Located, TableReader};
use crate::spec::{NodeRef, Target};

/// The steps of this family.
pub const STEPS: &[StepDef] = &[
    StepDef { name: "etcd-load-config", expectation: false, disrupts: false, keys: &[], help: "put the cell's configuration keys, read from the configuration the harness keeps on disk, and delete any other key under that prefix" },
    StepDef { name: "etcd-wipe", expectation: false, disrupts: false, keys: &[("on", "a node or role")], help: "delete etcd's data directory (`rm -rf`); etcd must be stopped there" },
    StepDef { name: "etcd-new-cluster", expectation: false, disrupts: false, keys: &[("role", "where the masters come from"), ("nodes", "the masters, by name (default: seed 001's rule)")], help: "start etcd on the new masters as a new cluster from the configuration on disk; each must be stopped and wiped" },
    StepDef { name: "etcd-force-new-cluster", expectation: false, disrupts: true, keys: &[("node", "the survivor")], help: "restart etcd on the node with --force-new-cluster, wait until it leads a cluster of itself, restore its normal flags" },
    StepDef { name: "etcd-snapshot", expectation: false, disrupts: false, keys: &[("snapshot", "a name"), ("node", "take it from this member (default: the leader)")], help: "stream a snapshot to a file on the harness's host, outside every node" },
    StepDef { name: "etcd-snapshot-restore", expectation: false, disrupts: false, keys: &[("snapshot", "a snapshot taken earlier"), ("on", "a node or role")], help: "copy the snapshot to each node and `etcdctl snapshot restore` it, as one cluster of exactly those members; etcd must be stopped" },
    StepDef { name: "etcd-dump", expectation: false, disrupts: false, keys: &[("dump", "a name"), ("prefix", "the keys to dump")], help: "read every key under the prefix at one revision into a JSON file outside the cluster" },
    StepDef { name: "etcd-dump-restore", expectation: false, disrupts: false, keys: &[("dump", "a dump taken earlier")], help: "put every key of the dump back, retrying through live members" },
    StepDef { name: "quorum-lost", expectation: true, disrupts: false, keys: &[("service", "etcd (the default)"), ("measure", "record when it was seen"), ("within", "deadline (default 30s)")], help: "no live member has a leader, writes fail, serializable reads of the old data succeed and linearizable reads fail" },
    StepDef { name: "etcd-health", expectation: true, disrupts: false, keys: &[("on", "a node or role"), ("within", "deadline (default 30s)")], help: "`etcdctl endpoint health` through each member: a linearizable read succeeds" },
    StepDef { name: "etcd-config", expectation: true, disrupts: false, keys: &[("within", "deadline (default 30s)")], help: "every live member holds exactly the cell's configuration keys as on disk" },
    StepDef { name: "dump-restored", expectation: true, disrupts: false, keys: &[("dump", "a dump taken earlier"), ("within", "deadline (default 30s)")], help: "every key of the dump is back with its value, through every live member" },
    StepDef { name: "ledger", expectation: true, disrupts: false, keys: &[("node", "read through this member (default: any)"), ("acknowledged", "writes that must be acknowledged since the step began (default 1)"), ("within", "deadline (default 30s)")], help: "the ledger is read back and no acknowledged write is lost beyond what the scenario tolerates" },
];

/// An etcd disaster-recovery step (and the write ledger's read-back).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "recovery")]
pub enum Step {
    /// Put the cell's configuration keys, read from the configuration the harness keeps on
    /// disk, and delete any other key under the cell's configuration prefix.
    EtcdLoadConfig,
    /// Delete etcd's data directory on a node or on every live node of a role (`rm -rf`);
    /// etcd must be stopped there.
    EtcdWipe { on: Target },
    /// Start etcd on the chosen masters as a new cluster (`--initial-cluster-state new`, a new
    /// token) from the configuration on disk: the named nodes, or by seed 001's rule the live
    /// nodes of `role` when three or more, else every live etcd node.
    EtcdNewCluster { role: String, nodes: Vec<NodeRef> },
    /// Restart etcd on one member with `--force-new-cluster`, wait until it leads a cluster of
    /// itself, then restore its normal start flags.
    EtcdForceNewCluster { node: NodeRef },
    /// Save a snapshot from the leader (or a named member) to a file outside every node.
    EtcdSnapshot {
        label: String,
        node: Option<NodeRef>,
    },
    /// Copy a snapshot to each node and `etcdctl snapshot restore` it into a fresh data
    /// directory, as members of one cluster of exactly those nodes.
    EtcdSnapshotRestore { label: String, on: Target },
    /// Dump every key under a prefix, read at one revision, to a JSON file outside the cluster.
    EtcdDump { label: String, prefix: String },
    /// Put every key of a dump back.
    EtcdDumpRestore { label: String },
    /// Expect the etcd quorum lost: no live member has a leader, writes fail, serializable
    /// reads of the data still succeed and linearizable reads fail.
    ExpectQuorumLost {
        within: Duration,
        measure: Option<String>,
    },
    /// Expect `etcdctl endpoint health` healthy through each member (a linearizable read).
    ExpectEtcdHealth { on: Target, within: Duration },
    /// Expect the cell's configuration keys in etcd exactly as the configuration on disk says,
    /// through every live member.
    ExpectEtcdConfig { within: Duration },
    /// Expect every key of a dump back with its value, through every live member.
    ExpectDumpRestored { label: String, within: Duration },
    /// Once `acknowledged` writes made since the step began are acknowledged, read the ledger
    /// back (through a node, or any live member) and expect no acknowledged write lost beyond
    /// what the scenario tolerates.
    ExpectLedger {
        node: Option<NodeRef>,
        acknowledged: u64,
        within: Duration,
    },
}

/// Parses a step of this family.
pub fn parse(
    cx: &mut Validator<'_>,
    t: &mut TableReader<'_, '_>,
    word: &Located<String>,
    within: Duration,
    accepted: &mut Vec<&'static str>,
) -> Result<Step, InputError> {
    cx.require_etcd(word.span.clone())?;
    Ok(match word.value.as_str() {
        "etcd-load-config" => Step::EtcdLoadConfig,
        "etcd-wipe" => {
            accepted.push("on");
            Step::EtcdWipe {
                on: cx.target(t, "on")?,
            }
        }
        "etcd-new-cluster" => {
            accepted.extend(["role", "nodes"]);
            let role = cx.role(&t.str("role")?)?;
            let nodes = cx.node_list(t, "nodes")?;
            Step::EtcdNewCluster { role, nodes }
        }
        "etcd-force-new-cluster" => {
            accepted.push("node");
            Step::EtcdForceNewCluster {
                node: cx.node_running(t, "node", ServiceKind::Etcd)?,
            }
        }
        "etcd-snapshot" => {
            accepted.extend(["snapshot", "node"]);
            let label = cx.label(t, "snapshot")?.value;
            let node = cx.opt_node_running(t, "node", ServiceKind::Etcd)?;
            cx.captures.insert(label.clone(), CaptureKind::Snapshot);
            Step::EtcdSnapshot { label, node }
        }
        "etcd-snapshot-restore" => {
            accepted.extend(["snapshot", "on"]);
            Step::EtcdSnapshotRestore {
                label: captured(cx, t, "snapshot", CaptureKind::Snapshot)?,
                on: cx.target(t, "on")?,
            }
        }
        "etcd-dump" => {
            accepted.extend(["dump", "prefix"]);
            let label = cx.label(t, "dump")?.value;
            let prefix = t.str("prefix")?;
            if prefix.value.is_empty() {
                return Err(cx
                    .source
                    .error(prefix.span, "`prefix` is empty")
                    .with_help("dump the keys under a prefix, e.g. \"/_coreos.com/\""));
            }
            cx.captures.insert(label.clone(), CaptureKind::Dump);
            Step::EtcdDump {
                label,
                prefix: prefix.value,
            }
        }
        "etcd-dump-restore" => {
            accepted.push("dump");
            Step::EtcdDumpRestore {
                label: captured(cx, t, "dump", CaptureKind::Dump)?,
            }
        }
        "quorum-lost" => {
            accepted.extend(["service", "measure"]);
            if let Some(s) = t.opt_str("service")? {
                if s.value != "etcd" {
                    return Err(cx
                            .source
                            .error(s.span, format!("`quorum-lost` is not supported for {}", s.value))
                            .with_help("only etcd's quorum loss is observed (no leader, writes fail, serializable reads succeed)"));
                }
            }
            Step::ExpectQuorumLost {
                within,
                measure: t.opt_str("measure")?.map(|m| m.value),
            }
        }
        "etcd-health" => {
            accepted.push("on");
            Step::ExpectEtcdHealth {
                on: cx.target(t, "on")?,
                within,
            }
        }
        "etcd-config" => Step::ExpectEtcdConfig { within },
        "dump-restored" => {
            accepted.push("dump");
            Step::ExpectDumpRestored {
                label: captured(cx, t, "dump", CaptureKind::Dump)?,
                within,
            }
        }
        _ => {
            accepted.extend(["node", "acknowledged"]);
            if !cx.ledger {
                return Err(cx
                        .source
                        .error(word.span.clone(), "`expect = \"ledger\"` needs the write ledger")
                        .with_help("add a `[ledger]` table to the scenario (e.g. `tolerate = [\"after-snapshot\"]`)"));
            }
            Step::ExpectLedger {
                node: cx.opt_node_running(t, "node", ServiceKind::Etcd)?,
                acknowledged: t.opt_u64("acknowledged")?.map(|a| a.value).unwrap_or(1),
                within,
            }
        }
    })
}

/// A label taken by an earlier capture step of this kind.
fn captured(
    cx: &Validator<'_>,
    t: &mut TableReader<'_, '_>,
    key: &str,
    kind: CaptureKind,
) -> Result<String, InputError> {
    let l = cx.label(t, key)?;
    match cx.captures.get(&l.value) {
        Some(k) if *k == kind => Ok(l.value),
        _ => {
            let known: Vec<&str> = cx
                .captures
                .iter()
                .filter(|(_, k)| **k == kind)
                .map(|(l, _)| l.as_str())
                .collect();
            let taker = match kind {
                CaptureKind::Snapshot => "etcd-snapshot",
                CaptureKind::Dump => "etcd-dump",
            };
            let err = cx.source.error(
                l.span,
                format!(
                    "no earlier `{taker}` step takes {} `{}`",
                    kind.word(),
                    l.value
                ),
            );
            Err(if known.is_empty() {
                err.with_help(format!(
                    "take it first: a step with `action = \"{taker}\"` and `{key} = \"{}\"`",
                    l.value
                ))
            } else {
                err.with_help(format!("taken so far: {}", known.join(", ")))
            })
        }
    }
}

/// The name of a step that has none.
pub fn default_name(step: &Step, node: &dyn Fn(&NodeRef) -> String) -> String {
    let target = |t: &Target| match t {
        Target::Node(n) => node(n),
        Target::Role(r) => format!("every {r} node"),
    };
    match step {
        Step::EtcdLoadConfig => "load the cell's configuration into etcd".into(),
        Step::EtcdWipe { on } => format!("wipe etcd's data on {}", target(on)),
        Step::EtcdNewCluster { role, nodes } if nodes.is_empty() => {
            format!("create a new etcd cluster on the {role} masters")
        }
        Step::EtcdNewCluster { nodes, .. } => format!(
            "create a new etcd cluster on {}",
            nodes.iter().map(node).collect::<Vec<_>>().join(", ")
        ),
        Step::EtcdForceNewCluster { node: n } => {
            format!("force a new etcd cluster from {}", node(n))
        }
        Step::EtcdSnapshot { label, .. } => format!("take etcd snapshot `{label}`"),
        Step::EtcdSnapshotRestore { label, on } => {
            format!("restore snapshot `{label}` on {}", target(on))
        }
        Step::EtcdDump { label, prefix } => format!("dump {prefix} as `{label}`"),
        Step::EtcdDumpRestore { label } => format!("restore dump `{label}`"),
        Step::ExpectQuorumLost { .. } => "expect the etcd quorum lost".into(),
        Step::ExpectEtcdHealth { on, .. } => {
            format!("expect etcd healthy on {}", target(on))
        }
        Step::ExpectEtcdConfig { .. } => "expect the cell's configuration keys".into(),
        Step::ExpectDumpRestored { label, .. } => {
            format!("expect every key of `{label}` back")
        }
        Step::ExpectLedger { node: Some(n), .. } => {
            format!("read the ledger back through {}", node(n))
        }
        Step::ExpectLedger { node: None, .. } => "read the ledger back".into(),
    }
}

/// Runs one recovery step.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &Step) -> StepResult {
    let result = match step {
        Step::EtcdLoadConfig => rebuild::load_config(r).await,
        Step::EtcdWipe { on } => rebuild::wipe(r, on).await,
        Step::EtcdNewCluster { role, nodes } => rebuild::new_cluster(r, role, nodes).await,
        Step::EtcdForceNewCluster { node } => rebuild::force_new_cluster(r, node).await,
        Step::EtcdSnapshot { label, node } => captures::snapshot(r, label, node.as_ref()).await,
        Step::EtcdSnapshotRestore { label, on } => captures::snapshot_restore(r, label, on).await,
        Step::EtcdDump { label, prefix } => captures::dump(r, label, prefix).await,
        Step::EtcdDumpRestore { label } => captures::dump_restore(r, label).await,
        Step::ExpectQuorumLost { within, measure } => {
            checks::expect_quorum_lost(r, *within, measure.as_deref()).await
        }
        Step::ExpectEtcdHealth { on, within } => checks::expect_health(r, on, *within).await,
        Step::ExpectEtcdConfig { within } => checks::expect_config(r, *within).await,
        Step::ExpectDumpRestored { label, within } => {
            checks::expect_dump_restored(r, label, *within).await
        }
        Step::ExpectLedger {
            node,
            acknowledged,
            within,
        } => checks::expect_ledger(r, node.as_ref(), *acknowledged, *within).await,
    };
    r.ledger.refresh(&*r.cluster);
    result
}

pub(super) fn node_view<H: Hosts>(r: &Runner<'_, H>, fqdn: &str) -> Result<NodeView, String> {
    r.cluster
        .nodes()
        .into_iter()
        .find(|n| n.fqdn == fqdn)
        .ok_or_else(|| format!("unknown node {fqdn}"))
}
pub(super) fn peer(n: &NodeView) -> etcd::Peer {
    etcd::Peer {
        name: n.short.clone(),
        address: n.address,
    }
}
/// Whether etcd's process runs on a node.
pub(super) async fn etcd_running<H: Hosts>(r: &Runner<'_, H>, fqdn: &str) -> bool {
    r.cluster.is_running(fqdn, ServiceKind::Etcd).await
}
/// The nodes of a target that run etcd.
pub(super) fn etcd_targets<H: Hosts>(
    r: &Runner<'_, H>,
    on: &Target,
) -> Result<Vec<NodeView>, String> {
    let wanted = target_nodes(r, on)?;
    let nodes: Vec<NodeView> = r
        .cluster
        .nodes()
        .into_iter()
        .filter(|n| wanted.contains(&n.fqdn))
        .filter(|n| matches!(on, Target::Node(_)) || n.services.contains(&ServiceKind::Etcd))
        .collect();
    if nodes.is_empty() {
        return Err("no live etcd node to act on".to_string());
    }
    Ok(nodes)
}
pub(super) fn list(nodes: &[NodeView]) -> String {
    nodes
        .iter()
        .map(|n| n.short.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
/// The part of a probe error after the endpoint, with the client's timeouts said plainly.
pub(super) fn brief(error: &str) -> String {
    let rest = error
        .rsplit_once(&format!(":{}: ", crate::base::ports::ETCD_CLIENT))
        .map(|(_, rest)| rest)
        .unwrap_or(error);
    if rest.contains("Timeout expired") || rest.starts_with("no answer within") {
        "no answer in time".to_string()
    } else {
        rest.to_string()
    }
}
