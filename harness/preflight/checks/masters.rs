//! Mesos and Marathon: one leader, named over HTTP by every master and backed by a majority of
//! the inventory's masters.

use std::collections::BTreeMap;

use super::{leader, Check};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::LeaderSeen;
use crate::probe::leader::{LeaderViews, MemberView, Membership};

pub(super) fn check(
    inv: &Inventory,
    service: &str,
    endpoint: &str,
    masters: &[&InventoryNode],
    seen: &BTreeMap<String, Result<LeaderSeen, String>>,
) -> Check {
    let mut unreachable = Vec::new();
    let views: LeaderViews = masters
        .iter()
        .map(|m| {
            let view = match seen.get(&m.name) {
                None => MemberView::Unreachable {
                    why: "not observed".into(),
                },
                Some(Err(e)) => MemberView::Unreachable { why: e.clone() },
                Some(Ok(LeaderSeen::Leader(host))) => MemberView::leader(inv.label(host)),
                Some(Ok(LeaderSeen::NoLeader(why))) => MemberView::NoLeader {
                    why: format!("{endpoint}: {why}"),
                },
                Some(Ok(LeaderSeen::Unexpected(what))) => MemberView::NoLeader {
                    why: format!("{endpoint} answered {what}"),
                },
            };
            if matches!(view, MemberView::Unreachable { .. }) {
                unreachable.push(m.short().to_string());
            }
            (m.short().to_string(), view)
        })
        .collect();
    // Mesos and Marathon keep no member list: their membership is the inventory's masters.
    let voters: std::collections::BTreeSet<String> =
        masters.iter().map(|m| m.short().to_string()).collect();
    leader::row_for(
        service,
        "one leader backed by a majority of the masters",
        &views,
        &unreachable,
        |_| {
            Ok(Membership {
                voters: voters.clone(),
                source: format!("the inventory's {service} masters"),
                synced_followers: None,
            })
        },
    )
}
