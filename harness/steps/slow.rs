//! Slow networks and slow, forgetful disks: packet delay (the node-side delay queue, since
//! this kernel has no netem), fsync latency and power loss on the faulty disk. Each is
//! verified made and verified healed, like every fault (`injection/`), and `heal` undoes
//! whichever is still in effect.

use std::time::Duration;

use serde::Serialize;

use super::chaos::{describe, resolve, target, target_value, FaultTarget, TARGET_HELP};
use super::{key, StepKind, StepRow};
use crate::injection::DelaySpec;
use crate::node_tools::faultfs::Latencies;
use crate::provider::Hosts;
use crate::runner::{Runner, StepResult};
use crate::service::ServiceKind;
use crate::source::InputError;
use crate::spec::capability::Capability;
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

/// The most packets a delay queue holds when the step does not say.
pub const DEFAULT_QUEUE_LIMIT: u32 = 10_000;
/// The longest delay a step may ask for: longer is an outage, which `drop-traffic` makes.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "delay-traffic",
        expectation: false,
        disrupts: true,
        needs: &[Capability::PacketFilters],
        keys: &[
            key(&["service"], "the service whose members `from` and `to` pick"),
            key(&["from"], TARGET_HELP),
            key(&["to"], "as `from`; without it, everything `from` sends to other hosts"),
            key(&["delay"], "how long every packet is held (at most 30s)"),
            key(&["jitter"], "up to this much more per packet, drawn uniformly (default 0; never reorders)"),
            key(&["both_ways"], "delay `to`'s packets to `from` too (default false)"),
            key(&["queue_limit"], "the most packets held at once; more are dropped and counted (default 10000)"),
        ],
        help: "delay the packets a node sends (to one peer, or to all), verified by the connect time rising by the delay",
        parse: parse_delay_traffic,
    },
    StepRow {
        name: "slow-disk",
        expectation: false,
        disrupts: true,
        needs: &[Capability::FaultyDisk],
        keys: &[
            key(&["service"], "the service whose data is on the faulty disk"),
            key(&["target"], TARGET_HELP),
            key(&["fsync"], "added to every fsync"),
            key(&["write"], "added to every write (default 0)"),
        ],
        help: "slow a service's faulty disk: fsync (and writes) answer late; verified by a timed fsync on the node",
        parse: parse_slow_disk,
    },
    StepRow {
        name: "lose-power",
        expectation: false,
        disrupts: true,
        needs: &[Capability::FaultyDisk],
        keys: &[
            key(&["service"], "the service whose data is on the faulty disk"),
            key(&["targets"], "nodes, `$bindings` or `leader`, `follower`, `any` members, cut at once"),
            key(&["restart"], "start the services again on what their disks kept (default true)"),
        ],
        help: "cut the power under a service on some nodes at once: killed, every unsynced write lost (verified), started again",
        parse: parse_lose_power,
    },
];

/// A step of this family.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SlowStep {
    /// Delay the packets a node sends.
    DelayTraffic {
        service: Option<ServiceKind>,
        from: FaultTarget,
        to: Option<FaultTarget>,
        delay: Duration,
        jitter: Duration,
        both_ways: bool,
        queue_limit: u32,
    },
    /// Slow a service's faulty disk.
    SlowDisk {
        service: ServiceKind,
        target: FaultTarget,
        fsync: Duration,
        write: Duration,
    },
    /// Cut the power under a service on some nodes.
    LosePower {
        service: ServiceKind,
        targets: Vec<FaultTarget>,
        restart: bool,
    },
}

fn parse_delay_traffic(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = r.opt_service()?;
    let from = target(r, "from", service)?;
    let to = match r.opt_str("to")? {
        Some(v) => Some(target_value(r, v, service)?),
        None => None,
    };
    let delay = r
        .opt_duration("delay")?
        .ok_or_else(|| r.error(r.span(), "`delay-traffic` needs `delay = \"…\"`"))?;
    if delay.value.is_zero() || delay.value > MAX_DELAY {
        return Err(r.error(
            delay.span,
            "`delay` must be above 0 and at most 30s (a longer one is an outage: `drop-traffic`)",
        ));
    }
    let jitter = r
        .opt_duration("jitter")?
        .map_or(Duration::ZERO, |j| j.value);
    let both_ways = r.opt_bool("both_ways")?.is_some_and(|b| b.value);
    if both_ways && to.is_none() {
        return Err(r.error(r.span(), "`both_ways` needs `to`"));
    }
    let queue_limit = match r.opt_u64("queue_limit")? {
        None => DEFAULT_QUEUE_LIMIT,
        Some(n) if (1..=1_000_000).contains(&n.value) => n.value as u32,
        Some(n) => {
            return Err(r.error(n.span, "`queue_limit` must be between 1 and 1000000"));
        }
    };
    Ok(SlowStep::DelayTraffic {
        service,
        from,
        to,
        delay: delay.value,
        jitter,
        both_ways,
        queue_limit,
    }
    .into())
}

/// The service of a disk step: one whose data the topology puts on the faulty disk.
fn disk_service(r: &mut StepReader<'_, '_>) -> Result<ServiceKind, InputError> {
    let service = r.service()?;
    if !r.context().topology.settings.faulty_disk.contains(&service) {
        return Err(r
            .error(
                r.span(),
                format!("{service}'s data is not on the faulty disk in this topology"),
            )
            .with_help(format!(
                "set `faulty_disk = true` under `[services.{service}]` in the topology"
            )));
    }
    Ok(service)
}

fn parse_slow_disk(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = disk_service(r)?;
    let target = target(r, "target", Some(service))?;
    let fsync = r
        .opt_duration("fsync")?
        .ok_or_else(|| r.error(r.span(), "`slow-disk` needs `fsync = \"…\"`"))?;
    if fsync.value.is_zero() {
        return Err(r.error(fsync.span, "`fsync` must be above 0"));
    }
    let write = r.opt_duration("write")?.map_or(Duration::ZERO, |w| w.value);
    Ok(SlowStep::SlowDisk {
        service,
        target,
        fsync: fsync.value,
        write,
    }
    .into())
}

fn parse_lose_power(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let service = disk_service(r)?;
    let list = r
        .opt_str_list("targets")?
        .ok_or_else(|| r.error(r.span(), "`lose-power` needs `targets = [\"…\"]`"))?;
    if list.value.is_empty() {
        return Err(r.error(list.span, "`targets` names no node"));
    }
    let mut targets = Vec::new();
    for v in list.value {
        targets.push(target_value(r, v, Some(service))?);
    }
    let restart = r.opt_bool("restart")?.is_none_or(|b| b.value);
    Ok(SlowStep::LosePower {
        service,
        targets,
        restart,
    }
    .into())
}

/// The name of a step that has none.
pub fn default_name(step: &SlowStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        SlowStep::DelayTraffic {
            service,
            from,
            to,
            delay,
            both_ways,
            ..
        } => {
            let ms = delay.as_millis();
            let from = describe(from, *service, node);
            match (to, both_ways) {
                (Some(to), true) => format!(
                    "delay packets between {from} and {} by {ms} ms",
                    describe(to, *service, node)
                ),
                (Some(to), false) => format!(
                    "delay packets from {from} to {} by {ms} ms",
                    describe(to, *service, node)
                ),
                (None, _) => format!("delay packets from {from} by {ms} ms"),
            }
        }
        SlowStep::SlowDisk {
            service,
            target,
            fsync,
            ..
        } => format!(
            "slow {service}'s disk on {} (fsync +{} ms)",
            describe(target, Some(*service), node),
            fsync.as_millis()
        ),
        SlowStep::LosePower {
            service, targets, ..
        } => format!(
            "cut the power under {service} on {}",
            targets
                .iter()
                .map(|t| describe(t, Some(*service), node))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &SlowStep) -> StepResult {
    let done = match step {
        SlowStep::DelayTraffic {
            service,
            from,
            to,
            delay,
            jitter,
            both_ways,
            queue_limit,
        } => {
            let sender = resolve(r, from, *service, &[]).await?;
            let receiver = match to {
                Some(t) => Some(resolve(r, t, *service, std::slice::from_ref(&sender)).await?),
                None => None,
            };
            let mut links = vec![(sender.clone(), receiver.clone())];
            if let (true, Some(receiver)) = (*both_ways, &receiver) {
                links.push((receiver.clone(), Some(sender)));
            }
            let spec = DelaySpec {
                delay: *delay,
                jitter: *jitter,
                max_packets: *queue_limit,
            };
            r.state.faults.delay(&mut *r.cluster, &links, spec).await?
        }
        SlowStep::SlowDisk {
            service,
            target,
            fsync,
            write,
        } => {
            let node = resolve(r, target, Some(*service), &[]).await?;
            let latencies = Latencies {
                fsync_latency_ms: fsync.as_millis() as u64,
                write_latency_ms: write.as_millis() as u64,
            };
            r.state
                .faults
                .slow_disk(&mut *r.cluster, &node, *service, latencies)
                .await?
        }
        SlowStep::LosePower {
            service,
            targets,
            restart,
        } => {
            let mut nodes: Vec<String> = Vec::new();
            for t in targets {
                nodes.push(resolve(r, t, Some(*service), &nodes).await?);
            }
            r.state
                .faults
                .lose_power(&mut *r.cluster, &nodes, *service, *restart)
                .await?
        }
    };
    r.rec.record(done.clone());
    Ok(done)
}
