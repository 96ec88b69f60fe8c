//! Tests on librdkafka's mock cluster (`rdkafka::mocking`). The mock has no
//! `offsets_for_times` and no transaction isolation: those are tested against a real
//! broker in `tests/kafka.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use differential_dataflow::difference::{IsZero, Semigroup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::*;
use crate::connectors::generator::{Generator, GeneratorConfig};
use crate::connectors::{Arrival, Batch, MemorySink, Poll, Source};
use crate::declare::{Attribution, DurationText, FunnelSettings, Measures, Schema};
use crate::event::Millis;
use crate::format::Format;
use crate::runtime::Funnel;

const PARTITIONS: i32 = 2;

fn mock(prefix: &str) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in topics_for(prefix) {
        cluster
            .create_topic(&topic, PARTITIONS, 1)
            .expect("create topic");
    }
    cluster
}

fn client(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

fn source_spec(brokers: &str, prefix: &str, format: Format) -> KafkaSourceSpec {
    let mut spec = KafkaSourceSpec::new(brokers, format);
    spec.topic_prefix = prefix.to_owned();
    spec.start = StartPosition::Earliest;
    spec.stop_at_end = true;
    spec.options
        .insert("session.timeout.ms".into(), "6000".into());
    spec
}

fn generator(malformed: f64) -> Generator {
    let config = GeneratorConfig {
        bids: 2_000,
        partitions: PARTITIONS as usize,
        malformed,
        duplicate: 0.02,
        orphan: 0.01,
        ..GeneratorConfig::default()
    };
    Generator::new(config, &FunnelSettings::default()).expect("generator")
}

/// Today's four streams, as the sources read them.
fn schema() -> std::sync::Arc<Schema> {
    std::sync::Arc::new(Schema::funnel().clone())
}

type Totals = BTreeMap<(Millis, Attribution), Measures>;

fn totals(batches: &[Batch]) -> Totals {
    let mut totals = Totals::new();
    for row in batches.iter().flat_map(|b| &b.rows) {
        totals
            .entry((row.window_start, row.dims))
            .or_default()
            .plus_equals(&row.delta);
    }
    totals.retain(|_, m| !m.is_zero());
    totals
}

fn run(source: impl Source + 'static, workers: usize) -> (Vec<Batch>, crate::runtime::RunReport) {
    let sink = MemorySink::new();
    let report = Funnel::new(FunnelSettings::default())
        .source(source)
        .sink(sink.clone())
        .workers(workers)
        .run()
        .expect("run");
    (sink.batches(), report)
}

/// Generated events read back from the topics give the same aggregates as the generator
/// read directly, every message is accounted for, and dead letters name topic/partition
/// and offset.
#[test]
fn generated_events_round_trip_through_topics() {
    for format in [Format::Json, Format::Csv] {
        let prefix = format!("rt-{format:?}-");
        let cluster = mock(&prefix);
        let brokers = cluster.bootstrap_servers();
        let generator = generator(0.01);
        let produced = produce(
            &generator,
            &client(&brokers),
            &topics_for(&prefix),
            PARTITIONS,
            format,
            None,
        )
        .expect("produce");
        assert!(produced.malformed > 0);

        let spec = source_spec(&brokers, &prefix, format);
        let (via_kafka, report) = run(KafkaSource::new(spec, schema()), 2);
        let (direct, _) = run(generator.clone(), 1);
        assert!(report.accounting.balances(), "{:?}", report.accounting);
        assert_eq!(report.accounting.total().read, produced.total());
        assert!(report.accounting.total().dead_lettered >= produced.malformed);
        assert_eq!(totals(&via_kafka), totals(&direct), "{format:?}");
        let dead: Vec<_> = via_kafka.iter().flat_map(|b| &b.dead_letters).collect();
        assert!(!dead.is_empty());
        for letter in dead {
            let (topic, partition) = letter
                .origin
                .source
                .rsplit_once('/')
                .expect("topic/partition");
            assert!(topic.starts_with(&prefix), "{}", letter.origin);
            assert!(partition.parse::<i32>().is_ok_and(|p| p < PARTITIONS));
        }
    }
}

/// Offsets are committed only up to records whose event time the written frontier has
/// passed; a restart from the committed offsets reads the rest.
#[test]
fn offsets_commit_only_behind_the_written_frontier() {
    let prefix = "commit-";
    let cluster = mock(prefix);
    let brokers = cluster.bootstrap_servers();
    let generator = generator(0.0);
    produce(
        &generator,
        &client(&brokers),
        &topics_for(prefix),
        PARTITIONS,
        Format::Json,
        None,
    )
    .expect("produce");
    let mut spec = source_spec(&brokers, prefix, Format::Json);
    spec.group_id = "commit-test".into();
    spec.bids = Some(format!("{prefix}bids"));
    let source = KafkaSource::new(spec.clone(), schema());
    let mut partitions = source.partitions(0, 1).expect("partitions");
    let bids = &mut partitions[0];
    let mut arrivals = Vec::new();
    while arrivals.len() < 200 {
        match bids.poll(&mut arrivals, 50).expect("poll") {
            Poll::Done => break,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let ts: Vec<Millis> = arrivals
        .iter()
        .map(|a| match a {
            Arrival::Event { record, .. } => record.ts,
            Arrival::DeadLetter(_) => unreachable!("no malformed input"),
        })
        .collect();
    // Nothing written yet: nothing committed.
    bids.written_through(Some(0));
    // The frontier past the 100th record's running max commits at least 100 records,
    // and never a record at or beyond the frontier.
    let running_max = ts[..100].iter().max().copied().unwrap_or(0);
    let frontier = running_max.div_ceil(1000) * 1000 + 1000;
    bids.written_through(Some(frontier));
    drop(partitions);
    std::thread::sleep(Duration::from_millis(200));

    let committed = committed_offset(&brokers, "commit-test", &format!("{prefix}bids"), 0);
    let committed = committed.expect("an offset was committed") as usize;
    assert!(committed >= 100, "committed {committed}");
    let first_beyond = ts.iter().position(|&t| t >= frontier).unwrap_or(ts.len());
    assert!(
        committed <= first_beyond,
        "committed {committed} > {first_beyond}"
    );

    // Restart from the committed offset: the first record read is the next one.
    spec.start = StartPosition::Committed;
    let mut partitions = KafkaSource::new(spec, schema())
        .partitions(0, 1)
        .expect("partitions");
    let mut again = Vec::new();
    while again.is_empty() {
        partitions[0].poll(&mut again, 1).expect("poll");
        std::thread::sleep(Duration::from_millis(5));
    }
    match &again[0] {
        Arrival::Event { position, .. } => assert_eq!(*position as usize, committed),
        other => panic!("{other:?}"),
    }
}

fn committed_offset(brokers: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, partition);
    let list = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed");
    let offset = match list.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    };
    // The list must not outlive the consumer.
    drop(list);
    offset
}

/// Config errors name the key: an unknown librdkafka option, an empty topic.
#[test]
fn config_errors_name_the_key() {
    let mut spec = KafkaSourceSpec::new("127.0.0.1:1", Format::Json);
    spec.options.insert("no.such.option".into(), "1".into());
    let (key, problem) = spec.check().expect_err("unknown option");
    assert_eq!(key, "options");
    assert!(problem.contains("no.such.option"), "{problem}");
    let mut spec = KafkaSourceSpec::new("127.0.0.1:1", Format::Json);
    spec.clicks = Some(String::new());
    assert_eq!(spec.check().expect_err("empty topic").0, "clicks");
    let sink = KafkaSinkSpec::new("", "out");
    assert_eq!(sink.check().expect_err("no brokers").0, "brokers");
}

/// A partition with no data stops holding the frontier back after `idle_timeout`: with
/// one of two bid partitions empty, windows still close while the run is live.
#[test]
fn an_idle_partition_is_released() {
    let prefix = "idle-";
    let cluster = mock(prefix);
    let brokers = cluster.bootstrap_servers();
    // Events only in partition 0 of every topic.
    let generator = {
        let config = GeneratorConfig {
            bids: 500,
            partitions: 1,
            ..GeneratorConfig::default()
        };
        Generator::new(config, &FunnelSettings::default()).expect("generator")
    };
    produce(
        &generator,
        &client(&brokers),
        &topics_for(prefix),
        1,
        Format::Json,
        None,
    )
    .expect("produce");
    let mut spec = source_spec(&brokers, prefix, Format::Json);
    spec.stop_at_end = false;
    spec.idle_timeout = DurationText::from_millis(300);
    let sink = MemorySink::new();
    let funnel = Funnel::new(FunnelSettings::default())
        .source(KafkaSource::new(spec, schema()))
        .sink(sink.clone())
        .workers(1);
    let stop = funnel.stop_handle();
    let handle = std::thread::spawn(move || funnel.run());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let last_ts = (0..generator.config().bids)
        .map(|i| generator.bid_ts(i))
        .max()
        .unwrap_or(0);
    let reached = loop {
        let frontier = sink.batches().last().and_then(|b| b.frontier).unwrap_or(0);
        if frontier + 60_000 >= last_ts || std::time::Instant::now() > deadline {
            break frontier;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.request(crate::runtime::StopReason::Requested { process: 0 });
    handle.join().expect("join").expect("run");
    assert!(
        reached + 60_000 >= last_ts,
        "the frontier stayed at {reached}, the data goes to {last_ts}"
    );
}

/// Issue #18, item 11: a row message names each grouped dim with the text the CSV and
/// PostgreSQL sinks write (`unattributed` for a row whose parent is missing), not
/// serde's encoding of the dims enum.
#[test]
fn a_row_message_names_its_dims_as_the_csv_does() {
    use crate::connectors::AggregateRow;
    use crate::declare::{Value, WindowStatus};
    use crate::event::Label;

    let aggregate = FunnelSettings::default().aggregates[0].clone();
    let row = |dims: Attribution, status| AggregateRow {
        window_start: 1_704_067_200_000,
        window_end: 1_704_068_100_000,
        dims,
        delta: Measures::from_values(&[9, 7, 0, 0, 19_418]),
        status,
    };
    let region = Label::new("eu-west").map(Value::String);
    let attributed = Attribution::Dims(aggregate.dims.key(&[Some(Value::Id(1)), region]));
    let json = |row: &AggregateRow| {
        serde_json::to_string(&OutputRecord::Row(RowRecord::new(
            &aggregate,
            3,
            Some(1_704_069_397_432),
            row,
        )))
        .expect("a row serializes")
    };
    assert_eq!(
        json(&row(attributed, WindowStatus::Correction)),
        r#"{"type":"row","seq":3,"frontier":1704069397432,"window_start":1704067200000,"window_end":1704068100000,"dims":{"campaign_id":"1","region":"eu-west"},"delta":{"bids":9,"impressions":7,"clicks":0,"conversions":0,"spend_micros":19418,"revenue_micros":0},"status":"correction"}"#
    );
    assert_eq!(
        json(&row(Attribution::Unattributed, WindowStatus::Open)),
        r#"{"type":"row","seq":3,"frontier":1704069397432,"window_start":1704067200000,"window_end":1704068100000,"dims":{"campaign_id":"unattributed","region":"unattributed"},"delta":{"bids":9,"impressions":7,"clicks":0,"conversions":0,"spend_micros":19418,"revenue_micros":0},"status":"open"}"#
    );
}
