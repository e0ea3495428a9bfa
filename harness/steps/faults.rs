//! Faults on nodes and services: terminate a node, build a brand-new one in its place, start,
//! stop or restart a service.

use serde::Serialize;

use super::{key, Key, StepKind, StepRow};
use crate::provider::Hosts;
use crate::runner::{name, Runner, StepResult};
use crate::service::ServiceKind;
use crate::source::InputError;
use crate::spec::capability::Capability;
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "terminate",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: &[key(&["node"], "a node or `$binding`")],
        help: "kill everything on a node and delete it, abruptly",
        parse: parse_terminate,
    },
    StepRow {
        name: "replace-node",
        expectation: false,
        disrupts: false,
        needs: &[Capability::StableAddress],
        keys: &[key(&["node"], "a terminated node")],
        help:
            "create a brand-new node with the same name and address and a new MAC; starts nothing",
        parse: parse_replace_node,
    },
    StepRow {
        name: "start-service",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: SERVICE_ON_NODE,
        help: "start a service (as `systemctl start`; says so when it runs already)",
        parse: parse_start_service,
    },
    StepRow {
        name: "stop-service",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: SERVICE_ON_NODE,
        help: "stop a service gracefully, SIGKILL after the topology's stop_timeout",
        parse: parse_stop_service,
    },
    StepRow {
        name: "restart-service",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: SERVICE_ON_NODE,
        help: "stop, then start a service",
        parse: parse_restart_service,
    },
];

/// The keys of a step on one service of one node.
const SERVICE_ON_NODE: &[Key] = &[
    key(&["node"], "a node that runs the service"),
    key(&["service"], "the service"),
];

/// A fault step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FaultStep {
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

fn parse_terminate(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let node = r.node("node")?;
    Ok(FaultStep::Terminate { node }.into())
}

fn parse_replace_node(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let node = r.node("node")?;
    Ok(FaultStep::ReplaceNode { node }.into())
}

fn parse_start_service(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let (node, service) = service_on_node(r)?;
    Ok(FaultStep::StartService { node, service }.into())
}

fn parse_stop_service(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let (node, service) = service_on_node(r)?;
    Ok(FaultStep::StopService { node, service }.into())
}

fn parse_restart_service(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let (node, service) = service_on_node(r)?;
    Ok(FaultStep::RestartService { node, service }.into())
}

/// The keys of `SERVICE_ON_NODE`: the service is read first, so a node that does not run it
/// is pointed at.
fn service_on_node(r: &mut StepReader<'_, '_>) -> Result<(NodeRef, ServiceKind), InputError> {
    let service = r.service()?;
    let node = r.node_running("node", service)?;
    Ok((node, service))
}

/// The name of a step that has none.
pub fn default_name(step: &FaultStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        FaultStep::Terminate { node: n } => format!("terminate {}", node(n)),
        FaultStep::ReplaceNode { node: n } => format!("replace {} with a new node", node(n)),
        FaultStep::StartService { node: n, service } => format!("start {service} on {}", node(n)),
        FaultStep::StopService { node: n, service } => format!("stop {service} on {}", node(n)),
        FaultStep::RestartService { node: n, service } => {
            format!("restart {service} on {}", node(n))
        }
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &FaultStep) -> StepResult {
    match step {
        FaultStep::Terminate { node } => {
            let node = r.resolve(node)?;
            r.cluster.terminate(&node).await?;
            r.rec.record(format!("terminated {}", name(&node)));
            Ok(format!("{} terminated", name(&node)))
        }
        FaultStep::ReplaceNode { node } => {
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
        FaultStep::StartService { node, service } => {
            let node = r.resolve(node)?;
            // Starting what runs already does nothing, as `systemctl start` does; the report
            // says so rather than claim a start.
            let running = r.cluster.is_running(&node, *service).await;
            r.cluster.start_service(&node, *service).await?;
            // A killed service started again by hand is no fault left for the heal to undo.
            r.state.faults.started(&node, *service);
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
        FaultStep::StopService { node, service } => {
            let node = r.resolve(node)?;
            let killed = r.cluster.stop_service(&node, *service).await?;
            r.rec
                .record(format!("stopped {service} on {}", name(&node)));
            Ok(stopped_detail(*service, &node, killed))
        }
        FaultStep::RestartService { node, service } => {
            let node = r.resolve(node)?;
            let killed = r.cluster.stop_service(&node, *service).await?;
            r.cluster.start_service(&node, *service).await?;
            r.state.faults.started(&node, *service);
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
