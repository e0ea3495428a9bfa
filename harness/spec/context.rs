//! The context a scenario's steps are read in: its file, its topology, and what earlier steps
//! bound, captured or began. Every step's keys are read through `step_reader`, which resolves
//! the values here, so every step names nodes, roles and services the same way and every
//! mistake points at its place in the file.

use std::collections::{BTreeMap, BTreeSet};

use super::args::{NodeRef, Target};
use super::reader::{Located, TableReader};
use super::topology::Topology;
use super::ServiceKind;
use crate::ledger::CaptureKind;
use crate::source::{InputError, SourceFile};

/// What the steps read so far have established.
pub struct Validator<'s> {
    /// The scenario file.
    pub source: &'s SourceFile,
    /// Its topology.
    pub topology: &'s Topology,
    /// Names bound by earlier steps.
    pub bound: BTreeSet<String>,
    /// The service whose leader each binding names, where a step binds a leader.
    pub bound_service: BTreeMap<String, ServiceKind>,
    /// Whether an earlier step discovered the ZooKeeper ids.
    pub discovered: bool,
    /// Snapshots and dumps taken by earlier steps, by label.
    pub captures: BTreeMap<String, CaptureKind>,
    /// Whether the scenario runs the write ledger.
    pub ledger: bool,
    /// The phase begun by an earlier step, if any.
    pub phase: Option<String>,
    /// Names of the steps read so far.
    pub step_names: BTreeSet<String>,
}

impl<'s> Validator<'s> {
    /// The context before the first step.
    pub fn new(source: &'s SourceFile, topology: &'s Topology, ledger: bool) -> Self {
        Self {
            source,
            topology,
            bound: BTreeSet::new(),
            bound_service: BTreeMap::new(),
            discovered: false,
            captures: BTreeMap::new(),
            ledger,
            phase: None,
            step_names: BTreeSet::new(),
        }
    }

    /// Reads the `phase` and `interrupt` keys every step may carry.
    pub fn phase_keys(
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

    /// Fails unless the topology runs etcd (a step of etcd's alone, named at `span`).
    pub fn require_etcd(&self, span: std::ops::Range<usize>) -> Result<(), InputError> {
        if self.topology.nodes_running(ServiceKind::Etcd).is_empty() {
            return Err(self.source.error(span, "the topology runs no etcd"));
        }
        Ok(())
    }

    /// Fails unless the topology runs ZooKeeper, which the step `what` needs.
    pub fn runs_zookeeper(&self, what: &Located<String>) -> Result<(), InputError> {
        if self
            .topology
            .nodes_running(ServiceKind::Zookeeper)
            .is_empty()
        {
            return Err(self.source.error(
                what.span.clone(),
                format!(
                    "`{}` needs zookeeper, and no node of topology `{}` runs it",
                    what.value,
                    self.topology.file.display()
                ),
            ));
        }
        Ok(())
    }

    /// A service by name, one that some node of the topology runs.
    pub fn service(&self, s: &Located<String>) -> Result<ServiceKind, InputError> {
        let kind = ServiceKind::parse(&s.value).ok_or_else(|| {
            self.source
                .error(s.span.clone(), format!("unknown service `{}`", s.value))
                .with_help(format!(
                    "known services: {}",
                    ServiceKind::names().join(", ")
                ))
        })?;
        if self.topology.nodes_running(kind).is_empty() {
            return Err(self.source.error(
                s.span.clone(),
                format!(
                    "no node of topology `{}` runs {kind}",
                    self.topology.file.display()
                ),
            ));
        }
        Ok(kind)
    }

    /// A service the topology runs that elects a leader.
    pub fn leader_service(&self, s: &Located<String>) -> Result<ServiceKind, InputError> {
        let kind = self.service(s)?;
        if !kind.elects_leader() {
            return Err(self
                .source
                .error(s.span.clone(), format!("{kind} elects no leader")));
        }
        Ok(kind)
    }

    /// A name that later steps use as `$name`, given as `key`; binds it from here on.
    pub fn binding(&mut self, key: &str, b: &Located<String>) -> Result<String, InputError> {
        let name = b.value.trim_start_matches('$');
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(self
                .source
                .error(
                    b.span.clone(),
                    format!("`{key}` \"{}\" is not a name", b.value),
                )
                .with_help("use letters, digits, '_' and '-', e.g. \"old_leader\""));
        }
        self.bound.insert(name.to_string());
        Ok(name.to_string())
    }

    /// A node of the topology, or `$name` bound by an earlier step.
    pub fn node_ref(&self, v: &Located<String>) -> Result<NodeRef, InputError> {
        if let Some(name) = v.value.strip_prefix('$') {
            if !self.bound.contains(name) {
                let mut err = self.source.error(
                    v.span.clone(),
                    format!("`${name}` is not bound by any earlier step"),
                );
                let known: Vec<&str> = self.bound.iter().map(String::as_str).collect();
                err = if known.is_empty() {
                    err.with_help(
                        "bind a name first, e.g. a `find-leader` step with `bind = \"leader\"`",
                    )
                } else {
                    err.with_help(format!(
                        "bound so far: {}",
                        known
                            .iter()
                            .map(|k| format!("${k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                };
                return Err(err);
            }
            return Ok(NodeRef::Bound(name.to_string()));
        }
        match self.topology.node(&v.value) {
            Some(n) => Ok(NodeRef::Node(n.fqdn)),
            None => Err(self
                .source
                .error(v.span.clone(), format!("unknown node `{}`", v.value))
                .with_help(format!(
                    "nodes of this topology: {}",
                    self.topology.short_names().join(", ")
                ))),
        }
    }
    /// A node that must run `service`: a node of a role that runs it, or a binding to a leader
    /// of a service whose every node runs it too.
    pub fn node_running(
        &self,
        v: &Located<String>,
        service: ServiceKind,
    ) -> Result<NodeRef, InputError> {
        let node = self.node_ref(v)?;
        self.check_runs(&node, v, service)?;
        Ok(node)
    }

    /// Fails unless `node` (written at `at`) runs `service`, as far as the file can tell.
    pub fn check_runs(
        &self,
        node: &NodeRef,
        at: &Located<String>,
        service: ServiceKind,
    ) -> Result<(), InputError> {
        let running: Vec<String> = self
            .topology
            .nodes_running(service)
            .into_iter()
            .map(|n| n.fqdn)
            .collect();
        let runs_it = |fqdn: &str| running.iter().any(|r| r == fqdn);
        let short = |fqdn: &str| fqdn.split('.').next().unwrap_or(fqdn).to_string();
        let help = || {
            format!(
                "nodes that run {service}: {}",
                running
                    .iter()
                    .map(|n| short(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match node {
            NodeRef::Node(fqdn) if !runs_it(fqdn) => {
                let role = self.topology.node(fqdn).map(|n| n.role).unwrap_or_default();
                Err(self
                    .source
                    .error(
                        at.span.clone(),
                        format!(
                            "{} does not run {service}: role `{role}` runs {}",
                            short(fqdn),
                            self.topology
                                .role(&role)
                                .map(|r| {
                                    if r.services.is_empty() {
                                        "nothing".to_string()
                                    } else {
                                        r.services
                                            .iter()
                                            .map(|s| s.to_string())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    }
                                })
                                .unwrap_or_else(|| "nothing".into())
                        ),
                    )
                    .with_help(help()))
            }
            NodeRef::Bound(name) => match self.bound_service.get(name) {
                Some(leader_of) if *leader_of != service => {
                    let outside: Vec<String> = self
                        .topology
                        .nodes_running(*leader_of)
                        .into_iter()
                        .filter(|n| !runs_it(&n.fqdn))
                        .map(|n| short(&n.fqdn))
                        .collect();
                    if outside.is_empty() {
                        Ok(())
                    } else {
                        Err(self
                            .source
                            .error(
                                at.span.clone(),
                                format!(
                                    "`${name}` is the {leader_of} leader, one of {}, and {service} does not run there",
                                    outside.join(", ")
                                ),
                            )
                            .with_help(help()))
                    }
                }
                _ => Ok(()),
            },
            NodeRef::Node(_) => Ok(()),
        }
    }

    /// A role of the topology.
    pub fn role(&self, r: &Located<String>) -> Result<String, InputError> {
        match self.topology.role(&r.value) {
            Some(role) => Ok(role.name.clone()),
            None => Err(self
                .source
                .error(r.span.clone(), format!("unknown role `{}`", r.value))
                .with_help(format!(
                    "roles of this topology: {}",
                    self.topology.role_names().join(", ")
                ))),
        }
    }

    /// A node, `$binding` or role.
    pub fn target(&self, v: &Located<String>) -> Result<Target, InputError> {
        if !v.value.starts_with('$') && self.topology.role(&v.value).is_some() {
            return Ok(Target::Role(v.value.clone()));
        }
        self.node_ref(v).map(Target::Node).map_err(|e| {
            e.with_help(format!(
                "a node ({}) or a role ({})",
                self.topology.short_names().join(", "),
                self.topology.role_names().join(", ")
            ))
        })
    }

    /// A name for a snapshot or dump, given as `key`.
    pub fn label(&self, key: &str, l: Located<String>) -> Result<Located<String>, InputError> {
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
}
