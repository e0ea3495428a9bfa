//! The dirty byte ranges of one file: what was written since its last fsync.

use std::collections::BTreeMap;

/// The most dirty ranges one file keeps.
// Bounds memory: a writer of many small scattered writes (a database page file) would
// otherwise grow the set without bound between fsyncs. Past the cap the ranges are merged
// into one covering range, so more is copied at the next fsync, never less.
pub const MAX_RANGES: usize = 65_536;

/// Disjoint, non-touching half-open byte ranges `[start, end)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirtyRanges {
    /// start → end; adjacent or overlapping ranges are always merged on insert.
    ranges: BTreeMap<u64, u64>,
}

impl DirtyRanges {
    /// Marks `[start, end)` dirty, merging it with every range it overlaps or touches.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.ranges.range(start..=end).next() {
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
        if self.ranges.len() > MAX_RANGES {
            self.collapse();
        }
    }

    /// Adds every range of `other` (a failed sync gives its ranges back this way).
    pub fn merge(&mut self, other: &DirtyRanges) {
        for (start, end) in other.iter() {
            self.insert(start, end);
        }
    }

    /// Forgets everything at or past `len`: the file was truncated there.
    pub fn truncate(&mut self, len: u64) {
        let beyond: Vec<u64> = self.ranges.range(len..).map(|(&s, _)| s).collect();
        for s in beyond {
            self.ranges.remove(&s);
        }
        if let Some((_, e)) = self.ranges.range_mut(..len).next_back() {
            *e = (*e).min(len);
        }
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// How many disjoint ranges there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether nothing is dirty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of dirty bytes.
    pub fn bytes(&self) -> u64 {
        self.iter().map(|(s, e)| e - s).sum()
    }

    fn collapse(&mut self) {
        let first = self.ranges.keys().next().copied();
        let last = self.ranges.values().next_back().copied();
        self.ranges.clear();
        if let (Some(start), Some(end)) = (first, last) {
            self.ranges.insert(start, end);
        }
    }
}
