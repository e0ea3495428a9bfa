//! Whether each watch kept etcd's watch guarantees, judged against the writes the history
//! shows: events come in revision order (ordered), none twice (unique), none missing between
//! the revision a watch starts from and the last it saw (reliable; after a reconnect from
//! revision R, events resume at R), a transaction's events together (atomic), and every event
//! is a write some client made (valid).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What an event says happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Change {
    /// The key was written with this value (values are unique per write).
    Put {
        /// The value.
        value: u64,
    },
    /// The key was deleted.
    Delete,
}

/// One event a watch received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision of the write.
    pub revision: i64,
    /// The key.
    pub key: String,
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
    /// Its connections, in order.
    pub segments: Vec<Segment>,
}

/// The writes the history shows under the watched prefix, by revision: each revision's keys
/// and changes (several for a transaction), from acknowledged writes' response headers.
pub type KnownWrites = BTreeMap<i64, BTreeMap<String, Change>>;

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
    /// The same key at the same revision came twice.
    #[error(
        "the watch on {member} delivered {key} at revision {revision} twice (again at {at_ms} ms)"
    )]
    Twice {
        /// The member.
        member: String,
        /// The key.
        key: String,
        /// The revision.
        revision: i64,
        /// When it came again.
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
    /// A known write between the start and the last event seen never came.
    #[error("the watch on {member} missed revision {revision} ({keys}), between revisions {before} and {after} it did deliver")]
    Missed {
        /// The member.
        member: String,
        /// The revision missed.
        revision: i64,
        /// Its keys.
        keys: String,
        /// The revision delivered before it (or the start).
        before: i64,
        /// The revision delivered after it.
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

/// Every write a client tried (acknowledged or not, its answer lost included): a key and what
/// was to happen to it. An event is valid when it is one of these.
pub type Attempted = BTreeSet<(String, Change)>;

/// Every guarantee `watch` broke against the writes the history shows; an event none of
/// `attempted` explains is invented.
pub fn check_watch(watch: &Watch, known: &KnownWrites, attempted: &Attempted) -> Vec<WatchBroke> {
    let member = || watch.member.clone();
    let mut broke = Vec::new();
    let mut last: Option<i64> = None;
    let mut seen: BTreeSet<(i64, &str)> = BTreeSet::new();
    let mut delivered: BTreeSet<i64> = BTreeSet::new();
    // Revisions a reconnect skipped, said once as such rather than again as missed.
    let mut not_resumed: BTreeSet<i64> = BTreeSet::new();
    for segment in &watch.segments {
        if let Some(first) = segment.events.first() {
            let skipped: Vec<i64> = known
                .range(segment.from_revision..first.revision)
                .map(|(r, _)| *r)
                .filter(|r| !delivered.contains(r))
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
            if let Some(before) = last.filter(|&b| event.revision < b) {
                broke.push(WatchBroke::WentBack {
                    member: member(),
                    from: before,
                    to: event.revision,
                    at_ms: event.at_ms,
                });
            }
            last = Some(last.map_or(event.revision, |b| b.max(event.revision)));
            if !seen.insert((event.revision, event.key.as_str())) {
                broke.push(WatchBroke::Twice {
                    member: member(),
                    key: event.key.clone(),
                    revision: event.revision,
                    at_ms: event.at_ms,
                });
            }
            delivered.insert(event.revision);
            // A delete whose answer was lost is a write a client made too: judged, like a put,
            // by what was attempted, not only by what was acknowledged.
            if !attempted.contains(&(event.key.clone(), event.change)) {
                broke.push(WatchBroke::Invented {
                    member: member(),
                    key: event.key.clone(),
                    change: event.change,
                    revision: event.revision,
                });
            }
        }
        broke.extend(torn(&watch.member, segment, known));
    }
    broke.extend(missed(watch, known, &delivered).into_iter().filter(
        |m| !matches!(m, WatchBroke::Missed { revision, .. } if not_resumed.contains(revision)),
    ));
    broke
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
fn missed(watch: &Watch, known: &KnownWrites, delivered: &BTreeSet<i64>) -> Vec<WatchBroke> {
    let (Some(start), Some(&end)) = (
        watch.segments.first().map(|s| s.from_revision),
        delivered.iter().next_back(),
    ) else {
        return Vec::new();
    };
    known
        .range(start..=end)
        .filter(|(r, _)| !delivered.contains(r))
        .map(|(&revision, keys)| WatchBroke::Missed {
            member: watch.member.clone(),
            revision,
            keys: keys.keys().cloned().collect::<Vec<_>>().join(", "),
            before: delivered
                .range(..revision)
                .next_back()
                .copied()
                .unwrap_or(start),
            after: delivered.range(revision..).next().copied().unwrap_or(end),
        })
        .collect()
}

/// Transactions whose events a connection did not deliver all together, in one run.
fn torn(member: &str, segment: &Segment, known: &KnownWrites) -> Vec<WatchBroke> {
    let mut runs: BTreeMap<i64, Vec<BTreeSet<&str>>> = BTreeMap::new();
    let mut previous: Option<i64> = None;
    for event in &segment.events {
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
            let wrote = known.get(&revision)?;
            let first = groups.first()?;
            let together = groups.len() == 1 && wrote.keys().all(|k| first.contains(k.as_str()));
            (!together).then(|| WatchBroke::Torn {
                member: member.to_string(),
                revision,
                got: first.len(),
                wrote: wrote.len(),
                missing: wrote
                    .keys()
                    .filter(|k| !first.contains(k.as_str()))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
