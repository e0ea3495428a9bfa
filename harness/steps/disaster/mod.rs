//! etcd disaster recovery (seeds 001–003): rebuild from configuration, restore snapshots and
//! dumps, force a new cluster from a survivor — each measured by the write ledger — and what
//! they expect of the cluster afterwards.

mod captures;
mod checks;
mod rebuild;

use std::time::Duration;

use serde::Serialize;

use super::{key, StepKind, StepRow};
use crate::ledger::CaptureKind;
use crate::provider::{Hosts, NodeView};
use crate::runner::{target_nodes, Runner, StepResult};
use crate::service::{etcd, ServiceKind};
use crate::source::InputError;
use crate::spec::step_reader::StepReader;
use crate::spec::{NodeRef, Target};

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow { name: "etcd-load-config", expectation: false, disrupts: false, needs: &[], keys: &[], help: "put the cell's configuration keys, read from the configuration the harness keeps on disk, and delete any other key under that prefix", parse: parse_load_config },
    StepRow { name: "etcd-wipe", expectation: false, disrupts: false, needs: &[], keys: &[key(&["on"], "a node or role")], help: "delete etcd's data directory (`rm -rf`); etcd must be stopped there", parse: parse_wipe },
    StepRow { name: "etcd-new-cluster", expectation: false, disrupts: false, needs: &[], keys: &[key(&["role"], "where the masters come from"), key(&["nodes"], "the masters, by name (default: seed 001's rule)")], help: "start etcd on the new masters as a new cluster from the configuration on disk; each must be stopped and wiped", parse: parse_new_cluster },
    StepRow { name: "etcd-force-new-cluster", expectation: false, disrupts: true, needs: &[], keys: &[key(&["node"], "the survivor")], help: "restart etcd on the node with --force-new-cluster, wait until it leads a cluster of itself, restore its normal flags", parse: parse_force_new_cluster },
    StepRow { name: "etcd-snapshot", expectation: false, disrupts: false, needs: &[], keys: &[key(&["snapshot"], "a name"), key(&["node"], "take it from this member (default: the leader)")], help: "stream a snapshot to a file on the harness's host, outside every node", parse: parse_snapshot },
    StepRow { name: "etcd-snapshot-restore", expectation: false, disrupts: false, needs: &[], keys: &[key(&["snapshot"], "a snapshot taken earlier"), key(&["on"], "a node or role")], help: "copy the snapshot to each node and `etcdctl snapshot restore` it, as one cluster of exactly those members; etcd must be stopped", parse: parse_snapshot_restore },
    StepRow { name: "etcd-dump", expectation: false, disrupts: false, needs: &[], keys: &[key(&["dump"], "a name"), key(&["prefix"], "the keys to dump")], help: "read every key under the prefix at one revision into a JSON file outside the cluster", parse: parse_dump },
    StepRow { name: "etcd-dump-restore", expectation: false, disrupts: false, needs: &[], keys: &[key(&["dump"], "a dump taken earlier")], help: "put every key of the dump back, retrying through live members", parse: parse_dump_restore },
    StepRow { name: "quorum-lost", expectation: true, disrupts: false, needs: &[], keys: &[key(&["service"], "etcd (the default)"), key(&["measure"], "record when it was seen")], help: "no live member has a leader, writes fail, serializable reads of the old data succeed and linearizable reads fail", parse: parse_quorum_lost },
    StepRow { name: "etcd-health", expectation: true, disrupts: false, needs: &[], keys: &[key(&["on"], "a node or role")], help: "`etcdctl endpoint health` through each member: a linearizable read succeeds", parse: parse_health },
    StepRow { name: "etcd-config", expectation: true, disrupts: false, needs: &[], keys: &[], help: "every live member holds exactly the cell's configuration keys as on disk", parse: parse_config },
    StepRow { name: "dump-restored", expectation: true, disrupts: false, needs: &[], keys: &[key(&["dump"], "a dump taken earlier")], help: "every key of the dump is back with its value, through every live member", parse: parse_dump_restored },
    StepRow { name: "ledger", expectation: true, disrupts: false, needs: &[], keys: &[key(&["node"], "read through this member (default: any)"), key(&["acknowledged"], "writes that must be acknowledged since the step began (default 1)")], help: "the ledger is read back and no acknowledged write is lost beyond what the scenario tolerates", parse: parse_ledger },
];

/// An etcd disaster-recovery step (and the write ledger's read-back).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "recovery")]
pub enum RecoveryStep {
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

// Every step of this family starts by checking that the topology runs etcd at all, so the
// error points at the step's name rather than at some key.

fn parse_load_config(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    Ok(RecoveryStep::EtcdLoadConfig.into())
}

fn parse_wipe(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let on = r.target("on")?;
    Ok(RecoveryStep::EtcdWipe { on }.into())
}

fn parse_new_cluster(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let role = r.str("role")?;
    let role = r.context().role(&role)?;
    let nodes = r.node_list("nodes")?;
    Ok(RecoveryStep::EtcdNewCluster { role, nodes }.into())
}

fn parse_force_new_cluster(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let node = r.node_running("node", ServiceKind::Etcd)?;
    Ok(RecoveryStep::EtcdForceNewCluster { node }.into())
}

fn parse_snapshot(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let label = r.label("snapshot")?.value;
    let node = r.opt_node_running("node", ServiceKind::Etcd)?;
    r.context_mut()
        .captures
        .insert(label.clone(), CaptureKind::Snapshot);
    Ok(RecoveryStep::EtcdSnapshot { label, node }.into())
}

fn parse_snapshot_restore(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let label = captured(r, "snapshot", CaptureKind::Snapshot)?;
    let on = r.target("on")?;
    Ok(RecoveryStep::EtcdSnapshotRestore { label, on }.into())
}

fn parse_dump(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let label = r.label("dump")?.value;
    let prefix = r.str("prefix")?;
    if prefix.value.is_empty() {
        return Err(r
            .error(prefix.span, "`prefix` is empty")
            .with_help("dump the keys under a prefix, e.g. \"/_coreos.com/\""));
    }
    r.context_mut()
        .captures
        .insert(label.clone(), CaptureKind::Dump);
    Ok(RecoveryStep::EtcdDump {
        label,
        prefix: prefix.value,
    }
    .into())
}

fn parse_dump_restore(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let label = captured(r, "dump", CaptureKind::Dump)?;
    Ok(RecoveryStep::EtcdDumpRestore { label }.into())
}

fn parse_quorum_lost(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    if let Some(s) = r.opt_str("service")? {
        if s.value != "etcd" {
            return Err(r
                .error(s.span, format!("`quorum-lost` is not supported for {}", s.value))
                .with_help("only etcd's quorum loss is observed (no leader, writes fail, serializable reads succeed)"));
        }
    }
    let measure = r.opt_str("measure")?.map(|m| m.value);
    Ok(RecoveryStep::ExpectQuorumLost {
        within: r.within(),
        measure,
    }
    .into())
}

fn parse_health(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let on = r.target("on")?;
    Ok(RecoveryStep::ExpectEtcdHealth {
        on,
        within: r.within(),
    }
    .into())
}

fn parse_config(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    Ok(RecoveryStep::ExpectEtcdConfig { within: r.within() }.into())
}

fn parse_dump_restored(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    let label = captured(r, "dump", CaptureKind::Dump)?;
    Ok(RecoveryStep::ExpectDumpRestored {
        label,
        within: r.within(),
    }
    .into())
}

fn parse_ledger(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_etcd(r)?;
    if !r.context().ledger {
        return Err(r
            .error(
                r.word().span.clone(),
                "`expect = \"ledger\"` needs the write ledger",
            )
            .with_help(
                "add a `[ledger]` table to the scenario (e.g. `tolerate = [\"after-snapshot\"]`)",
            ));
    }
    let node = r.opt_node_running("node", ServiceKind::Etcd)?;
    let acknowledged = r.opt_u64("acknowledged")?.map(|a| a.value).unwrap_or(1);
    Ok(RecoveryStep::ExpectLedger {
        node,
        acknowledged,
        within: r.within(),
    }
    .into())
}

fn require_etcd(r: &StepReader<'_, '_>) -> Result<(), InputError> {
    r.context().require_etcd(r.word().span.clone())
}

/// A label taken by an earlier capture step of this kind.
fn captured(
    r: &mut StepReader<'_, '_>,
    key: &'static str,
    kind: CaptureKind,
) -> Result<String, InputError> {
    let l = r.label(key)?;
    let cx = r.context();
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
pub fn default_name(step: &RecoveryStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    let target = |t: &Target| match t {
        Target::Node(n) => node(n),
        Target::Role(r) => format!("every {r} node"),
    };
    match step {
        RecoveryStep::EtcdLoadConfig => "load the cell's configuration into etcd".into(),
        RecoveryStep::EtcdWipe { on } => format!("wipe etcd's data on {}", target(on)),
        RecoveryStep::EtcdNewCluster { role, nodes } if nodes.is_empty() => {
            format!("create a new etcd cluster on the {role} masters")
        }
        RecoveryStep::EtcdNewCluster { nodes, .. } => format!(
            "create a new etcd cluster on {}",
            nodes.iter().map(node).collect::<Vec<_>>().join(", ")
        ),
        RecoveryStep::EtcdForceNewCluster { node: n } => {
            format!("force a new etcd cluster from {}", node(n))
        }
        RecoveryStep::EtcdSnapshot { label, .. } => format!("take etcd snapshot `{label}`"),
        RecoveryStep::EtcdSnapshotRestore { label, on } => {
            format!("restore snapshot `{label}` on {}", target(on))
        }
        RecoveryStep::EtcdDump { label, prefix } => format!("dump {prefix} as `{label}`"),
        RecoveryStep::EtcdDumpRestore { label } => format!("restore dump `{label}`"),
        RecoveryStep::ExpectQuorumLost { .. } => "expect the etcd quorum lost".into(),
        RecoveryStep::ExpectEtcdHealth { on, .. } => {
            format!("expect etcd healthy on {}", target(on))
        }
        RecoveryStep::ExpectEtcdConfig { .. } => "expect the cell's configuration keys".into(),
        RecoveryStep::ExpectDumpRestored { label, .. } => {
            format!("expect every key of `{label}` back")
        }
        RecoveryStep::ExpectLedger { node: Some(n), .. } => {
            format!("read the ledger back through {}", node(n))
        }
        RecoveryStep::ExpectLedger { node: None, .. } => "read the ledger back".into(),
    }
}

/// Runs one recovery step.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &RecoveryStep) -> StepResult {
    let result = match step {
        RecoveryStep::EtcdLoadConfig => rebuild::load_config(r).await,
        RecoveryStep::EtcdWipe { on } => rebuild::wipe(r, on).await,
        RecoveryStep::EtcdNewCluster { role, nodes } => rebuild::new_cluster(r, role, nodes).await,
        RecoveryStep::EtcdForceNewCluster { node } => rebuild::force_new_cluster(r, node).await,
        RecoveryStep::EtcdSnapshot { label, node } => {
            captures::snapshot(r, label, node.as_ref()).await
        }
        RecoveryStep::EtcdSnapshotRestore { label, on } => {
            captures::snapshot_restore(r, label, on).await
        }
        RecoveryStep::EtcdDump { label, prefix } => captures::dump(r, label, prefix).await,
        RecoveryStep::EtcdDumpRestore { label } => captures::dump_restore(r, label).await,
        RecoveryStep::ExpectQuorumLost { within, measure } => {
            checks::expect_quorum_lost(r, *within, measure.as_deref()).await
        }
        RecoveryStep::ExpectEtcdHealth { on, within } => {
            checks::expect_health(r, on, *within).await
        }
        RecoveryStep::ExpectEtcdConfig { within } => checks::expect_config(r, *within).await,
        RecoveryStep::ExpectDumpRestored { label, within } => {
            checks::expect_dump_restored(r, label, *within).await
        }
        RecoveryStep::ExpectLedger {
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
pub(super) fn brief<E: ToString + ?Sized>(error: &E) -> String {
    let error = error.to_string();
    let rest = error
        .rsplit_once(&format!(":{}: ", crate::base::ports::ETCD_CLIENT))
        .map(|(_, rest)| rest)
        .unwrap_or(&error);
    if rest.contains("Timeout expired") || rest.starts_with("no answer within") {
        "no answer in time".to_string()
    } else {
        rest.to_string()
    }
}
