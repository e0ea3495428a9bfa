//! Neighbour tables: no node holds, for another node's address, a MAC that node no longer has.

use std::collections::BTreeMap;

use super::{list, row, Check, Outcome};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::Observations;

pub(super) fn check(inv: &Inventory, obs: &Observations) -> Check {
    let name = "no stale entry for a changed MAC";
    let with_exec: Vec<&InventoryNode> = inv.nodes.iter().filter(|n| n.exec.is_some()).collect();
    if with_exec.is_empty() {
        return row(
            "neighbours",
            name,
            Outcome::Skip,
            "the inventory gives no node an `exec` to run commands with",
        );
    }
    let mut unreachable = Vec::new();
    let mut nets = Vec::new();
    for n in &with_exec {
        match obs.nets.get(&n.name) {
            Some(Ok(net)) => nets.push((*n, net)),
            _ => unreachable.push(n.short().to_string()),
        }
    }
    // Each node's current MAC, as the node itself has it.
    let current: BTreeMap<std::net::Ipv4Addr, (&str, &str)> = nets
        .iter()
        .filter_map(|(n, net)| {
            net.macs
                .get(&n.address)
                .map(|m| (n.address, (n.short(), m.as_str())))
        })
        .collect();
    let mut stale = Vec::new();
    let mut entries = 0;
    for (observer, net) in &nets {
        for (addr, entry) in &net.neighbours {
            let Some((target, mac)) = current.get(addr) else {
                continue;
            };
            entries += 1;
            if let Some(held) = entry.mac() {
                if !held.eq_ignore_ascii_case(mac) {
                    stale.push(format!(
                        "{} holds {held} for {target}, whose MAC is {mac}",
                        observer.short()
                    ));
                }
            }
        }
    }
    if !stale.is_empty() {
        return row("neighbours", name, Outcome::Fail, list(&stale));
    }
    if !unreachable.is_empty() {
        return row(
            "neighbours",
            name,
            Outcome::Unreachable,
            format!("cannot run commands on {}", list(&unreachable)),
        );
    }
    row(
        "neighbours",
        name,
        Outcome::Pass,
        format!(
            "{} nodes' tables hold {entries} entries for {} nodes, none stale",
            nets.len(),
            current.len()
        ),
    )
}
