//! Neighbour (ARP) tables: purge a node's entries everywhere, as the seed's `arp -d` does, and
//! expect every other node's entry for a node unresolved or showing its current MAC.

use std::time::Duration;

use futures::future::join_all;

use serde::Serialize;

use super::{key, StepKind, StepRow};
use crate::provider::Hosts;
use crate::runner::{name, poll_until, Poll, Runner, StepResult};
use crate::source::InputError;
use crate::spec::capability::Capability;
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "purge-neighbours",
        expectation: false,
        disrupts: false,
        needs: &[Capability::NeighbourTables],
        keys: &[key(&["node"], "the node whose entries go")],
        help: "delete a node's neighbour (ARP) entry on every other live node (`arp -d`)",
        parse: parse_purge_neighbours,
    },
    StepRow {
        name: "neighbours",
        expectation: true,
        disrupts: false,
        needs: &[Capability::NeighbourTables],
        keys: &[
            key(&["node"], "the node the entries are for"),
            key(
                &["state"],
                "unresolved (absent, incomplete or failed) or current (its current MAC)",
            ),
        ],
        help: "every other live node's entry for the node is in that state",
        parse: parse_neighbours,
    },
];

/// What neighbour entries must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighbourState {
    /// No usable MAC: absent, incomplete or failed (what `arp -a` shows as `<incomplete>`).
    Unresolved,
    /// A MAC is known, and it is the node's current one.
    Current,
}

/// A neighbour-table step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum NeighbourStep {
    /// Delete a node's neighbour (ARP) entry on every other node (`arp -d`).
    PurgeNeighbours { node: NodeRef },
    /// Expect every other node's neighbour entry for a node to be in a state.
    ExpectNeighbours {
        node: NodeRef,
        state: NeighbourState,
        within: Duration,
    },
}

fn parse_purge_neighbours(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let node = r.node("node")?;
    Ok(NeighbourStep::PurgeNeighbours { node }.into())
}

fn parse_neighbours(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let node = r.node("node")?;
    let state = match r.opt_str("state")? {
        None => NeighbourState::Unresolved,
        Some(s) => match s.value.as_str() {
            "unresolved" | "incomplete" | "failed" => NeighbourState::Unresolved,
            "current" => NeighbourState::Current,
            _ => {
                return Err(r
                    .error(s.span, format!("unknown neighbour state `{}`", s.value))
                    .with_help("states: unresolved (absent, incomplete or failed), current (the node's current MAC)"))
            }
        },
    };
    Ok(NeighbourStep::ExpectNeighbours {
        node,
        state,
        within: r.within(),
    }
    .into())
}

/// The name of a step that has none.
pub fn default_name(step: &NeighbourStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        NeighbourStep::PurgeNeighbours { node: n } => {
            format!("purge neighbour entries of {}", node(n))
        }
        NeighbourStep::ExpectNeighbours { node: n, .. } => {
            format!("expect neighbour entries of {}", node(n))
        }
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &NeighbourStep) -> StepResult {
    match step {
        NeighbourStep::PurgeNeighbours { node } => {
            let target = r.resolve(node)?;
            let observers: Vec<String> = r
                .cluster
                .nodes()
                .into_iter()
                .filter(|n| n.alive && n.fqdn != target)
                .map(|n| n.fqdn)
                .collect();
            for observer in &observers {
                r.cluster.purge_neighbour(observer, &target).await?;
            }
            r.rec.record(format!(
                "purged {}'s neighbour entries on {} nodes",
                name(&target),
                observers.len()
            ));
            Ok(format!("purged on {} nodes", observers.len()))
        }
        NeighbourStep::ExpectNeighbours {
            node,
            state,
            within,
        } => {
            let target = r.resolve(node)?;
            expect_neighbours(r, &target, *state, *within).await
        }
    }
}

async fn expect_neighbours<H: Hosts>(
    r: &mut Runner<'_, H>,
    target: &str,
    state: NeighbourState,
    within: Duration,
) -> StepResult {
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
            return Err(format!("{} is terminated; it has no current MAC", name(target)).into());
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
