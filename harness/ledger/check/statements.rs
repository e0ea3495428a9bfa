//! What the ledger's verdict says in words: what each procedure lost and when those writes
//! were acknowledged, in wall-clock time.

use std::time::Duration;

use super::{capture_before, tolerated, Fate, Reason};
use crate::ledger::history::{CaptureKind, History, LedgerEvent, LedgerRecord};

/// The writes lost, and when those of a group were acknowledged.
struct Losses<'a> {
    records: &'a [&'a LedgerRecord],
    fates: &'a [Fate],
    clock: &'a Clock,
}

impl<'a> Losses<'a> {
    /// The writes lost for a reason `pick` picks.
    fn lost_for(&self, pick: impl Fn(Reason) -> bool) -> Vec<&'a LedgerRecord> {
        self.records
            .iter()
            .zip(self.fates)
            .filter_map(|(r, f)| match f {
                Fate::Lost(reason) if pick(*reason) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// ` (acknowledged …)` over `writes`, or nothing when there are none.
    fn window_of(&self, writes: &[&LedgerRecord]) -> String {
        if writes.is_empty() {
            String::new()
        } else {
            format!(
                " (acknowledged {})",
                self.clock.span(writes.iter().map(|r| r.done_ms))
            )
        }
    }
}

/// What each procedure lost, from the final (latest) read-back.
pub(super) fn statements(
    history: &History,
    records: &[&LedgerRecord],
    fates: &[Fate],
    events: &[(usize, &LedgerEvent)],
    clock: &Clock,
) -> Vec<String> {
    let losses = Losses {
        records,
        fates,
        clock,
    };
    let mut out = Vec::new();
    for (i, event) in events {
        let line = match event {
            LedgerEvent::Restore { at_ms, label, .. } => {
                restore_statement(&losses, events, *i, label, *at_ms)
            }
            LedgerEvent::Reset { at_ms } => {
                let wiped = losses.lost_for(|r| r == Reason::Wiped(*i));
                Some(format!(
                    "recreating the cluster empty at {} lost {} made before it and never restored{}",
                    clock.second(*at_ms),
                    count_or_none(wiped.len() as u64, "acknowledged write"),
                    losses.window_of(&wiped),
                ))
            }
            LedgerEvent::QuorumLost { since_ms, .. } => {
                let lost = losses.lost_for(|r| r == Reason::Uncommitted(*i));
                Some(format!(
                    "losing the majority at {} lost {} made in the {} before it{}",
                    clock.second(*since_ms),
                    count_or_none(lost.len() as u64, "acknowledged write"),
                    crate::base::time::human_ms(history.tolerate.uncommitted_window_ms()),
                    losses.window_of(&lost),
                ))
            }
            _ => None,
        };
        out.extend(line);
    }
    let unexplained = losses.lost_for(|r| r == Reason::Unexplained);
    if !unexplained.is_empty() {
        out.push(format!(
            "{} lost with no procedure to explain it{}",
            count(unexplained.len() as u64, "acknowledged write"),
            losses.window_of(&unexplained)
        ));
    }
    out.push(beyond_statement(history, records, fates));
    out
}

/// What the restore that is event `i` lost: writes made after its capture, and writes made
/// before it that it does not hold; nothing when it repeats an earlier restore of the same
/// capture and lost nothing more (a re-run procedure).
fn restore_statement(
    losses: &Losses<'_>,
    events: &[(usize, &LedgerEvent)],
    i: usize,
    label: &str,
    at_ms: u64,
) -> Option<String> {
    let (kind, started) = capture_before(events, label, at_ms)
        .map(|c| (c.kind, c.started_ms))
        .unwrap_or((CaptureKind::Snapshot, 0));
    let after = losses.lost_for(|r| r == Reason::AfterCapture(i));
    let before = losses.lost_for(|r| r == Reason::MissingFromCapture(i));
    let repeat = events
        .iter()
        .any(|(j, e)| matches!(e, LedgerEvent::Restore { label: l, .. } if l == label && *j < i));
    if repeat && after.is_empty() && before.is_empty() {
        return None;
    }
    let before_part = if before.is_empty() {
        "none before it".to_string()
    } else {
        format!(
            "{} made before it{}",
            before.len(),
            losses.window_of(&before)
        )
    };
    Some(format!(
        "restore from the {} {} `{label}` lost {} made after it{}; {before_part}",
        losses.clock.second(started),
        kind.word(),
        count_or_none(after.len() as u64, "acknowledged write"),
        losses.window_of(&after),
    ))
}

/// Whether any acknowledged write was lost beyond what the scenario tolerates.
fn beyond_statement(history: &History, records: &[&LedgerRecord], fates: &[Fate]) -> String {
    let beyond = records
        .iter()
        .zip(fates)
        .filter(|(_, f)| matches!(f, Fate::Lost(r) if !tolerated(history, *r)))
        .count() as u64;
    if beyond == 0 {
        format!(
            "no acknowledged write was lost beyond what the scenario tolerates ({})",
            history.tolerate.describe()
        )
    } else {
        format!(
            "{} lost beyond what the scenario tolerates ({})",
            count(beyond, "acknowledged write"),
            history.tolerate.describe()
        )
    }
}

/// `1 acknowledged write`, `41 acknowledged writes`.
pub(super) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Like `count`, with `no acknowledged write` for zero.
fn count_or_none(n: u64, noun: &str) -> String {
    if n == 0 {
        format!("no {noun}")
    } else {
        count(n, noun)
    }
}

/// Turns ms after the first step into wall-clock times.
pub(super) struct Clock {
    origin: Option<std::time::SystemTime>,
}

impl Clock {
    pub(super) fn new(started_wall: &str) -> Self {
        Self {
            origin: humantime::parse_rfc3339(started_wall).ok(),
        }
    }

    fn format(&self, ms: u64, len: usize) -> String {
        match self.origin {
            Some(origin) => {
                let t = origin + Duration::from_millis(ms);
                let text = humantime::format_rfc3339_millis(t).to_string();
                text.get(11..11 + len).unwrap_or(&text).to_string()
            }
            None => format!("+{}", crate::base::time::human_ms(ms)),
        }
    }

    /// `12:00:03`
    pub(super) fn second(&self, ms: u64) -> String {
        self.format(ms, 8)
    }

    /// `12:00:03.120`
    pub(super) fn precise(&self, ms: u64) -> String {
        self.format(ms, 12)
    }

    /// `12:00:03.120–12:00:04.010`, or one time when first and last are the same.
    pub(super) fn span(&self, times: impl Iterator<Item = u64>) -> String {
        let times: Vec<u64> = times.collect();
        match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) if a == b => format!("at {}", self.precise(*a)),
            (Some(a), Some(b)) => format!("{}–{}", self.precise(*a), self.precise(*b)),
            _ => String::new(),
        }
    }
}
