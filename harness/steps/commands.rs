//! Commands and service state on nodes: run a command as `loopssh` does, and expect every
//! service of nodes active and running.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{key, StepKind, StepRow};
use crate::provider::Hosts;
use crate::runner::{name, poll_until, target_nodes, Poll, Runner, StepResult};
use crate::source::InputError;
use crate::spec::step_reader::StepReader;
use crate::spec::{NodeRef, Target};

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "exec",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[
            key(&["on"], "a node, `$binding` or role"),
            key(&["command"], "the command and its arguments, as a list"),
        ],
        help: "run a command on a node or on every live node of a role, with SUCCESSION_DATA_DIR set to the node's data directory (each service's data under its name) and SUCCESSION_NODE_ADDRESS to its address; it must exit 0",
        parse: parse_exec,
    },
    StepRow {
        name: "services-active",
        expectation: true,
        disrupts: false,
        needs: &[],
        keys: &[key(&["on"], "a node, `$binding` or role")],
        help: "every service of the nodes is active and running",
        parse: parse_services_active,
    },
];

/// A command step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum CommandStep {
    /// Run a command on a node or every node of a role; it must exit 0.
    Exec { on: Target, command: Vec<String> },
    /// Expect every service of a node (or of every node of a role) active and running.
    ExpectServicesActive { on: Target, within: Duration },
}

fn parse_exec(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let on = r.target("on")?;
    let command = r
        .opt_str_list("command")?
        .ok_or_else(|| r.missing("command", "the command and its arguments, as a list"))?;
    if command.value.is_empty() {
        return Err(r.error(command.span, "`command` is empty"));
    }
    Ok(CommandStep::Exec {
        on,
        command: command.value.into_iter().map(|c| c.value).collect(),
    }
    .into())
}

fn parse_services_active(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let on = r.target("on")?;
    Ok(CommandStep::ExpectServicesActive {
        on,
        within: r.within(),
    }
    .into())
}

/// The name of a step that has none.
pub fn default_name(step: &CommandStep, _node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        CommandStep::Exec { command, .. } => format!("exec {}", command.join(" ")),
        CommandStep::ExpectServicesActive { .. } => "expect services active".to_string(),
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &CommandStep) -> StepResult {
    match step {
        CommandStep::Exec { on, command } => {
            let nodes = target_nodes(r, on)?;
            let mut out = Vec::new();
            for node in &nodes {
                // Scripts find the node's data (each service's under its name) the way the
                // harness lays it out on this provider.
                let data = r.cluster.files_dir(node).map_err(|e| e.to_string())?;
                // And its address, which the servers listen on (not loopback): what a script
                // gives etcdctl as its endpoint.
                let address = r
                    .cluster
                    .node(node)
                    .map(|v| v.address.to_string())
                    .unwrap_or_default();
                let argv: Vec<String> = [
                    "env".to_string(),
                    format!("SUCCESSION_DATA_DIR={}", data.display()),
                    format!("SUCCESSION_NODE_ADDRESS={address}"),
                ]
                .into_iter()
                .chain(command.iter().cloned())
                .collect();
                let result = r.cluster.exec(node, &argv).await?;
                if result.code != Some(0) {
                    return Err(format!(
                        "`{}` on {} exited with {}: {}",
                        command.join(" "),
                        name(node),
                        result
                            .code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "a signal".into()),
                        result.stderr.trim()
                    )
                    .into());
                }
                out.push(format!(
                    "{}: {}",
                    name(node),
                    result.stdout.trim().lines().next().unwrap_or("")
                ));
            }
            Ok(out.join("; "))
        }
        CommandStep::ExpectServicesActive { on, within } => {
            let nodes: BTreeSet<String> = target_nodes(r, on)?.into_iter().collect();
            let (cluster, _, rec) = r.split();
            let nodes = &nodes;
            let (count, _) = poll_until(*within, rec, || async move {
                let rows = cluster.status().await;
                let relevant: Vec<_> = rows
                    .into_iter()
                    .filter(|row| nodes.contains(&row.node))
                    .collect();
                let down: Vec<String> = relevant
                    .iter()
                    .filter(|row| !row.is_running())
                    .map(|row| {
                        format!(
                            "{} on {} is {}/{}",
                            row.service,
                            name(&row.node),
                            row.active,
                            row.sub
                        )
                    })
                    .collect();
                let outcome = if down.is_empty() {
                    Ok(relevant.len())
                } else {
                    Err(down.join(", "))
                };
                Poll {
                    outcome,
                    observation: None,
                }
            })
            .await?;
            Ok(format!("{count} services active and running"))
        }
    }
}
