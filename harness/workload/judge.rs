//! The workload's history judged by every consistency checker: linearizability per key,
//! serializable reads that never go back, and each watch's guarantees. Pure apart from timing
//! each checker, so `succession check DIR` gives the same verdicts offline.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::history::{ClientOp, OkAnswer, OpOutcome, Request, WorkloadHistory};
use crate::consistency::applied::check_applied;
use crate::consistency::linearizable::{self, Answer, KeyOp, Operation};
use crate::consistency::serializable::{check_serializable, SerializableRead};
use crate::consistency::watch::{check_watch, Attempted, Change, KnownWrites, Watch, Written};

/// The checkers, by the names verdicts give them.
pub const CHECKERS: [&str; 4] = [
    LINEARIZABLE,
    SERIALIZABLE_READS,
    WATCH_GUARANTEES,
    ZOOKEEPER,
];
const LINEARIZABLE: &str = "linearizable";
const SERIALIZABLE_READS: &str = "serializable reads";
const WATCH_GUARANTEES: &str = "watch guarantees";
const ZOOKEEPER: &str = "zookeeper";

/// Configurations the linearizability search may visit per key before it says `unknown`.
pub const DEFAULT_SEARCH_BUDGET: u64 = 2_000_000;

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckerStatus {
    /// The history kept the guarantee, on the evidence counted.
    Pass,
    /// The history broke it; the violations say where.
    Fail,
    /// It could not be told (the search ran out of budget, or nothing was recorded).
    Unknown,
}

impl CheckerStatus {
    /// The word shown to people.
    pub fn word(self) -> &'static str {
        match self {
            CheckerStatus::Pass => "PASS",
            CheckerStatus::Fail => "FAIL",
            CheckerStatus::Unknown => "UNKNOWN",
        }
    }
}

/// One broken guarantee, with the stretch of the run its operations span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// What broke, naming the operations.
    pub what: String,
    /// From the first involved operation's call, ms on the run's clock.
    pub from_ms: u64,
    /// To the last involved operation's return.
    pub to_ms: u64,
}

/// What one checker found, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerResult {
    /// The checker (`linearizable`, `serializable reads`, `watch guarantees`).
    pub checker: String,
    /// Its verdict.
    pub status: CheckerStatus,
    /// Operations (or events) it judged.
    pub operations: usize,
    /// Search states visited (the linearizability search; 0 for the others).
    pub states: u64,
    /// Time the checker took, ms.
    pub elapsed_ms: u64,
    /// What it judged, in a line.
    pub detail: String,
    /// What broke.
    pub breaches: Vec<Breach>,
}

/// Every checker's result over one history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyVerdict {
    /// One per checker.
    pub checks: Vec<CheckerResult>,
}

impl ConsistencyVerdict {
    /// fail > unknown > pass over the checkers.
    pub fn status(&self) -> CheckerStatus {
        let has = |s| self.checks.iter().any(|c| c.status == s);
        if has(CheckerStatus::Fail) {
            CheckerStatus::Fail
        } else if has(CheckerStatus::Unknown) || self.checks.is_empty() {
            CheckerStatus::Unknown
        } else {
            CheckerStatus::Pass
        }
    }
}

/// Runs every checker over the history.
pub fn judge(history: &WorkloadHistory, budget: u64) -> ConsistencyVerdict {
    let mut checks = Vec::new();
    if history.etcd {
        checks.push(timed(|| linearizable_per_key(history, budget)));
        checks.push(timed(|| serializable_reads(history)));
        if history.settings.watch {
            checks.push(timed(|| watches(history)));
        }
    }
    if let Some(zk) = &history.zookeeper {
        checks.push(timed(|| zookeeper(zk, &history.settings)));
    }
    ConsistencyVerdict { checks }
}

fn zookeeper(
    zk: &super::history::ZkRecord,
    settings: &crate::spec::WorkloadSettings,
) -> CheckerResult {
    use crate::consistency::zookeeper::{check_zookeeper_as, UnsyncedReads, ZkRequest};
    let unsynced = if settings.unsynced_reads_claimed_up_to_date {
        UnsyncedReads::UpToDate
    } else {
        UnsyncedReads::SessionOrder
    };
    let acknowledged = zk
        .operations
        .iter()
        .filter(|o| o.acknowledged.is_some())
        .count();
    let created = zk
        .operations
        .iter()
        .filter(|o| o.acknowledged.is_some() && matches!(o.request, ZkRequest::Create { .. }))
        .count();
    // Unlisted, every create counts as present: the rest is judged, survival is not.
    let present = zk.present.clone().unwrap_or_else(|| {
        zk.operations
            .iter()
            .filter_map(|o| match &o.request {
                ZkRequest::Create { path } => Some(path.clone()),
                _ => None,
            })
            .collect()
    });
    let breaches: Vec<Breach> = check_zookeeper_as(&zk.operations, &present, unsynced)
        .into_iter()
        .map(|b| {
            let at = zk_moment(&b);
            Breach {
                what: b.to_string(),
                from_ms: at,
                to_ms: at,
            }
        })
        .collect();
    let status = if !breaches.is_empty() {
        CheckerStatus::Fail
    } else if zk.present.is_none() || acknowledged == 0 {
        CheckerStatus::Unknown
    } else {
        CheckerStatus::Pass
    };
    let mut detail = format!(
        "{acknowledged} acknowledged ZooKeeper operations ({created} creates): creates kept, each session in order and never back, reads after sync up to date{}",
        match unsynced {
            UnsyncedReads::SessionOrder => "",
            UnsyncedReads::UpToDate => ", reads without sync claimed up to date too",
        }
    );
    if zk.present.is_none() {
        detail.push_str("; the created znodes could not be listed at the end, so whether creates survived is not known");
    }
    CheckerResult {
        checker: ZOOKEEPER.to_string(),
        status,
        operations: zk.operations.len(),
        states: 0,
        elapsed_ms: 0,
        detail,
        breaches,
    }
}

/// When a ZooKeeper breach happened, as far as it says.
fn zk_moment(b: &crate::consistency::zookeeper::ZkBroke) -> u64 {
    use crate::consistency::zookeeper::ZkBroke as Z;
    match b {
        Z::CreateLost { at_ms, .. } | Z::WentBack { at_ms, .. } => *at_ms,
        Z::StaleAfterSync { written_ms, .. } => *written_ms,
        Z::StaleUnsynced { call_ms, .. } => *call_ms,
        Z::OutOfOrder { .. } => 0,
    }
}

fn timed(f: impl FnOnce() -> CheckerResult) -> CheckerResult {
    let started = Instant::now();
    let mut result = f();
    result.elapsed_ms = started.elapsed().as_millis() as u64;
    result
}

/// The key as people read it: without the workload's prefix.
fn short_key<'k>(history: &WorkloadHistory, key: &'k str) -> &'k str {
    key.strip_prefix(&history.settings.prefix).unwrap_or(key)
}

/// One recorded operation as the register model sees it; none when it is known not to have
/// been applied, is a serializable read (judged apart, unless `serializable_too`: the scenario
/// claims them linearizable), or is a read without an answer.
fn as_key_operation(op: &ClientOp, serializable_too: bool) -> Option<Operation> {
    let key_op = match op.request {
        Request::Put { value } => KeyOp::Put { value },
        Request::Delete => KeyOp::Delete,
        Request::CompareAndSet { expect, value } => KeyOp::CompareAndSet { expect, value },
        Request::Get { serializable: true } if !serializable_too => return None,
        Request::Get { .. } => KeyOp::Get,
    };
    let returned = match &op.outcome {
        OpOutcome::Failed { .. } => return None,
        OpOutcome::Indeterminate { .. } => None,
        OpOutcome::Ok { answer, .. } => Some((
            op.return_ms,
            match *answer {
                OkAnswer::Written | OkAnswer::Deleted { .. } => Answer::Done,
                OkAnswer::Swapped { applied } => Answer::Swapped { applied },
                OkAnswer::Read { value } => Answer::Read { value },
            },
        )),
    };
    Some(Operation {
        op: key_op,
        call_ms: op.call_ms,
        returned,
    })
}

fn linearizable_per_key(history: &WorkloadHistory, budget: u64) -> CheckerResult {
    let claimed = history.settings.serializable_claimed_linearizable;
    let operations_claimed = operations_as_claimed(history);
    // One key at a time, so that only one key's operations are held beside the history.
    let keys: std::collections::BTreeSet<&str> = operations_claimed
        .iter()
        .map(|op| op.key.as_str())
        .collect();
    let (mut operations, mut states) = (0, 0);
    let mut breaches = Vec::new();
    let mut unknown = Vec::new();
    let mut checked_keys = 0;
    for key in keys {
        let ops: Vec<Operation> = operations_claimed
            .iter()
            .filter(|op| op.key == key)
            .filter_map(|op| as_key_operation(op, claimed))
            .collect();
        if ops.is_empty() {
            continue;
        }
        checked_keys += 1;
        let key = short_key(history, key);
        match linearizable::check(&ops, budget) {
            linearizable::Verdict::Linearizable {
                operations: n,
                states: s,
            } => {
                operations += n;
                states += s;
            }
            linearizable::Verdict::Unknown {
                operations: n,
                states: s,
            } => {
                operations += n;
                states += s;
                unknown.push(format!("{key} ({n} operations)"));
            }
            linearizable::Verdict::NotLinearizable(v) => {
                operations += v.operations;
                states += v.states;
                let from_ms = v
                    .last_write
                    .map_or(v.stuck.call_ms, |w| w.call_ms.min(v.stuck.call_ms));
                let to_ms = v.stuck.returned.map_or(v.stuck.call_ms, |(at, _)| at);
                breaches.push(Breach {
                    what: format!("{key}: {v}"),
                    from_ms,
                    to_ms,
                });
            }
        }
    }
    let status = if !breaches.is_empty() {
        CheckerStatus::Fail
    } else if !unknown.is_empty() || operations == 0 {
        CheckerStatus::Unknown
    } else {
        CheckerStatus::Pass
    };
    let mut detail = format!(
        "{operations} operations on {} keys, {states} search states",
        checked_keys
    );
    if !unknown.is_empty() {
        detail.push_str(&format!(
            "; the search ran out of its budget of {budget} states on {}",
            unknown.join(", ")
        ));
    } else if operations == 0 {
        detail.push_str("; nothing to judge");
    }
    CheckerResult {
        checker: LINEARIZABLE.to_string(),
        status,
        operations,
        states,
        elapsed_ms: 0,
        detail,
        breaches,
    }
}

fn serializable_reads(history: &WorkloadHistory) -> CheckerResult {
    let reads: Vec<SerializableRead> = history
        .operations
        .iter()
        .filter_map(|op| match (&op.request, &op.outcome) {
            (Request::Get { serializable: true }, OpOutcome::Ok { revision, .. }) => {
                Some(SerializableRead {
                    client: op.client,
                    member: op.member.to_string(),
                    call_ms: op.call_ms,
                    return_ms: op.return_ms,
                    revision: *revision,
                })
            }
            _ => None,
        })
        .collect();
    let breaches: Vec<Breach> = check_serializable(&reads)
        .into_iter()
        .map(|b| Breach {
            from_ms: b.call_ms,
            to_ms: b.return_ms,
            what: b.to_string(),
        })
        .collect();
    CheckerResult {
        checker: SERIALIZABLE_READS.to_string(),
        status: verdict_of(&breaches, reads.len()),
        operations: reads.len(),
        states: 0,
        elapsed_ms: 0,
        detail: format!(
            "{} serializable reads by {} clients never went back",
            reads.len(),
            history.settings.clients
        ),
        breaches,
    }
}

fn verdict_of(breaches: &[Breach], judged: usize) -> CheckerStatus {
    if !breaches.is_empty() {
        CheckerStatus::Fail
    } else if judged == 0 {
        CheckerStatus::Unknown
    } else {
        CheckerStatus::Pass
    }
}

/// The writes the history shows (acknowledged, and changing something), by revision.
pub fn known_writes(history: &WorkloadHistory) -> KnownWrites {
    known_writes_of(&history.operations)
}

/// The write `op` is known to have made: acknowledged, and changing something.
pub fn written(op: &ClientOp) -> Option<Written> {
    let OpOutcome::Ok { revision, answer } = &op.outcome else {
        return None;
    };
    let change = match (op.request, answer) {
        (Request::Put { value }, OkAnswer::Written) => Change::Put { value },
        (Request::Delete, OkAnswer::Deleted { count }) if *count > 0 => Change::Delete,
        (Request::CompareAndSet { value, .. }, OkAnswer::Swapped { applied: true }) => {
            Change::Put { value }
        }
        _ => return None,
    };
    Some(Written {
        revision: *revision,
        key: op.key.clone(),
        change,
    })
}

/// The writes among `operations` that were acknowledged and changed something, by revision.
pub fn known_writes_of(operations: &[ClientOp]) -> KnownWrites {
    KnownWrites::from_unsorted(operations.iter().filter_map(written).collect())
}

/// Every change some client asked for and did not learn was refused, each as often as the
/// scenario counts it sent.
fn attempted(operations: &[ClientOp]) -> Attempted {
    operations
        .iter()
        .filter(|op| !matches!(op.outcome, OpOutcome::Failed { .. }))
        .filter_map(|op| {
            let change = match op.request {
                Request::Put { value } | Request::CompareAndSet { value, .. } => {
                    Change::Put { value }
                }
                Request::Delete => Change::Delete,
                Request::Get { .. } => return None,
            };
            Some((op.key.clone(), change))
        })
        .collect()
}

/// The operations as the scenario claims them: as recorded, or — when it claims a retried put
/// and its retry are one write — each retry folded into the send before it: one operation from
/// the first send's call to the retry's return, ending as the retry did.
fn operations_as_claimed(history: &WorkloadHistory) -> std::borrow::Cow<'_, [ClientOp]> {
    if !history.settings.retried_put_counted_as_one {
        return std::borrow::Cow::Borrowed(&history.operations);
    }
    let mut claimed: Vec<ClientOp> = Vec::with_capacity(history.operations.len());
    // Each client's latest operation: what its next retry sends again.
    let mut latest: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for op in &history.operations {
        if let Some(first) = latest
            .get(&op.client)
            .filter(|_| op.retry)
            .and_then(|&i| claimed.get_mut(i))
        {
            first.return_ms = op.return_ms;
            first.outcome = op.outcome.clone();
            continue;
        }
        latest.insert(op.client, claimed.len());
        claimed.push(op.clone());
    }
    std::borrow::Cow::Owned(claimed)
}

/// The watches as the scenario claims them: each as recorded, or — when it claims a watch
/// compacted away and begun again is complete — each client's records in turn joined into one.
fn watches_as_claimed(history: &WorkloadHistory) -> std::borrow::Cow<'_, [Watch]> {
    if !history.settings.compacted_watch_claimed_complete {
        return std::borrow::Cow::Borrowed(&history.watches);
    }
    let mut joined: Vec<Watch> = Vec::new();
    for watch in &history.watches {
        match joined
            .iter_mut()
            .find(|w| w.client.is_some() && w.client == watch.client)
        {
            Some(earlier) => earlier.segments.extend(watch.segments.iter().cloned()),
            None => joined.push(watch.clone()),
        }
    }
    std::borrow::Cow::Owned(joined)
}

fn watches(history: &WorkloadHistory) -> CheckerResult {
    let known = known_writes(history);
    let attempted = attempted(&operations_as_claimed(history));
    let mut events = 0;
    let mut breaches = Vec::new();
    let watches = watches_as_claimed(history);
    for watch in watches.iter() {
        let delivered: Vec<_> = watch.segments.iter().flat_map(|s| &s.events).collect();
        events += delivered.len();
        let at = |revision: i64| {
            delivered
                .iter()
                .find(|e| e.revision == revision)
                .map(|e| e.at_ms)
        };
        for broke in check_watch(watch, &known, &attempted) {
            use crate::consistency::watch::WatchBroke as B;
            let at_ms = match &broke {
                B::WentBack { at_ms, .. }
                | B::Repeated { at_ms, .. }
                | B::BeforeStart { at_ms, .. } => Some(*at_ms),
                B::DidNotResume { resumed, .. } => at(*resumed),
                B::Missed { after, .. } => at(*after),
                B::Torn { revision, .. } | B::Invented { revision, .. } => at(*revision),
            }
            .unwrap_or(0);
            breaches.push(Breach {
                what: broke.to_string(),
                from_ms: at_ms,
                to_ms: at_ms,
            });
        }
    }
    let applications = check_applied(&history.watches, &known, &attempted);
    breaches.extend(applications.too_often.into_iter().map(|broke| {
        let at_ms = broke.at_ms.unwrap_or(0);
        Breach {
            what: broke.to_string(),
            from_ms: at_ms,
            to_ms: at_ms,
        }
    }));
    CheckerResult {
        checker: WATCH_GUARANTEES.to_string(),
        status: verdict_of(&breaches, events),
        operations: events,
        states: 0,
        elapsed_ms: 0,
        detail: format!(
            "{events} events on {} watches against {} known writes: ordered, unique, resumed, without gaps, whole, each a client's write, applied no more often than sent{}",
            watches.len(),
            known.len(),
            match applications.repeated_as_sent {
                0 => String::new(),
                1 => " (1 put sent twice took effect twice)".to_string(),
                n => format!(" ({n} puts sent more than once took effect more than once)"),
            }
        ),
        breaches,
    }
}
