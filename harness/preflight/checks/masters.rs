//! Mesos and Marathon: one leader that every master names over HTTP.

use std::collections::BTreeMap;

use super::{list, row, Check, Outcome};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::LeaderSeen;

pub(super) fn check(
    inv: &Inventory,
    service: &str,
    endpoint: &str,
    masters: &[&InventoryNode],
    seen: &BTreeMap<String, Result<LeaderSeen, String>>,
) -> Check {
    let name = "one leader agreed by every master";
    let mut unreachable = Vec::new();
    let mut problems = Vec::new();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in masters {
        match seen.get(&m.name) {
            None => unreachable.push(m.short().to_string()),
            Some(Err(_)) => unreachable.push(m.short().to_string()),
            Some(Ok(LeaderSeen::Leader(host))) => named
                .entry(inv.label(host))
                .or_default()
                .push(m.short().to_string()),
            Some(Ok(LeaderSeen::NoLeader(why))) => {
                problems.push(format!("{} knows no leader ({why})", m.short()))
            }
            Some(Ok(LeaderSeen::Unexpected(what))) => {
                problems.push(format!("{}: {what}", m.short()))
            }
        }
    }
    if named.len() > 1 {
        let views: Vec<String> = named
            .iter()
            .map(|(leader, by)| format!("{} name {leader}", list(by)))
            .collect();
        problems.push(format!("masters disagree: {}", views.join("; ")));
    }
    if let Some(leader) = named.keys().next() {
        let is_master = masters.iter().any(|m| m.short() == leader);
        if named.len() == 1 && !is_master {
            problems.push(format!(
                "{endpoint} names {leader}, which is no {service} master of the inventory"
            ));
        }
    }
    if !problems.is_empty() {
        return row(service, name, Outcome::Fail, problems.join("; "));
    }
    match named.iter().next() {
        Some((leader, by)) if unreachable.is_empty() => row(
            service,
            name,
            Outcome::Pass,
            format!("{leader}, named by all {} ({endpoint})", by.len()),
        ),
        Some((leader, by)) => row(
            service,
            name,
            Outcome::Unreachable,
            format!(
                "{leader} named by {}; cannot reach {}",
                by.len(),
                list(&unreachable)
            ),
        ),
        None => row(
            service,
            name,
            Outcome::Unreachable,
            format!("cannot reach {}", list(&unreachable)),
        ),
    }
}
