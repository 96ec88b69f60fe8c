//! The built-in generator: deterministic, synthetic ad-funnel events with a realistic shape.
//!
//! A [`Generator`] makes a run of bids spread over partitions ([`Shard`]s). Each bid may
//! win an impression, an impression may get a click, a click may convert; dimensions are
//! Zipf-skewed. On top of the funnel it injects what real inputs do wrong, each with its
//! own fraction ([`GeneratorConfig`]): records out of order within max disorder, *late*
//! records (beyond max disorder, still applied), *too late* records (past their release
//! time, for the late output), identical and conflicting duplicates, orphans (children
//! whose parent is never sent) and malformed lines (for the dead-letter output). The late
//! and too-late lags are computed from the [`FunnelSettings`] of the run, so each record
//! lands in the category it was made for.
//!
//! The same seed and settings give the same records in the same order, per partition,
//! whatever else runs. A [`Shard`] is an iterator of [`Generated`] items (for writing
//! files or benchmarks); the generator is also a [`Source`] whose partitions return
//! malformed lines as dead letters with the CSV decoder's reason.

mod config;
mod fields;
mod malformed;
mod model;
mod queue;
mod sample;
mod shard;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use config::{Bounds, GeneratorConfig, MAX_CARDINALITY};
pub use shard::Shard;

use super::{Arrival, Partition, PartitionPosition, Poll, Source};
use crate::declare::{FunnelSettings, SettingsError};
use crate::event::{DeadLetter, Event, Invalid, Millis, Origin, Record, StreamKind};
use crate::format::{Decoder, Format, Framing};
use model::Model;

/// One record made by the generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generated {
    /// A valid event.
    Event(Event),
    /// A line of CSV text (canonical column order, no header) that fails decoding as a
    /// record of `stream`: a corrupted copy of a generated event.
    Malformed {
        /// The stream the line belongs to.
        stream: StreamKind,
        /// The raw line, without a newline.
        line: String,
    },
}

impl Generated {
    /// The stream the record belongs to.
    pub fn stream(&self) -> StreamKind {
        match self {
            Generated::Event(event) => event.kind(),
            Generated::Malformed { stream, .. } => *stream,
        }
    }
}

/// A deterministic generator of ad-funnel events, split into partitions.
///
/// # Examples
/// ```
/// use diffmill::connectors::generator::{Generated, Generator, GeneratorConfig};
/// use diffmill::declare::FunnelSettings;
/// use diffmill::event::Event;
///
/// let config = GeneratorConfig { bids: 10_000, partitions: 2, ..GeneratorConfig::default() };
/// let generator = Generator::new(config, &FunnelSettings::default()).unwrap();
///
/// // The same partition always yields the same records.
/// assert!(generator.partition(1).eq(generator.partition(1)));
///
/// // About 70 % of the bids win an impression.
/// let count = |wanted: fn(&Event) -> bool| {
///     (0..2)
///         .flat_map(|p| generator.partition(p))
///         .filter(|item| matches!(item, Generated::Event(e) if wanted(e)))
///         .count()
/// };
/// let bids = count(|e| matches!(e, Event::Bid(_)));
/// let impressions = count(|e| matches!(e, Event::Impression(_)));
/// assert!((9_950..=10_050).contains(&bids)); // orphans' bids withheld, duplicates added
/// assert!((6_700..=7_300).contains(&impressions));
/// ```
#[derive(Clone, Debug)]
pub struct Generator {
    model: Arc<Model>,
}

impl Generator {
    /// A generator of `config`, placing late and too-late records for `settings`.
    ///
    /// # Errors
    /// The first setting of either that cannot work.
    pub fn new(
        config: GeneratorConfig,
        settings: &FunnelSettings,
    ) -> Result<Generator, SettingsError> {
        config.validate()?;
        Ok(Generator {
            model: Arc::new(Model::new(config, settings)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.model.config
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.model.config.partitions
    }

    /// The records of partition `p`, from the start. A partition index beyond
    /// [`Generator::partition_count`] yields nothing.
    pub fn partition(&self, p: usize) -> Shard {
        Shard::new(Arc::clone(&self.model), p)
    }

    /// Event time of bid `index` (0-based over the whole run, in partition
    /// `index % partitions`): `start_ms + index * 1000 / rate`.
    pub fn bid_ts(&self, index: u64) -> Millis {
        self.model.bid_ts(index)
    }

    /// The declared streams the records are made for.
    pub fn schema(&self) -> &crate::declare::Schema {
        &self.model.schema
    }

    /// A generated event as a record of the declared streams: today's fields from the
    /// event, other declared fields drawn deterministically from the record's id.
    pub fn record(&self, event: &Event) -> Record {
        self.model.record(event)
    }

    /// A generated item as read from partition `source` at `position`: a record, or a
    /// malformed line as a dead letter with the decoder's reason.
    pub fn arrival(&self, item: Generated, source: &str, position: u64) -> Arrival {
        match item {
            Generated::Event(event) => Arrival::Event {
                record: self.record(&event),
                position,
            },
            Generated::Malformed { stream, line } => {
                let schema = std::sync::Arc::clone(self.model.schema.stream(stream));
                let mut decoder = Decoder::new(schema, Format::Csv, Framing::Messages);
                let reason = match decoder.decode(line.as_bytes(), None) {
                    // Unreachable by construction (tests check it), but a line that
                    // decodes is a record, not a dead letter.
                    Ok(Some(record)) => return Arrival::Event { record, position },
                    Ok(None) => Invalid::Csv("empty line".into()),
                    Err(reason) => reason,
                };
                Arrival::DeadLetter(DeadLetter {
                    stream,
                    origin: Origin {
                        source: source.to_owned(),
                        position,
                    },
                    raw: line,
                    reason: reason.to_string(),
                })
            }
        }
    }
}

impl Source for Generator {
    /// Partition `p` goes to worker `p % workers`; it is named `generator/<p>`.
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        if worker >= workers {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("worker {worker} of {workers} does not exist"),
            ));
        }
        Ok((0..self.partition_count())
            .filter(|&p| crate::connectors::owner(p, workers) == worker)
            .map(|p| {
                Box::new(ShardPartition {
                    name: format!("generator/{p}"),
                    generator: self.clone(),
                    shard: self.partition(p),
                    position: 0,
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

/// A shard as a source partition: positions count its records from 1.
struct ShardPartition {
    name: String,
    generator: Generator,
    shard: Shard,
    position: u64,
}

impl Partition for ShardPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        for _ in 0..max {
            let Some(item) = self.shard.next() else {
                return Ok(Poll::Done);
            };
            self.position += 1;
            let position = self.position;
            out.push(self.generator.arrival(item, &self.name, position));
        }
        Ok(if self.shard.is_finished() {
            Poll::Done
        } else {
            Poll::Ready
        })
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.position,
            line: self.position,
        })
    }

    /// Generates the shard again up to `position` (the generator is deterministic).
    fn seek(&mut self, position: PartitionPosition) -> Result<(), std::io::Error> {
        if position.offset < self.position {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "{}: cannot go back to record {}",
                    self.name, position.offset
                ),
            ));
        }
        while self.position < position.offset {
            if self.shard.next().is_none() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: has {} records, the checkpoint is at record {}",
                        self.name, self.position, position.offset
                    ),
                ));
            }
            self.position += 1;
        }
        Ok(())
    }
}
