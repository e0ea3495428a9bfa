//! What a history shows was written, and what its clients attempted, kept as sorted lists: a
//! long history holds hundreds of thousands of writes, and a map per revision took four times
//! the memory (`cargo bench --bench history_check`).

use std::ops::{Bound, RangeBounds};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// What a write did to a key, and what a watch event says happened to it.
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

/// One acknowledged write of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The revision it made.
    pub revision: i64,
    /// The key.
    pub key: CompactString,
    /// What it did to the key.
    pub change: Change,
}

/// The writes the history shows under the watched prefix, by revision (several keys at one
/// revision for a transaction), from acknowledged writes' response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownWrites {
    /// Sorted by revision; a revision's keys in the order they were given.
    writes: Vec<Written>,
}

impl KnownWrites {
    /// No writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The writes given, in any order.
    pub fn from_unsorted(mut writes: Vec<Written>) -> Self {
        writes.sort_by_key(|w| w.revision);
        writes.shrink_to_fit();
        Self { writes }
    }

    /// Adds the keys written at `revision`.
    pub fn insert(&mut self, revision: i64, keys: Vec<(CompactString, Change)>) {
        let at = self.writes.partition_point(|w| w.revision <= revision);
        self.writes.splice(
            at..at,
            keys.into_iter().map(|(key, change)| Written {
                revision,
                key,
                change,
            }),
        );
    }

    /// What was written at `revision`, if anything.
    pub fn get(&self, revision: i64) -> Option<&[Written]> {
        let from = self.writes.partition_point(|w| w.revision < revision);
        let to = self.writes.partition_point(|w| w.revision <= revision);
        (from < to).then(|| &self.writes[from..to])
    }

    /// Each revision in `range` that was written, with its writes, in order.
    pub fn revisions(
        &self,
        range: impl RangeBounds<i64>,
    ) -> impl Iterator<Item = (i64, &[Written])> + '_ {
        let from = match range.start_bound() {
            Bound::Included(&r) => self.writes.partition_point(|w| w.revision < r),
            Bound::Excluded(&r) => self.writes.partition_point(|w| w.revision <= r),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&r) => self.writes.partition_point(|w| w.revision <= r),
            Bound::Excluded(&r) => self.writes.partition_point(|w| w.revision < r),
            Bound::Unbounded => self.writes.len(),
        };
        self.writes[from..to.max(from)]
            .chunk_by(|a, b| a.revision == b.revision)
            .map(|run| (run[0].revision, run))
    }

    /// Every write, by revision.
    pub fn iter(&self) -> std::slice::Iter<'_, Written> {
        self.writes.iter()
    }

    /// How many revisions were written.
    pub fn len(&self) -> usize {
        self.revisions(..).count()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The last revision written.
    pub fn last_revision(&self) -> Option<i64> {
        self.writes.last().map(|w| w.revision)
    }
}

/// Every change some client asked for and did not learn was refused: what explains an event,
/// and how many times it was sent (a put sent again after its outcome was unknown may apply
/// twice; sent once, it may apply once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempted {
    /// Sorted by key and change, without repeats; each with how many times it was sent.
    changes: Vec<(CompactString, Change, u32)>,
}

impl Attempted {
    fn find(&self, key: &str, change: Change) -> Result<usize, usize> {
        self.changes
            .binary_search_by(|(k, c, _)| k.as_str().cmp(key).then(c.cmp(&change)))
    }

    /// Whether a client attempted `change` of `key`.
    pub fn contains(&self, key: &str, change: Change) -> bool {
        self.times(key, change) > 0
    }

    /// How many times clients sent `change` of `key`.
    pub fn times(&self, key: &str, change: Change) -> u32 {
        self.find(key, change).map_or(0, |i| self.changes[i].2)
    }

    /// Adds an attempt.
    pub fn insert(&mut self, key: CompactString, change: Change) {
        match self.find(&key, change) {
            Ok(i) => self.changes[i].2 += 1,
            Err(at) => self.changes.insert(at, (key, change, 1)),
        }
    }
}

impl FromIterator<(CompactString, Change)> for Attempted {
    fn from_iter<I: IntoIterator<Item = (CompactString, Change)>>(iter: I) -> Self {
        let mut sent: Vec<_> = iter.into_iter().collect();
        sent.sort_unstable();
        let mut changes: Vec<(CompactString, Change, u32)> = Vec::new();
        for (key, change) in sent {
            match changes.last_mut() {
                Some((k, c, n)) if *k == key && *c == change => *n += 1,
                _ => changes.push((key, change, 1)),
            }
        }
        changes.shrink_to_fit();
        Self { changes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_found_by_range_and_a_transaction_stays_together() {
        let put = |value| Change::Put { value };
        let mut known = KnownWrites::new();
        known.insert(5, vec![("a".into(), put(1))]);
        known.insert(3, vec![("b".into(), put(2)), ("c".into(), put(3))]);
        known.insert(9, vec![("a".into(), Change::Delete)]);
        let revs: Vec<(i64, usize)> = known.revisions(..).map(|(r, w)| (r, w.len())).collect();
        assert_eq!(revs, vec![(3, 2), (5, 1), (9, 1)]);
        assert_eq!(known.revisions(4..=9).count(), 2);
        assert_eq!(known.revisions(4..9).count(), 1);
        assert_eq!(known.revisions(10..).count(), 0);
        assert_eq!(known.get(3).map(<[Written]>::len), Some(2));
        assert_eq!(known.get(4), None);
        assert_eq!((known.len(), known.last_revision()), (3, Some(9)));
        let same = KnownWrites::from_unsorted(known.iter().rev().cloned().collect());
        assert_eq!(
            same.revisions(..).map(|(r, _)| r).collect::<Vec<_>>(),
            vec![3, 5, 9]
        );
    }

    #[test]
    fn attempts_are_found_whatever_order_they_came_in() {
        let mut attempted: Attempted = [
            ("k2".into(), Change::Put { value: 7 }),
            ("k1".into(), Change::Delete),
            ("k2".into(), Change::Put { value: 7 }),
        ]
        .into_iter()
        .collect();
        assert!(attempted.contains("k2", Change::Put { value: 7 }));
        assert!(attempted.contains("k1", Change::Delete));
        assert!(!attempted.contains("k1", Change::Put { value: 7 }));
        assert_eq!(attempted.times("k2", Change::Put { value: 7 }), 2);
        assert_eq!(attempted.times("k1", Change::Delete), 1);
        attempted.insert("k1".into(), Change::Put { value: 7 });
        assert!(attempted.contains("k1", Change::Put { value: 7 }));
        attempted.insert("k1".into(), Change::Delete);
        assert_eq!(attempted.times("k1", Change::Delete), 2);
    }
}
