//! The generator as an open-loop source: each record is handed to the dataflow at its
//! scheduled arrival, with event time read as wall-clock time.

use std::sync::Arc;

use super::clock::now_ms;
use super::tracker::Tracker;
use crate::connectors::generator::{Generated, Generator};
use crate::connectors::{owner, Arrival, Partition, Poll, Source};
use crate::declare::{FunnelSettings, Lateness};
use crate::event::Millis;
use crate::runtime::{Admission, PartitionClock};

/// A [`Generator`] whose partitions release each record when the wall clock (ms since
/// the epoch) reaches its arrival key, and end at `deadline`.
///
/// The schedule is fixed in advance (open loop): a record is due at its arrival key
/// whether or not the dataflow kept up, and its latency is measured from that key, not
/// from when the partition got round to handing it over. A slow dataflow therefore shows
/// as growing latency, never as a lower offered rate (no coordinated omission).
pub struct PacedSource {
    generator: Generator,
    settings: FunnelSettings,
    deadline: Millis,
    tracker: Arc<Tracker>,
}

impl PacedSource {
    /// Paces `generator` (whose `start_ms` should be about now) until `deadline`; every
    /// admitted record is registered with `tracker` at its entry time.
    pub fn new(
        generator: Generator,
        settings: FunnelSettings,
        deadline: Millis,
        tracker: Arc<Tracker>,
    ) -> PacedSource {
        PacedSource {
            generator,
            settings,
            deadline,
            tracker,
        }
    }
}

impl Source for PacedSource {
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        Ok((0..self.generator.partition_count())
            .filter(|&p| owner(p, workers) == worker)
            .map(|p| {
                Box::new(PacedPartition {
                    name: format!("paced/{p}"),
                    generator: self.generator.clone(),
                    shard: self.generator.partition(p),
                    pending: None,
                    deadline: self.deadline,
                    position: 0,
                    clock: PartitionClock::with_future_skew(
                        self.settings.max_disorder,
                        self.settings.max_future_skew,
                    ),
                    lateness: self.settings.lateness,
                    tracker: Arc::clone(&self.tracker),
                    entries: Vec::new(),
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

/// One paced shard.
struct PacedPartition {
    name: String,
    generator: Generator,
    shard: crate::connectors::generator::Shard,
    /// The next record, not yet due.
    pending: Option<(Millis, Generated)>,
    deadline: Millis,
    position: u64,
    /// A copy of the clock ingestion keeps for this partition: the same records in the
    /// same order give the same decisions, so it knows each record's entry time.
    clock: PartitionClock,
    lateness: Lateness,
    tracker: Arc<Tracker>,
    /// `(entry, scheduled)` of the records handed over in this poll.
    entries: Vec<(Millis, Millis)>,
}

impl Partition for PacedPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        let now = now_ms();
        let mut poll = Poll::Idle;
        let mut handed = 0u64;
        for _ in 0..max {
            let Some((scheduled, item)) =
                self.pending.take().or_else(|| self.shard.next_scheduled())
            else {
                poll = Poll::Done;
                break;
            };
            if scheduled > self.deadline {
                poll = Poll::Done;
                break;
            }
            if scheduled > now {
                self.pending = Some((scheduled, item));
                break;
            }
            poll = Poll::Ready;
            handed += 1;
            self.position += 1;
            let arrival = self.generator.arrival(item, &self.name, self.position);
            if let Arrival::Event { record, .. } = &arrival {
                let admitted = self.clock.admit(&self.lateness, (record.stream, record.ts));
                if let Admission::Enter { entry, .. } = admitted {
                    self.entries.push((entry, scheduled));
                }
            }
            out.push(arrival);
        }
        self.tracker.handed(&mut self.entries, handed, now_ms());
        Ok(poll)
    }

    /// Records handed over so far: enough for a checkpoint to say where the partition
    /// stands (a bench never resumes, so it cannot seek).
    fn position(&self) -> Option<crate::connectors::PartitionPosition> {
        Some(crate::connectors::PartitionPosition {
            offset: self.position,
            line: self.position,
        })
    }
}
