//! The scenario format's etcd disaster-recovery steps and its `[ledger]` table.

use std::time::Duration;

use serde::Serialize;

use super::{NodeRef, Target, Validator};
use crate::ledger::writer::WriterSettings;
use crate::ledger::{CaptureKind, Tolerance};
use crate::service::ServiceKind;
use crate::source::{InputError, SourceFile};
use crate::spec::reader::{Located, TableReader};

/// The recovery actions (the scenario's help texts list them after its own).
pub(super) const ACTIONS: &[&str] = &[
    "etcd-load-config",
    "etcd-wipe",
    "etcd-new-cluster",
    "etcd-force-new-cluster",
    "etcd-snapshot",
    "etcd-snapshot-restore",
    "etcd-dump",
    "etcd-dump-restore",
];

/// The recovery expectations (the scenario's help texts list them after its own).
pub(super) const EXPECTATIONS: &[&str] = &[
    "quorum-lost",
    "etcd-health",
    "etcd-config",
    "dump-restored",
    "ledger",
];

/// The ledger's prefix when the scenario names none.
pub const DEFAULT_LEDGER_PREFIX: &str = "/succession/ledger/";
/// Time between ledger writes when the scenario names none.
pub const DEFAULT_LEDGER_INTERVAL: Duration = Duration::from_millis(50);
/// How long one ledger write may take when the scenario names no bound.
pub const DEFAULT_LEDGER_TIMEOUT: Duration = Duration::from_secs(1);

/// The `[ledger]` table: how the write ledger writes and what loss the scenario tolerates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerSpec {
    /// Prefix, rate and per-write timeout.
    pub settings: WriterSettings,
    /// What loss is accepted (nothing by default).
    pub tolerate: Tolerance,
}

/// An etcd disaster-recovery step.
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

impl RecoveryStep {
    /// Whether the step disturbs the cluster (see `StepKind::is_disruption`).
    pub fn is_disruption(&self) -> bool {
        matches!(self, RecoveryStep::EtcdForceNewCluster { .. })
    }

    /// Whether the step is an expectation.
    pub fn is_expectation(&self) -> bool {
        matches!(
            self,
            RecoveryStep::ExpectQuorumLost { .. }
                | RecoveryStep::ExpectEtcdHealth { .. }
                | RecoveryStep::ExpectEtcdConfig { .. }
                | RecoveryStep::ExpectDumpRestored { .. }
                | RecoveryStep::ExpectLedger { .. }
        )
    }

    /// The name of a step that has none.
    pub fn default_name(&self, node: &dyn Fn(&NodeRef) -> String) -> String {
        let target = |t: &Target| match t {
            Target::Node(n) => node(n),
            Target::Role(r) => format!("every {r} node"),
        };
        match self {
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
}

/// Parses the `[ledger]` table.
pub(super) fn parse_ledger(
    source: &SourceFile,
    mut t: TableReader<'_, '_>,
) -> Result<LedgerSpec, InputError> {
    let prefix = match t.opt_str("prefix")? {
        Some(p) if p.value.is_empty() => {
            return Err(source.error(p.span, "`prefix` in `[ledger]` is empty"))
        }
        Some(p) => p.value,
        None => DEFAULT_LEDGER_PREFIX.to_string(),
    };
    let interval = t
        .opt_duration("interval")?
        .map(|d| d.value)
        .unwrap_or(DEFAULT_LEDGER_INTERVAL);
    let timeout = t
        .opt_duration("timeout")?
        .map(|d| d.value)
        .unwrap_or(DEFAULT_LEDGER_TIMEOUT);
    let window = t.opt_duration("uncommitted_window")?;
    let mut tolerate = Tolerance::default();
    let known = ["none", "after-snapshot", "wiped", "uncommitted"];
    for word in t
        .opt_str_list("tolerate")?
        .map(|l| l.value)
        .unwrap_or_default()
    {
        match word.value.as_str() {
            "none" => {}
            "after-snapshot" => tolerate.after_snapshot = true,
            "wiped" => tolerate.wiped = true,
            "uncommitted" => {
                tolerate.uncommitted_ms = Some(
                    window
                        .as_ref()
                        .map(|w| w.value)
                        .unwrap_or(Duration::from_millis(
                            crate::ledger::history::DEFAULT_UNCOMMITTED_MS,
                        ))
                        .as_millis() as u64,
                )
            }
            other => {
                let mut err = source.error(
                    word.span.clone(),
                    format!("unknown loss `{other}` in `tolerate`"),
                );
                err = match crate::spec::reader::closest(other, &known) {
                    Some(c) => err.with_help(format!("did you mean `{c}`? known: {}", known.join(", "))),
                    None => err.with_help(
                        "known: after-snapshot (writes made after the restored snapshot or dump), wiped (writes only in wiped data), uncommitted (writes acknowledged just before a quorum loss), none",
                    ),
                };
                return Err(err);
            }
        }
    }
    if let (Some(w), None) = (&window, tolerate.uncommitted_ms) {
        return Err(source
            .error(
                w.span.clone(),
                "`uncommitted_window` is set but `tolerate` does not list \"uncommitted\"",
            )
            .with_help("add \"uncommitted\" to `tolerate`, or remove the window"));
    }
    t.finish(&[
        "prefix",
        "interval",
        "timeout",
        "tolerate",
        "uncommitted_window",
    ])?;
    Ok(LedgerSpec {
        settings: WriterSettings {
            prefix,
            interval,
            timeout,
        },
        tolerate,
    })
}

impl Validator<'_> {
    /// Reads the `phase` and `interrupt` keys every step may carry.
    pub(super) fn phase_keys(
        &mut self,
        t: &mut TableReader<'_, '_>,
    ) -> Result<(Option<String>, bool), InputError> {
        let phase = match t.opt_str("phase")? {
            Some(p) if p.value.trim().is_empty() => {
                return Err(self.source.error(p.span, "`phase` is empty"))
            }
            Some(p) => Some(p.value),
            None => None,
        };
        if phase.is_some() {
            self.phase = phase.clone();
        }
        let interrupt = match t.opt_bool("interrupt")? {
            Some(i) if i.value && self.phase.is_none() => {
                return Err(self
                    .source
                    .error(i.span, "`interrupt` needs a phase to re-run")
                    .with_help("set `phase = \"…\"` on this step or an earlier one: the interrupted phase is run again from its first step"))
            }
            Some(i) => i.value,
            None => false,
        };
        Ok((phase, interrupt))
    }

    fn require_etcd(&self, span: std::ops::Range<usize>) -> Result<(), InputError> {
        if self.topology.nodes_running(ServiceKind::Etcd).is_empty() {
            return Err(self.source.error(span, "the topology runs no etcd"));
        }
        Ok(())
    }

    fn label(&self, t: &mut TableReader<'_, '_>, key: &str) -> Result<Located<String>, InputError> {
        let l = t.str(key)?;
        if l.value.is_empty()
            || !l
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(self
                .source
                .error(l.span, format!("`{key}` \"{}\" is not a name", l.value))
                .with_help("use letters, digits, '.', '_' and '-', e.g. \"backup-1\""));
        }
        Ok(l)
    }

    /// A label taken by an earlier capture step of this kind.
    fn captured(
        &self,
        t: &mut TableReader<'_, '_>,
        key: &str,
        kind: CaptureKind,
    ) -> Result<String, InputError> {
        let l = self.label(t, key)?;
        match self.captures.get(&l.value) {
            Some(k) if *k == kind => Ok(l.value),
            _ => {
                let known: Vec<&str> = self
                    .captures
                    .iter()
                    .filter(|(_, k)| **k == kind)
                    .map(|(l, _)| l.as_str())
                    .collect();
                let taker = match kind {
                    CaptureKind::Snapshot => "etcd-snapshot",
                    CaptureKind::Dump => "etcd-dump",
                };
                let err = self.source.error(
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

    /// Parses a recovery action.
    pub(super) fn recovery_action(
        &mut self,
        t: &mut TableReader<'_, '_>,
        action: &Located<String>,
        accepted: &mut Vec<&'static str>,
    ) -> Result<RecoveryStep, InputError> {
        self.require_etcd(action.span.clone())?;
        Ok(match action.value.as_str() {
            "etcd-load-config" => RecoveryStep::EtcdLoadConfig,
            "etcd-wipe" => {
                accepted.push("on");
                RecoveryStep::EtcdWipe {
                    on: self.target(t, "on")?,
                }
            }
            "etcd-new-cluster" => {
                accepted.extend(["role", "nodes"]);
                let role = self.role(&t.str("role")?)?;
                let nodes = self.node_list(t, "nodes")?;
                RecoveryStep::EtcdNewCluster { role, nodes }
            }
            "etcd-force-new-cluster" => {
                accepted.push("node");
                RecoveryStep::EtcdForceNewCluster {
                    node: self.node_running(t, "node", ServiceKind::Etcd)?,
                }
            }
            "etcd-snapshot" => {
                accepted.extend(["snapshot", "node"]);
                let label = self.label(t, "snapshot")?.value;
                let node = self.opt_node_running(t, "node", ServiceKind::Etcd)?;
                self.captures.insert(label.clone(), CaptureKind::Snapshot);
                RecoveryStep::EtcdSnapshot { label, node }
            }
            "etcd-snapshot-restore" => {
                accepted.extend(["snapshot", "on"]);
                RecoveryStep::EtcdSnapshotRestore {
                    label: self.captured(t, "snapshot", CaptureKind::Snapshot)?,
                    on: self.target(t, "on")?,
                }
            }
            "etcd-dump" => {
                accepted.extend(["dump", "prefix"]);
                let label = self.label(t, "dump")?.value;
                let prefix = t.str("prefix")?;
                if prefix.value.is_empty() {
                    return Err(self
                        .source
                        .error(prefix.span, "`prefix` is empty")
                        .with_help("dump the keys under a prefix, e.g. \"/_coreos.com/\""));
                }
                self.captures.insert(label.clone(), CaptureKind::Dump);
                RecoveryStep::EtcdDump {
                    label,
                    prefix: prefix.value,
                }
            }
            _ => {
                accepted.push("dump");
                RecoveryStep::EtcdDumpRestore {
                    label: self.captured(t, "dump", CaptureKind::Dump)?,
                }
            }
        })
    }

    /// Parses a recovery expectation.
    pub(super) fn recovery_expectation(
        &mut self,
        t: &mut TableReader<'_, '_>,
        expect: &Located<String>,
        within: Duration,
        accepted: &mut Vec<&'static str>,
    ) -> Result<RecoveryStep, InputError> {
        self.require_etcd(expect.span.clone())?;
        Ok(match expect.value.as_str() {
            "quorum-lost" => {
                accepted.extend(["service", "measure"]);
                if let Some(s) = t.opt_str("service")? {
                    if s.value != "etcd" {
                        return Err(self
                            .source
                            .error(s.span, format!("`quorum-lost` is not supported for {}", s.value))
                            .with_help("only etcd's quorum loss is observed (no leader, writes fail, serializable reads succeed)"));
                    }
                }
                RecoveryStep::ExpectQuorumLost {
                    within,
                    measure: t.opt_str("measure")?.map(|m| m.value),
                }
            }
            "etcd-health" => {
                accepted.push("on");
                RecoveryStep::ExpectEtcdHealth {
                    on: self.target(t, "on")?,
                    within,
                }
            }
            "etcd-config" => RecoveryStep::ExpectEtcdConfig { within },
            "dump-restored" => {
                accepted.push("dump");
                RecoveryStep::ExpectDumpRestored {
                    label: self.captured(t, "dump", CaptureKind::Dump)?,
                    within,
                }
            }
            _ => {
                accepted.extend(["node", "acknowledged"]);
                if !self.ledger {
                    return Err(self
                        .source
                        .error(expect.span.clone(), "`expect = \"ledger\"` needs the write ledger")
                        .with_help("add a `[ledger]` table to the scenario (e.g. `tolerate = [\"after-snapshot\"]`)"));
                }
                RecoveryStep::ExpectLedger {
                    node: self.opt_node_running(t, "node", ServiceKind::Etcd)?,
                    acknowledged: t.opt_u64("acknowledged")?.map(|a| a.value).unwrap_or(1),
                    within,
                }
            }
        })
    }
}
