//! The ledger's verdict: a pure function of a recorded history. For every read-back it works
//! out which acknowledged writes should be there (replaying captures, restores and recreated
//! clusters), compares with what was read, and says in plain words what each procedure lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod statements;

use statements::{count, statements, Clock};

use super::history::{
    CaptureKind, FailureCause, History, LedgerEvent, LedgerRecord, Outcome, SeqSet,
};

/// Why an acknowledged write is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    /// Made after the capture that the restore at this event index brought back.
    AfterCapture(usize),
    /// Acknowledged before the capture (restored at this event index) began, yet not in it.
    MissingFromCapture(usize),
    /// Only in data wiped by the reset at this event index, and never restored.
    Wiped(usize),
    /// Acknowledged just before the quorum loss at this event index.
    Uncommitted(usize),
    /// Nothing explains it.
    Unexplained,
}

/// What became of one write at one read-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Acknowledged and present.
    Kept,
    /// Acknowledged and present although a procedure should have removed it: the procedure
    /// did not do what it says (a restore that replaced nothing, a wipe that wiped nothing).
    Resurrected(Reason),
    /// Acknowledged and absent.
    Lost(Reason),
    /// Failed and absent, as it should be.
    Failed,
    /// Failed, yet present.
    Phantom,
    /// Indeterminate: present or absent are both fine.
    Indeterminate,
    /// Written after the read began: not judged.
    NotJudged,
}

/// Counts for one phase, from the final read-back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseCounts {
    /// The phase.
    pub phase: String,
    /// Writes sent.
    pub sent: u64,
    /// Writes the cluster acknowledged.
    pub acknowledged: u64,
    /// Acknowledged and read back.
    pub kept: u64,
    /// Acknowledged, absent, and the scenario tolerates it.
    pub lost_tolerated: u64,
    /// Acknowledged, absent, and the scenario does not tolerate it.
    pub lost: u64,
    /// Refused because the member had no leader (read-only or leaderless cluster).
    pub failed_leaderless: u64,
    /// Not sent: no member could be reached.
    pub failed_unreachable: u64,
    /// Refused for another reason.
    pub failed_other: u64,
    /// No answer in time, or an ambiguous one (neither lost nor safe).
    pub indeterminate: u64,
    /// When the absent acknowledged writes of this phase were acknowledged (first, last).
    pub loss_window: Option<(String, String)>,
}

/// The ledger's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerVerdict {
    /// No loss beyond what the scenario tolerates, no phantom or altered write.
    pub pass: bool,
    /// What each procedure lost, in plain words.
    pub statements: Vec<String>,
    /// What fails the check.
    pub violations: Vec<String>,
    /// Per-phase counts, in the order phases began.
    pub phases: Vec<PhaseCounts>,
}

impl LedgerVerdict {
    /// One line of totals, summed from the phases.
    pub fn summary(&self) -> String {
        let total = |f: fn(&PhaseCounts) -> u64| self.phases.iter().map(f).sum::<u64>();
        format!(
            "{} writes: {} acknowledged ({} kept, {} lost as tolerated, {} lost beyond tolerance), {} failed, {} indeterminate",
            total(|p| p.sent),
            total(|p| p.acknowledged),
            total(|p| p.kept),
            total(|p| p.lost_tolerated),
            total(|p| p.lost),
            total(|p| p.failed_leaderless + p.failed_unreachable + p.failed_other),
            total(|p| p.indeterminate),
        )
    }
}

/// What became of one write, as the last read-back judged it (for pictures of the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFate {
    /// Acknowledged and read back (or not judged: written after the read began).
    Kept,
    /// Refused: certainly not applied.
    Failed,
    /// No clear answer: present or absent are both fine.
    Indeterminate,
    /// Acknowledged and absent, as the scenario tolerates.
    LostTolerated,
    /// Acknowledged and absent, untolerated.
    Lost,
}

/// Each write's fate by sequence number, from the last read-back (none when nothing was read).
pub fn write_fates(history: &History) -> BTreeMap<u64, WriteFate> {
    let mut records: Vec<&LedgerRecord> = history.records.iter().collect();
    records.sort_by_key(|r| r.seq);
    let mut events: Vec<(usize, &LedgerEvent)> = history.events.iter().enumerate().collect();
    events.sort_by_key(|(i, e)| (e.at_ms(), *i));
    let window = history.tolerate.uncommitted_window_ms();
    let last_read = events
        .iter()
        .enumerate()
        .filter_map(|(position, (_, e))| match e {
            LedgerEvent::ReadBack { at_ms, present, .. } => Some((position, *at_ms, present)),
            _ => None,
        })
        .next_back();
    records
        .iter()
        .map(|r| {
            let by_outcome = match r.outcome {
                Outcome::Acknowledged { .. } => WriteFate::Kept,
                Outcome::Failed { .. } => WriteFate::Failed,
                Outcome::Indeterminate { .. } => WriteFate::Indeterminate,
            };
            let judged = last_read.map(|(position, at_ms, present)| {
                fate(r, at_ms, present, &events[..position], window)
            });
            let fate = match judged {
                Some(Fate::Lost(reason)) if tolerated(history, reason) => WriteFate::LostTolerated,
                Some(Fate::Lost(_)) => WriteFate::Lost,
                _ => by_outcome,
            };
            (r.seq, fate)
        })
        .collect()
}

/// Computes the verdict of a history (pure: the same history always gives the same verdict).
pub fn check(history: &History) -> LedgerVerdict {
    let mut records: Vec<&LedgerRecord> = history.records.iter().collect();
    records.sort_by_key(|r| r.seq);
    let mut events: Vec<(usize, &LedgerEvent)> = history.events.iter().enumerate().collect();
    events.sort_by_key(|(i, e)| (e.at_ms(), *i));
    let clock = Clock::new(&history.started_wall);
    let window = history.tolerate.uncommitted_window_ms();

    let mut violations = Vec::new();
    let mut final_fates: Option<Vec<Fate>> = None;
    let mut read_at_all = false;
    for (position, (_, event)) in events.iter().enumerate() {
        // What happened before this read, in the order it was recorded.
        let before = &events[..position];
        match event {
            LedgerEvent::ReadBack {
                at_ms,
                step,
                final_read,
                present,
                mismatched,
                ..
            } => {
                read_at_all = true;
                let fates: Vec<Fate> = records
                    .iter()
                    .map(|r| fate(r, *at_ms, present, before, window))
                    .collect();
                let problems = judge(history, &records, &fates, mismatched, &clock);
                let when = if *final_read {
                    "at the end".to_string()
                } else {
                    format!("at `{step}`")
                };
                violations.extend(problems.into_iter().map(|p| format!("{when}: {p}")));
                final_fates = Some(fates);
            }
            LedgerEvent::ReadFailed {
                step,
                final_read,
                error,
                ..
            } => {
                let when = if *final_read {
                    "at the end".to_string()
                } else {
                    format!("at `{step}`")
                };
                violations.push(format!(
                    "{when}: the ledger could not be read back: {error}"
                ));
            }
            _ => {}
        }
    }
    let has_final = events.iter().any(|(_, e)| {
        matches!(
            e,
            LedgerEvent::ReadBack {
                final_read: true,
                ..
            }
        )
    });
    if !has_final
        && !events.iter().any(|(_, e)| {
            matches!(
                e,
                LedgerEvent::ReadFailed {
                    final_read: true,
                    ..
                }
            )
        })
    {
        violations.push("the ledger was never read back at the end".to_string());
    }

    let fates = final_fates.unwrap_or_else(|| vec![Fate::NotJudged; records.len()]);
    let phases = phase_counts(history, &records, &fates, &events, &clock);
    let statements = if !read_at_all {
        vec!["the ledger was never read back, so nothing can be said of what was lost".to_string()]
    } else {
        statements(history, &records, &fates, &events, &clock)
    };
    LedgerVerdict {
        pass: violations.is_empty(),
        statements,
        violations,
        phases,
    }
}

/// What should have become of a write, judged at a read that began at `read_at`, after the
/// events `before` it.
fn fate(
    record: &LedgerRecord,
    read_at: u64,
    present: &SeqSet,
    events: &[(usize, &LedgerEvent)],
    window: u64,
) -> Fate {
    if record.done_ms >= read_at {
        return Fate::NotJudged;
    }
    let here = present.contains(record.seq);
    match record.outcome {
        Outcome::Indeterminate { .. } => Fate::Indeterminate,
        Outcome::Failed { .. } => {
            if here {
                Fate::Phantom
            } else {
                Fate::Failed
            }
        }
        Outcome::Acknowledged { .. } => match (here, expected_loss(record, events)) {
            (true, None) => Fate::Kept,
            (true, Some(reason)) => Fate::Resurrected(reason),
            (false, Some(reason)) => Fate::Lost(reason),
            (false, None) => {
                Fate::Lost(uncommitted(record, events, window).unwrap_or(Reason::Unexplained))
            }
        },
    }
}

/// Replays the events before a read over an acknowledged write: `None` when it should be
/// present, or why it should not. A loss stays with the procedure that caused it (a re-run
/// of the procedure loses nothing more), except that a restore decides for wiped data.
fn expected_loss(record: &LedgerRecord, events: &[(usize, &LedgerEvent)]) -> Option<Reason> {
    let mut expected: Option<Reason> = None;
    for (i, event) in events {
        match event {
            LedgerEvent::Reset { at_ms } if record.done_ms <= *at_ms && expected.is_none() => {
                expected = Some(Reason::Wiped(*i));
            }
            LedgerEvent::Restore {
                at_ms,
                label,
                replace,
            } if record.done_ms <= *at_ms => {
                let Some(capture) = capture_before(events, label, *at_ms) else {
                    continue;
                };
                if capture.seqs.contains(record.seq) {
                    expected = None;
                } else if (*replace && expected.is_none())
                    || matches!(expected, Some(Reason::Wiped(_)))
                {
                    expected = Some(if record.done_ms > capture.started_ms {
                        Reason::AfterCapture(*i)
                    } else {
                        Reason::MissingFromCapture(*i)
                    });
                }
            }
            _ => {}
        }
    }
    expected
}

/// The latest capture of a label before `at`.
fn capture_before<'e>(
    events: &'e [(usize, &LedgerEvent)],
    label: &str,
    at: u64,
) -> Option<CaptureSeen<'e>> {
    events.iter().rev().find_map(|(_, e)| match e {
        LedgerEvent::Capture {
            at_ms,
            started_ms,
            label: l,
            seqs,
            kind,
            ..
        } if l == label && *at_ms <= at => Some(CaptureSeen {
            seqs,
            started_ms: *started_ms,
            kind: *kind,
        }),
        _ => None,
    })
}

/// What a restore brought back: the capture's writes, when it began, and what it was.
struct CaptureSeen<'e> {
    seqs: &'e SeqSet,
    started_ms: u64,
    kind: CaptureKind,
}

/// The quorum loss an absent write was acknowledged just before, if any.
fn uncommitted(
    record: &LedgerRecord,
    events: &[(usize, &LedgerEvent)],
    window: u64,
) -> Option<Reason> {
    events.iter().find_map(|(i, e)| match e {
        LedgerEvent::QuorumLost { at_ms, since_ms }
            if record.done_ms + window >= *since_ms && record.done_ms <= *at_ms =>
        {
            Some(Reason::Uncommitted(*i))
        }
        _ => None,
    })
}

fn tolerated(history: &History, reason: Reason) -> bool {
    let t = &history.tolerate;
    match reason {
        Reason::AfterCapture(_) => t.after_snapshot,
        Reason::Wiped(_) => t.wiped,
        Reason::Uncommitted(_) => t.uncommitted_ms.is_some(),
        Reason::MissingFromCapture(_) | Reason::Unexplained => false,
    }
}

/// The violations of one read-back.
fn judge(
    history: &History,
    records: &[&LedgerRecord],
    fates: &[Fate],
    mismatched: &[u64],
    clock: &Clock,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut lost: BTreeMap<&'static str, Vec<&LedgerRecord>> = BTreeMap::new();
    let mut resurrected: BTreeMap<&'static str, Vec<&LedgerRecord>> = BTreeMap::new();
    let mut phantoms = Vec::new();
    for (r, f) in records.iter().zip(fates) {
        match f {
            Fate::Resurrected(reason) => {
                let why = match reason {
                    Reason::AfterCapture(_) | Reason::MissingFromCapture(_) => {
                        "present although the restored capture does not hold them (the restore did not replace the data)"
                    }
                    Reason::Wiped(_) => {
                        "present although only wiped data held them (the data was not wiped)"
                    }
                    Reason::Uncommitted(_) | Reason::Unexplained => "present unexpectedly",
                };
                resurrected.entry(why).or_default().push(r);
            }
            Fate::Lost(reason) if !tolerated(history, *reason) => {
                let why = match reason {
                    Reason::AfterCapture(_) => "made after the restored capture (tolerate \"after-snapshot\" to accept)",
                    Reason::MissingFromCapture(_) => "acknowledged before the capture was taken, yet missing from it",
                    Reason::Wiped(_) => "wiped with the data and never restored (tolerate \"wiped\" to accept)",
                    Reason::Uncommitted(_) => "acknowledged just before the quorum was lost (tolerate \"uncommitted\" to accept)",
                    Reason::Unexplained => "with no procedure to explain it",
                };
                lost.entry(why).or_default().push(r);
            }
            Fate::Phantom => phantoms.push(r.seq),
            _ => {}
        }
    }
    for (why, writes) in lost {
        out.push(format!(
            "{} lost {why}: seq {}, acknowledged {}",
            count(writes.len() as u64, "acknowledged write"),
            SeqSet::from_seqs(writes.iter().map(|r| r.seq)).describe(),
            clock.span(writes.iter().map(|r| r.done_ms)),
        ));
    }
    for (why, writes) in resurrected {
        out.push(format!(
            "{} {} {why}: seq {}",
            count(writes.len() as u64, "acknowledged write"),
            if writes.len() == 1 { "is" } else { "are" },
            SeqSet::from_seqs(writes.iter().map(|r| r.seq)).describe(),
        ));
    }
    if !phantoms.is_empty() {
        out.push(format!(
            "{} reported failed {} present: seq {}",
            count(phantoms.len() as u64, "write"),
            if phantoms.len() == 1 { "is" } else { "are" },
            SeqSet::from_seqs(phantoms).describe()
        ));
    }
    if !mismatched.is_empty() {
        out.push(format!(
            "{} hold a value other than the one written: seq {}",
            count(mismatched.len() as u64, "key"),
            SeqSet::from_seqs(mismatched.iter().copied()).describe()
        ));
    }
    out
}

fn phase_counts(
    history: &History,
    records: &[&LedgerRecord],
    fates: &[Fate],
    events: &[(usize, &LedgerEvent)],
    clock: &Clock,
) -> Vec<PhaseCounts> {
    // Phases in the order they began; a write's phase that no event names comes after. A
    // phase run again is listed again here; it is counted once, where it first began.
    let mut order: Vec<String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            LedgerEvent::Phase { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    for r in records {
        if !order.contains(&r.phase) {
            order.push(r.phase.clone());
        }
    }
    let mut counts: BTreeMap<&str, (PhaseCounts, Vec<u64>)> = order
        .iter()
        .map(|p| {
            (
                p.as_str(),
                (
                    PhaseCounts {
                        phase: p.clone(),
                        ..Default::default()
                    },
                    Vec::new(),
                ),
            )
        })
        .collect();
    for (r, f) in records.iter().zip(fates) {
        let Some((c, lost_at)) = counts.get_mut(r.phase.as_str()) else {
            continue;
        };
        c.sent += 1;
        match &r.outcome {
            Outcome::Acknowledged { .. } => c.acknowledged += 1,
            Outcome::Failed { cause, .. } => match cause {
                FailureCause::Leaderless => c.failed_leaderless += 1,
                FailureCause::Unreachable => c.failed_unreachable += 1,
                FailureCause::Refused => c.failed_other += 1,
            },
            Outcome::Indeterminate { .. } => c.indeterminate += 1,
        }
        match f {
            Fate::Kept | Fate::Resurrected(_) => c.kept += 1,
            Fate::Lost(reason) => {
                if tolerated(history, *reason) {
                    c.lost_tolerated += 1;
                } else {
                    c.lost += 1;
                }
                lost_at.push(r.done_ms);
            }
            _ => {}
        }
    }
    // A phase no write was sent in (one that lasted less than an interval) says nothing.
    order
        .iter()
        .filter_map(|p| counts.remove(p.as_str()))
        .filter(|(c, _)| c.sent > 0)
        .map(|(mut c, lost_at)| {
            if let (Some(first), Some(last)) = (lost_at.iter().min(), lost_at.iter().max()) {
                c.loss_window = Some((clock.precise(*first), clock.precise(*last)));
            }
            c
        })
        .collect()
}
