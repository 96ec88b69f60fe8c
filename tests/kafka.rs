//! Kafka in and out against a real Kafka-protocol broker (issue #4): the broker at
//! `KAFKA_BROKERS` (`.ci/run` starts one; any broker works, Apache Kafka included). When
//! `KAFKA_BROKERS` is unset the broker tests print `SKIPPED <test> (set KAFKA_BROKERS to
//! run)`, or fail under `CI=true` (tests/support/services.rs).
//!
//! Inputs are produced with `diffmill gen --kafka` (disorder, duplicates, late, too-late
//! and malformed messages across 4 partitions), read back from the broker by a plain
//! consumer here, and replayed by the independent oracle (tests/support/oracle.rs), one
//! oracle partition per topic partition; the funnel binary runs with 2 workers and its
//! sink topic is read back with `isolation.level = read_committed`.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diffmill::connectors::kafka::{topics_for, KafkaSource};
use diffmill::connectors::{Partition, Poll, Source};
use diffmill::declare::Schema;
use diffmill::event::StreamKind;
use diffmill::graph::{GraphSpec, SourceSpec};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use support::cli::{
    as_csv, closed_port, counts_row, diffmill, diffmill_ok, diffmill_within, graph_settings,
    graphs_dir, spawn_run, summary_counts,
};
use support::kafka::{
    consumer, input_partitions, output, partition_count, produce, progress_frontiers,
    read_partition, sum, unique, PARTITIONS, TIMEOUT,
};
use support::oracle::Oracle;

/// The broker, or `None` after saying that the test is skipped (a failure under
/// `CI=true`; see [`support::services`]).
fn brokers(test: &str) -> Option<String> {
    support::services::service(test, "KAFKA_BROKERS")
}

/// Writes a line to the process's stderr, past the test harness's capture, so it shows
/// in a passing run too.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// A graph reading `<prefix>*` and writing `<prefix>out`, with `source` lines added.
fn graph(dir: &Path, brokers: &str, prefix: &str, group: &str, source: &str) -> PathBuf {
    let text = format!(
        r#"name = "kafka_test"

[source]
kind = "kafka"
brokers = "{brokers}"
format = "json"
group_id = "{group}"
topic_prefix = "{prefix}"
idle_timeout = "10m"
{source}

[funnel]
emit_interval = "100ms"

[[sink]]
kind = "kafka"
brokers = "{brokers}"
topic = "{prefix}out"
dead_letter_topic = "{prefix}dead"
late_topic = "{prefix}late"
"#
    );
    let path = dir.join("kafka_test.toml");
    std::fs::write(&path, text).expect("write the graph");
    path
}

#[test]
fn kafka_in_kafka_out_equals_the_oracle() {
    let Some(brokers) = brokers("kafka_in_kafka_out_equals_the_oracle") else {
        return;
    };
    let dir = tempdir();
    let prefix = unique("e2e");
    produce(dir.path(), &brokers, &prefix, 20_000, 7);
    let graph = graph(
        dir.path(),
        &brokers,
        &prefix,
        &format!("{prefix}group"),
        "start = \"earliest\"\nstop_at_end = true",
    );
    let ran = diffmill_ok(dir.path(), run_args(&graph));

    let settings = graph_settings(&graph);
    let oracle = Oracle::new(&settings, &input_partitions(&brokers, &prefix, None));
    let records = output(&brokers, &format!("{prefix}out"));
    let last = progress_frontiers(&records)
        .pop()
        .expect("a progress record");
    assert_eq!(last, None, "the bounded input completes");
    assert_eq!(
        sum(&records, &settings),
        as_csv(&oracle.final_values(), &settings, 0),
        "the summed sink topic: the same keys and values as aggregates.csv"
    );
    let counts = summary_counts(&ran.stderr);
    for kind in StreamKind::ALL {
        assert_eq!(
            counts.get(&kind).copied(),
            Some(counts_row(oracle.accounting().stream(kind))),
            "{kind:?} accounting"
        );
    }
    // Dead letters went to their topic, with topic/partition and offset.
    let dead: usize = (0..partition_count(&brokers, &format!("{prefix}dead")))
        .map(|p| read_partition(&brokers, &format!("{prefix}dead"), p).len())
        .sum();
    assert_eq!(dead, oracle.dead_letters().len());
    assert!(dead > 0);
}

#[test]
fn killed_and_restarted_loses_nothing() {
    let Some(brokers) = brokers("killed_and_restarted_loses_nothing") else {
        return;
    };
    let dir = tempdir();
    let prefix = unique("restart");
    let group = format!("{prefix}group");
    produce(dir.path(), &brokers, &prefix, 80_000, 11);
    let graph = graph(
        dir.path(),
        &brokers,
        &prefix,
        &group,
        "start = \"committed\"\nstop_at_end = true",
    );
    // Checkpoints in the test's folder: a restart resumes from them.
    let mut text = std::fs::read_to_string(&graph).expect("the graph reads");
    text.push_str("\n[state]\ndir = \"state\"\ncheckpoint_interval = \"300ms\"\n");
    std::fs::write(&graph, text).expect("the graph writes");
    let out = format!("{prefix}out");

    let total: i64 = input_partitions(&brokers, &prefix, None)
        .iter()
        .map(|p| p.len() as i64)
        .sum();
    // Run, and kill it (SIGKILL) once the consumer group shows a durable checkpoint past
    // a tenth of the input's offsets (the group follows the checkpoints).
    let mut child = spawn_run(dir.path(), &graph, &["-w", "2"]);
    let deadline = Instant::now() + Duration::from_secs(300);
    let killed = loop {
        if child.try_wait().expect("wait").is_some() {
            break false;
        }
        if committed_total(&brokers, &prefix, &group) * 10 >= total || Instant::now() > deadline {
            child.kill().expect("kill");
            child.wait().expect("reap");
            break true;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = output(&brokers, &out);
    let committed = committed_total(&brokers, &prefix, &group);
    report(&format!(
        "restart test: killed mid-run: {killed}; {} records in the sink; {committed} of \
         {total} input offsets committed",
        first.len()
    ));
    assert!(
        killed,
        "the run completed before it was killed: give it more input"
    );

    let ran = diffmill_ok(dir.path(), run_args(&graph));
    assert!(
        ran.stderr.contains("resuming from"),
        "the restart resumes from a checkpoint:\n{}",
        ran.stderr
    );
    let all = output(&brokers, &out);
    let settings = graph_settings(&graph);
    let oracle = Oracle::new(&settings, &input_partitions(&brokers, &prefix, None));
    // Exactly the oracle's totals per window and dims: nothing lost, nothing twice.
    assert_eq!(
        sum(&all, &settings),
        as_csv(&oracle.final_values(), &settings, 0),
        "killed and restarted: the summed sink topic"
    );
    let seqs: Vec<i64> = all
        .iter()
        .filter(|r| r["type"] == "progress")
        .map(|r| r["seq"].as_i64().expect("a seq"))
        .collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as i64).collect::<Vec<_>>(),
        "the batch sequence continues across the restart"
    );
    let counts = summary_counts(&ran.stderr);
    for kind in StreamKind::ALL {
        assert_eq!(
            counts.get(&kind).copied(),
            Some(counts_row(oracle.accounting().stream(kind))),
            "{kind:?}: the accounting over both runs"
        );
    }
    assert!(committed > 0, "nothing was committed before the kill");
}

/// The arguments of `diffmill run <graph> -w 2`.
fn run_args(graph: &Path) -> [&OsStr; 4] {
    [
        "run".as_ref(),
        graph.as_os_str(),
        "-w".as_ref(),
        "2".as_ref(),
    ]
}

fn committed_total(brokers: &str, prefix: &str, group: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("a consumer");
    let mut wanted = TopicPartitionList::new();
    for topic in topics_for(prefix) {
        for partition in 0..PARTITIONS {
            wanted.add_partition(&topic, partition);
        }
    }
    let list = consumer
        .committed_offsets(wanted, TIMEOUT)
        .expect("committed offsets");
    let total = list
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    // The list must not outlive the consumer.
    drop(list);
    total
}

#[test]
fn start_by_timestamp_reads_from_the_first_message_at_that_time() {
    let Some(brokers) = brokers("start_by_timestamp_reads_from_the_first_message_at_that_time")
    else {
        return;
    };
    let dir = tempdir();
    let prefix = unique("timestamp");
    produce(dir.path(), &brokers, &prefix, 8_000, 5);
    // A time in the middle of the bids.
    let bids = read_partition(&brokers, &format!("{prefix}bids"), 0);
    let from = bids[bids.len() / 2].1;
    let graph = graph(
        dir.path(),
        &brokers,
        &prefix,
        &format!("{prefix}group"),
        &format!("start = {{ timestamp = {from} }}\nstop_at_end = true"),
    );
    diffmill_ok(dir.path(), run_args(&graph));
    let input = input_partitions(&brokers, &prefix, Some(from));
    let all: usize = input_partitions(&brokers, &prefix, None)
        .iter()
        .map(Vec::len)
        .sum();
    let read: usize = input.iter().map(Vec::len).sum();
    assert!(read > 0 && read < all, "{read} of {all}");
    let settings = graph_settings(&graph);
    let oracle = Oracle::new(&settings, &input);
    assert_eq!(
        sum(&output(&brokers, &format!("{prefix}out")), &settings),
        as_csv(&oracle.final_values(), &settings, 0)
    );
}

#[test]
fn config_errors_name_file_key_and_problem() {
    let dir = tempdir();
    let graph = graph(
        dir.path(),
        "127.0.0.1:1",
        "cfg-",
        "g",
        "[source.options]\n\"no.such.option\" = \"1\"",
    );
    let ran = diffmill(dir.path(), ["check".as_ref(), graph.as_os_str()]);
    assert_ne!(ran.code(), Some(0));
    let text = ran.stderr;
    assert!(text.contains("kafka_test.toml"), "{text}");
    assert!(text.contains("source.options"), "{text}");
    assert!(text.contains("no.such.option"), "{text}");
}

/// `graphs/kafka_funnel.toml` as the README runs it: the broker's address put in, and a
/// topic prefix of its own so it shares no topic with other tests. The bounded replay
/// completes, every record is accounted for, and the sink topic sums to the oracle.
#[test]
fn the_graph_file_runs() {
    let Some(brokers) = brokers("the_graph_file_runs") else {
        return;
    };
    let dir = tempdir();
    let prefix = unique("graph");
    produce(dir.path(), &brokers, &prefix, 5_000, 3);
    let text = std::fs::read_to_string(graphs_dir().join("kafka_funnel.toml"))
        .expect("graphs/kafka_funnel.toml reads");
    let mut local = text.replace("127.0.0.1:9092", &brokers);
    for (from, to) in [
        (
            "topic_prefix = \"\"",
            format!("topic_prefix = \"{prefix}\""),
        ),
        ("\"diffmill-kafka-funnel\"", format!("\"{prefix}group\"")),
        ("\"funnel_", format!("\"{prefix}funnel_")),
    ] {
        assert!(local.contains(from), "the graph has no `{from}`");
        local = local.replace(from, &to);
    }
    let graph = dir.path().join("kafka_funnel.toml");
    std::fs::write(&graph, local).expect("the graph writes");
    let ran = diffmill_ok(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    assert!(
        ran.stderr.contains("every record is accounted for"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.contains("batch "), "no preview: {}", ran.stdout);
    let settings = graph_settings(&graph);
    let oracle = Oracle::new(&settings, &input_partitions(&brokers, &prefix, None));
    assert_eq!(
        sum(
            &output(&brokers, &format!("{prefix}funnel_aggregates")),
            &settings
        ),
        as_csv(&oracle.final_values(), &settings, 0)
    );
}

/// Issue #18, item 4: an unreachable broker was a minute of silence and an error that
/// did not name it. The run says at once which brokers it connects to, warns while they
/// do not answer, and names them when it gives up after `connect_timeout`. Needs no
/// broker.
#[test]
fn an_unreachable_broker_is_named_at_once_and_when_giving_up() {
    let dir = tempdir();
    let address = format!("127.0.0.1:{}", closed_port());
    for (what, graph_text) in [
        (
            "source",
            format!(
                "name = \"k\"\n[source]\nkind = \"kafka\"\nbrokers = \"{address}\"\n\
                 format = \"json\"\nconnect_timeout = \"2s\"\n[[sink]]\nkind = \"stdout\"\n"
            ),
        ),
        (
            "sink",
            format!(
                "name = \"k\"\n[source]\nkind = \"generator\"\nbids = 10\n\
                 [[sink]]\nkind = \"kafka\"\nbrokers = \"{address}\"\ntopic = \"out\"\n\
                 connect_timeout = \"2s\"\n"
            ),
        ),
    ] {
        let graph = dir.path().join(format!("{what}.toml"));
        std::fs::write(&graph, graph_text).expect("the graph writes");
        let ran = diffmill_within(
            dir.path(),
            ["run".as_ref(), graph.as_os_str()],
            Duration::from_secs(60),
        );
        let stderr = &ran.stderr;
        assert_eq!(ran.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("connecting to the Kafka brokers {address}")),
            "{what}: does not say where it connects: {stderr}"
        );
        assert!(
            stderr.contains(&format!("no answer from the Kafka brokers {address} yet")),
            "{what}: no visible retry: {stderr}"
        );
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error:")
                && last.contains(&format!(
                    "cannot reach the Kafka brokers {address} within 2s"
                )),
            "{what}: the error does not name the brokers: {stderr}"
        );
    }
}

/// Events in partition 0 of each topic only: the three empty partitions of each topic
/// (one worker owns nothing but empty ones) are released after `idle_timeout`, so a
/// live run's frontier passes the data and every window becomes final; stopped by
/// SIGINT, the sink topic sums to the oracle.
#[test]
fn idle_partitions_do_not_hold_the_frontier() {
    let Some(brokers) = brokers("idle_partitions_do_not_hold_the_frontier") else {
        return;
    };
    let dir = tempdir();
    let prefix = unique("idle");
    diffmill_ok(
        dir.path(),
        [
            "gen",
            "--kafka",
            &brokers,
            "--topic-prefix",
            &prefix,
            "--kafka-partitions",
            "4",
            "--partitions",
            "1",
            "--format",
            "json",
            "--bids",
            "3000",
            "--seed",
            "2",
        ],
    );
    let graph = graph(
        dir.path(),
        &brokers,
        &prefix,
        &format!("{prefix}group"),
        "start = \"earliest\"",
    );
    let text = std::fs::read_to_string(&graph).expect("the graph");
    std::fs::write(
        &graph,
        text.replace("idle_timeout = \"10m\"", "idle_timeout = \"1s\""),
    )
    .expect("write the graph");
    let settings = graph_settings(&graph);
    let input = input_partitions(&brokers, &prefix, None);
    let oracle = Oracle::new(&settings, &input);
    let last_final = oracle
        .windows()
        .iter()
        .map(|&(a, start)| oracle.final_at_in(a, start))
        .max()
        .expect("windows");

    let mut child = spawn_run(dir.path(), &graph, &["-w", "2"]);
    let deadline = Instant::now() + Duration::from_secs(180);
    let out = format!("{prefix}out");
    let reached = loop {
        let frontier = progress_frontiers(&output(&brokers, &out))
            .into_iter()
            .flatten()
            .max()
            .map_or(0, |f| f as u64);
        if frontier >= last_final || Instant::now() > deadline {
            break frontier;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("reap");
    assert!(
        reached >= last_final,
        "the frontier stayed at {reached}; every window is final at {last_final}"
    );
    assert_eq!(status.code(), Some(130), "stopped by SIGINT");
    assert_eq!(
        sum(&output(&brokers, &out), &settings),
        as_csv(&oracle.final_values(), &settings, 0)
    );
}

/// Issue #15: a partition's backlog, which `diffmill_kafka_consumer_lag_messages`
/// reports, is the partition's high watermark minus the read position: all of it before
/// reading, nothing once it is read to the end. The worker never waits for the broker
/// for it (a thread of its own asks), so the test polls until the answer comes.
#[test]
fn consumer_lag_is_what_is_left_to_read() {
    let Some(brokers) = brokers("consumer_lag_is_what_is_left_to_read") else {
        return;
    };
    let dir = tempdir();
    let prefix = unique("lag");
    produce(dir.path(), &brokers, &prefix, 2000, 3);
    let graph = graph(
        dir.path(),
        &brokers,
        &prefix,
        &format!("{prefix}group"),
        "start = \"earliest\"\nstop_at_end = true",
    );
    let SourceSpec::Kafka(spec) = GraphSpec::load(&graph).expect("the graph").source else {
        panic!("a kafka source");
    };
    let mut partitions = KafkaSource::new(spec, std::sync::Arc::new(Schema::funnel().clone()))
        .partitions(0, 1)
        .expect("the partitions open");
    let bids = &mut partitions[0];
    let topic = format!("{prefix}bids");
    assert_eq!(bids.name(), format!("{topic}/0"));
    let (low, high) = consumer(&brokers)
        .fetch_watermarks(&topic, 0, TIMEOUT)
        .expect("the watermarks");
    assert!(high > low, "the partition has messages");
    let wait_for = |partition: &dyn Partition, expected: u64| {
        let deadline = Instant::now() + TIMEOUT;
        while partition.backlog() != Some(expected) {
            assert!(
                Instant::now() < deadline,
                "the backlog stayed {:?}, not {expected}",
                partition.backlog()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(bids.as_ref(), (high - low) as u64);
    let mut arrivals = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while bids.poll(&mut arrivals, 4096).expect("a poll") != Poll::Done {
        assert!(
            Instant::now() < deadline,
            "the partition was not read to its end"
        );
    }
    assert!(!arrivals.is_empty());
    wait_for(bids.as_ref(), 0);
}
