//! The Kafka source: one partition of one topic per [`Partition`], read by the worker
//! that owns it, offsets committed once the records' effects reached every sink.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::backlog::HighWatermark;
use super::config::{KafkaSourceSpec, StartPosition};
use super::reach::reach;
use crate::connectors::{owner, Arrival, Partition, PartitionPosition, Poll, Source};
use crate::declare::Schema;
use crate::event::{raw_text, DeadLetter, Invalid, Millis, Origin, StreamKind};
use crate::format::{Decoder, Framing};

/// How long a metadata or offset request to the broker may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);
/// Commit progress is tracked in steps of this much event time, so the list of pending
/// commits stays short (a step is committed once the written frontier passed its end).
const COMMIT_STEP: Millis = 100;

/// Reads one topic per stream; each partition of each topic is owned by one worker.
///
/// Partitions are listed topic by topic (bids, impressions, clicks, conversions), by
/// partition number, and dealt to workers with [`owner`]. A worker's consumer gets a
/// manual assignment (no group rebalancing: ownership is fixed by the
/// cluster shape); the group id is used for committed offsets only. A worker reads all
/// its partitions with one consumer (one set of librdkafka broker threads), each
/// partition from its own queue.
#[derive(Clone, Debug)]
pub struct KafkaSource {
    spec: KafkaSourceSpec,
    schema: Arc<Schema>,
    /// Whether the brokers answered, found out by the first worker of the process to
    /// ask; the others wait for it (one set of messages per process, not per worker).
    reached: Arc<Mutex<Option<Result<(), String>>>>,
}

impl KafkaSource {
    /// A source over the topics of `spec`, decoding payloads as `schema` declares the
    /// streams. Nothing is contacted until [`Source::partitions`].
    pub fn new(spec: KafkaSourceSpec, schema: Arc<Schema>) -> KafkaSource {
        KafkaSource {
            spec,
            schema,
            reached: Arc::default(),
        }
    }

    /// Waits, once per process, until the brokers answer `consumer` (see [`reach`]).
    fn reach(&self, consumer: &BaseConsumer) -> Result<(), std::io::Error> {
        let mut reached = self
            .reached
            .lock()
            .map_err(|_| io("a worker failed while reaching the brokers"))?;
        let outcome = reached.get_or_insert_with(|| {
            reach(
                consumer.client(),
                "kafka source",
                &self.spec.brokers,
                self.spec.connect_timeout.to_std(),
            )
        });
        outcome.clone().map_err(io)
    }

    /// The settings.
    pub fn spec(&self) -> &KafkaSourceSpec {
        &self.spec
    }

    /// Every `(stream, topic, partition)` of the source, in dealing order.
    ///
    /// # Errors
    /// The broker cannot be reached, or a topic does not exist.
    pub fn all_partitions(&self) -> Result<Vec<(StreamKind, String, i32)>, std::io::Error> {
        let consumer: BaseConsumer = self.spec.consumer_config().create().map_err(io)?;
        self.reach(&consumer)?;
        let mut all = Vec::new();
        for (kind, topic) in self.spec.topics() {
            let metadata = consumer
                .fetch_metadata(Some(&topic), BROKER_TIMEOUT)
                .map_err(|e| io(format!("topic `{topic}` at {}: {e}", self.spec.brokers)))?;
            let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Err(io(format!("topic `{topic}` not found")));
            };
            if let Some(error) = found.error() {
                return Err(io(format!("topic `{topic}`: {error:?}")));
            }
            if found.partitions().is_empty() {
                return Err(io(format!("topic `{topic}` has no partitions")));
            }
            let mut numbers: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
            numbers.sort_unstable();
            all.extend(numbers.into_iter().map(|p| (kind, topic.clone(), p)));
        }
        Ok(all)
    }

    /// Where a partition starts reading, from `consumer`'s view of the broker; also its
    /// end offset at this moment.
    fn start_of(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        partition: i32,
    ) -> Result<(i64, i64), std::io::Error> {
        let fail = |e: &dyn std::fmt::Display| io(format!("{topic}/{partition}: {e}"));
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, BROKER_TIMEOUT)
            .map_err(|e| fail(&e))?;
        let start = match self.spec.start {
            StartPosition::Earliest => low,
            StartPosition::Latest => high,
            StartPosition::Committed => {
                let mut wanted = TopicPartitionList::new();
                wanted.add_partition(topic, partition);
                let committed = consumer
                    .committed_offsets(wanted, BROKER_TIMEOUT)
                    .map_err(|e| fail(&e))?;
                found_offset(committed, topic, partition).map_or(low, |o| o.clamp(low, high))
            }
            StartPosition::Timestamp(ms) => {
                let mut wanted = TopicPartitionList::new();
                wanted
                    .add_partition_offset(topic, partition, Offset::Offset(ms as i64))
                    .map_err(|e| fail(&e))?;
                let found = consumer
                    .offsets_for_times(wanted, BROKER_TIMEOUT)
                    .map_err(|e| fail(&e))?;
                // No message at or after the time: start at the end.
                found_offset(found, topic, partition).map_or(high, |o| o.clamp(low, high))
            }
        };
        Ok((start, high))
    }

    /// Opens `owned` with ONE consumer: every partition is assigned to it, and each gets
    /// its own partition queue (so each keeps its own order and watermark). The queues are
    /// split off before the assignment, so no message of an owned partition reaches the
    /// consumer's main queue (librdkafka keeps an application-set forwarding on assign).
    fn open_all(
        &self,
        owned: Vec<(StreamKind, String, i32)>,
    ) -> Result<Vec<KafkaPartition>, std::io::Error> {
        if owned.is_empty() {
            return Ok(Vec::new());
        }
        let consumer: Arc<BaseConsumer> =
            Arc::new(self.spec.consumer_config().create().map_err(io)?);
        let mut assignment = TopicPartitionList::new();
        let mut partitions = Vec::with_capacity(owned.len());
        for (kind, topic, partition) in owned {
            let name = format!("{topic}/{partition}");
            let (start, high) = self.start_of(&consumer, &topic, partition)?;
            tracing::debug!(partition = %name, high, start, "kafka partition opened");
            let queue = consumer
                .split_partition_queue(&topic, partition)
                .ok_or_else(|| io(format!("{name}: no partition queue")))?;
            assignment
                .add_partition_offset(&topic, partition, Offset::Offset(start))
                .map_err(|e| io(format!("{name}: {e}")))?;
            partitions.push(KafkaPartition {
                name,
                topic,
                partition,
                decoder: Decoder::new(
                    Arc::clone(self.schema.stream(kind)),
                    self.spec.format,
                    Framing::Messages,
                ),
                queue,
                consumer: Arc::clone(&consumer),
                end: self.spec.stop_at_end.then_some(high),
                next: start,
                idle_timeout: self.spec.idle_timeout.to_std(),
                max_ts: None,
                floor: 0,
                pending: VecDeque::new(),
                high: HighWatermark::default(),
                committed: start,
            });
        }
        consumer.assign(&assignment).map_err(io)?;
        Ok(partitions)
    }
}

impl Source for KafkaSource {
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        let owned = self
            .all_partitions()?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| owner(*i, workers) == worker)
            .map(|(_, p)| p)
            .collect();
        Ok(self
            .open_all(owned)?
            .into_iter()
            .map(|p| Box::new(p) as Box<dyn Partition>)
            .collect())
    }
}

/// One assigned topic partition.
pub struct KafkaPartition {
    name: String,
    topic: String,
    partition: i32,
    /// Decodes the payloads by the stream's declaration.
    decoder: Decoder,
    /// This partition's messages, split off the worker's consumer.
    queue: PartitionQueue<DefaultConsumerContext>,
    /// The worker's consumer, shared by all its partitions of this source: polled for
    /// callbacks (errors, commit results), used for positions and commits.
    consumer: Arc<BaseConsumer>,
    /// With `stop_at_end`: the end offset at the start; the partition is done there.
    end: Option<i64>,
    /// The offset after the last message read.
    next: i64,
    idle_timeout: Duration,
    /// The greatest event time read so far.
    max_ts: Option<Millis>,
    /// The watermark this partition was caught up to while idle: records read after
    /// enter at or after it. With `max_ts`, it bounds the entry time of every record read
    /// so far (`max(ts, watermark)`, the watermark being below the greater of the two).
    floor: Millis,
    /// `(offset after, max_ts rounded up to a COMMIT_STEP)`, ascending in both: the
    /// offset can be committed once the written frontier passed the time.
    pending: VecDeque<(i64, Millis)>,
    /// The partition's high watermark, for [`Partition::backlog`].
    high: HighWatermark,
    /// The offset committed last.
    committed: i64,
}

/// A payload of partition `name` that is no valid record.
fn dead_letter(
    decoder: &Decoder,
    name: &str,
    offset: i64,
    raw: &[u8],
    reason: &Invalid,
) -> Arrival {
    Arrival::DeadLetter(DeadLetter {
        stream: decoder.schema().kind(),
        origin: Origin {
            source: name.to_owned(),
            position: offset.max(0) as u64,
        },
        raw: raw_text(raw),
        reason: reason.to_string(),
    })
}

/// Decodes one payload of partition `name`; a record without its event time takes the
/// message timestamp.
fn decode(
    decoder: &mut Decoder,
    name: &str,
    offset: i64,
    payload: Option<&[u8]>,
    timestamp: Option<i64>,
) -> Arrival {
    let Some(bytes) = payload else {
        return dead_letter(
            decoder,
            name,
            offset,
            b"",
            &Invalid::Json("empty message".into()),
        );
    };
    let fallback = timestamp.and_then(|t| Millis::try_from(t).ok());
    match decoder.decode(bytes, fallback) {
        Ok(Some(record)) => Arrival::Event {
            record,
            position: offset.max(0) as u64,
        },
        Ok(None) => dead_letter(
            decoder,
            name,
            offset,
            bytes,
            &Invalid::Csv("empty line".into()),
        ),
        Err(reason) => dead_letter(decoder, name, offset, bytes, &reason),
    }
}

impl KafkaPartition {
    fn note_read(&mut self, offset: i64, ts: Option<Millis>) {
        if let Some(ts) = ts {
            self.max_ts = Some(self.max_ts.map_or(ts, |max| max.max(ts)));
        }
        self.next = offset + 1;
        let step = self
            .max_ts
            .unwrap_or(0)
            .max(self.floor)
            .div_ceil(COMMIT_STEP)
            .saturating_mul(COMMIT_STEP);
        match self.pending.back_mut() {
            Some(last) if last.1 == step => last.0 = self.next,
            _ => self.pending.push_back((self.next, step)),
        }
    }

    /// Serves the shared consumer's main queue (callbacks, errors). No message of an
    /// owned partition is delivered there (each has its own queue); one that is would be
    /// a bug, reported as an error rather than dropped.
    fn serve_main_queue(&self) -> Result<(), std::io::Error> {
        while let Some(result) = self.consumer.poll(Duration::ZERO) {
            match result {
                Ok(message) => {
                    return Err(io(format!(
                        "{}/{} offset {}: message on the consumer's main queue, not its partition queue",
                        message.topic(),
                        message.partition(),
                        message.offset()
                    )));
                }
                Err(error) => {
                    tracing::warn!(partition = %self.name, %error, "kafka consumer error");
                }
            }
        }
        Ok(())
    }

    fn at_end(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }

    /// The offset that a restart with `start = committed` would read from.
    pub fn committed(&self) -> i64 {
        self.committed
    }
}

/// The offset that `list`, a broker's answer, gives for the partition. The list is
/// consumed here, so it is dropped before its consumer (librdkafka hangs otherwise).
fn found_offset(list: TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match list.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    }
}

fn io(error: impl ToString) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

impl Partition for KafkaPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn backlog(&self) -> Option<u64> {
        let high = self.high.get(&self.consumer, &self.topic, self.partition)?;
        Some(high.saturating_sub(self.next).max(0) as u64)
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        self.serve_main_queue()?;
        let mut produced = 0;
        while produced < max {
            if self.at_end() {
                return Ok(Poll::Done);
            }
            let Some(message) = self.queue.poll(Duration::ZERO) else {
                // Past the last record (e.g. a transaction marker at the end)?
                if let Some(end) = self.end {
                    let position = self.consumer.position().ok().and_then(|p| {
                        p.find_partition(&self.topic, self.partition)
                            .map(|e| e.offset())
                    });
                    if let Some(Offset::Offset(next)) = position {
                        if next >= end {
                            tracing::debug!(partition = %self.name, next, end, "kafka partition at its end");
                            self.next = self.next.max(next);
                            return Ok(Poll::Done);
                        }
                    }
                }
                break;
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(partition = %self.name, %error, "kafka consumer error");
                    break;
                }
            };
            let offset = message.offset();
            let timestamp = message.timestamp().to_millis();
            let arrival = decode(
                &mut self.decoder,
                &self.name,
                offset,
                message.payload(),
                timestamp,
            );
            drop(message);
            let ts = match &arrival {
                Arrival::Event { record, .. } => Some(record.ts),
                Arrival::DeadLetter(_) => None,
            };
            self.note_read(offset, ts);
            out.push(arrival);
            produced += 1;
        }
        Ok(if produced > 0 {
            Poll::Ready
        } else {
            Poll::Idle
        })
    }

    fn idle_timeout(&self) -> Option<Duration> {
        Some(self.idle_timeout)
    }

    fn caught_up(&mut self, watermark: Millis) {
        self.floor = self.floor.max(watermark);
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.next.max(0) as u64,
            line: self.next.max(0) as u64,
        })
    }

    /// Reads from the checkpoint's offset, not the consumer group's.
    fn seek(&mut self, position: PartitionPosition) -> Result<(), std::io::Error> {
        let offset = position.offset as i64;
        self.consumer
            .seek(
                &self.topic,
                self.partition,
                Offset::Offset(offset),
                BROKER_TIMEOUT,
            )
            .map_err(|e| {
                io(format!(
                    "{}: cannot seek to offset {offset}: {e}",
                    self.name
                ))
            })?;
        tracing::debug!(partition = %self.name, offset, "kafka partition restored");
        self.next = offset;
        self.pending.clear();
        Ok(())
    }

    /// Commits the checkpoint's offset to the consumer group, for monitoring: a restart
    /// with a checkpoint reads from the checkpoint, not from the group's offset.
    fn checkpointed(&mut self, position: PartitionPosition) {
        self.commit(position.offset as i64);
    }

    fn written_through(&mut self, frontier: Option<Millis>) {
        let mut commit = None;
        while let Some(&(offset, time)) = self.pending.front() {
            if frontier.is_some_and(|f| time >= f) {
                break;
            }
            commit = Some(offset);
            self.pending.pop_front();
        }
        if let Some(offset) = commit {
            self.commit(offset);
        }
    }
}

impl KafkaPartition {
    /// Commits `offset` (asynchronously) to the consumer group, if it is new.
    fn commit(&mut self, offset: i64) {
        if offset <= self.committed {
            return;
        }
        let mut list = TopicPartitionList::new();
        if list
            .add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
            .is_ok()
        {
            tracing::debug!(partition = %self.name, offset, "kafka offset commit");
            match self.consumer.commit(&list, CommitMode::Async) {
                Ok(()) => self.committed = offset,
                Err(error) => {
                    tracing::warn!(partition = %self.name, %error, "kafka offset commit failed");
                }
            }
        }
    }
}
