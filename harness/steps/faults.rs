//! Faults on nodes and services: terminate a node, build a brand-new one in its place, start,
//! stop or restart a service.

use std::time::Duration;

use serde::Serialize;

use super::StepDef;
use crate::provider::Hosts;
use crate::runner::{name, Runner, StepResult};
use crate::service::ServiceKind;
use crate::source::InputError;
use crate::spec::context::Validator;
use crate::spec::reader::{Located, TableReader};
use crate::spec::NodeRef;

/// The steps of this family.
pub const STEPS: &[StepDef] = &[
    StepDef {
        name: "terminate",
        expectation: false,
        disrupts: true,
        keys: &[("node", "a node or `$binding`")],
        help: "kill everything on a node and delete it, abruptly",
    },
    StepDef {
        name: "replace-node",
        expectation: false,
        disrupts: false,
        keys: &[("node", "a terminated node")],
        help:
            "create a brand-new node with the same name and address and a new MAC; starts nothing",
    },
    StepDef {
        name: "start-service",
        expectation: false,
        disrupts: false,
        keys: &[
            ("node", "a node that runs the service"),
            ("service", "the service"),
        ],
        help: "start a service (as `systemctl start`; says so when it runs already)",
    },
    StepDef {
        name: "stop-service",
        expectation: false,
        disrupts: true,
        keys: &[
            ("node", "a node that runs the service"),
            ("service", "the service"),
        ],
        help: "stop a service gracefully, SIGKILL after the topology's stop_timeout",
    },
    StepDef {
        name: "restart-service",
        expectation: false,
        disrupts: true,
        keys: &[
            ("node", "a node that runs the service"),
            ("service", "the service"),
        ],
        help: "stop, then start a service",
    },
];

/// A fault step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Step {
    /// Kill everything on a node and delete it.
    Terminate { node: NodeRef },
    /// Create a brand-new node with the same name and IP and a new MAC.
    ReplaceNode { node: NodeRef },
    /// Start a service (`systemctl start`); etcd joins an existing cluster if it was added.
    StartService { node: NodeRef, service: ServiceKind },
    /// Stop a service gracefully, SIGKILL after the bound.
    StopService { node: NodeRef, service: ServiceKind },
    /// Stop then start a service.
    RestartService { node: NodeRef, service: ServiceKind },
}

/// Parses a step of this family.
pub fn parse(
    cx: &mut Validator<'_>,
    t: &mut TableReader<'_, '_>,
    word: &Located<String>,
    _within: Duration,
    accepted: &mut Vec<&'static str>,
) -> Result<Step, InputError> {
    Ok(match word.value.as_str() {
        "terminate" | "replace-node" => {
            accepted.push("node");
            let node = cx.node(t, "node")?;
            if word.value == "terminate" {
                Step::Terminate { node }
            } else {
                Step::ReplaceNode { node }
            }
        }
        _ => {
            accepted.extend(["node", "service"]);
            let service = cx.service(t)?;
            let node = cx.node_running(t, "node", service)?;
            match word.value.as_str() {
                "start-service" => Step::StartService { node, service },
                "stop-service" => Step::StopService { node, service },
                _ => Step::RestartService { node, service },
            }
        }
    })
}

/// The name of a step that has none.
pub fn default_name(step: &Step, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        Step::Terminate { node: n } => format!("terminate {}", node(n)),
        Step::ReplaceNode { node: n } => format!("replace {} with a new node", node(n)),
        Step::StartService { node: n, service } => format!("start {service} on {}", node(n)),
        Step::StopService { node: n, service } => format!("stop {service} on {}", node(n)),
        Step::RestartService { node: n, service } => {
            format!("restart {service} on {}", node(n))
        }
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &Step) -> StepResult {
    match step {
        Step::Terminate { node } => {
            let node = r.resolve(node)?;
            r.cluster.terminate(&node).await?;
            r.rec.record(format!("terminated {}", name(&node)));
            Ok(format!("{} terminated", name(&node)))
        }
        Step::ReplaceNode { node } => {
            let node = r.resolve(node)?;
            let view = r.cluster.replace(&node).await.map_err(|e| e.to_string())?;
            r.rec.record(format!(
                "created a new {} at {} with MAC {}",
                view.short, view.address, view.mac
            ));
            Ok(format!(
                "new {} at {} with MAC {}",
                view.short, view.address, view.mac
            ))
        }
        Step::StartService { node, service } => {
            let node = r.resolve(node)?;
            // Starting what runs already does nothing, as `systemctl start` does; the report
            // says so rather than claim a start.
            let running = r.cluster.is_running(&node, *service).await;
            r.cluster.start_service(&node, *service).await?;
            if running {
                return Ok(format!(
                    "{service} was already running on {}; nothing started",
                    name(&node)
                ));
            }
            r.rec
                .record(format!("started {service} on {}", name(&node)));
            Ok(format!("{service} started on {}", name(&node)))
        }
        Step::StopService { node, service } => {
            let node = r.resolve(node)?;
            let killed = r.cluster.stop_service(&node, *service).await?;
            r.rec
                .record(format!("stopped {service} on {}", name(&node)));
            Ok(stopped_detail(*service, &node, killed))
        }
        Step::RestartService { node, service } => {
            let node = r.resolve(node)?;
            let killed = r.cluster.stop_service(&node, *service).await?;
            r.cluster.start_service(&node, *service).await?;
            r.rec
                .record(format!("restarted {service} on {}", name(&node)));
            Ok(format!(
                "{}, then started again",
                stopped_detail(*service, &node, killed)
            ))
        }
    }
}

fn stopped_detail(service: ServiceKind, node: &str, killed: bool) -> String {
    if killed {
        format!(
            "{service} on {} did not stop in time and was killed",
            name(node)
        )
    } else {
        format!("{service} stopped on {}", name(node))
    }
}
