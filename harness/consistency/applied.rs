//! Whether each write took effect at most as many times as it was sent. A put's value is its
//! own (no other write carries it), so one value at two revisions was applied twice — which
//! only a put sent twice (sent again after its outcome was unknown) may do. Judged over every
//! revision any watch delivered and every acknowledged write's header.

use std::collections::BTreeSet;

use super::known::{Attempted, Change, KnownWrites};
use super::watch::Watch;

/// A put that took effect more times than it was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", applied_text(key, *value, revisions, *sent))]
pub struct AppliedTooOften {
    /// The key.
    pub key: String,
    /// The value the put wrote.
    pub value: u64,
    /// Every revision it took effect at, in order.
    pub revisions: Vec<i64>,
    /// How many times clients sent it (as the history counts them).
    pub sent: u32,
    /// When a watch delivered the first application beyond those sent (ms on the history's
    /// clock; none when only a reply header showed it).
    pub at_ms: Option<u64>,
}

fn applied_text(key: &str, value: u64, revisions: &[i64], sent: u32) -> String {
    let at: Vec<String> = revisions.iter().map(i64::to_string).collect();
    let sent = match sent {
        1 => "once".to_string(),
        n => format!("{n} times"),
    };
    format!(
        "put {key} v{value} took effect {} times, at revisions {}, but the history counts it sent {sent}",
        revisions.len(),
        at.join(", ")
    )
}

/// What the applications of puts showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applications {
    /// Puts applied at more revisions than they were sent.
    pub too_often: Vec<AppliedTooOften>,
    /// Puts applied more than once, each no more often than it was sent (a retry whose first
    /// send applied too): the evidence that retries were judged, not absent.
    pub repeated_as_sent: usize,
}

/// Every put some watch or reply shows applied at more revisions than it was sent.
pub fn check_applied(
    watches: &[Watch],
    known: &KnownWrites,
    attempted: &Attempted,
) -> Applications {
    // Values alone, not keys: a long history delivers hundreds of thousands of events, and the
    // key of the few values that break is found again below.
    let mut applied: Vec<(u64, i64, Option<u64>)> = known
        .iter()
        .filter_map(|w| match w.change {
            Change::Put { value } => Some((value, w.revision, None)),
            Change::Delete => None,
        })
        .collect();
    for event in watches
        .iter()
        .flat_map(|w| &w.segments)
        .flat_map(|s| &s.events)
    {
        if let Change::Put { value } = event.change {
            applied.push((value, event.revision, Some(event.at_ms)));
        }
    }
    // Each (value, revision) once, with the moment it was first delivered.
    applied.sort_unstable_by_key(|&(value, revision, at)| (value, revision, at.is_none(), at));
    applied.dedup_by_key(|&mut (value, revision, _)| (value, revision));
    let twice: BTreeSet<u64> = applied
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .collect();
    let mut found = Applications::default();
    if twice.is_empty() {
        return found;
    }
    let key_of = |value: u64| {
        known
            .iter()
            .find(|w| w.change == Change::Put { value })
            .map(|w| w.key.to_string())
            .or_else(|| {
                watches
                    .iter()
                    .flat_map(|w| &w.segments)
                    .flat_map(|s| &s.events)
                    .find(|e| e.change == Change::Put { value })
                    .map(|e| e.key.to_string())
            })
            .unwrap_or_default()
    };
    for value in twice {
        let key = key_of(value);
        let sent = attempted.times(&key, Change::Put { value });
        let at: Vec<(i64, Option<u64>)> = applied
            .iter()
            .filter(|a| a.0 == value)
            .map(|&(_, revision, at)| (revision, at))
            .collect();
        if at.len() > sent as usize {
            found.too_often.push(AppliedTooOften {
                value,
                revisions: at.iter().map(|a| a.0).collect(),
                sent,
                at_ms: at.get(sent as usize).and_then(|a| a.1),
                key,
            });
        } else {
            found.repeated_as_sent += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::watch::{Segment, WatchEvent};

    fn watch(events: &[(i64, &str, u64)]) -> Watch {
        Watch {
            member: "quorum-1".to_string(),
            client: Some(0),
            begun_at_compaction: None,
            segments: vec![Segment {
                from_revision: 1,
                events: events
                    .iter()
                    .map(|&(revision, key, value)| WatchEvent {
                        revision,
                        key: key.into(),
                        change: Change::Put { value },
                        at_ms: revision as u64 * 10,
                    })
                    .collect(),
            }],
        }
    }

    fn sent(puts: &[(&str, u64)]) -> Attempted {
        puts.iter()
            .map(|&(key, value)| (key.into(), Change::Put { value }))
            .collect()
    }

    #[test]
    fn a_put_sent_once_and_applied_twice_is_named_with_its_revisions() {
        let watches = [watch(&[(2, "k1", 18), (3, "k1", 19), (4, "k1", 18)])];
        let broke = check_applied(
            &watches,
            &KnownWrites::new(),
            &sent(&[("k1", 18), ("k1", 19)]),
        )
        .too_often;
        assert_eq!(broke.len(), 1, "{broke:?}");
        assert_eq!(broke[0].revisions, vec![2, 4]);
        assert_eq!(broke[0].at_ms, Some(40));
        assert_eq!(
            broke[0].to_string(),
            "put k1 v18 took effect 2 times, at revisions 2, 4, but the history counts it sent once"
        );
    }

    #[test]
    fn a_put_sent_twice_may_apply_twice_and_repeats_of_one_revision_are_one_application() {
        let watches = [
            watch(&[(2, "k1", 18), (3, "k1", 19), (4, "k1", 18)]),
            // Another watch delivering the same revisions, and one of them again.
            watch(&[(2, "k1", 18), (3, "k1", 19), (3, "k1", 19)]),
        ];
        let attempted = sent(&[("k1", 18), ("k1", 18), ("k1", 19)]);
        let found = check_applied(&watches, &KnownWrites::new(), &attempted);
        assert_eq!(found.too_often, vec![]);
        assert_eq!(found.repeated_as_sent, 1);
    }

    #[test]
    fn a_reply_header_counts_as_an_application_a_watch_did_not_deliver() {
        let mut known = KnownWrites::new();
        known.insert(7, vec![("k2".into(), Change::Put { value: 5 })]);
        let watches = [watch(&[(4, "k2", 5)])];
        let broke = check_applied(&watches, &known, &sent(&[("k2", 5)])).too_often;
        assert_eq!(broke.len(), 1);
        assert_eq!(broke[0].revisions, vec![4, 7]);
        assert_eq!(broke[0].at_ms, None, "revision 7 was seen in a reply only");
    }
}
