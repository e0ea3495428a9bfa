//! What the write ledger records: every write it made and how it ended, and the events that
//! decide which writes should survive (captures, restores, a recreated cluster, a lost quorum).
//! Saved as `history.json` beside the report, so the verdict can be recomputed offline.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file the runner saves beside `report.json`.
pub const HISTORY_FILE: &str = "history.json";
/// The format version written into every history.
pub const HISTORY_VERSION: u32 = 1;
/// How far before a quorum loss an acknowledged write may have been acknowledged and still not
/// be known as committed by a survivor, when the scenario names no window.
pub const DEFAULT_UNCOMMITTED_MS: u64 = 1000;

/// The losses a scenario accepts; nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Writes acknowledged after the snapshot (or dump) that a restore brought back.
    #[serde(default)]
    pub after_snapshot: bool,
    /// Writes that existed only in data that was wiped and never restored (recreating a
    /// cluster from configuration loses them by design).
    #[serde(default)]
    pub wiped: bool,
    /// Writes acknowledged within this many ms before a quorum loss (a survivor forced into a
    /// new cluster drops the entries it had not seen committed).
    #[serde(default)]
    pub uncommitted_ms: Option<u64>,
}

impl Tolerance {
    /// The window used to attribute losses to a quorum loss (tolerated or not).
    pub fn uncommitted_window_ms(&self) -> u64 {
        self.uncommitted_ms.unwrap_or(DEFAULT_UNCOMMITTED_MS)
    }

    /// The names used in scenario files, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.after_snapshot {
            parts.push("after-snapshot".to_string());
        }
        if self.wiped {
            parts.push("wiped".to_string());
        }
        if let Some(ms) = self.uncommitted_ms {
            parts.push(format!(
                "uncommitted within {}",
                crate::base::time::human_ms(ms)
            ));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// Why a write certainly did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCause {
    /// The member answered that it has no leader (the cluster is leaderless or read-only).
    Leaderless,
    /// No connection could be made; nothing was sent.
    Unreachable,
    /// Refused for another reason that means it was not applied.
    Refused,
}

/// How one write ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// The cluster acknowledged it at this revision.
    Acknowledged {
        /// The revision in the put's response header.
        revision: i64,
    },
    /// It was certainly not applied.
    Failed {
        /// Why.
        cause: FailureCause,
        /// What the client saw.
        error: String,
    },
    /// No answer, or an answer that leaves it open: it may or may not have been applied.
    Indeterminate {
        /// What the client saw.
        error: String,
    },
}

/// One write the ledger made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// Its sequence number (the key is the prefix and this, zero-padded).
    pub seq: u64,
    /// The phase it was sent in.
    pub phase: String,
    /// The member it was sent through (short node name; empty when none was live).
    pub via: String,
    /// When it was sent, ms after the run's first step.
    pub sent_ms: u64,
    /// When its outcome was known.
    pub done_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

impl LedgerRecord {
    /// Whether the cluster acknowledged it.
    pub fn is_acknowledged(&self) -> bool {
        matches!(self.outcome, Outcome::Acknowledged { .. })
    }
}

/// What a capture is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureKind {
    /// An etcd snapshot (the whole keyspace at one revision).
    Snapshot,
    /// A dump of the keys under a prefix, read at one revision.
    Dump,
}

impl CaptureKind {
    /// The word used in statements.
    pub fn word(self) -> &'static str {
        match self {
            CaptureKind::Snapshot => "snapshot",
            CaptureKind::Dump => "dump",
        }
    }
}

/// Sorted, disjoint, inclusive ranges of sequence numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeqSet(pub Vec<(u64, u64)>);

impl SeqSet {
    /// The set of these numbers (any order, duplicates allowed).
    pub fn from_seqs(seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut all: Vec<u64> = seqs.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for s in all {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == s => *end = s,
                _ => ranges.push((s, s)),
            }
        }
        Self(ranges)
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|(_, end)| *end < seq);
        self.0.get(i).is_some_and(|(start, _)| *start <= seq)
    }

    /// How many numbers it holds.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `3–7, 9` for messages.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}–{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Something that decides which writes should survive, or a read of what did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum LedgerEvent {
    /// A phase began.
    Phase {
        /// When, ms after the first step.
        at_ms: u64,
        /// Its name.
        name: String,
    },
    /// A copy of the data was taken.
    Capture {
        /// When it was complete.
        at_ms: u64,
        /// When it began.
        started_ms: u64,
        /// The scenario's name for it.
        label: String,
        /// Snapshot or dump.
        kind: CaptureKind,
        /// The revision it holds.
        revision: i64,
        /// The member it was taken from.
        through: String,
        /// The ledger writes it holds.
        seqs: SeqSet,
    },
    /// A capture was restored: `replace` when it replaced all data (snapshot restore), not when
    /// its keys were put on top of what was there (dump restore).
    Restore {
        /// When.
        at_ms: u64,
        /// The capture's label (the latest capture of that label before this).
        label: String,
        /// Whether the restored data replaced everything.
        replace: bool,
    },
    /// The cluster was created anew from empty data directories.
    Reset {
        /// When.
        at_ms: u64,
    },
    /// The cluster was seen to have lost its quorum.
    QuorumLost {
        /// When that was observed.
        at_ms: u64,
        /// When the disruption that caused it began.
        since_ms: u64,
    },
    /// The ledger's keys were read back.
    ReadBack {
        /// When the read began (writes done before this are judged).
        at_ms: u64,
        /// The member read through.
        through: String,
        /// The step that asked for it (`end of run` for the final read).
        step: String,
        /// Whether this is the final read, after the ledger stopped writing.
        final_read: bool,
        /// The ledger writes present.
        present: SeqSet,
        /// Writes whose key holds a value other than the one written.
        mismatched: Vec<u64>,
        /// Keys under the prefix that are no ledger write's.
        foreign: u64,
    },
    /// Reading the ledger back failed.
    ReadFailed {
        /// When.
        at_ms: u64,
        /// The step that asked for it.
        step: String,
        /// Whether this was the final read.
        final_read: bool,
        /// Why.
        error: String,
    },
}

impl LedgerEvent {
    /// When it happened, ms after the first step.
    pub fn at_ms(&self) -> u64 {
        match self {
            LedgerEvent::Phase { at_ms, .. }
            | LedgerEvent::Capture { at_ms, .. }
            | LedgerEvent::Restore { at_ms, .. }
            | LedgerEvent::Reset { at_ms }
            | LedgerEvent::QuorumLost { at_ms, .. }
            | LedgerEvent::ReadBack { at_ms, .. }
            | LedgerEvent::ReadFailed { at_ms, .. } => *at_ms,
        }
    }
}

/// Everything the ledger recorded in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Format version.
    pub version: u32,
    /// The scenario.
    pub scenario: String,
    /// The run.
    pub run_id: String,
    /// Wall-clock time of ms 0 (the first step), RFC 3339.
    pub started_wall: String,
    /// The prefix the ledger wrote under.
    pub prefix: String,
    /// The losses the scenario accepts.
    pub tolerate: Tolerance,
    /// Every write, in sequence order.
    pub records: Vec<LedgerRecord>,
    /// Every event, in time order.
    pub events: Vec<LedgerEvent>,
}

/// Failed to read or write a history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read or written.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a history.
    #[error("failed to parse {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is a history of another format version.
    #[error(
        "failed to read {path}: history format {found}, this succession reads {HISTORY_VERSION}"
    )]
    Version {
        /// The file.
        path: String,
        /// Its version.
        found: u32,
    },
}

impl History {
    /// The key of a write.
    pub fn key(prefix: &str, seq: u64) -> String {
        format!("{prefix}{seq:010}")
    }

    /// The value a write puts, so a read-back can tell it from anything else.
    pub fn value(run_id: &str, seq: u64) -> String {
        format!("{run_id}:{seq}")
    }

    /// The sequence number of a key under `prefix`, if it is a ledger key.
    pub fn seq_of(prefix: &str, key: &str) -> Option<u64> {
        let digits = key.strip_prefix(prefix)?;
        if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    }

    /// Writes `DIR/history.json`.
    pub fn write(&self, dir: &Path) -> Result<(), HistoryError> {
        let path = dir.join(HISTORY_FILE);
        let io = |action| {
            let path = path.display().to_string();
            move |source| HistoryError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| HistoryError::Parse {
            path: path.display().to_string(),
            source: e,
        })?;
        std::fs::write(&path, json + "\n").map_err(io("write"))
    }

    /// Reads `DIR/history.json`.
    pub fn read(dir: &Path) -> Result<Self, HistoryError> {
        let path = dir.join(HISTORY_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read(&path).map_err(|source| HistoryError::Io {
            action: "read",
            path: shown.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|source| HistoryError::Parse {
                path: shown.clone(),
                source,
            })?;
        let found = value["version"].as_u64().unwrap_or(0) as u32;
        if found != HISTORY_VERSION {
            return Err(HistoryError::Version { path: shown, found });
        }
        serde_json::from_value(value).map_err(|source| HistoryError::Parse {
            path: shown,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_sets_hold_what_they_were_made_of() {
        let set = SeqSet::from_seqs([5, 1, 2, 3, 9, 3]);
        assert_eq!(set.0, vec![(1, 3), (5, 5), (9, 9)]);
        assert!(set.contains(2) && set.contains(5) && set.contains(9));
        assert!(!set.contains(4) && !set.contains(0) && !set.contains(10));
        assert_eq!(set.len(), 5);
        assert_eq!(set.describe(), "1–3, 5, 9");
    }

    #[test]
    fn keys_and_sequence_numbers_round_trip() {
        let key = History::key("/l/", 42);
        assert_eq!(key, "/l/0000000042");
        assert_eq!(History::seq_of("/l/", &key), Some(42));
        assert_eq!(History::seq_of("/l/", "/l/x"), None);
        assert_eq!(History::seq_of("/l/", "/m/0000000042"), None);
    }
}
