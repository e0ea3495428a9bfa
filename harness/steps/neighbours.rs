//! Neighbour (ARP) tables: purge a node's entries everywhere, as the seed's `arp -d` does, and
//! expect every other node's entry for a node unresolved or showing its current MAC.

use std::time::Duration;

use futures::future::join_all;

use serde::Serialize;

use super::StepDef;
use crate::provider::Hosts;
use crate::runner::{name, poll_until, Poll, Runner, StepResult};
use crate::source::InputError;
use crate::spec::context::Validator;
use crate::spec::reader::{Located, TableReader};
use crate::spec::NodeRef;

/// The steps of this family.
pub const STEPS: &[StepDef] = &[
    StepDef {
        name: "purge-neighbours",
        expectation: false,
        disrupts: false,
        keys: &[("node", "the node whose entries go")],
        help: "delete a node's neighbour (ARP) entry on every other live node (`arp -d`)",
    },
    StepDef {
        name: "neighbours",
        expectation: true,
        disrupts: false,
        keys: &[
            ("node", "the node the entries are for"),
            (
                "state",
                "unresolved (absent, incomplete or failed) or current (its current MAC)",
            ),
            ("within", "deadline (default 30s)"),
        ],
        help: "every other live node's entry for the node is in that state",
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
pub enum Step {
    /// Delete a node's neighbour (ARP) entry on every other node (`arp -d`).
    PurgeNeighbours { node: NodeRef },
    /// Expect every other node's neighbour entry for a node to be in a state.
    ExpectNeighbours {
        node: NodeRef,
        state: NeighbourState,
        within: Duration,
    },
}

/// Parses a step of this family.
pub fn parse(
    cx: &mut Validator<'_>,
    t: &mut TableReader<'_, '_>,
    word: &Located<String>,
    within: Duration,
    accepted: &mut Vec<&'static str>,
) -> Result<Step, InputError> {
    Ok(match word.value.as_str() {
        "purge-neighbours" => {
            accepted.push("node");
            Step::PurgeNeighbours {
                node: cx.node(t, "node")?,
            }
        }
        _ => {
            accepted.extend(["node", "state"]);
            let node = cx.node(t, "node")?;
            let state = match t.opt_str("state")? {
                None => NeighbourState::Unresolved,
                Some(s) => match s.value.as_str() {
                    "unresolved" | "incomplete" | "failed" => NeighbourState::Unresolved,
                    "current" => NeighbourState::Current,
                    _ => {
                        return Err(cx
                            .source
                            .error(s.span, format!("unknown neighbour state `{}`", s.value))
                            .with_help("states: unresolved (absent, incomplete or failed), current (the node's current MAC)"))
                    }
                },
            };
            Step::ExpectNeighbours {
                node,
                state,
                within,
            }
        }
    })
}

/// The name of a step that has none.
pub fn default_name(step: &Step, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        Step::PurgeNeighbours { node: n } => format!("purge neighbour entries of {}", node(n)),
        Step::ExpectNeighbours { node: n, .. } => {
            format!("expect neighbour entries of {}", node(n))
        }
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &Step) -> StepResult {
    match step {
        Step::PurgeNeighbours { node } => {
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
        Step::ExpectNeighbours {
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
