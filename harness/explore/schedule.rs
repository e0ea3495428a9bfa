//! Fault schedules: what they are made of, the proptest strategy that draws them from a seed
//! (and shrinks them: fewer faults, shorter holds, simpler kinds and targets), and the scenario
//! file a schedule is run as — the same file that replays it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use serde::Serialize;

use crate::runner::HEAL_STEP;
use crate::service::ServiceKind;
use crate::steps::chaos::Pick;

/// A kind of fault, simplest first (shrinking moves towards the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the member's process (started again on heal).
    Kill,
    /// SIGSTOP the member's process (resumed on heal).
    Pause,
    /// Cut the member's node off from every other node.
    Isolate,
    /// Split the service's members, the member in the minority.
    Partition,
    /// Drop every packet from the member to another member, one way.
    OneWay,
    /// Lose 30% of the packets from the member to another member.
    Loss,
    /// SIGKILL the member's process and start it again at once on its data (a crash, or a
    /// power loss with the disk intact); nothing is left to heal.
    CrashRestart,
    /// Delay every packet the member's node sends (`DELAY_MS`, up to `JITTER_MS` more).
    Delay,
    /// Slow the member's disk: every fsync `SLOW_FSYNC_MS` late (drawn only for services
    /// whose data the topology puts on the faulty disk).
    SlowDisk,
    /// Cut the power under the member: killed, every unsynced write lost, started again on
    /// what its disk kept (faulty disk only, as `SlowDisk`).
    PowerLoss,
}

/// The share of packets `FaultKind::Loss` drops.
pub const LOSS_PROBABILITY: f64 = 0.3;
/// The delay `FaultKind::Delay` adds to every packet.
pub const DELAY_MS: u64 = 200;
/// Up to this much more per packet.
pub const JITTER_MS: u64 = 50;
/// What `FaultKind::SlowDisk` adds to every fsync: above etcd's default election timeout.
pub const SLOW_FSYNC_MS: u64 = 1500;

/// Every fault kind drawn on any topology, simplest first.
const NETWORK_AND_PROCESS_KINDS: &[FaultKind] = &[
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::Isolate,
    FaultKind::Partition,
    FaultKind::OneWay,
    FaultKind::Loss,
    FaultKind::CrashRestart,
    FaultKind::Delay,
];

/// The kinds drawn only where a service's data is on the faulty disk.
const DISK_KINDS: &[FaultKind] = &[FaultKind::SlowDisk, FaultKind::PowerLoss];

/// One fault of a schedule: made, held, healed, then a leader named by every member is expected of
/// every watched service within the bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Whose member it picks.
    pub service: ServiceKind,
    /// Which member.
    pub pick: Pick,
    /// How long it is held before it is healed (or before the next fault, when it overlaps).
    pub hold_ms: u64,
    /// The next fault comes while this one is still in effect; they are healed together.
    pub overlaps_next: bool,
}

impl Fault {
    /// One line: "kill the zookeeper leader, hold 1.2 s".
    pub fn describe(&self) -> String {
        let who = match self.pick {
            Pick::Leader => format!("the {} leader", self.service),
            Pick::Follower => {
                let vowel = self.service.name().starts_with(['a', 'e', 'i', 'o', 'u']);
                format!(
                    "{} {} follower",
                    if vowel { "an" } else { "a" },
                    self.service
                )
            }
            Pick::Any => format!("any {} member", self.service),
        };
        let what = match self.kind {
            FaultKind::Kill => format!("kill {who}"),
            FaultKind::Pause => format!("pause {who}"),
            FaultKind::Isolate => format!("isolate {who}"),
            FaultKind::Partition => {
                format!("partition {} with {who} in the minority", self.service)
            }
            FaultKind::OneWay => format!("drop all packets from {who} to another member"),
            FaultKind::Loss => format!(
                "lose {:.0}% of packets from {who} to another member",
                LOSS_PROBABILITY * 100.0
            ),
            FaultKind::CrashRestart => format!("crash {who} and restart it on its data"),
            FaultKind::Delay => {
                format!("delay every packet from {who} by {DELAY_MS} ms (+0–{JITTER_MS} ms)")
            }
            FaultKind::SlowDisk => format!("slow the disk of {who} (fsync +{SLOW_FSYNC_MS} ms)"),
            FaultKind::PowerLoss => {
                format!("cut the power under {who}: unsynced writes lost, started again")
            }
        };
        let hold = crate::base::time::human_ms(self.hold_ms);
        if self.overlaps_next {
            format!("{what}, hold {hold}, then the next fault before healing")
        } else {
            format!("{what}, hold {hold}")
        }
    }
}

/// What schedules are drawn from.
#[derive(Debug, Clone)]
pub struct Space {
    /// Services whose members faults pick (those with leaders and terms the topology runs).
    pub services: Vec<ServiceKind>,
    /// How many faults a schedule has at most.
    pub max_faults: usize,
    /// How long a fault is held.
    pub hold_ms: RangeInclusive<u64>,
    /// How many members of a service may be taken down at once (faults in effect together).
    pub max_down: usize,
    /// How many members each service has.
    pub members: BTreeMap<ServiceKind, usize>,
    /// Services whose data the topology puts on the faulty disk (slow disks and power losses
    /// are drawn for them only).
    pub faulty_disks: Vec<ServiceKind>,
}

impl Space {
    /// How many members of `service` a fault may take down at most: one node, or a
    /// partition's whole minority.
    pub fn takes_down(&self, fault: &Fault) -> usize {
        match fault.kind {
            FaultKind::Partition => {
                let n = self.members.get(&fault.service).copied().unwrap_or(1);
                ((n.max(1) - 1) / 2).max(1)
            }
            _ => 1,
        }
    }

    /// The default bound: never a majority of the smallest service.
    pub fn minority(members: &BTreeMap<ServiceKind, usize>) -> usize {
        let smallest = members.values().copied().min().unwrap_or(1);
        (smallest.max(1) - 1) / 2
    }

    /// The fault kinds drawn: the disk's only when some service's data is on the faulty disk.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds = NETWORK_AND_PROCESS_KINDS.to_vec();
        if !self.faulty_disks.is_empty() {
            kinds.extend_from_slice(DISK_KINDS);
        }
        kinds
    }
}

/// Makes a drawn schedule keep to the bound: a fault overlaps the next only while every fault
/// of the group, the next included, together take down at most `max_down` members. (Counted
/// over all services at once, since a fault on a node may reach every server on it.) The last
/// fault never overlaps, and a partition whose minority alone is over the bound cuts off one
/// node instead.
pub fn bounded(space: &Space, mut faults: Vec<Fault>) -> Vec<Fault> {
    for f in faults.iter_mut() {
        if space.takes_down(f) > space.max_down {
            f.kind = FaultKind::Isolate;
        }
        // A disk fault on a service whose data is on a plain disk: the nearest fault there is
        // a crash and restart.
        if DISK_KINDS.contains(&f.kind) && !space.faulty_disks.contains(&f.service) {
            f.kind = FaultKind::CrashRestart;
        }
    }
    let mut down = 0;
    for i in 0..faults.len() {
        let size = space.takes_down(&faults[i]);
        if i > 0 && faults[i - 1].overlaps_next && down + size <= space.max_down {
            down += size;
        } else {
            if i > 0 {
                faults[i - 1].overlaps_next = false;
            }
            down = size;
        }
    }
    if let Some(last) = faults.last_mut() {
        last.overlaps_next = false;
    }
    faults
}

/// The strategy for one fault.
fn fault(space: &Space) -> impl Strategy<Value = Fault> {
    (
        // Shrinks towards the first kind, the simplest.
        proptest::sample::select(space.kinds()),
        proptest::sample::select(space.services.clone()),
        // The leader is the simplest target: picked the same way on every replay.
        prop_oneof![Just(Pick::Leader), Just(Pick::Follower), Just(Pick::Any)],
        space.hold_ms.clone(),
        // Healed before the next fault is the simpler schedule.
        proptest::bool::weighted(0.4),
    )
        .prop_map(|(kind, service, pick, hold_ms, overlaps_next)| Fault {
            kind,
            service,
            pick,
            hold_ms,
            overlaps_next,
        })
}

/// The strategy for a schedule: one to `max_faults` faults, some in effect together, never
/// more than `max_down` members down at once (by default a minority: see `Space::minority`).
pub fn schedules(space: &Space) -> impl Strategy<Value = Vec<Fault>> {
    let bound = space.clone();
    proptest::collection::vec(fault(space), 1..=space.max_faults.max(1))
        .prop_map(move |faults| bounded(&bound, faults))
}

/// What a rendered scenario's step came from, to tell which invariant a failure broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Fault `n` (from 1) was made.
    Fault(usize),
    /// Fault `n` was held.
    Hold(usize),
    /// Fault `n` was healed.
    Heal(usize),
    /// A leader was expected of a service after fault `n` was healed.
    LeaderAfterHeal(usize, ServiceKind),
    /// The workload ran on after the last heal, so that what members deliver once they catch
    /// up (a watch on a member that rejoined, say) is recorded before it is judged.
    Settle,
}

/// How long the workload runs on after the last heal before it is judged.
pub const SETTLE_MS: u64 = 5_000;

/// What a schedule is run with beside its faults.
#[derive(Debug, Clone)]
pub struct Checks {
    /// The topology file (absolute, so the scenario loads from anywhere).
    pub topology: std::path::PathBuf,
    /// Services whose leaders are watched and expected after each heal.
    pub watched: Vec<ServiceKind>,
    /// The bound on a leader named by every member after each heal.
    pub leader_within: Duration,
    /// Run the write ledger (the topology runs etcd).
    pub ledger: bool,
    /// The consistency workload every schedule runs, its history judged (the topology runs
    /// etcd: a scenario's `[workload]`, else the defaults).
    pub workload: Option<crate::spec::WorkloadSettings>,
    /// Availability targets the border serves, with the least share of requests that must
    /// succeed (every fault leaves a majority up).
    pub availability: Vec<String>,
    /// That share.
    pub min_availability: f64,
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The scenario file that runs (and replays) a schedule, and where each step came from.
pub fn render(
    name: &str,
    header: &[String],
    faults: &[Fault],
    checks: &Checks,
    seed: u64,
) -> (String, Vec<Origin>) {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "name = {}", toml_str(name));
    let _ = writeln!(
        out,
        "topology = {}",
        toml_str(&checks.topology.display().to_string())
    );
    let _ = writeln!(out, "seed = {seed}");
    if !checks.watched.is_empty() {
        let names: Vec<String> = checks.watched.iter().map(|s| toml_str(s.name())).collect();
        let _ = writeln!(out, "one_leader_per_term = [{}]", names.join(", "));
    }
    if checks.ledger {
        out.push_str("\n[ledger]\n");
    }
    if let Some(w) = &checks.workload {
        let _ = write!(
            out,
            "\n[workload]\nclients = {}\nkeys = {}\ninterval = \"{}ms\"\ntimeout = \"{}ms\"\nwatch = {}\nprefix = {}\n",
            w.clients,
            w.keys,
            w.interval.as_millis(),
            w.timeout.as_millis(),
            w.watch,
            toml_str(&w.prefix)
        );
        if w.serializable_claimed_linearizable {
            out.push_str("judge_serializable_reads_as = \"linearizable\"\n");
        }
        if w.compacted_watch_claimed_complete {
            out.push_str("judge_compacted_watches_as = \"complete\"\n");
        }
        if w.retry_unknown_puts {
            out.push_str("retry_unknown_puts = true\n");
        }
        if w.retried_put_counted_as_one {
            out.push_str("judge_retried_puts_as = \"one write\"\n");
        }
        if w.zookeeper_readers > 0 {
            let _ = writeln!(out, "zookeeper_readers = {}", w.zookeeper_readers);
        }
        if w.unsynced_reads_claimed_up_to_date {
            out.push_str("judge_unsynced_reads_as = \"up to date\"\n");
        }
    }
    let mut origins = Vec::new();
    let mut step = |out: &mut String, origin: Origin, name: String, body: String| {
        let _ = write!(out, "\n[[step]]\nname = {}\n{body}", toml_str(&name));
        origins.push(origin);
    };
    for (i, f) in faults.iter().enumerate() {
        let n = i + 1;
        let body = fault_step(f);
        step(
            &mut out,
            Origin::Fault(n),
            format!("fault {n}: {}", f.describe()),
            body,
        );
        step(
            &mut out,
            Origin::Hold(n),
            format!("fault {n}: hold"),
            format!("action = \"wait\"\nfor = \"{}ms\"\n", f.hold_ms),
        );
        if f.overlaps_next {
            continue;
        }
        step(
            &mut out,
            Origin::Heal(n),
            format!("fault {n}: heal"),
            "action = \"heal\"\n".to_string(),
        );
        for s in &checks.watched {
            step(
                &mut out,
                Origin::LeaderAfterHeal(n, *s),
                format!("after fault {n}: one {s} leader named by every member"),
                format!(
                    "expect = \"leader\"\nservice = {}\nagreement = \"all\"\nwithin = \"{}ms\"\n",
                    toml_str(s.name()),
                    checks.leader_within.as_millis()
                ),
            );
        }
    }
    if checks.workload.is_some() {
        step(
            &mut out,
            Origin::Settle,
            "let the workload run on the healed cluster".to_string(),
            format!("action = \"wait\"\nfor = \"{SETTLE_MS}ms\"\n"),
        );
    }
    for target in &checks.availability {
        let _ = write!(
            out,
            "\n[[check]]\nname = {}\navailability = {}\nmin_ratio = {}\n",
            toml_str(&availability_check(target)),
            toml_str(target),
            checks.min_availability
        );
    }
    (out, origins)
}

/// The keys of the step that makes a fault.
fn fault_step(f: &Fault) -> String {
    let service = toml_str(f.service.name());
    let pick = toml_str(f.pick.word());
    match f.kind {
        FaultKind::Kill | FaultKind::Pause => format!(
            "action = \"{}\"\nservice = {service}\ntarget = {pick}\n",
            if f.kind == FaultKind::Kill {
                "kill-service"
            } else {
                "pause-service"
            }
        ),
        FaultKind::Isolate => {
            format!("action = \"isolate-node\"\nservice = {service}\ntarget = {pick}\n")
        }
        FaultKind::CrashRestart => {
            format!("action = \"crash-restart-service\"\nservice = {service}\ntarget = {pick}\n")
        }
        FaultKind::Partition => {
            format!("action = \"partition\"\nservice = {service}\nminority = {pick}\n")
        }
        FaultKind::Delay => format!(
            "action = \"delay-traffic\"\nservice = {service}\nfrom = {pick}\ndelay = \"{DELAY_MS}ms\"\njitter = \"{JITTER_MS}ms\"\n"
        ),
        FaultKind::SlowDisk => format!(
            "action = \"slow-disk\"\nservice = {service}\ntarget = {pick}\nfsync = \"{SLOW_FSYNC_MS}ms\"\n"
        ),
        FaultKind::PowerLoss => {
            format!("action = \"lose-power\"\nservice = {service}\ntargets = [{pick}]\n")
        }
        FaultKind::OneWay | FaultKind::Loss => {
            let mut b = format!(
                "action = \"drop-traffic\"\nservice = {service}\nfrom = {pick}\nto = \"any\"\n"
            );
            if f.kind == FaultKind::Loss {
                let _ = writeln!(b, "probability = {LOSS_PROBABILITY}");
            }
            b
        }
    }
}

/// The name of the availability check on `target`.
pub fn availability_check(target: &str) -> String {
    format!("{target} stays available through the border while a majority is up")
}

/// An invariant a run broke, as the shrinker compares failures: the same one, the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "invariant", content = "of")]
pub enum Broken {
    /// No leader of a service named by every member within the bound after a heal.
    LeaderAfterHeal(ServiceKind),
    /// Two leaders at one term or epoch.
    OneLeaderPerTerm(ServiceKind),
    /// The ledger found acknowledged writes lost (or failed ones present).
    Ledger,
    /// Availability through the border fell below the threshold.
    Availability(String),
    /// A consistency checker found the workload's history broke its guarantee.
    Consistency(String),
    /// A fault did not take effect.
    FaultIneffective,
    /// A heal did not take.
    HealIneffective,
    /// A step that is none of those failed.
    Other(String),
}

impl Broken {
    /// One line.
    pub fn describe(&self) -> String {
        match self {
            Broken::LeaderAfterHeal(s) => {
                format!("no {s} leader named by every member within the bound after a heal")
            }
            Broken::OneLeaderPerTerm(s) => format!(
                "more than one {s} leader in one {}",
                crate::invariants::term_word(*s)
            ),
            Broken::Ledger => "the write ledger lost acknowledged writes".to_string(),
            Broken::Availability(t) => format!("{t} through the border fell below the threshold"),
            Broken::Consistency(c) => format!("the workload's history broke {c}"),
            Broken::FaultIneffective => "a fault did not take effect".to_string(),
            Broken::HealIneffective => "a heal did not take".to_string(),
            Broken::Other(s) => format!("step `{s}` failed"),
        }
    }
}

/// Which invariant a run broke first, from its report and the origins of its steps; None
/// when it held them all.
pub fn broken(report: &crate::report::Report, origins: &[Origin]) -> Option<Broken> {
    use crate::report::StepStatus;
    if let Some(step) = report.steps.iter().find(|s| s.status == StepStatus::Failed) {
        let by_name = |name: &str| {
            for s in ServiceKind::ALL {
                if name == crate::runner::one_leader_per_term_step(*s) {
                    return Some(Broken::OneLeaderPerTerm(*s));
                }
            }
            None
        };
        return Some(if step.name == HEAL_STEP {
            Broken::HealIneffective
        } else if step.name == crate::runner::LEDGER_STEP {
            Broken::Ledger
        } else if let Some(b) = by_name(&step.name) {
            b
        } else {
            match origins.get(step.index.wrapping_sub(1)) {
                Some(Origin::Fault(_)) => Broken::FaultIneffective,
                Some(Origin::Heal(_)) => Broken::HealIneffective,
                Some(Origin::LeaderAfterHeal(_, s)) => Broken::LeaderAfterHeal(*s),
                _ => Broken::Other(step.name.clone()),
            }
        });
    }
    let consistency = report.consistency.iter().flat_map(|v| &v.checks);
    report
        .checks
        .iter()
        .find(|c| c.status == crate::availability::CheckStatus::Failed)
        .map(|c| Broken::Availability(c.target.clone()))
        .or_else(|| {
            consistency
                .into_iter()
                .find(|c| c.status == crate::workload::CheckerStatus::Fail)
                .map(|c| Broken::Consistency(c.checker.clone()))
        })
}

/// The file name a schedule's scenario is written under.
pub fn scenario_path(dir: &Path) -> std::path::PathBuf {
    dir.join("scenario.toml")
}
