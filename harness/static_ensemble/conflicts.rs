//! What an upgrade does to a running ensemble: it restarts the servers one at a time, each
//! with the id the regenerated ensemble gives it; a server that takes an id another server
//! has not yet given up makes two servers claim one id.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::{Ensemble, EnsembleError};

/// One restart of an upgrade that hands a server an id another server still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Which restart of the upgrade (1-based) it appears at.
    pub restart: usize,
    /// How many restarts the upgrade makes.
    pub of: usize,
    /// The restarted host.
    pub host: String,
    /// The id it is restarted with.
    pub id: u64,
    /// The id it gives up.
    pub previous_id: u64,
    /// The server that still holds `id`.
    pub holder: String,
    /// The restart (1-based) at which the holder gives the id up.
    pub holder_restart: usize,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restart {} of {}: {} (id {}) would take id {}, which {} still holds until restart {}",
            self.restart,
            self.of,
            self.host,
            self.previous_id,
            self.id,
            self.holder,
            self.holder_restart
        )
    }
}

/// Checks that two ensembles hold the same hosts.
pub(super) fn same_hosts(current: &Ensemble, target: &Ensemble) -> Result<(), EnsembleError> {
    let a: BTreeSet<&str> = current.hosts().into_iter().collect();
    let b: BTreeSet<&str> = target.hosts().into_iter().collect();
    if a == b {
        return Ok(());
    }
    let missing: Vec<&str> = b.difference(&a).copied().collect();
    let extra: Vec<&str> = a.difference(&b).copied().collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("only the target has {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "only the running ensemble has {}",
            extra.join(", ")
        ));
    }
    Err(EnsembleError::DifferentHosts {
        detail: parts.join("; "),
    })
}

/// Every conflict an upgrade that restarts the servers in `order` would cause, in the order
/// they appear: at each restart, the restarted host takes its target id; a host not yet
/// restarted still holds its current id.
pub fn upgrade_conflicts(
    current: &Ensemble,
    target: &Ensemble,
    order: &[String],
) -> Result<Vec<Conflict>, EnsembleError> {
    same_hosts(current, target)?;
    let position: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i + 1))
        .collect();
    let hosts: BTreeSet<&str> = current.hosts().into_iter().collect();
    let named: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    if position.len() != order.len() || named != hosts {
        let missing: Vec<&str> = hosts.difference(&named).copied().collect();
        let unknown: Vec<&str> = named.difference(&hosts).copied().collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            parts.push(format!("not in the ensemble: {}", unknown.join(", ")));
        }
        if position.len() != order.len() {
            parts.push("a server is named twice".to_string());
        }
        return Err(EnsembleError::BadOrder {
            detail: parts.join("; "),
        });
    }
    let mut conflicts = Vec::new();
    for (i, host) in order.iter().enumerate() {
        let restart = i + 1;
        let (Some(id), Some(previous_id)) = (target.id_of(host), current.id_of(host)) else {
            continue;
        };
        // Hosts restarted earlier hold their (distinct) target ids; only a host not yet
        // restarted can still hold this one.
        if let Some(holder) = current.host_of(id) {
            let holder_restart = position.get(holder).copied().unwrap_or(0);
            if holder != host && holder_restart > restart {
                conflicts.push(Conflict {
                    restart,
                    of: order.len(),
                    host: host.clone(),
                    id,
                    previous_id,
                    holder: holder.to_string(),
                    holder_restart,
                });
            }
        }
    }
    Ok(conflicts)
}
