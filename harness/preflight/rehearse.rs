//! `preflight --rehearse DIR`: a replica of the inventory's cell to rehearse the upgrade on
//! before anyone touches the real one — a topology with the same roles, counts, address order
//! (the same host parts) and running ZooKeeper ids, and two scenarios on it: the upgrade as it
//! will run (the ensemble regenerated from the sorted addresses, written everywhere, servers
//! restarted in address order) and the same upgrade after the safe renumbering preflight
//! prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::checks::Preflight;
use super::inventory::{Inventory, InventoryNode};
use super::Observations;

/// The files a rehearsal writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rehearsal {
    /// The replica's topology.
    pub topology: PathBuf,
    /// The upgrade as it will run.
    pub upgrade: PathBuf,
    /// The upgrade after the safe renumbering.
    pub safe_upgrade: PathBuf,
}

/// Why a rehearsal could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    /// The directory or a file in it could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something the replica needs was not seen.
    #[error("cannot replicate the cell: {0}")]
    Unseen(String),
}

/// The services a role's nodes run, as the inventory shows them (a border and workers show
/// none: their kind of node says what they run).
fn services_of(role: &str, nodes: &[&InventoryNode]) -> Vec<&'static str> {
    let any = |f: fn(&InventoryNode) -> bool| nodes.iter().any(|n| f(n));
    let mut services = Vec::new();
    if any(|n| n.zookeeper.is_some()) {
        services.push("zookeeper");
    }
    if any(|n| n.etcd.is_some()) {
        services.push("etcd");
    }
    if any(|n| n.mesos.is_some()) {
        services.push("mesos-master");
    }
    if any(|n| n.marathon.is_some()) {
        services.push("marathon");
    }
    if services.is_empty() {
        match role {
            "border" => services.push("ingress"),
            "worker" => services.push("app"),
            _ => {}
        }
    }
    services
}

/// The replica's topology text: roles in inventory order, each node keeping its address's
/// host part (so the lexicographic address order is the real one) and its running ZooKeeper id.
pub fn topology_text(inv: &Inventory, obs: &Observations) -> Result<String, RehearseError> {
    let mut roles: Vec<(&str, Vec<&InventoryNode>)> = Vec::new();
    for n in &inv.nodes {
        match roles.iter_mut().find(|(r, _)| *r == n.role) {
            Some((_, nodes)) => nodes.push(n),
            None => roles.push((&n.role, vec![n])),
        }
    }
    let cell = inv.cell.clone().unwrap_or_else(|| "rehearsal".to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A replica of {} (from {}), written by `succession preflight --rehearse`: the same\n# roles, counts, address order (host parts) and running ZooKeeper ids.",
        cell,
        inv.file.display()
    );
    let _ = writeln!(
        out,
        "cell = {}\ndc = \"dc-1\"\ndomain = \"rehearsal.lan\"\nsubnet = \"auto\"",
        toml_string(&cell)
    );
    let mut ids: BTreeMap<String, u64> = BTreeMap::new();
    for (role, nodes) in &roles {
        let services = services_of(role, nodes);
        if services.is_empty() {
            continue;
        }
        let hosts: Vec<String> = nodes
            .iter()
            .map(|n| n.address.octets()[3].to_string())
            .collect();
        let quoted: Vec<String> = services.iter().map(|s| format!("\"{s}\"")).collect();
        let _ = writeln!(
            out,
            "\n[roles.{role}]\ncount = {}\nservices = [{}]\nhosts = [{}]",
            nodes.len(),
            quoted.join(", "),
            hosts.join(", ")
        );
        for (i, n) in nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.zookeeper.is_some())
        {
            let id = obs
                .zookeeper
                .get(&n.name)
                .and_then(|s| s.as_ref().ok())
                .and_then(|s| s.conf.as_ref())
                .and_then(|c| c.server_id)
                .ok_or_else(|| {
                    RehearseError::Unseen(format!("the running ZooKeeper id of {}", n.short()))
                })?;
            ids.insert(format!("{role}-{}", i + 1), id);
        }
    }
    if !ids.is_empty() {
        let shown: Vec<String> = ids.iter().map(|(n, id)| format!("{n} = {id}")).collect();
        let _ = writeln!(
            out,
            "\n[services.zookeeper]\nids = {{ {} }}",
            shown.join(", ")
        );
    }
    Ok(out)
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The upgrade's ZooKeeper steps, after `before` (the safe renumbering, or nothing).
fn upgrade_scenario(name: &str, description: &str, before: &str) -> String {
    format!(
        r#"# {description}
# Written by `succession preflight --rehearse`; run it with
# `succession run THIS_FILE --provider containers` (or local).
name = "{name}"
description = "{description}"
topology = "topology.toml"

[[step]]
name = "write data before the upgrade"
action = "zookeeper-write"
path = "/succession/before-upgrade"
data = "written before the upgrade"
{before}
[[step]]
name = "the upgrade: its ensemble written everywhere, one server restarted at a time"
action = "zookeeper-static-ensemble"
ids = "upgrade"
within = "60s"

[[step]]
name = "every server has the id the upgrade gave it"
expect = "zookeeper-ids"
ids = "upgrade"
within = "10s"

[[step]]
name = "one leader agreed on by every server"
expect = "leader"
service = "zookeeper"
within = "30s"
agreement = "all"

[[step]]
name = "the data is still readable on every server"
expect = "zookeeper-data"
path = "/succession/before-upgrade"
data = "written before the upgrade"
within = "30s"
"#
    )
}

/// Writes the replica's topology and both scenarios into `dir`.
pub fn write(
    dir: &Path,
    inv: &Inventory,
    obs: &Observations,
    preflight: &Preflight,
) -> Result<Rehearsal, RehearseError> {
    let topology = topology_text(inv, obs)?;
    if inv.zookeeper_nodes().is_empty() {
        return Err(RehearseError::Unseen(
            "the inventory lists no ZooKeeper server: there is no upgrade step to rehearse"
                .to_string(),
        ));
    }
    let safe_steps = if preflight.zookeeper_ids.is_some() {
        r#"
[[step]]
name = "first, the safe renumbering preflight prints"
action = "zookeeper-renumber"
within = "60s"
"#
    } else {
        ""
    };
    let files = [
        ("topology.toml", topology),
        (
            "upgrade.toml",
            upgrade_scenario(
                "rehearsed-upgrade",
                "The upgrade as it will run on the replica: the ensemble regenerated from the sorted addresses, written everywhere, servers restarted in address order.",
                "",
            ),
        ),
        (
            "safe-upgrade.toml",
            upgrade_scenario(
                "rehearsed-safe-upgrade",
                "The same upgrade on the replica, after the safe renumbering preflight prints.",
                safe_steps,
            ),
        ),
    ];
    std::fs::create_dir_all(dir).map_err(|source| RehearseError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    for (file, text) in &files {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|source| RehearseError::Write { path, source })?;
    }
    Ok(Rehearsal {
        topology: dir.join("topology.toml"),
        upgrade: dir.join("upgrade.toml"),
        safe_upgrade: dir.join("safe-upgrade.toml"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::tests::{inventory, seed_004_ensemble, FIVE};
    use crate::source::SourceFile;
    use crate::spec::topology::Topology;

    #[test]
    fn the_replica_keeps_roles_host_parts_and_the_running_ids_and_parses() {
        let inv = inventory(FIVE);
        let mut obs = seed_004_ensemble();
        let text = topology_text(&inv, &obs).expect("written");
        assert!(
            text.contains(
                "[roles.quorum]\ncount = 5\nservices = [\"zookeeper\"]\nhosts = [8, 9, 10, 11, 12]"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ids = { quorum-1 = 1, quorum-2 = 2, quorum-3 = 5, quorum-4 = 4, quorum-5 = 3 }"
            ),
            "{text}"
        );
        let topology = Topology::parse(&SourceFile::from_text("topology.toml", &text))
            .expect("the replica's topology parses");
        assert_eq!(topology.nodes().len(), 5);
        // A server whose id could not be read leaves nothing to replicate it with.
        obs.zookeeper.insert(
            "quorum-2.cell-1.dc-1.demo.lan".into(),
            Err("connection refused".into()),
        );
        let e = topology_text(&inv, &obs).expect_err("an id is missing");
        assert_eq!(
            e.to_string(),
            "cannot replicate the cell: the running ZooKeeper id of quorum-2"
        );
    }
}
