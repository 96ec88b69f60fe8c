//! Reading back how far the Kafka sink got: its last committed progress record.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::config::KafkaSinkSpec;
use super::sink::{OutputRecord, ProgressRecord};

/// How long reading the sink's topic back may take.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How many messages from the end of a partition are read first; the window grows
/// fourfold while it holds no progress record.
const FIRST_WINDOW: i64 = 512;

/// The last progress record committed to the sink's topic (the one with the greatest
/// `seq`), or `None` when the topic holds none (or does not exist yet).
///
/// # Errors
/// The broker cannot be reached or read, named in the message.
pub fn last_progress(spec: &KafkaSinkSpec) -> Result<Option<ProgressRecord>, String> {
    let consumer: BaseConsumer = spec
        .reader_config()
        .create()
        .map_err(|e| format!("cannot create a reader of `{}`: {e}", spec.topic))?;
    let metadata = consumer
        .fetch_metadata(Some(&spec.topic), READ_BACK_TIMEOUT)
        .map_err(|e| format!("brokers {}: topic `{}`: {e}", spec.brokers, spec.topic))?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == spec.topic) else {
        return Ok(None);
    };
    if topic.error().is_some() || topic.partitions().is_empty() {
        // No such topic yet: nothing was written.
        return Ok(None);
    }
    let mut last: Option<ProgressRecord> = None;
    for partition in topic.partitions().iter().map(|p| p.id()) {
        if let Some(found) = last_in_partition(&consumer, &spec.topic, partition)? {
            if last.as_ref().is_none_or(|l| found.seq > l.seq) {
                last = Some(found);
            }
        }
    }
    Ok(last)
}

/// The last progress record of one partition: reads a window at the end, widening it
/// towards the start until it holds one.
fn last_in_partition(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<Option<ProgressRecord>, String> {
    let name = format!("{topic}/{partition}");
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, READ_BACK_TIMEOUT)
        .map_err(|e| format!("{name}: {e}"))?;
    let mut window = FIRST_WINDOW;
    loop {
        let start = (high - window).max(low);
        if start >= high {
            return Ok(None);
        }
        let found = read_range(consumer, topic, partition, start, high)?;
        if found.is_some() || start == low {
            return Ok(found);
        }
        window = window.saturating_mul(4);
    }
}

/// The progress record with the greatest offset in `[start, high)` of a partition.
fn read_range(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: i64,
    high: i64,
) -> Result<Option<ProgressRecord>, String> {
    let name = format!("{topic}/{partition}");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| format!("{name}: {e}"))?;
    consumer.assign(&list).map_err(|e| format!("{name}: {e}"))?;
    let deadline = Instant::now() + READ_BACK_TIMEOUT;
    let mut found = None;
    loop {
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: reading offsets {start}..{high} back took more than {}s",
                READ_BACK_TIMEOUT.as_secs()
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(format!("{name}: {error}")),
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or_default();
                if let Ok(OutputRecord::Progress(progress)) = serde_json::from_slice(payload) {
                    found = Some(progress);
                }
                if message.offset() + 1 >= high {
                    break;
                }
            }
        }
    }
    Ok(found)
}
