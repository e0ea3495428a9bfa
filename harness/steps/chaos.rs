//! Chaos: faults that are undone later — kill or pause a service's process, cut nodes off from
//! each other, lose packets — each verified to have taken effect, and `heal`, which undoes them
//! all and verifies that too; a plain `wait`. Targets are a node, or a member picked by role
//! when the step runs (`leader`, `follower`, `any`; the run's seed makes the pick replayable).
//! The mechanics live in `injection`, which also heals whatever is left when the steps end.

use std::time::Duration;

use serde::Serialize;

use super::{key, StepKind, StepRow};
use crate::provider::Hosts;
use crate::runner::waits::member_serves;
use crate::runner::{name, poll_until, Poll, Runner, StepError, StepResult};
use crate::service::ServiceKind;
use crate::source::InputError;
use crate::spec::capability::Capability;
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

pub(super) const TARGET_HELP: &str =
    "a node, `$binding`, or `leader`, `follower`, `any` member of `service`";

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "kill-service",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: &[key(&["service"], "the service"), key(&["target"], TARGET_HELP)],
        help: "SIGKILL a service's process and verify it is gone; `heal` starts it again",
        parse: parse_kill_service,
    },
    StepRow {
        name: "crash-restart-service",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: &[
            key(&["service"], "the service"),
            key(&["target"], TARGET_HELP),
            key(&["within"], "deadline for it to serve again (default 30s)"),
        ],
        help: "SIGKILL a service's process, verify it is gone, start it again on the same data and wait until it serves",
        parse: parse_crash_restart,
    },
    StepRow {
        name: "pause-service",
        expectation: false,
        disrupts: true,
        needs: &[Capability::Pause],
        keys: &[key(&["service"], "the service"), key(&["target"], TARGET_HELP)],
        help: "SIGSTOP a service's process and verify it is stopped; `heal` resumes it",
        parse: parse_pause_service,
    },
    StepRow {
        name: "resume-service",
        expectation: false,
        disrupts: false,
        needs: &[Capability::Pause],
        keys: &[key(&["service"], "the service"), key(&["target"], "a node, or `$binding`, that this run paused it on")],
        help: "SIGCONT a service this run paused and verify it runs again (`heal` resumes every one)",
        parse: parse_resume_service,
    },
    StepRow {
        name: "isolate-node",
        expectation: false,
        disrupts: true,
        needs: &[Capability::PacketFilters],
        keys: &[
            key(&["target"], TARGET_HELP),
            key(&["service"], "the service whose member `target` picks (for a role)"),
        ],
        help: "cut a node off from every other node, both ways, and verify no packet passes",
        parse: parse_isolate_node,
    },
    StepRow {
        name: "partition",
        expectation: false,
        disrupts: true,
        needs: &[Capability::PacketFilters],
        keys: &[
            key(&["service"], "the service whose members are split"),
            key(&["minority"], TARGET_HELP),
        ],
        help: "split a service's members into a minority (holding `minority`) and a majority that cannot reach each other",
        parse: parse_partition,
    },
    StepRow {
        name: "drop-traffic",
        expectation: false,
        disrupts: true,
        needs: &[Capability::PacketFilters],
        keys: &[
            key(&["service"], "the service whose members `from` and `to` pick"),
            key(&["from"], TARGET_HELP),
            key(&["to"], TARGET_HELP),
            key(&["probability"], "share of packets lost, above 0 and at most 1 (1: all)"),
        ],
        help: "lose packets from one node to another, one way only; verified (a full cut cannot connect, random loss drops packets)",
        parse: parse_drop_traffic,
    },
    StepRow {
        name: "heal",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[],
        help: "undo every fault in effect (filters, pauses, kills) and verify each is gone",
        parse: parse_heal,
    },
    StepRow {
        name: "wait",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[key(&["for"], "how long (a fault's hold)")],
        help: "let time pass with the cluster as it is",
        parse: parse_wait,
    },
];

/// A member picked when the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// The majority-backed leader.
    Leader,
    /// A live member that is not the leader.
    Follower,
    /// Any live member.
    Any,
}

impl Pick {
    /// Its word in scenario files.
    pub fn word(self) -> &'static str {
        match self {
            Pick::Leader => "leader",
            Pick::Follower => "follower",
            Pick::Any => "any",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Pick::Leader, Pick::Follower, Pick::Any]
            .into_iter()
            .find(|p| p.word() == word)
    }
}

/// Whom a fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultTarget {
    /// A node (or a binding to one).
    Node(NodeRef),
    /// A member of `service`, picked by role.
    Member(Pick),
}

/// A chaos step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ChaosStep {
    /// SIGKILL a service's process.
    KillService {
        service: ServiceKind,
        target: FaultTarget,
    },
    /// SIGKILL a service's process, start it again on its data, and wait until it serves.
    CrashRestart {
        service: ServiceKind,
        target: FaultTarget,
        within: Duration,
    },
    /// SIGSTOP a service's process.
    PauseService {
        service: ServiceKind,
        target: FaultTarget,
    },
    /// SIGCONT a service this run paused.
    ResumeService { service: ServiceKind, node: NodeRef },
    /// Cut a node off from every other node.
    IsolateNode {
        service: Option<ServiceKind>,
        target: FaultTarget,
    },
    /// Split a service's members into a minority and a majority.
    Partition {
        service: ServiceKind,
        minority: FaultTarget,
    },
    /// Lose packets from one node to another.
    DropTraffic {
        service: Option<ServiceKind>,
        from: FaultTarget,
        to: FaultTarget,
        probability: f64,
    },
    /// Undo every fault in effect.
    Heal,
    /// Let time pass.
    Wait { duration: Duration },
}

pub(super) fn target(
    r: &mut StepReader<'_, '_>,
    key: &'static str,
    service: Option<ServiceKind>,
) -> Result<FaultTarget, InputError> {
    let v = r.str(key)?;
    target_value(r, v, service)
}

/// A target read from a value: a pick by role, or a node (running `service`, when one).
pub(super) fn target_value(
    r: &mut StepReader<'_, '_>,
    v: crate::spec::reader::Located<String>,
    service: Option<ServiceKind>,
) -> Result<FaultTarget, InputError> {
    if let Some(pick) = Pick::parse(&v.value) {
        if service.is_none() {
            return Err(r
                .error(
                    v.span,
                    format!("`{}` picks a member of no service", v.value),
                )
                .with_help("add `service = \"…\"`, or name a node"));
        }
        return Ok(FaultTarget::Member(pick));
    }
    let cx = r.context();
    let node = cx.node_ref(&v)?;
    if let Some(service) = service {
        cx.check_runs(&node, &v, service)?;
    }
    Ok(FaultTarget::Node(node))
}

fn parse_kill_service(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.service()?;
    let target = target(r, "target", Some(service))?;
    Ok(ChaosStep::KillService { service, target }.into())
}

fn parse_crash_restart(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.service()?;
    let target = target(r, "target", Some(service))?;
    let within = r
        .opt_duration("within")?
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(30));
    Ok(ChaosStep::CrashRestart {
        service,
        target,
        within,
    }
    .into())
}

fn parse_pause_service(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.service()?;
    let target = target(r, "target", Some(service))?;
    Ok(ChaosStep::PauseService { service, target }.into())
}

fn parse_resume_service(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.service()?;
    let node = r.node_running("target", service)?;
    Ok(ChaosStep::ResumeService { service, node }.into())
}

fn parse_isolate_node(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.opt_service()?;
    let target = target(r, "target", service)?;
    Ok(ChaosStep::IsolateNode { service, target }.into())
}

fn parse_partition(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.leader_service()?;
    let minority = target(r, "minority", Some(service))?;
    Ok(ChaosStep::Partition { service, minority }.into())
}

fn parse_drop_traffic(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.opt_service()?;
    let from = target(r, "from", service)?;
    let to = target(r, "to", service)?;
    let probability = match r.opt_f64("probability")? {
        None => 1.0,
        Some(p) if p.value > 0.0 && p.value <= 1.0 => p.value,
        Some(p) => {
            return Err(r.error(
                p.span,
                format!(
                    "`probability` is {}; it must be above 0 and at most 1",
                    p.value
                ),
            ))
        }
    };
    Ok(ChaosStep::DropTraffic {
        service,
        from,
        to,
        probability,
    }
    .into())
}

fn parse_heal(_: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    Ok(ChaosStep::Heal.into())
}

fn parse_wait(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let d = r
        .opt_duration("for")?
        .ok_or_else(|| r.error(r.span(), "`wait` needs `for = \"…\"` (how long)"))?;
    Ok(ChaosStep::Wait { duration: d.value }.into())
}

pub(super) fn describe(
    target: &FaultTarget,
    service: Option<ServiceKind>,
    node: &dyn Fn(&NodeRef) -> String,
) -> String {
    match (target, service) {
        (FaultTarget::Node(n), _) => node(n),
        (FaultTarget::Member(Pick::Any), Some(s)) => format!("any {s} member"),
        (FaultTarget::Member(p), Some(s)) => format!("the {s} {}", p.word()),
        (FaultTarget::Member(p), None) => p.word().to_string(),
    }
}

/// The name of a step that has none.
pub fn default_name(step: &ChaosStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        ChaosStep::KillService { service, target } => {
            format!(
                "kill {service} on {}",
                describe(target, Some(*service), node)
            )
        }
        ChaosStep::CrashRestart {
            service, target, ..
        } => format!(
            "crash and restart {service} on {}",
            describe(target, Some(*service), node)
        ),
        ChaosStep::PauseService { service, target } => {
            format!(
                "pause {service} on {}",
                describe(target, Some(*service), node)
            )
        }
        ChaosStep::ResumeService { service, node: n } => format!("resume {service} on {}", node(n)),
        ChaosStep::IsolateNode { service, target } => {
            format!("isolate {}", describe(target, *service, node))
        }
        ChaosStep::Partition { service, minority } => format!(
            "partition {service}: a minority with {} apart from the majority",
            describe(minority, Some(*service), node)
        ),
        ChaosStep::DropTraffic {
            service,
            from,
            to,
            probability,
        } => {
            let what = if *probability >= 1.0 {
                "all".to_string()
            } else {
                format!("{:.0}% of", probability * 100.0)
            };
            format!(
                "drop {what} packets from {} to {}",
                describe(from, *service, node),
                describe(to, *service, node)
            )
        }
        ChaosStep::Heal => "heal every fault".to_string(),
        ChaosStep::Wait { duration } => format!(
            "wait {}",
            crate::base::time::human_ms(duration.as_millis() as u64)
        ),
    }
}

/// The node a target names now; `avoid` are nodes a pick must not return.
pub(super) async fn resolve<H: Hosts>(
    r: &mut Runner<'_, H>,
    target: &FaultTarget,
    service: Option<ServiceKind>,
    avoid: &[String],
) -> Result<String, String> {
    let pick = match target {
        FaultTarget::Node(n) => return Ok(r.resolve(n)?),
        FaultTarget::Member(p) => *p,
    };
    let service = service.ok_or("a pick by role needs a service")?;
    let backed = match pick {
        Pick::Any => None,
        Pick::Leader | Pick::Follower => {
            // An election may be under way (an earlier fault, its heal): the pick waits for
            // one to end, to the same deadline expectations give a leader. The leader is the
            // one the leader rule accepts, by the majority: a pick must work while another
            // fault keeps some member from answering.
            let held = crate::runner::waits::wait_leader_via(
                r,
                service,
                crate::cluster_views::Via::Both,
                crate::probe::leader::Agreement::Majority,
                crate::runner::waits::LEADER_DEADLINE,
                |_| Ok(()),
            )
            .await
            .map_err(|e| format!("no {service} leader to pick: {e}"))?;
            Some(held.value)
        }
    };
    if pick == Pick::Leader {
        return backed
            .map(|b| b.leader)
            .ok_or_else(|| format!("no {service} leader"));
    }
    // A member whose process this run has killed or paused is not picked again: a second
    // fault on it would find nothing to act on.
    let faulted: Vec<&str> = r
        .state
        .faults
        .active()
        .iter()
        .filter_map(|f| f.process_of(service))
        .collect();
    // A follower is a member seen following the leader (naming it at its term); any member is
    // any node the service runs on.
    let pool: Vec<String> = match &backed {
        Some(b) => b
            .backers
            .iter()
            .filter(|n| **n != b.leader)
            .cloned()
            .collect(),
        None => r
            .cluster
            .members(service)
            .into_iter()
            .map(|n| n.fqdn)
            .collect(),
    };
    let candidates: Vec<String> = pool
        .into_iter()
        .filter(|n| !avoid.contains(n) && !faulted.contains(&n.as_str()))
        .collect();
    if candidates.is_empty() {
        return Err(format!("no live {service} {} to pick", pick.word()));
    }
    let i = r.state.picks.below(candidates.len());
    Ok(candidates[i].clone())
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &ChaosStep) -> StepResult {
    // Every fault and heal goes on the timeline as what it did; a wait and a heal with
    // nothing to heal only say so in the step's result.
    let done = match step {
        ChaosStep::KillService { service, target }
        | ChaosStep::PauseService { service, target } => {
            let node = resolve(r, target, Some(*service), &[]).await?;
            if matches!(step, ChaosStep::KillService { .. }) {
                r.state
                    .faults
                    .kill(&mut *r.cluster, &node, *service)
                    .await?
            } else {
                r.state
                    .faults
                    .pause(&mut *r.cluster, &node, *service)
                    .await?
            }
        }
        ChaosStep::CrashRestart {
            service,
            target,
            within,
        } => {
            let node = resolve(r, target, Some(*service), &[]).await?;
            let done = r
                .state
                .faults
                .crash_restart(&mut *r.cluster, &node, *service)
                .await?;
            r.rec.record(done.clone());
            let (cluster, observer, rec) = r.split();
            let subject = format!("{service} on {}", name(&node));
            let seen = poll_until(*within, rec, || async {
                let outcome = member_serves(observer, cluster, &node, *service).await;
                let seen = match &outcome {
                    Ok(s) => s.clone(),
                    Err(e) => e.to_string(),
                };
                Poll {
                    outcome,
                    observation: Some((subject.clone(), seen)),
                }
            })
            .await;
            return match seen {
                Ok((seen, _)) => Ok(format!("{done}; serving again: {seen}")),
                Err(e) => {
                    let exited = r
                        .cluster
                        .exit_note(&node, *service)
                        .await
                        .map(|note| format!(" ({note})"))
                        .unwrap_or_default();
                    Err(format!("{done}, but it did not serve again: {e}{exited}").into())
                }
            };
        }
        ChaosStep::ResumeService { service, node } => {
            let node = r.resolve(node)?;
            r.state
                .faults
                .resume(&mut *r.cluster, &node, *service)
                .await?
        }
        ChaosStep::IsolateNode { service, target } => isolate_node(r, *service, target).await?,
        ChaosStep::Partition { service, minority } => partition(r, *service, minority).await?,
        ChaosStep::DropTraffic {
            service,
            from,
            to,
            probability,
        } => {
            let sender = resolve(r, from, *service, &[]).await?;
            let receiver = resolve(r, to, *service, std::slice::from_ref(&sender)).await?;
            r.state
                .faults
                .drop_packets(&*r.cluster, &[(sender, receiver)], *probability)
                .await?
        }
        ChaosStep::Heal => {
            if r.state.faults.is_empty() {
                return Ok("no fault in effect; nothing to heal".to_string());
            }
            format!(
                "healed: {}",
                r.state.faults.heal_all(&mut *r.cluster).await?.join("; ")
            )
        }
        ChaosStep::Wait { duration } => {
            // Not a wait for a state: the time a fault is held is what the schedule asks for.
            tokio::time::sleep(*duration).await;
            return Ok(format!(
                "waited {}",
                crate::base::time::human_ms(duration.as_millis() as u64)
            ));
        }
    };
    r.rec.record(done.clone());
    Ok(done)
}

/// Cuts one node off from every other live node, both ways.
async fn isolate_node<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: Option<ServiceKind>,
    target: &FaultTarget,
) -> Result<String, StepError> {
    let node = resolve(r, target, service, &[]).await?;
    let others: Vec<String> = r
        .cluster
        .nodes()
        .into_iter()
        .filter(|n| n.alive && n.fqdn != node)
        .map(|n| n.fqdn)
        .collect();
    let links = both_ways(std::slice::from_ref(&node), &others);
    r.state
        .faults
        .drop_packets(&*r.cluster, &links, 1.0)
        .await?;
    Ok(format!(
        "{} isolated from {} nodes",
        crate::base::names::short(&node),
        others.len()
    ))
}

/// Splits a service's members into a minority (the picked member and as many more as a
/// minority of the configured membership holds) and the rest, both ways.
async fn partition<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    minority: &FaultTarget,
) -> Result<String, StepError> {
    let first = resolve(r, minority, Some(service), &[]).await?;
    let configured = r.cluster.topology().nodes_running(service).len();
    let mut small = vec![first];
    while small.len() < (configured.max(1) - 1) / 2 {
        small.push(resolve(r, &FaultTarget::Member(Pick::Any), Some(service), &small).await?);
    }
    let large: Vec<String> = r
        .cluster
        .members(service)
        .into_iter()
        .map(|n| n.fqdn)
        .filter(|n| !small.contains(n))
        .collect();
    let links = both_ways(&small, &large);
    r.state
        .faults
        .drop_packets(&*r.cluster, &links, 1.0)
        .await?;
    let names = |v: &[String]| {
        v.iter()
            .map(|n| crate::base::names::short(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "{service} split: {{{}}} apart from {{{}}}",
        names(&small),
        names(&large)
    ))
}

/// Every link between the two sides, both ways.
fn both_ways(a: &[String], b: &[String]) -> Vec<(String, String)> {
    let mut links = Vec::new();
    for x in a {
        for y in b {
            links.push((x.clone(), y.clone()));
            links.push((y.clone(), x.clone()));
        }
    }
    links
}
