//! A shard's queue of scheduled records, ordered by arrival key.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::malformed::Corruption;
use crate::event::{Event, Millis};

/// A record waiting for its arrival.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scheduled {
    /// An event.
    Event(Event),
    /// A broken copy of an event, rendered as text when it comes out.
    Malformed(Event, Corruption),
}

/// Records by arrival key, the earliest first; equal keys in order of scheduling.
///
/// The heap holds only small keys `(arrival, seq, slot)`; records stay put in a slab of
/// reused slots. A long queue (minutes of conversions at a high event rate) then costs
/// heap moves of 24 bytes, not of whole records, and no allocation once warm.
#[derive(Debug, Default)]
pub(super) struct Queue {
    keys: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    slots: Vec<Option<Scheduled>>,
    free: Vec<usize>,
    seq: u64,
}

impl Queue {
    /// Schedules `item` to come out at `arrival`.
    pub(super) fn push(&mut self, arrival: Millis, item: Scheduled) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(item);
                slot
            }
            None => {
                self.slots.push(Some(item));
                self.slots.len() - 1
            }
        };
        self.seq += 1;
        self.keys.push(Reverse((arrival, self.seq, slot)));
    }

    /// The earliest arrival key.
    pub(super) fn next_arrival(&self) -> Option<Millis> {
        self.keys.peek().map(|Reverse((arrival, _, _))| *arrival)
    }

    /// Takes the earliest record, with its arrival key.
    pub(super) fn pop(&mut self) -> Option<(Millis, Scheduled)> {
        let Reverse((arrival, _, slot)) = self.keys.pop()?;
        self.free.push(slot);
        self.slots[slot].take().map(|item| (arrival, item))
    }

    /// Number of records waiting.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no record is waiting.
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
