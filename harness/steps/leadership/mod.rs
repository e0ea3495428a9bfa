//! Leadership: finding the leader, moving leadership, and expecting a leader (majority-backed,
//! measured from election to serving) or none.

use std::time::{Duration, Instant};

use serde::Serialize;

mod moving;

use moving::{move_leader, Goal};

use super::{key, StepKind, StepRow};
use crate::cluster_views::Via;
use crate::probe::leader::{describe_views, leadership_given_up, Agreement, Backed};
use crate::provider::Hosts;
use crate::runner::serving;
use crate::runner::waits::{observe_leader, wait_leader_via, Unwanted, LEADER_DEADLINE};
use crate::runner::{name, poll_until, serving_measure, Held, Poll, Runner, StepResult};
use crate::service::ServiceKind;
use crate::source::InputError;
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "find-leader",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[
            key(&["service"], "etcd, zookeeper, mesos-master or marathon"),
            key(&["bind"], "the name later steps use as `$name`"),
        ],
        help: "find the majority-backed leader of a service and bind its node",
        parse: parse_find_leader,
    },
    StepRow {
        name: "move-leader",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: &[
            key(&["service"], "the service"),
            key(&["to", "away_from"], "the node that must lead, or must not"),
            key(&["method"], "api (etcd), restart (restart whichever node leads until it holds, as the seed does), abdicate (Marathon's DELETE /v2/leader)"),
            key(&["within"], "deadline (default 120s)"),
        ],
        help: "move a service's leadership until the goal holds",
        parse: parse_move_leader,
    },
    StepRow {
        name: "leader",
        expectation: true,
        disrupts: false,
        needs: &[],
        keys: &[
            key(&["service"], "the service"),
            key(&["not", "is"], "the node that must not lead, or must"),
            key(&["bind"], "bind the leader's node as `$name`"),
            key(&["measure"], "record elected (and, for etcd and ZooKeeper, serving) times under this name"),
            key(&["since"], "the step the measurement counts from (default: the last disruption)"),
            key(&["via"], "masters only: http, znode or both (default)"),
            key(&["agreement"], "majority (default: a majority of the configured membership answers and names it; members that cannot answer neither block nor count) or all (every configured member answers and names it)"),
            key(&["hold"], "how long it must then stay put"),
        ],
        help: "a node claims leadership at a term, a majority of the configured membership names it at that term, and no member that answers names another leader at that term or later",
        parse: parse_leader,
    },
    StepRow {
        name: "no-leader",
        expectation: true,
        disrupts: false,
        needs: &[],
        keys: &[key(&["service"], "the service")],
        help: "every live member answers that it knows no leader (silence is not taken for it)",
        parse: parse_no_leader,
    },
];

/// Where a move of leadership must end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaderGoal {
    /// This node leads.
    To(NodeRef),
    /// Any node but this one leads.
    AwayFrom(NodeRef),
}

/// How leadership is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveMethod {
    /// etcd's move-leader API, sent to the current leader.
    Api,
    /// Restart the service on whichever node leads, until the goal holds (the seed's way).
    Restart,
    /// Marathon's `DELETE /v2/leader` on the leader, until the goal holds.
    Abdicate,
}

/// A leadership step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LeadershipStep {
    /// Find the node leading a service and bind its name.
    FindLeader { service: ServiceKind, bind: String },
    /// Move a service's leadership to a node, or away from one, by the given method; nothing
    /// to do if it holds already.
    MoveLeader {
        service: ServiceKind,
        goal: LeaderGoal,
        method: MoveMethod,
        within: Duration,
    },
    /// Expect a leader backed as `agreement` asks, optionally not / exactly a node.
    ExpectLeader {
        service: ServiceKind,
        not: Option<NodeRef>,
        is: Option<NodeRef>,
        bind: Option<String>,
        within: Duration,
        measure: Option<String>,
        /// The step whose start the measurement counts from (default: the last disruption).
        since: Option<String>,
        /// Where the master tier's leader is read: HTTP endpoints, election znodes, or both
        /// (which must then agree).
        via: Via,
        /// How long it must keep holding once it holds.
        hold: Option<Duration>,
        /// How many members must name it.
        agreement: Agreement,
    },
    /// Expect every live member to answer that it knows no leader.
    ExpectNoLeader {
        service: ServiceKind,
        within: Duration,
    },
}

fn parse_find_leader(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.leader_service()?;
    let bind = r
        .binding("bind")?
        .ok_or_else(|| r.missing("bind", "the name later steps use as `$name`"))?;
    r.context_mut().bound_service.insert(bind.clone(), service);
    Ok(LeadershipStep::FindLeader { service, bind }.into())
}

fn parse_move_leader(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service_span = r.value_span("service");
    let service = r.service()?;
    let goal = match (
        r.opt_node_running("to", service)?,
        r.opt_node_running("away_from", service)?,
    ) {
        (Some(to), None) => LeaderGoal::To(to),
        (None, Some(away)) => LeaderGoal::AwayFrom(away),
        _ => {
            return Err(r.error(
                r.span().start..r.span().start,
                format!("{} needs exactly one of `to` and `away_from`", r.what()),
            ))
        }
    };
    let method_value = r.opt_str("method")?;
    let method_span = method_value.as_ref().map(|m| m.span.clone());
    let method = match method_value.as_ref().map(|m| m.value.as_str()) {
        None => match service {
            ServiceKind::Etcd => MoveMethod::Api,
            _ => MoveMethod::Restart,
        },
        Some("api") => MoveMethod::Api,
        Some("restart") => MoveMethod::Restart,
        Some("abdicate") => MoveMethod::Abdicate,
        Some(other) => {
            return Err(r
                .error(
                    method_span.clone().unwrap_or(r.span()),
                    format!("unknown method `{other}`"),
                )
                .with_help("methods: api (etcd), restart (any service), abdicate (marathon)"))
        }
    };
    let supported = match method {
        MoveMethod::Api => service == ServiceKind::Etcd,
        MoveMethod::Abdicate => service == ServiceKind::Marathon,
        MoveMethod::Restart => service.elects_leader(),
    };
    if !supported {
        let span = method_span.or(service_span).unwrap_or(r.span());
        return Err(r
            .error(span, format!("`move-leader` cannot move {service}'s leadership by {method:?}").to_lowercase())
            .with_help("etcd: api or restart; mesos-master: restart; marathon: restart or abdicate; zookeeper: restart"));
    }
    let within = r
        .opt_duration("within")?
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(120));
    Ok(LeadershipStep::MoveLeader {
        service,
        goal,
        method,
        within,
    }
    .into())
}

fn parse_leader(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.leader_service()?;
    let not = r.opt_node_running("not", service)?;
    let is = r.opt_node_running("is", service)?;
    if let (Some(_), Some(_)) = (&not, &is) {
        return Err(r.error(
            r.value_span("is").unwrap_or(r.span()),
            "`is` and `not` together say nothing `is` alone does not; keep one",
        ));
    }
    let bind = r.binding("bind")?;
    if let Some(b) = &bind {
        r.context_mut().bound_service.insert(b.clone(), service);
    }
    let measure = r.opt_str("measure")?.map(|m| m.value);
    let since = match r.opt_str("since")? {
        None => None,
        Some(s) if r.context().step_names.contains(&s.value) => Some(s.value),
        Some(s) => {
            return Err(r
                .error(
                    s.span,
                    format!("`since` names no earlier step: \"{}\"", s.value),
                )
                .with_help("name an earlier step by its `name`"))
        }
    };
    if since.is_some() && measure.is_none() {
        return Err(r.error(
            r.value_span("since").unwrap_or(r.span()),
            "`since` says where `measure` starts; add `measure`",
        ));
    }
    let via = via(r, service)?;
    let hold = r.opt_duration("hold")?.map(|d| d.value);
    let agreement = agreement(r)?;
    Ok(LeadershipStep::ExpectLeader {
        service,
        not,
        is,
        bind,
        within: r.within(),
        measure,
        since,
        via,
        hold,
        agreement,
    }
    .into())
}

fn parse_no_leader(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.leader_service()?;
    Ok(LeadershipStep::ExpectNoLeader {
        service,
        within: r.within(),
    }
    .into())
}

fn agreement(r: &mut StepReader<'_, '_>) -> Result<Agreement, InputError> {
    let Some(a) = r.opt_str("agreement")? else {
        return Ok(Agreement::Majority);
    };
    match a.value.as_str() {
        "majority" => Ok(Agreement::Majority),
        "all" => Ok(Agreement::All),
        other => Err(r
            .error(a.span, format!("unknown `agreement` `{other}`"))
            .with_help("majority (the default) or all")),
    }
}

fn via(r: &mut StepReader<'_, '_>, service: ServiceKind) -> Result<Via, InputError> {
    let Some(v) = r.opt_str("via")? else {
        return Ok(Via::Both);
    };
    let via = match v.value.as_str() {
        "http" => Via::Http,
        "znode" => Via::Znode,
        "both" => Via::Both,
        other => {
            return Err(r
                .error(v.span, format!("unknown `via` `{other}`"))
                .with_help(
                    "http (the services' endpoints), znode (ZooKeeper's election znodes), both",
                ))
        }
    };
    if !matches!(service, ServiceKind::MesosMaster | ServiceKind::Marathon) {
        return Err(r.error(
            v.span,
            format!("`via` applies to mesos-master and marathon, not {service}"),
        ));
    }
    Ok(via)
}

/// The name of a step that has none.
pub fn default_name(step: &LeadershipStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        LeadershipStep::FindLeader { service, bind } => {
            format!("find the {service} leader as ${bind}")
        }
        LeadershipStep::MoveLeader { service, goal, .. } => match goal {
            LeaderGoal::To(to) => format!("move {service} leadership to {}", node(to)),
            LeaderGoal::AwayFrom(away) => {
                format!("move {service} leadership away from {}", node(away))
            }
        },
        LeadershipStep::ExpectLeader { service, .. } => {
            format!("expect {} {service} leader", article(*service))
        }
        LeadershipStep::ExpectNoLeader { service, .. } => format!("expect no {service} leader"),
    }
}

/// "an" before a service whose name starts with a vowel (etcd), "a" otherwise.
fn article(service: ServiceKind) -> &'static str {
    if service.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &LeadershipStep) -> StepResult {
    match step {
        LeadershipStep::FindLeader { service, bind } => {
            let held = wait_leader_via(
                r,
                *service,
                Via::Both,
                Agreement::Majority,
                LEADER_DEADLINE,
                |_| Ok(()),
            )
            .await?;
            r.bindings.insert(bind.clone(), held.value.leader.clone());
            Ok(format!(
                "{service} leader is {} (bound as ${bind})",
                held.value.describe()
            ))
        }
        LeadershipStep::ExpectLeader {
            service,
            not,
            is,
            bind,
            within,
            measure,
            since,
            via,
            hold,
            agreement,
        } => {
            let not = not.as_ref().map(|n| r.resolve(n)).transpose()?;
            let is = is.as_ref().map(|n| r.resolve(n)).transpose()?;
            let accept = |leader: &String| {
                if let Some(old) = &not {
                    if leader == old {
                        return Err(Unwanted::StillLeads(old.clone()));
                    }
                }
                if let Some(want) = &is {
                    if leader != want {
                        return Err(Unwanted::NotTheOne {
                            leader: leader.clone(),
                            want: want.clone(),
                        });
                    }
                }
                Ok(())
            };
            let step_began = Instant::now();
            let held = wait_leader_via(r, *service, *via, *agreement, *within, accept).await?;
            let leader = held.value.leader.clone();
            if let Some(hold) = hold {
                keep_holding(r, *service, *via, *agreement, *hold, &leader).await?;
            }
            let mut detail = format!("{service} leader {}", backed_text(*service, *via, &held));
            if let Some(hold) = hold {
                detail.push_str(&format!(
                    ", steady for {}",
                    crate::base::time::human_ms(hold.as_millis() as u64)
                ));
            }
            if let Some(bind) = bind {
                r.bindings.insert(bind.clone(), leader.clone());
            }
            if let Some(measure) = measure {
                let since = match since {
                    Some(step) => r.step_started.get(step).copied(),
                    None => r.last_disruption,
                }
                .unwrap_or(held.at);
                let left = within.saturating_sub(step_began.elapsed());
                detail.push_str(&measure_election(r, *service, measure, since, left, &held).await?);
            }
            Ok(detail)
        }
        LeadershipStep::MoveLeader {
            service,
            goal,
            method,
            within,
        } => {
            let goal = match goal {
                LeaderGoal::To(n) => Goal::To(r.resolve(n)?),
                LeaderGoal::AwayFrom(n) => Goal::AwayFrom(r.resolve(n)?),
            };
            move_leader(r, *service, &goal, *method, *within).await
        }
        LeadershipStep::ExpectNoLeader { service, within } => {
            expect_no_leader(r, *service, *within).await
        }
    }
}

/// How a found leader is described: for the stand-ins, whether the election znodes agree.
fn backed_text(service: ServiceKind, via: Via, held: &Held<Backed>) -> String {
    match (service, via) {
        (ServiceKind::MesosMaster | ServiceKind::Marathon, Via::Both) => {
            format!("{}; the election znodes agree", held.value.describe())
        }
        (ServiceKind::MesosMaster | ServiceKind::Marathon, Via::Znode) => {
            format!("{} (the election znodes)", name(&held.value.leader))
        }
        _ => held.value.describe(),
    }
}

/// Records how long after `since` the leader was elected and, where a write can be made, when
/// a write through it was first acknowledged (within what is `left` of the step's deadline).
async fn measure_election<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    measure: &str,
    since: Instant,
    left: Duration,
    held: &Held<Backed>,
) -> StepResult {
    let elected = r.rec.measure(measure, since, held);
    let mut detail = format!("; {measure}: elected after {elected}");
    if serving::measurable(service) {
        let leader = &held.value.leader;
        let mut wrote = serving::first_write(r, service, leader, left)
            .await
            .map_err(|e| {
                format!(
                    "{} was elected but no write was acknowledged through it: {e}",
                    name(leader)
                )
            })?;
        // A write goes through the leader, so serving began no earlier than the election did:
        // a first write that succeeds at once is bounded by the election's own span.
        if wrote.first_look && !held.first_look {
            wrote.not_before = held.not_before;
            wrote.first_look = false;
        }
        let serving_name = serving_measure(measure);
        let serving = r.rec.measure(&serving_name, since, &wrote);
        detail.push_str(&format!(", serving after {serving}: {}", wrote.value));
    }
    Ok(detail)
}

/// No member claims leadership any more (or every claim is deposed), polled to `within`.
async fn expect_no_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    within: Duration,
) -> StepResult {
    let (cluster, observer, rec) = r.split();
    let (seen, _) = poll_until(within, rec, || async move {
        let views = observer.leader_views(cluster, service).await;
        let outcome = leadership_given_up(&views);
        Poll {
            observation: Some((service.name().to_string(), describe_views(&views))),
            outcome,
        }
    })
    .await?;
    Ok(format!("no {service} leader: {seen}"))
}

/// After an expectation first held: the leader first seen must go on leading for `hold`,
/// whatever `is`/`not` allow, polled all along.
async fn keep_holding<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    via: Via,
    agreement: Agreement,
    hold: Duration,
    first: &str,
) -> Result<(), String> {
    let end = Instant::now() + hold;
    while Instant::now() < end {
        let (leader, seen) =
            observe_leader(&r.observer, &*r.cluster, service, via, agreement).await;
        r.rec.observe(service.name(), &seen);
        let stayed = leader.map_err(|e| e.to_string()).and_then(|l| {
            if l.leader == first {
                Ok(())
            } else {
                Err(format!(
                    "leadership moved from {} to {}",
                    name(first),
                    name(&l.leader)
                ))
            }
        });
        if let Err(e) = stayed {
            return Err(format!(
                "held, then stopped holding within {}: {e}",
                crate::base::time::human_ms(hold.as_millis() as u64)
            ));
        }
        tokio::time::sleep(crate::runner::POLL_INTERVAL).await;
    }
    Ok(())
}
