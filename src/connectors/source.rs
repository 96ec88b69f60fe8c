//! The source contract: partitions that yield records, errors as data, and progress.

use serde::{Deserialize, Serialize};

use crate::event::{DeadLetter, Record};

/// Where a partition stands after the last record it returned: enough to reopen it at
/// the next record. Checkpoints keep one per partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionPosition {
    /// Where to reopen the transport: bytes read (files), the next message's offset
    /// (Kafka), records read (the generator, memory).
    pub offset: u64,
    /// The position number of the last record read (its line for files), so that the
    /// positions of the records that follow continue from it.
    pub line: u64,
}

/// One record read from a partition: a valid record with its position, or a dead letter.
///
/// Decoding and validation happen in the partition (with the decoding layer,
/// `crate::format`, by the stream's declaration), so bad input reaches the runtime as
/// data, never as a panic or an error that stops the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A valid record and its position in the partition (line number or offset).
    Event {
        /// The record.
        record: Record,
        /// Its position, for the late output.
        position: u64,
    },
    /// A record that failed to parse or validate.
    DeadLetter(DeadLetter),
}

/// What a poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Records were appended (or more may be available right away).
    Ready,
    /// Nothing is available now; try again later.
    Idle,
    /// The partition is finished: no record will follow. A finite input closes at its
    /// end, which lets its watermark complete every window.
    Done,
}

/// An ordered partition of a source: a file, a Kafka partition, a generator shard.
///
/// Contract: records come out in the partition's own order, which defines each record's
/// lateness (the partition's watermark is `max ts seen − max_disorder`, docs/design.md §3).
/// Every record read is returned exactly once, as an event or a dead letter.
/// `poll` must not block for long: a partition with nothing to give returns `Idle`.
pub trait Partition: Send {
    /// A name for messages and for the origin of rejected records.
    fn name(&self) -> &str;

    /// Appends up to `max` arrivals to `out`.
    ///
    /// # Errors
    /// A failure of the transport (an unreadable file, a lost broker) that stops the run.
    /// Bad records are not errors: they are returned as [`Arrival::DeadLetter`].
    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error>;

    /// How long the partition may deliver nothing (wall clock) before it stops holding
    /// the frontier back (docs/design.md §3). `None` (the default): it always holds it, as a
    /// finite input that is still being read must.
    fn idle_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// The partition was idle past its timeout and its watermark was moved up to
    /// `watermark` (records read later enter at or after it). The default does nothing.
    fn caught_up(&mut self, _watermark: crate::event::Millis) {}

    /// Messages available in the partition beyond the read position, when the transport
    /// knows it (Kafka: the partition's high watermark minus the position, its consumer
    /// lag). The default: unknown. Must not block: a cached value will do.
    fn backlog(&self) -> Option<u64> {
        None
    }

    /// Every record that entered the dataflow at a time below `frontier` (`None`: every
    /// record) has its effect in every sink. A source that commits read positions (Kafka
    /// offsets) commits up to there. The default does nothing.
    fn written_through(&mut self, _frontier: Option<crate::event::Millis>) {}

    /// Where the partition stands now, after the last record it returned. `None` (the
    /// default) when it cannot be reopened there; a run that writes checkpoints refuses
    /// such a partition.
    fn position(&self) -> Option<PartitionPosition> {
        None
    }

    /// Moves the partition to `position`, taken from an earlier
    /// [`Partition::position`] of the same partition: the next poll returns the record
    /// after it. Called before the first poll, when a run restores a checkpoint.
    ///
    /// # Errors
    /// The partition cannot be moved there (the default: it cannot be moved at all).
    fn seek(&mut self, _position: PartitionPosition) -> Result<(), std::io::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "partition `{}` cannot be reopened at a position",
                self.name()
            ),
        ))
    }

    /// A checkpoint that holds this partition at `position` is durable: a restart will
    /// never read before it. A source that commits read positions for others to see
    /// (Kafka consumer-group offsets) commits it. The default does nothing.
    fn checkpointed(&mut self, _position: PartitionPosition) {}
}

/// The worker that owns partition `partition` of a source among `workers` workers:
/// `partition % workers`. Every built-in source deals its partitions this way, so each
/// partition is read by exactly one worker of the cluster.
pub fn owner(partition: usize, workers: usize) -> usize {
    partition % workers
}

/// Valid records (or events of the default declaration) as the arrivals of one
/// partition, each at its 1-based index as position.
pub fn positioned<R: Into<Record>>(records: Vec<R>) -> Vec<Arrival> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Arrival::Event {
            record: record.into(),
            position: i as u64 + 1,
        })
        .collect()
}

/// A source: a set of partitions, divided among all workers of a run.
pub trait Source: Send + Sync {
    /// The partitions that worker `worker` of `workers` owns. Every partition of the
    /// source is owned by exactly one worker, so each record is read once in the cluster.
    ///
    /// # Errors
    /// A failure to open the partitions (e.g. a missing file).
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error>;
}
