//! A picture of a run: who led each elected service when, where the faults and the steps fell,
//! how every request through the border went, what became of each ledger write, and where each
//! figure was measured. Built from `report.json` (and `history.json` when the run had a
//! ledger) by pure functions, so `succession report DIR` draws the same picture offline.

mod page;
mod svg;

use std::collections::BTreeMap;

use super::{Report, StepStatus, TimelineKind};
use crate::base::time::human_ms;
use crate::ledger::{History, WriteFate};
use crate::service::ServiceKind;

pub use page::render_page;
pub use svg::{escape, render_svg};

/// A step as a band on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBand {
    /// Its number in the scenario.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// How it ended.
    pub status: StepStatus,
    /// When it began, ms.
    pub from_ms: u64,
    /// When it ended, ms.
    pub to_ms: u64,
    /// What it found (shown where a step failed).
    pub detail: String,
}

/// Whether an action of the harness broke something or repaired it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// Something was taken away (terminated, killed, stopped, paused, partitioned).
    Fault,
    /// Anything else the harness did (started, replaced, purged, restored…).
    Action,
}

/// An action of the harness at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// When, ms.
    pub at_ms: u64,
    /// What was done.
    pub label: String,
    /// Fault or repair.
    pub kind: MarkerKind,
}

/// What the harness knew of a service's leadership over a stretch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This node was the majority-backed leader.
    Led(String),
    /// Observed: no majority-backed leader.
    None,
    /// The leader's node or service was taken down and no probe has looked since: a new
    /// leader may already exist, or none. Not drawn as either.
    Unobserved,
}

/// Who led a service over a stretch of the run, as the harness observed it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderSegment {
    /// From, ms.
    pub from_ms: u64,
    /// To, ms.
    pub to_ms: u64,
    /// What was known.
    pub leader: Leadership,
}

/// One elected service's leadership over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderLane {
    /// The service.
    pub service: String,
    /// Its stretches, in order, from its first observation.
    pub segments: Vec<LeaderSegment>,
}

/// One request of the availability monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// When it was sent, ms.
    pub at_ms: u64,
    /// Whether it counted as ok.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// Status code or error.
    pub outcome: String,
}

/// Every request to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLane {
    /// The target (`app`, `mesos`…).
    pub target: String,
    /// Its requests in order.
    pub requests: Vec<Request>,
}

/// One ledger write.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// When it was sent, ms.
    pub at_ms: u64,
    /// Its sequence number.
    pub seq: u64,
    /// What became of it.
    pub fate: WriteFate,
}

/// A measured figure over the stretch it measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Its name and value, as the report gives them.
    pub label: String,
    /// From, ms.
    pub from_ms: u64,
    /// To, ms.
    pub to_ms: u64,
}

/// Everything the picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The scenario's name.
    pub scenario: String,
    /// PASS, FAIL or UNKNOWN.
    pub verdict: String,
    /// The provider, run id and seed.
    pub provenance: String,
    /// The command line that replays the run.
    pub replay: String,
    /// Why the run could not be judged, when it could not.
    pub error: Option<String>,
    /// The run's length, ms.
    pub duration_ms: u64,
    /// The steps.
    pub steps: Vec<StepBand>,
    /// The harness's actions.
    pub markers: Vec<Marker>,
    /// Leadership, one lane per elected service observed.
    pub leaders: Vec<LeaderLane>,
    /// Requests, one lane per target.
    pub targets: Vec<TargetLane>,
    /// Ledger writes, when the run had a ledger.
    pub writes: Option<Vec<Write>>,
    /// Measured figures.
    pub figures: Vec<Figure>,
    /// What the consistency checkers found broken, over the operations involved (at most
    /// `SHOWN_BREACHES`; the report lists them all).
    pub breaches: Vec<Figure>,
}

/// How many breaches the picture draws at most.
const SHOWN_BREACHES: usize = 12;

/// The consistency checkers' breaches, each over the stretch its operations span.
fn breaches(report: &Report) -> Vec<Figure> {
    report
        .consistency
        .iter()
        .flat_map(|v| &v.checks)
        .flat_map(|c| {
            c.breaches.iter().map(|b| Figure {
                label: format!("{}: {}", c.checker, b.what),
                from_ms: b.from_ms,
                to_ms: b.to_ms.max(b.from_ms),
            })
        })
        .take(SHOWN_BREACHES)
        .collect()
}

/// The verbs that name a fault in the harness's action log.
const FAULT_VERBS: &[&str] = &[
    "terminated",
    "killed",
    "stopped",
    "paused",
    "partitioned",
    "isolated",
    "wiped",
];

impl Timeline {
    /// Builds the picture of a run from its report and, when it had a ledger, its history.
    pub fn build(report: &Report, history: Option<&History>) -> Self {
        let steps = report
            .steps
            .iter()
            .map(|s| StepBand {
                index: s.index,
                name: s.name.clone(),
                status: s.status,
                from_ms: s.started_ms,
                to_ms: s.started_ms + s.elapsed_ms,
                detail: s.detail.clone(),
            })
            .collect::<Vec<_>>();
        let end = steps
            .iter()
            .map(|s| s.to_ms)
            .chain(report.samples.iter().map(|s| s.at_ms + s.latency_ms))
            .chain(std::iter::once(report.duration_ms))
            .max()
            .unwrap_or(0);
        let markers = report
            .timeline
            .iter()
            .filter(|e| e.kind == TimelineKind::Action)
            .map(|e| Marker {
                at_ms: e.at_ms,
                label: e.what.clone(),
                kind: if FAULT_VERBS.iter().any(|v| e.what.starts_with(v)) {
                    MarkerKind::Fault
                } else {
                    MarkerKind::Action
                },
            })
            .collect();
        let writes = history.map(writes);
        let mut figures = figures(report);
        figures.extend(writes.as_deref().and_then(loss_window));
        Self {
            scenario: report.scenario.clone(),
            verdict: format!("{:?}", report.verdict).to_uppercase(),
            provenance: format!(
                "{} provider · run {} · seed {} · started {}",
                report.provider, report.run_id, report.seed, report.started_at
            ),
            replay: report.replay.clone(),
            error: report.error.clone(),
            duration_ms: end.max(1),
            leaders: leader_lanes(report, end),
            targets: target_lanes(report),
            writes,
            figures,
            breaches: breaches(report),
            steps,
            markers,
        }
    }

    /// Every node that led something, in a fixed order: each gets its own colour.
    pub fn leader_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .leaders
            .iter()
            .flat_map(|l| {
                l.segments.iter().filter_map(|s| match &s.leader {
                    Leadership::Led(node) => Some(node.clone()),
                    _ => None,
                })
            })
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }
}

/// The leader an observation of an elected service names: observations of a majority-backed
/// leader read `leader NODE…`; anything else (no leader, disagreement, a minority) is none.
fn observed_leader(what: &str, subject: &str) -> Option<String> {
    let seen = what.strip_prefix(subject)?.strip_prefix(": ")?;
    let rest = seen.strip_prefix("leader ")?;
    let node = rest.split([' ', ',']).next().filter(|n| !n.is_empty())?;
    Some(node.to_string())
}

/// Whether a fault the harness caused ends `node`'s leadership of `service`: it names the node
/// and either the service or no elected service at all (the whole node went).
fn fault_ends(what: &str, node: &str, service: &str, elected: &[&str]) -> bool {
    let words: Vec<&str> = what
        .split(|c: char| c.is_whitespace() || c == ',' || c == '\'' || c == '(' || c == ')')
        .collect();
    let names = |w: &str| words.contains(&w);
    FAULT_VERBS.iter().any(|v| what.starts_with(v))
        && names(node)
        && (names(service) || !elected.iter().any(|s| names(s)))
}

fn leader_lanes(report: &Report, end: u64) -> Vec<LeaderLane> {
    let elected: Vec<&str> = ServiceKind::ALL
        .iter()
        .filter(|k| k.elects_leader())
        .map(|k| k.name())
        .collect();
    let faults: Vec<(u64, &str)> = report
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::Action)
        .map(|e| (e.at_ms, e.what.as_str()))
        .collect();
    let mut seen: BTreeMap<String, Vec<(u64, Leadership)>> = BTreeMap::new();
    for e in &report.timeline {
        let Some(subject) = e.subject.as_deref() else {
            continue;
        };
        if e.kind != TimelineKind::Observation || !elected.contains(&subject) {
            continue;
        }
        let state = match observed_leader(&e.what, subject) {
            Some(node) => Leadership::Led(node),
            None => Leadership::None,
        };
        seen.entry(subject.to_string())
            .or_default()
            .push((e.at_ms, state));
    }
    // The order services are listed in ServiceKind, not alphabetical.
    elected
        .iter()
        .filter_map(|service| {
            let observations = seen.remove(*service)?;
            let mut changes: Vec<(u64, Leadership)> = Vec::new();
            for (i, (at, state)) in observations.iter().enumerate() {
                changes.push((*at, state.clone()));
                // A leader whose node or service the harness took down leads no more, whatever
                // the last probe said; what came next is unknown until the next probe.
                let next = observations.get(i + 1).map(|(t, _)| *t).unwrap_or(end);
                if let Leadership::Led(node) = state {
                    if let Some((fault_at, _)) = faults.iter().find(|(t, what)| {
                        *t >= *at && *t < next && fault_ends(what, node, service, &elected)
                    }) {
                        changes.push((*fault_at, Leadership::Unobserved));
                    }
                }
            }
            let mut segments: Vec<LeaderSegment> = Vec::new();
            for (i, (at, state)) in changes.iter().enumerate() {
                let to = changes.get(i + 1).map(|(t, _)| *t).unwrap_or(end);
                match segments.last_mut() {
                    // The same state observed again extends the stretch.
                    Some(last) if last.leader == *state => last.to_ms = to,
                    _ => segments.push(LeaderSegment {
                        from_ms: *at,
                        to_ms: to,
                        leader: state.clone(),
                    }),
                }
            }
            Some(LeaderLane {
                service: service.to_string(),
                segments,
            })
        })
        .collect()
}

fn target_lanes(report: &Report) -> Vec<TargetLane> {
    let mut lanes: BTreeMap<&str, Vec<Request>> = BTreeMap::new();
    for s in &report.samples {
        lanes.entry(s.target.as_str()).or_default().push(Request {
            at_ms: s.at_ms,
            ok: s.ok,
            latency_ms: s.latency_ms,
            outcome: s.outcome.clone(),
        });
    }
    lanes
        .into_iter()
        .map(|(target, mut requests)| {
            requests.sort_by_key(|r| r.at_ms);
            TargetLane {
                target: target.to_string(),
                requests,
            }
        })
        .collect()
}

fn writes(history: &History) -> Vec<Write> {
    let fates = crate::ledger::write_fates(history);
    let mut out: Vec<Write> = history
        .records
        .iter()
        .map(|r| Write {
            at_ms: r.sent_ms,
            seq: r.seq,
            fate: fates.get(&r.seq).copied().unwrap_or(WriteFate::Kept),
        })
        .collect();
    out.sort_by_key(|w| w.seq);
    out
}

/// Each measured figure over the stretch it measures: it ends where the step that measured it
/// ended and lasts as long as the figure; an outage ends where the longest one did.
fn figures(report: &Report) -> Vec<Figure> {
    let mut out = Vec::new();
    for (name, ms) in &report.measurements {
        let tag = format!("{name}: ");
        let Some(step) = report.steps.iter().find(|s| s.detail.contains(&tag)) else {
            continue;
        };
        let to = step.started_ms + step.elapsed_ms;
        out.push(Figure {
            label: format!("{name} {}", human_ms(*ms)),
            from_ms: to.saturating_sub(*ms),
            to_ms: to,
        });
    }
    for (target, a) in &report.availability {
        if let (Some(at), true) = (a.longest_outage_at_ms, a.longest_outage_ms > 0) {
            out.push(Figure {
                label: format!("{target} outage {}", human_ms(a.longest_outage_ms)),
                from_ms: at,
                to_ms: at + a.longest_outage_ms,
            });
        }
    }
    out
}

/// Writes `timeline.html` and `timeline.svg` of a run into its report directory.
pub fn write(
    dir: &std::path::Path,
    report: &Report,
    history: Option<&History>,
) -> std::io::Result<()> {
    let t = Timeline::build(report, history);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("timeline.svg"), render_svg(&t))?;
    std::fs::write(dir.join("timeline.html"), render_page(&t))
}

/// The stretch over which acknowledged writes were lost, when any were.
fn loss_window(writes: &[Write]) -> Option<Figure> {
    let lost: Vec<&Write> = writes
        .iter()
        .filter(|w| matches!(w.fate, WriteFate::Lost | WriteFate::LostTolerated))
        .collect();
    let from = lost.iter().map(|w| w.at_ms).min()?;
    let to = lost.iter().map(|w| w.at_ms).max()?;
    let untolerated = lost.iter().filter(|w| w.fate == WriteFate::Lost).count();
    Some(Figure {
        label: format!(
            "loss window {}: {} acknowledged writes lost ({untolerated} untolerated)",
            human_ms(to - from),
            lost.len()
        ),
        from_ms: from,
        to_ms: to,
    })
}

#[cfg(test)]
mod tests;
