//! Neighbour (ARP) expectations: what every other node holds for a node.

use std::time::Duration;

use futures::future::join_all;

use super::{name, poll_until, Poll, Runner};
use crate::provider::Hosts;
use crate::spec::NeighbourState;

pub(super) async fn expect_neighbours<H: Hosts>(
    r: &mut Runner<'_, H>,
    target: &str,
    state: NeighbourState,
    within: Duration,
) -> Result<String, String> {
    let nodes = r.cluster.nodes();
    let target_view = nodes
        .iter()
        .find(|n| n.fqdn == target)
        .cloned()
        .ok_or("unknown node")?;
    let observers: Vec<String> = nodes
        .iter()
        .filter(|n| n.alive && n.fqdn != target)
        .map(|n| n.fqdn.clone())
        .collect();
    if state == NeighbourState::Current {
        if !target_view.alive {
            return Err(format!(
                "{} is terminated; it has no current MAC",
                name(target)
            ));
        }
        // Entries are made by traffic, as the seed's `loopssh` does before `arp -a`.
        let ping: Vec<String> = [
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            &target_view.address.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cluster = &*r.cluster;
        join_all(observers.iter().map(|o| cluster.exec(o, &ping))).await;
    }
    let (cluster, _, rec) = r.split();
    let observers = &observers;
    let target_view = &target_view;
    let subject = format!("neighbour entries for {}", target_view.short);
    let (count, _) = poll_until(within, rec, || {
        let subject = subject.clone();
        async move {
            let entries = join_all(observers.iter().map(|o| async move {
                (o.clone(), cluster.neighbour(o, &target_view.fqdn).await)
            }))
            .await;
            let mut wrong = Vec::new();
            for (observer, entry) in &entries {
                match entry {
                    Err(e) => wrong.push(format!("{}: {e}", name(observer))),
                    Ok(entry) => {
                        let ok = match state {
                            NeighbourState::Unresolved => entry.is_unresolved(),
                            NeighbourState::Current => {
                                entry.mac() == Some(target_view.mac.as_str())
                            }
                        };
                        if !ok {
                            wrong.push(format!("{} has {entry}", name(observer)));
                        }
                    }
                }
            }
            let outcome = if wrong.is_empty() {
                Ok(entries.len())
            } else {
                Err(wrong.join(", "))
            };
            let seen = match &outcome {
                Ok(n) => format!(
                    "{n} nodes {}",
                    match state {
                        NeighbourState::Unresolved => "hold no MAC".to_string(),
                        NeighbourState::Current => format!("hold {}", target_view.mac),
                    }
                ),
                Err(e) => e.clone(),
            };
            Poll {
                outcome,
                observation: Some((subject, seen)),
            }
        }
    })
    .await?;
    Ok(match state {
        NeighbourState::Unresolved => {
            format!("{count} nodes hold no MAC for {}", target_view.short)
        }
        NeighbourState::Current => format!(
            "{count} nodes hold {} for {}",
            target_view.mac, target_view.short
        ),
    })
}
