//! Producing generated events into the four topics (`diffmill gen --kafka`), and
//! creating the topics.

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use super::reach::reach;
use super::DEFAULT_CONNECT_TIMEOUT;
use crate::connectors::generator::{Generated, Generator};
use crate::event::StreamKind;
use crate::format::{csv_line, json_object, Format};

/// How long creating topics or flushing may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What [`produce`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Produced {
    /// Messages per stream (valid and malformed), in [`StreamKind::ALL`] order.
    pub messages: [u64; 4],
    /// Malformed messages among them.
    pub malformed: u64,
}

impl Produced {
    /// All messages.
    pub fn total(&self) -> u64 {
        self.messages.iter().sum()
    }
}

/// Waits for a future on this thread (the admin client resolves it from its own thread).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Creates `topics` with `partitions` partitions each (replication 1, `retention.ms = -1`)
/// unless they exist, once the brokers answer (waiting for them at most
/// [`DEFAULT_CONNECT_TIMEOUT`], saying so while they do not).
///
/// # Errors
/// The brokers could not be reached (the message names them), or refused (other than
/// "already exists").
pub fn create_topics(
    config: &ClientConfig,
    topics: &[String],
    partitions: i32,
) -> Result<(), String> {
    let brokers = config.get("bootstrap.servers").unwrap_or_default();
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e: KafkaError| e.to_string())?;
    reach(admin.inner(), "gen", brokers, DEFAULT_CONNECT_TIMEOUT)?;
    create(&admin, topics, partitions).map_err(|e| format!("at {brokers}: {e}"))
}

fn create(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[String],
    partitions: i32,
) -> Result<(), KafkaError> {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            // Generated event times may be long past: keep the messages whatever their
            // timestamps (time-based retention would delete them at once).
            NewTopic::new(t, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1")
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for result in block_on(admin.create_topics(new.iter(), &options))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(%topic, "cannot create the topic");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// Produces every record of `generator` into `topics` (one per stream, in
/// [`StreamKind::ALL`] order): generator partition `p` goes to Kafka partition
/// `p % partitions`, each message's timestamp is its event time (malformed messages
/// take the previous event's), payloads are `format` (CSV: one headerless record in
/// declaration order), records as the generator's settings declare the streams.
/// At most `rate` messages per second when given, else as fast as possible. Returns when
/// every message is acknowledged.
///
/// # Errors
/// A message could not be produced or flushed.
pub fn produce(
    generator: &Generator,
    config: &ClientConfig,
    topics: &[String; 4],
    partitions: i32,
    format: Format,
    rate: Option<u64>,
) -> Result<Produced, KafkaError> {
    let producer: BaseProducer = config.create()?;
    let mut produced = Produced::default();
    let started = Instant::now();
    for p in 0..generator.partition_count() {
        let partition = (p % partitions.max(1) as usize) as i32;
        // A malformed message takes the timestamp of the event before it.
        let mut last_ts = 0i64;
        for item in generator.partition(p) {
            let stream = item.stream();
            let (payload, ts) = match &item {
                Generated::Event(event) => {
                    let record = generator.record(event);
                    let schema = generator.schema().stream(stream);
                    let payload = match format {
                        Format::Json => json_object(schema, &record),
                        Format::Csv => csv_line(schema, &record),
                    };
                    (payload, Some(event.ts() as i64))
                }
                Generated::Malformed { line, .. } => {
                    produced.malformed += 1;
                    (line.clone(), Some(last_ts))
                }
            };
            last_ts = ts.unwrap_or(last_ts);
            let topic = &topics[stream.index()];
            let mut record = BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(&payload);
            if let Some(ts) = ts {
                record = record.timestamp(ts);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((error, _)) => return Err(error),
                }
            }
            produced.messages[stream.index()] += 1;
            producer.poll(Duration::ZERO);
            if let Some(rate) = rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(produced.total() as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    producer.flush(TIMEOUT)?;
    Ok(produced)
}

/// The four topic names for `prefix`, in [`StreamKind::ALL`] order.
pub fn topics_for(prefix: &str) -> [String; 4] {
    StreamKind::ALL.map(|kind| super::default_topic(prefix, kind))
}
