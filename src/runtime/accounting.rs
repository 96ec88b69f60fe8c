//! Counters that account for every input record: applied, duplicate, too late, dead-lettered.

use serde::{Deserialize, Serialize};

use crate::event::StreamKind;

/// What happened to the records of one stream.
///
/// Invariant checked by the tests: `read = applied + duplicate + too_late + dead_lettered`.
/// `late`, `attribution_only` and `conflicting` are sub-counts, not extra categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounts {
    /// Records read from the partitions (valid or not).
    pub read: u64,
    /// Records that failed to parse or validate.
    pub dead_lettered: u64,
    /// Valid records too late for every window they could affect (late output).
    pub too_late: u64,
    /// Entered records that started a dedup group (the id's first appearance).
    pub applied: u64,
    /// Entered records whose id was already present (identical or conflicting).
    pub duplicate: u64,
    /// Of the duplicates: distinct payloads beyond the first, per id.
    pub conflicting: u64,
    /// Entered records whose `ts` was below their partition's watermark (late but applied).
    pub late: u64,
    /// Entered parents whose own window was already final: they attribute children only.
    pub attribution_only: u64,
}

impl StreamCounts {
    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &StreamCounts) {
        self.read += other.read;
        self.dead_lettered += other.dead_lettered;
        self.too_late += other.too_late;
        self.applied += other.applied;
        self.duplicate += other.duplicate;
        self.conflicting += other.conflicting;
        self.late += other.late;
        self.attribution_only += other.attribution_only;
    }

    /// True when every record read is accounted for exactly once.
    pub fn balances(&self) -> bool {
        self.read == self.applied + self.duplicate + self.too_late + self.dead_lettered
    }
}

/// Counts for all four streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    /// Per stream, indexed by [`StreamKind::index`].
    pub streams: [StreamCounts; 4],
}

impl Accounting {
    /// The counts of one stream.
    pub fn stream(&self, kind: StreamKind) -> &StreamCounts {
        &self.streams[kind.index()]
    }

    /// Mutable counts of one stream.
    pub fn stream_mut(&mut self, kind: StreamKind) -> &mut StreamCounts {
        &mut self.streams[kind.index()]
    }

    /// Adds another accounting to this one.
    pub fn add(&mut self, other: &Accounting) {
        for (mine, theirs) in self.streams.iter_mut().zip(other.streams.iter()) {
            mine.add(theirs);
        }
    }

    /// The sum over all streams.
    pub fn total(&self) -> StreamCounts {
        let mut total = StreamCounts::default();
        for counts in &self.streams {
            total.add(counts);
        }
        total
    }

    /// True when every stream balances.
    pub fn balances(&self) -> bool {
        self.streams.iter().all(StreamCounts::balances)
    }
}
