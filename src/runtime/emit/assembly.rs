//! Putting a checkpoint together on the emitter: the parts from every worker and the
//! emitter's own state at the checkpoint's frontier.

use std::collections::BTreeMap;

use crate::dataflow::{DedupCounts, DedupSnapshot};
use crate::event::{Millis, StreamKind};
use crate::runtime::checkpoint::{Checkpoint, Groups, Identity, IngestPart, Part};
use crate::runtime::Accounting;

/// The parts received for one checkpoint frontier.
#[derive(Default)]
struct Collected {
    ingest: BTreeMap<usize, IngestPart>,
    dedup: Vec<(StreamKind, DedupSnapshot)>,
}

/// The checkpoint being put together, and the parts received so far.
pub(super) struct Assembly {
    identity: Identity,
    workers: usize,
    /// The frontier of the checkpoint requested and not yet handed to the writer.
    active: Option<Millis>,
    /// The emitter's state once the batch at the active frontier was written: the next
    /// sequence number and, per aggregate, the windows with rows that are not final.
    at_frontier: Option<(u64, Vec<Vec<Millis>>)>,
    collected: BTreeMap<Millis, Collected>,
    /// The last part of each worker that has read all its partitions.
    last: BTreeMap<usize, IngestPart>,
    /// What the runs before this one left (from the checkpoint this run restored): the
    /// parts count and hold this run's records only.
    earlier: Earlier,
}

/// What a restored checkpoint carries into the checkpoints of the run that restored it.
#[derive(Clone, Debug, Default)]
pub(super) struct Earlier {
    /// The accounting of the earlier runs.
    pub(super) accounting: Accounting,
    /// The records they read but had not applied: this run's ingestion never saw them, so
    /// a later checkpoint holds those of them at or after its frontier from here.
    pub(super) events: Vec<(crate::event::Record, Millis)>,
    /// Likewise, the records they rejected at or after the restored frontier.
    pub(super) rejects: Vec<(Millis, crate::event::Rejected)>,
}

impl Assembly {
    pub(super) fn new(identity: Identity, workers: usize, earlier: Earlier) -> Assembly {
        Assembly {
            identity,
            workers,
            active: None,
            at_frontier: None,
            collected: BTreeMap::new(),
            last: BTreeMap::new(),
            earlier,
        }
    }

    /// The identity checkpoints are written with.
    pub(super) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Starts putting together the checkpoint at `frontier`.
    pub(super) fn request(&mut self, frontier: Millis) {
        self.active = Some(frontier);
        self.at_frontier = None;
    }

    /// The active checkpoint's frontier while the emitter has not cut its batch yet.
    pub(super) fn needs_cut(&self) -> Option<Millis> {
        self.active.filter(|_| self.at_frontier.is_none())
    }

    /// The emitter wrote every batch up to the active frontier.
    pub(super) fn cut(&mut self, next_seq: u64, windows: Vec<Vec<Millis>>) {
        self.at_frontier = Some((next_seq, windows));
    }

    /// Gives the active checkpoint up (the run stops, or the emitter cannot cut there).
    pub(super) fn abandon(&mut self) {
        if let Some(frontier) = self.active.take() {
            self.forget_through(frontier);
        }
        self.at_frontier = None;
    }

    pub(super) fn add(&mut self, part: Part) {
        match part {
            Part::Ingest(part) if part.last => {
                self.last.insert(part.worker, *part);
            }
            Part::Ingest(part) => {
                let collected = self.collected.entry(part.frontier).or_default();
                collected.ingest.insert(part.worker, *part);
            }
            Part::Dedup(stream, snapshot) => {
                let collected = self.collected.entry(snapshot.frontier).or_default();
                collected.dedup.push((stream, snapshot));
            }
        }
    }

    fn forget_through(&mut self, frontier: Millis) {
        self.collected = self.collected.split_off(&(frontier + 1));
    }

    /// The active checkpoint, once every part has arrived and its batch is written.
    pub(super) fn take_complete(&mut self) -> Option<Checkpoint> {
        let frontier = self.active?;
        let (next_seq, windows) = self.at_frontier.as_ref()?;
        let collected = self.collected.get(&frontier)?;
        let all_dedup = collected.dedup.len() == StreamKind::ALL.len() * self.workers;
        let all_ingest = (0..self.workers)
            .all(|w| collected.ingest.contains_key(&w) || self.last.contains_key(&w));
        if !(all_dedup && all_ingest) {
            return None;
        }
        let (next_seq, windows) = (*next_seq, windows.clone());
        let collected = self.collected.remove(&frontier)?;
        let mut checkpoint = Checkpoint::complete(self.identity.clone(), next_seq);
        checkpoint.frontier = Some(frontier);
        checkpoint.windows = windows;
        checkpoint.accounting = self.earlier.accounting;
        // The earlier runs' records not applied yet: in time for this frontier or not.
        self.earlier.events.retain(|(_, entry)| *entry >= frontier);
        self.earlier.rejects.retain(|(time, _)| *time >= frontier);
        checkpoint
            .events
            .extend(self.earlier.events.iter().copied());
        checkpoint
            .rejects
            .extend(self.earlier.rejects.iter().cloned());
        for worker in 0..self.workers {
            let part = collected
                .ingest
                .get(&worker)
                .or_else(|| self.last.get(&worker));
            if let Some(part) = part {
                add_ingest(&mut checkpoint, part, frontier);
            }
        }
        for (stream, snapshot) in collected.dedup {
            add_dedup(&mut checkpoint.accounting, stream, &snapshot.counts);
            checkpoint.groups.extend(
                snapshot
                    .groups
                    .into_iter()
                    .map(|bytes| Groups { stream, bytes }),
            );
        }
        self.active = None;
        self.at_frontier = None;
        self.forget_through(frontier);
        Some(checkpoint)
    }
}

/// Adds one worker's ingestion: its partitions, counts, and records at or after
/// `frontier`.
fn add_ingest(checkpoint: &mut Checkpoint, part: &IngestPart, frontier: Millis) {
    checkpoint
        .partitions
        .extend(part.partitions.iter().cloned());
    checkpoint.accounting.add(&part.accounting);
    checkpoint.events.extend(
        part.events
            .iter()
            .filter(|(_, entry)| *entry >= frontier)
            .copied(),
    );
    checkpoint.rejects.extend(
        part.rejects
            .iter()
            .filter(|(time, _)| *time >= frontier)
            .cloned(),
    );
}

/// Adds a dedup operator's counts to the accounting of its stream.
fn add_dedup(accounting: &mut Accounting, stream: StreamKind, counts: &DedupCounts) {
    let to = accounting.stream_mut(stream);
    to.applied += counts.applied;
    to.duplicate += counts.duplicate;
    to.conflicting += counts.conflicting;
}
