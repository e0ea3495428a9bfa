//! One run's bookkeeping, the same on every provider: the topology it was made from, its
//! record and where that record is kept, node lookup, and the guard that makes removing the
//! run happen once (from `teardown`, `destroy` or a provider's `Drop`, whichever comes first).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::record::{NodeRecord, RunDir, RunRecord, ServiceRecord};
use super::ClusterError;
use crate::spec::Topology;

/// A run's topology and record, as every provider keeps them.
#[derive(Debug)]
pub struct RunState {
    /// The provider's name in reports and records (`local`).
    pub provider: &'static str,
    /// The topology the hosts were made from.
    pub topology: Topology,
    /// The run's directory on the harness's disk, where the record is written.
    pub dir: RunDir,
    /// What the run created: its id, nodes and service records.
    pub record: RunRecord,
    /// Whether the run was removed (or left up because it is kept) already.
    finished: bool,
}

impl RunState {
    /// A run's state; nothing is written yet.
    pub fn new(provider: &'static str, topology: Topology, dir: RunDir, record: RunRecord) -> Self {
        RunState {
            provider,
            topology,
            dir,
            record,
            finished: false,
        }
    }

    /// Writes the record (atomically) where the run keeps it.
    pub fn save(&self) -> Result<(), ClusterError> {
        Ok(self.dir.save(&self.record)?)
    }

    /// The record as written on the harness's disk, read anew.
    pub fn load(&self) -> Result<RunRecord, ClusterError> {
        Ok(self.dir.load()?)
    }

    /// Changes the service records and saves the record.
    pub fn update_services(
        &mut self,
        change: &mut dyn FnMut(&mut BTreeMap<String, ServiceRecord>),
    ) -> Result<(), ClusterError> {
        change(&mut self.record.services);
        self.save()
    }

    /// A directory on the harness's own host, outside every node.
    pub fn outside_dir(&self) -> PathBuf {
        self.dir.path.join("outside")
    }

    /// A node of the run.
    pub fn node(&self, fqdn: &str) -> Result<&NodeRecord, ClusterError> {
        self.record
            .nodes
            .get(fqdn)
            .ok_or_else(|| ClusterError::node("find the node", fqdn, "no such node in this run"))
    }

    /// A node of the run that has not been terminated.
    pub fn live_node(&self, fqdn: &str, action: &str) -> Result<&NodeRecord, ClusterError> {
        let node = self.node(fqdn)?;
        if !node.alive {
            return Err(ClusterError::node(action, fqdn, "the node was terminated"));
        }
        Ok(node)
    }

    /// Marks a node terminated (or alive again) and saves the record.
    pub fn set_alive(&mut self, fqdn: &str, alive: bool) -> Result<(), ClusterError> {
        if let Some(n) = self.record.nodes.get_mut(fqdn) {
            n.alive = alive;
        }
        self.save()
    }

    /// Leaves the run up after this process exits, and records that.
    pub fn keep(&mut self) -> Result<(), ClusterError> {
        self.record.kept = true;
        self.save()
    }

    /// Whether the caller is the one to remove the run now: true once, the first time it is
    /// asked, unless the run is kept.
    pub fn take_removal(&mut self) -> bool {
        if self.finished {
            return false;
        }
        self.finished = true;
        !self.record.kept
    }
}
