//! Kafka helpers of the tests: unique topic names, generated input, and a plain consumer
//! reading topics back (committed transactions only), the sink's messages as plain JSON.

use std::path::Path;
use std::time::{Duration, Instant};

use diffmill::connectors::kafka::topics_for;
use diffmill::connectors::Arrival;
use diffmill::declare::{FunnelSettings, Schema};
use diffmill::event::{raw_text, DeadLetter, Origin, StreamKind};
use diffmill::format::decode_json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::cli::{diffmill_ok, CsvAggregates};

/// Partitions of every input topic the tests produce.
pub const PARTITIONS: i32 = 4;
/// How long a metadata or offset request may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A topic prefix no other run uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{name}-{}-{nanos}-", std::process::id())
}

/// Produces generated events into `<prefix>{bids,...}` with 4 partitions.
pub fn produce(dir: &Path, brokers: &str, prefix: &str, bids: u64, seed: u64) {
    let bids = bids.to_string();
    let seed = seed.to_string();
    diffmill_ok(
        dir,
        [
            "gen",
            "--kafka",
            brokers,
            "--topic-prefix",
            prefix,
            "--kafka-partitions",
            "4",
            "--partitions",
            "4",
            "--format",
            "json",
            "--bids",
            &bids,
            "--seed",
            &seed,
            "--disorder",
            "0.05",
            "--late",
            "0.01",
            "--too-late",
            "0.005",
            "--duplicate",
            "0.01",
            "--conflicting",
            "0",
            "--orphan",
            "0.005",
            "--malformed",
            "0.005",
        ],
    );
}

pub fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "diffmill-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a consumer")
}

/// Every message of `topic/partition` from `from` to the end, as (offset, timestamp,
/// payload).
pub fn read_partition(brokers: &str, topic: &str, partition: i32) -> Vec<(i64, i64, Vec<u8>)> {
    let consumer = consumer(brokers);
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .expect("watermarks");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("offset");
    consumer.assign(&list).expect("assign");
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let position = consumer
            .position()
            .ok()
            .and_then(|p| p.find_partition(topic, partition).map(|e| e.offset()));
        let done = messages
            .last()
            .is_some_and(|(offset, _, _): &(i64, i64, Vec<u8>)| *offset + 1 >= high)
            || matches!(position, Some(Offset::Offset(p)) if p >= high);
        if done || high == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}/{partition}: reading timed out"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("a message");
            messages.push((
                message.offset(),
                message.timestamp().to_millis().unwrap_or(-1),
                message.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    messages
}

pub fn partition_count(brokers: &str, topic: &str) -> i32 {
    let metadata = consumer(brokers)
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32)
}

/// The input as the oracle sees it: one partition per topic partition, bids first, each
/// in offset order, starting at the first message with a timestamp at or after `from`.
pub fn input_partitions(brokers: &str, prefix: &str, from: Option<i64>) -> Vec<Vec<Arrival>> {
    let mut partitions = Vec::new();
    for (kind, topic) in StreamKind::ALL.iter().zip(topics_for(prefix)) {
        for partition in 0..PARTITIONS {
            let messages = read_partition(brokers, &topic, partition);
            let start = from.map_or(0, |from| {
                messages
                    .iter()
                    .position(|(_, ts, _)| *ts >= from)
                    .unwrap_or(messages.len())
            });
            let arrivals = messages[start..]
                .iter()
                .map(|(offset, _, payload)| {
                    let text = String::from_utf8_lossy(payload);
                    match decode_json(Schema::funnel().stream(*kind), &text, None) {
                        Ok(record) => Arrival::Event {
                            record,
                            position: *offset as u64,
                        },
                        Err(reason) => Arrival::DeadLetter(DeadLetter {
                            stream: *kind,
                            origin: Origin {
                                source: format!("{topic}/{partition}"),
                                position: *offset as u64,
                            },
                            raw: raw_text(payload),
                            reason: reason.to_string(),
                        }),
                    }
                })
                .collect();
            partitions.push(arrivals);
        }
    }
    partitions
}

/// The sink topic's messages as JSON, read committed, partition by partition. Read
/// as plain JSON (not through the sink's own types), so a change of the documented
/// format fails here.
pub fn output(brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for partition in 0..partition_count(brokers, topic) {
        for (_, _, payload) in read_partition(brokers, topic, partition) {
            records.push(serde_json::from_slice(&payload).expect("a JSON message"));
        }
    }
    records
}

/// A number field of a message.
pub fn number(record: &serde_json::Value, field: &str) -> i64 {
    record[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no number `{field}` in {record}"))
}

/// The frontiers of the progress records (`None`: the input is complete).
pub fn progress_frontiers(records: &[serde_json::Value]) -> Vec<Option<i64>> {
    records
        .iter()
        .filter(|r| r["type"] == "progress")
        .map(|r| r["frontier"].as_i64())
        .collect()
}

/// The row messages (of the first aggregate of `settings`) summed per window and dims,
/// keyed as `aggregates.csv` sums are: `[window_start, window_end, dims…]`, the dims read
/// by name from the message's `dims` object, which must name exactly the grouped dims,
/// each with text, and the measures by name from its `delta` object.
pub fn sum(records: &[serde_json::Value], settings: &FunnelSettings) -> CsvAggregates {
    let aggregate = &settings.aggregates[0];
    let names = aggregate.dims.names();
    let measures = aggregate.measure_names();
    let mut sums = CsvAggregates::new();
    for record in records.iter().filter(|r| r["type"] == "row") {
        let dims = record["dims"]
            .as_object()
            .unwrap_or_else(|| panic!("no `dims` object in {record}"));
        let mut named: Vec<&str> = dims.keys().map(String::as_str).collect();
        named.sort_unstable();
        let mut grouped = names.clone();
        grouped.sort_unstable();
        assert_eq!(named, grouped, "the dims of {record}");
        let mut key = vec![
            number(record, "window_start").to_string(),
            number(record, "window_end").to_string(),
        ];
        key.extend(names.iter().map(|name| {
            dims[*name]
                .as_str()
                .unwrap_or_else(|| panic!("dim `{name}` is not text in {record}"))
                .to_owned()
        }));
        let delta = &record["delta"];
        let sum = sums.entry(key).or_insert_with(|| vec![0; measures.len()]);
        for (slot, measure) in sum.iter_mut().zip(&measures) {
            *slot += number(delta, measure);
        }
    }
    sums.retain(|_, measures| measures.iter().any(|m| *m != 0));
    sums
}
