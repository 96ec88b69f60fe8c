//! What dedup counts: records that started a group, duplicates, conflicting payloads.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What dedup saw: the dedup share of a stream's accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupCounts {
    /// Records that started a group (an id's first appearance while it is held).
    pub applied: u64,
    /// Records whose id was already held.
    pub duplicate: u64,
    /// Distinct payloads beyond the first, per group.
    pub conflicting: u64,
}

impl DedupCounts {
    /// Adds another set of counts to these.
    pub fn add(&mut self, other: &DedupCounts) {
        self.applied += other.applied;
        self.duplicate += other.duplicate;
        self.conflicting += other.conflicting;
    }
}

/// Shared dedup counters, added to once per operator activation.
#[derive(Debug, Default)]
pub struct DedupCounters {
    applied: AtomicU64,
    duplicate: AtomicU64,
    conflicting: AtomicU64,
    held: AtomicI64,
}

impl DedupCounters {
    /// The counts so far.
    pub fn snapshot(&self) -> DedupCounts {
        DedupCounts {
            applied: self.applied.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            conflicting: self.conflicting.load(Ordering::Relaxed),
        }
    }

    /// Ids whose state is held now, over all workers of the process.
    pub fn held(&self) -> i64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Adds counts: an activation's, or those of earlier runs restored from a checkpoint.
    pub fn add(&self, counts: &DedupCounts) {
        self.applied.fetch_add(counts.applied, Ordering::Relaxed);
        self.duplicate
            .fetch_add(counts.duplicate, Ordering::Relaxed);
        self.conflicting
            .fetch_add(counts.conflicting, Ordering::Relaxed);
    }

    pub(super) fn add_held(&self, delta: i64) {
        if delta != 0 {
            self.held.fetch_add(delta, Ordering::Relaxed);
        }
    }
}
