//! The checkpoint side of ingestion: what a worker read that the dataflow has not
//! applied yet, its answers to checkpoint requests, and read positions to commit.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use timely::dataflow::ProbeHandle;

use super::reading::{Admitted, Reading};
use crate::connectors::PartitionPosition;
use crate::event::{Millis, Record, Rejected};
use crate::runtime::checkpoint::{IngestPart, PartitionState};
use crate::runtime::Accounting;

/// Records what one worker's ingestion needs for checkpoints.
///
/// A checkpoint at frontier `F` needs, from every worker, where its partitions stand and
/// every record it read that entered (or was rejected) at `F` or later: those have no
/// effect in the dedup snapshots at `F`. Which `F` will be asked is not known when a
/// record is read, but no request is ever below the control stream's frontier, so the
/// recorder keeps the records at or after that frontier (and after any request heard
/// but not answered yet).
pub(super) struct Recorder {
    worker: usize,
    heard: Rc<RefCell<Vec<Millis>>>,
    control: ProbeHandle<Millis>,
    /// Requests heard and not answered yet, ascending.
    pending: Vec<Millis>,
    /// Records admitted, with their entry times, not yet below the trim point.
    events: Vec<(Record, Millis)>,
    /// Records rejected, with their times, not yet below the trim point.
    rejects: Vec<(Millis, Rejected)>,
    /// Ingestion counts of everything this worker read.
    accounting: Accounting,
    /// Positions of the answered checkpoints, to commit once each is durable.
    commits: VecDeque<(Millis, Vec<(usize, PartitionPosition)>)>,
}

impl Recorder {
    pub(super) fn new(
        worker: usize,
        heard: Rc<RefCell<Vec<Millis>>>,
        control: ProbeHandle<Millis>,
    ) -> Recorder {
        Recorder {
            worker,
            heard,
            control,
            pending: Vec::new(),
            events: Vec::new(),
            rejects: Vec::new(),
            accounting: Accounting::default(),
            commits: VecDeque::new(),
        }
    }

    /// Keeps a record read, with its time.
    pub(super) fn record(&mut self, admitted: &Admitted) {
        match admitted {
            Admitted::Enter(record, entry) => self.events.push((*record, *entry)),
            Admitted::Rejected(time, rejected) => self.rejects.push((*time, rejected.clone())),
        }
    }

    /// Adds an activation's counts.
    pub(super) fn count(&mut self, local: &Accounting) {
        self.accounting.add(local);
    }

    /// Takes the requests heard on the control stream since the last call.
    pub(super) fn hear(&mut self) {
        let mut heard = self.heard.borrow_mut();
        if !heard.is_empty() {
            self.pending.append(&mut heard);
            self.pending.sort_unstable();
            self.pending.dedup();
        }
    }

    /// The parts answering the requests at or below `frontier`, the worker's frontier:
    /// every record read from here on enters at `frontier` or later.
    pub(super) fn answer(&mut self, frontier: Millis, partitions: &[Reading]) -> Vec<IngestPart> {
        let mut parts = Vec::new();
        while self.pending.first().is_some_and(|f| *f <= frontier) {
            let at = self.pending.remove(0);
            parts.push(self.part(at, false, partitions));
        }
        parts
    }

    /// The part of a worker that has read all its partitions: it serves every request to
    /// come (and every one heard but not answered), each taking the records at or after
    /// its own frontier.
    pub(super) fn last_part(&mut self, partitions: &[Reading]) -> IngestPart {
        let from = self.trim_point().unwrap_or(Millis::MAX);
        self.pending.clear();
        self.part(from, true, partitions)
    }

    fn part(&mut self, frontier: Millis, last: bool, partitions: &[Reading]) -> IngestPart {
        let states: Vec<(usize, PartitionState)> = partitions
            .iter()
            .enumerate()
            .filter_map(|(i, reading)| reading.state().map(|state| (i, state)))
            .collect();
        if !last {
            let positions = states.iter().map(|(i, s)| (*i, s.position)).collect();
            self.commits.push_back((frontier, positions));
        }
        IngestPart {
            worker: self.worker,
            frontier,
            last,
            partitions: states.into_iter().map(|(_, state)| state).collect(),
            accounting: self.accounting,
            events: self
                .events
                .iter()
                .filter(|(_, entry)| *entry >= frontier)
                .copied()
                .collect(),
            rejects: self
                .rejects
                .iter()
                .filter(|(time, _)| *time >= frontier)
                .cloned()
                .collect(),
        }
    }

    /// The least time a request may still come for: the control stream's frontier, or
    /// a request heard but not answered. `None`: no request will come.
    fn trim_point(&self) -> Option<Millis> {
        let control = self.control.with_frontier(|f| f.iter().next().copied());
        match (control, self.pending.first().copied()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets the records no request can need any more. Call after [`Recorder::hear`].
    pub(super) fn trim(&mut self) {
        let keep = self.trim_point().unwrap_or(Millis::MAX);
        self.events.retain(|(_, entry)| *entry >= keep);
        self.rejects.retain(|(time, _)| *time >= keep);
    }

    /// Commits the positions of every answered checkpoint at or below `durable` (the
    /// frontier of the last durable checkpoint) to the partitions that commit positions.
    pub(super) fn commit(&mut self, durable: Option<Millis>, partitions: &mut [Reading]) {
        while self
            .commits
            .front()
            .is_some_and(|(at, _)| durable.is_none_or(|d| *at <= d))
        {
            if let Some((_, positions)) = self.commits.pop_front() {
                for (i, position) in positions {
                    if let Some(reading) = partitions.get_mut(i) {
                        reading.partition.checkpointed(position);
                    }
                }
            }
        }
    }
}
