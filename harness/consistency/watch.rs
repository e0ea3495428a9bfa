//! Whether each watch kept etcd's watch guarantees, judged against the writes the history
//! shows: events come in revision order (ordered), none twice (unique), none missing between
//! the revision a watch starts from and the last it saw (reliable; after a reconnect from
//! revision R, events resume at R), a transaction's events together (atomic), and every event
//! is a write some client made (valid).

use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub use super::known::{Attempted, Change, KnownWrites, Written};

/// One event a watch received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision of the write.
    pub revision: i64,
    /// The key.
    pub key: CompactString,
    /// What happened to it.
    pub change: Change,
    /// When the client received it (ms on the history's clock).
    pub at_ms: u64,
}

/// One connection of a watch: opened from a revision, and the events it delivered in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The revision it asked to start from.
    pub from_revision: i64,
    /// The events, in the order received.
    pub events: Vec<WatchEvent>,
}

/// A watch a client kept on one member, reconnecting from the revision after the last it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// The member it watched through.
    pub member: String,
    /// The client that kept it (histories recorded before this was kept have none): a client
    /// whose watch was compacted away begins another, and this says whose it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<u32>,
    /// The revision etcd said it had compacted to, when this watch began because the last
    /// one's revision was compacted away (it then asked to start there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begun_at_compaction: Option<i64>,
    /// Its connections, in order.
    pub segments: Vec<Segment>,
}

/// A guarantee a watch broke, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchBroke {
    /// An event came with a lower revision than one before it.
    #[error(
        "the watch on {member} went back from revision {from} to {to} (received at {at_ms} ms)"
    )]
    WentBack {
        /// The member.
        member: String,
        /// The revision before.
        from: i64,
        /// The lower revision after it.
        to: i64,
        /// When the lower one arrived.
        at_ms: u64,
    },
    /// Events already delivered came again: one breach per run of them.
    #[error("{}", repeated(member, key, *first, *last, *events, *at_ms))]
    Repeated {
        /// The member.
        member: String,
        /// The key of the first event delivered again.
        key: String,
        /// The first revision delivered again.
        first: i64,
        /// The last revision of the run delivered again.
        last: i64,
        /// How many events the run holds.
        events: usize,
        /// When its first event arrived.
        at_ms: u64,
    },
    /// A connection opened from revision R delivered an event from before R (a watch must start
    /// where it asked, never earlier).
    #[error("the watch on {member} asked to start at revision {from} and delivered revision {got} first (received at {at_ms} ms)")]
    BeforeStart {
        /// The member.
        member: String,
        /// The revision asked for.
        from: i64,
        /// The earlier revision delivered.
        got: i64,
        /// When it arrived.
        at_ms: u64,
    },
    /// A connection opened from revision R began after R although writes at R or later, before
    /// its first event, are known.
    #[error("the watch on {member} reconnected from revision {from} but resumed at {resumed}, skipping {}", revisions(.skipped))]
    DidNotResume {
        /// The member.
        member: String,
        /// The revision asked for.
        from: i64,
        /// The first revision delivered.
        resumed: i64,
        /// The known writes skipped.
        skipped: Vec<i64>,
    },
    /// Known writes between the start and the last event seen never came: one breach per run
    /// of them between two revisions that were delivered.
    #[error("{}", missed_text(member, *first, *last, *writes, keys, *before, *after))]
    Missed {
        /// The member.
        member: String,
        /// The first revision missed.
        first: i64,
        /// The last revision missed in this run.
        last: i64,
        /// How many written revisions the run holds.
        writes: usize,
        /// Their keys (the first few).
        keys: String,
        /// The revision delivered before them (or the start).
        before: i64,
        /// The revision delivered after them.
        after: i64,
    },
    /// A transaction's events were split or incomplete.
    #[error("the watch on {member} delivered {got} of the {wrote} keys the transaction at revision {revision} wrote ({missing} missing or apart)")]
    Torn {
        /// The member.
        member: String,
        /// The transaction's revision.
        revision: i64,
        /// Keys delivered together.
        got: usize,
        /// Keys it wrote.
        wrote: usize,
        /// Keys not delivered with the rest.
        missing: String,
    },
    /// An event no client's write explains.
    #[error("the watch on {member} delivered {key} {change:?} at revision {revision}, which no client wrote")]
    Invented {
        /// The member.
        member: String,
        /// The key.
        key: String,
        /// The change.
        change: Change,
        /// The revision.
        revision: i64,
    },
}

/// Every guarantee `watch` broke against the writes the history shows; an event none of
/// `attempted` explains is invented.
pub fn check_watch(watch: &Watch, known: &KnownWrites, attempted: &Attempted) -> Vec<WatchBroke> {
    let member = || watch.member.clone();
    let mut broke = Vec::new();
    let mut previous: Option<i64> = None;
    let mut repeating: Option<usize> = None;
    let mut seen: BTreeSet<(i64, &str)> = BTreeSet::new();
    let mut delivered: BTreeSet<i64> = BTreeSet::new();
    // Revisions a reconnect skipped, said once as such rather than again as missed.
    let mut not_resumed: BTreeSet<i64> = BTreeSet::new();
    let excused = compacted_tombstones(watch, known);
    for segment in &watch.segments {
        if let Some(first) = segment
            .events
            .first()
            .filter(|f| f.revision < segment.from_revision)
        {
            broke.push(WatchBroke::BeforeStart {
                member: member(),
                from: segment.from_revision,
                got: first.revision,
                at_ms: first.at_ms,
            });
        }
        if let Some(first) = segment
            .events
            .first()
            .filter(|f| f.revision >= segment.from_revision)
        {
            let skipped: Vec<i64> = known
                .revisions(segment.from_revision..first.revision)
                .map(|(r, _)| r)
                .filter(|r| !delivered.contains(r) && !excused.contains(r))
                .collect();
            if !skipped.is_empty() {
                not_resumed.extend(skipped.iter().copied());
                broke.push(WatchBroke::DidNotResume {
                    member: member(),
                    from: segment.from_revision,
                    resumed: first.revision,
                    skipped,
                });
            }
        }
        for event in &segment.events {
            // Said once per drop: the events after it, delivered before, are repeats.
            if let Some(before) = previous.filter(|&b| event.revision < b) {
                broke.push(WatchBroke::WentBack {
                    member: member(),
                    from: before,
                    to: event.revision,
                    at_ms: event.at_ms,
                });
            }
            previous = Some(event.revision);
            if seen.insert((event.revision, event.key.as_str())) {
                repeating = None;
            } else if let Some(WatchBroke::Repeated { last, events, .. }) =
                repeating.and_then(|i| broke.get_mut(i))
            {
                // One breach for a run of events delivered again, however long.
                *last = event.revision;
                *events += 1;
            } else {
                repeating = Some(broke.len());
                broke.push(WatchBroke::Repeated {
                    member: member(),
                    key: event.key.to_string(),
                    first: event.revision,
                    last: event.revision,
                    events: 1,
                    at_ms: event.at_ms,
                });
            }
            delivered.insert(event.revision);
            // A delete whose answer was lost is a write a client made too: judged, like a put,
            // by what was attempted, not only by what was acknowledged.
            // (Every write a client tried, acknowledged or not, is in `attempted`.)
            if !attempted.contains(&event.key, event.change) {
                broke.push(WatchBroke::Invented {
                    member: member(),
                    key: event.key.to_string(),
                    change: event.change,
                    revision: event.revision,
                });
            }
        }
        broke.extend(torn(&watch.member, segment, known));
    }
    not_resumed.extend(excused);
    broke.extend(missed(watch, known, &delivered, &not_resumed));
    broke
}

/// The revision a watch begun at a compaction need not deliver: when everything written at
/// the compacted revision was a delete, etcd's compaction removed the keys with their
/// tombstones, so no watch can be sent those deletes (seen: a watch begun at revision 186, the
/// compaction's, resumed at 187, the delete of 186 gone).
fn compacted_tombstones(watch: &Watch, known: &KnownWrites) -> BTreeSet<i64> {
    watch
        .begun_at_compaction
        .filter(|c| {
            known
                .get(*c)
                .is_some_and(|w| w.iter().all(|w| w.change == Change::Delete))
        })
        .into_iter()
        .collect()
}

fn missed_text(
    member: &str,
    first: i64,
    last: i64,
    writes: usize,
    keys: &str,
    before: i64,
    after: i64,
) -> String {
    let what = if writes == 1 {
        format!("revision {first}")
    } else {
        format!("{writes} writes, revisions {first} to {last}")
    };
    format!("the watch on {member} missed {what} ({keys}), between revisions {before} and {after} it did deliver")
}

/// How many keys a breach of missed writes names.
const KEYS_NAMED: usize = 4;

fn repeated(member: &str, key: &str, first: i64, last: i64, events: usize, at_ms: u64) -> String {
    if events == 1 {
        format!(
            "the watch on {member} delivered {key} at revision {first} twice (again at {at_ms} ms)"
        )
    } else {
        format!("the watch on {member} delivered {events} events again, revisions {first} to {last} (from {at_ms} ms), each twice")
    }
}

fn revisions(list: &[i64]) -> String {
    let words: Vec<String> = list.iter().map(|r| r.to_string()).collect();
    match words.as_slice() {
        [one] => format!("revision {one}"),
        _ => format!("revisions {}", words.join(", ")),
    }
}

/// Known writes between the first revision the watch asked for and the last it saw that it
/// never delivered.
/// The known writes a watch never delivered between its start and the last revision it did
/// (leaving out those a reconnect skipped, said as such), one breach per run between two
/// revisions it delivered.
fn missed(
    watch: &Watch,
    known: &KnownWrites,
    delivered: &BTreeSet<i64>,
    not_resumed: &BTreeSet<i64>,
) -> Vec<WatchBroke> {
    let (Some(start), Some(&end)) = (
        watch.segments.first().map(|s| s.from_revision),
        delivered.iter().next_back(),
    ) else {
        return Vec::new();
    };
    if end < start {
        // Nothing delivered at or after the start: nothing can be missing (what came before
        // the start is a broken start, said apart).
        return Vec::new();
    }
    let mut runs: Vec<WatchBroke> = Vec::new();
    for (revision, writes) in known
        .revisions(start..=end)
        .filter(|(r, _)| !delivered.contains(r) && !not_resumed.contains(r))
    {
        let before = delivered
            .range(..revision)
            .next_back()
            .copied()
            .unwrap_or(start);
        let after = delivered.range(revision..).next().copied().unwrap_or(end);
        let keys = writes.iter().map(|w| w.key.as_str());
        match runs.last_mut() {
            Some(WatchBroke::Missed {
                last,
                writes: count,
                keys: named,
                before: b,
                after: a,
                ..
            }) if (*b, *a) == (before, after) => {
                *last = revision;
                *count += 1;
                for key in keys {
                    let already = named.split(", ").any(|k| k == key || k == "…");
                    if !already {
                        if named.split(", ").count() < KEYS_NAMED {
                            named.push_str(", ");
                            named.push_str(key);
                        } else {
                            named.push_str(", …");
                        }
                    }
                }
            }
            _ => runs.push(WatchBroke::Missed {
                member: watch.member.clone(),
                first: revision,
                last: revision,
                writes: 1,
                keys: keys.collect::<Vec<_>>().join(", "),
                before,
                after,
            }),
        }
    }
    runs
}

/// Transactions whose events a connection did not deliver all together, in one run.
fn torn(member: &str, segment: &Segment, known: &KnownWrites) -> Vec<WatchBroke> {
    let mut runs: BTreeMap<i64, Vec<BTreeSet<&str>>> = BTreeMap::new();
    let mut previous: Option<i64> = None;
    // Only a write of several keys can be torn; a single key's event is there or missing.
    let several = |revision: i64| known.get(revision).is_some_and(|w| w.len() > 1);
    for event in segment.events.iter().filter(|e| several(e.revision)) {
        let groups = runs.entry(event.revision).or_default();
        if previous != Some(event.revision) || groups.is_empty() {
            groups.push(BTreeSet::new());
        }
        if let Some(group) = groups.last_mut() {
            group.insert(event.key.as_str());
        }
        previous = Some(event.revision);
    }
    runs.into_iter()
        .filter_map(|(revision, groups)| {
            let wrote = known.get(revision)?;
            let first = groups.first()?;
            // A revision delivered whole again is a repeat (said as such), not a tear.
            let whole = |g: &BTreeSet<&str>| wrote.iter().all(|w| g.contains(w.key.as_str()));
            let torn = groups.iter().find(|g| !whole(g)).unwrap_or(first);
            (!whole(torn)).then(|| WatchBroke::Torn {
                member: member.to_string(),
                revision,
                got: torn.len(),
                wrote: wrote.len(),
                missing: wrote
                    .iter()
                    .map(|w| w.key.as_str())
                    .filter(|k| !torn.contains(k))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
