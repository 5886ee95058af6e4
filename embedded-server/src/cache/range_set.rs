//! A set of half-open byte ranges `[start, end)`, kept sorted and merged.
//!
//! The cache tracks two of these per resource: the bytes written to its data file (what a reader
//! may serve) and the bytes recorded durably in the index (what survives a crash). Both are small
//! (a handful of runs per resource), so a sorted `Vec` beats any tree; every operation is a scan.

use std::fmt;

/// Sorted, non-overlapping, non-adjacent half-open byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    runs: Vec<(u64, u64)>,
}

impl RangeSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `[start, end)`, merging with touching or overlapping runs; returns how many bytes
    /// were not present before.
    pub(crate) fn insert(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let before = self.len();
        let (mut start, mut end) = (start, end);
        // First run that ends at or after `start` (it may touch or overlap the new one).
        let first = self.runs.partition_point(|&(_, e)| e < start);
        let mut last = first;
        while last < self.runs.len() && self.runs[last].0 <= end {
            start = start.min(self.runs[last].0);
            end = end.max(self.runs[last].1);
            last += 1;
        }
        self.runs.splice(first..last, std::iter::once((start, end)));
        self.len() - before
    }

    /// Removes everything.
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
    }

    /// The end of the run containing `pos`, if `pos` is present.
    pub(crate) fn run_end(&self, pos: u64) -> Option<u64> {
        let i = self.runs.partition_point(|&(_, e)| e <= pos);
        match self.runs.get(i) {
            Some(&(s, e)) if s <= pos => Some(e),
            _ => None,
        }
    }

    /// Whether `pos` is present.
    pub(crate) fn contains(&self, pos: u64) -> bool {
        self.run_end(pos).is_some()
    }

    /// Whether all of `[start, end)` is present (an empty range always is).
    pub(crate) fn covers(&self, start: u64, end: u64) -> bool {
        start >= end || self.run_end(start).is_some_and(|e| e >= end)
    }

    /// The start of the first run that begins after `pos`, if any.
    pub(crate) fn next_start_after(&self, pos: u64) -> Option<u64> {
        self.runs.iter().map(|&(s, _)| s).find(|&s| s > pos)
    }

    /// Total number of bytes present.
    pub(crate) fn len(&self) -> u64 {
        self.runs.iter().map(|&(s, e)| e - s).sum()
    }

    /// The runs, in order.
    pub(crate) fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }

    /// Keeps only bytes below `limit` (used when a data file turns out shorter than recorded).
    pub(crate) fn truncate(&mut self, limit: u64) {
        self.runs.retain(|&(s, _)| s < limit);
        if let Some(last) = self.runs.last_mut() {
            last.1 = last.1.min(limit);
        }
    }

    /// Parses the index's text form, `"0-100,200-300"`; `None` if it is malformed.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut set = Self::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (s, e) = part.split_once('-')?;
            let (s, e) = (s.parse::<u64>().ok()?, e.parse::<u64>().ok()?);
            if s >= e {
                return None;
            }
            set.insert(s, e);
        }
        Some(set)
    }
}

impl fmt::Display for RangeSet {
    /// The text form stored in the index: half-open runs, `"0-100,200-300"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (s, e)) in self.runs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{s}-{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_touching_and_overlapping_runs() {
        let mut set = RangeSet::new();
        set.insert(10, 20);
        set.insert(30, 40);
        set.insert(20, 25);
        assert_eq!(set.runs(), &[(10, 25), (30, 40)]);
        assert_eq!(set.insert(5, 35), 10);
        assert_eq!(set.runs(), &[(5, 40)]);
        set.insert(50, 50);
        assert_eq!(set.runs(), &[(5, 40)]);
        set.insert(0, 1);
        assert_eq!(set.runs(), &[(0, 1), (5, 40)]);
        assert_eq!(set.len(), 36);
    }

    #[test]
    fn queries() {
        let set = RangeSet::parse("0-10,20-30").unwrap();
        assert_eq!(set.run_end(0), Some(10));
        assert_eq!(set.run_end(9), Some(10));
        assert_eq!(set.run_end(10), None);
        assert_eq!(set.run_end(25), Some(30));
        assert!(set.covers(20, 30));
        assert!(!set.covers(5, 25));
        assert!(set.covers(40, 40));
        assert_eq!(set.next_start_after(5), Some(20));
        assert_eq!(set.next_start_after(20), None);
        assert!(set.contains(29) && !set.contains(30));
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let set = RangeSet::parse("0-10,20-30").unwrap();
        assert_eq!(set.to_string(), "0-10,20-30");
        assert_eq!(RangeSet::parse("").unwrap(), RangeSet::new());
        assert!(RangeSet::parse("5-5").is_none());
        assert!(RangeSet::parse("x-1").is_none());
        assert!(RangeSet::parse("1").is_none());
    }

    #[test]
    fn truncate_clamps_runs() {
        let mut set = RangeSet::parse("0-10,20-30").unwrap();
        set.truncate(25);
        assert_eq!(set.runs(), &[(0, 10), (20, 25)]);
        set.truncate(5);
        assert_eq!(set.runs(), &[(0, 5)]);
    }
}
