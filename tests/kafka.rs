//! Kafka in and out against a real Kafka-protocol broker (issue #4): the broker at
//! `KAFKA_BROKERS` (`.ci/run` starts one; any broker works, Apache Kafka included). When
//! `KAFKA_BROKERS` is unset the broker tests say so on stderr and pass without running.
//!
//! Inputs are produced with `diffmill gen --kafka` (disorder, duplicates, late, too-late
//! and malformed messages across 4 partitions), read back from the broker by a plain
//! consumer here, and replayed by the independent oracle (tests/support/oracle.rs), one
//! oracle partition per topic partition; the funnel binary runs with 2 workers and its
//! sink topic is read back with `isolation.level = read_committed`.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use diffmill::connectors::kafka::{topics_for, OutputRecord};
use diffmill::declare::FunnelSettings;
use diffmill::event::{Millis, StreamKind};
use diffmill::graph::GraphSpec;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use support::cli::{command, counts_row, diffmill, diffmill_ok, summary_counts};
use support::kafka::{
    input_partitions, output, partition_count, produce, read_partition, sum, unique, PARTITIONS,
    TIMEOUT,
};
use support::oracle::{Aggregates, Oracle};

/// The broker, or `None` after saying on stderr that the test is skipped.
fn brokers(test: &str) -> Option<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => Some(brokers),
        _ => {
            // Written to the process's stderr, past the test harness's capture, so the
            // skip shows in a passing run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: KAFKA_BROKERS is not set (source .ci/services/kafka.sh, or \
                 point it at any Kafka broker)"
            );
            None
        }
    }
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

fn settings(graph: &Path) -> FunnelSettings {
    GraphSpec::load(graph)
        .expect("the graph loads")
        .declaration()
        .resolve()
        .expect("the graph's declaration resolves")
}

/// Per window, the measures summed over all dims (which do not depend on attribution).
fn per_window(aggregates: &Aggregates) -> BTreeMap<Millis, Vec<i128>> {
    let mut windows = BTreeMap::<Millis, Vec<i128>>::new();
    for ((_, start, _), measures) in aggregates {
        let sum = windows
            .entry(*start)
            .or_insert_with(|| vec![0; measures.len()]);
        for (total, value) in sum.iter_mut().zip(measures) {
            *total += value;
        }
    }
    windows
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

    let settings = settings(&graph);
    let oracle = Oracle::new(&settings, &input_partitions(&brokers, &prefix, None));
    let records = output(&brokers, &format!("{prefix}out"));
    let last = records
        .iter()
        .rev()
        .find_map(|r| match r {
            OutputRecord::Progress(p) => Some(p.clone()),
            OutputRecord::Row(_) => None,
        })
        .expect("a progress record");
    assert_eq!(last.frontier, None, "the bounded input completes");
    assert_eq!(
        sum(&settings, &records),
        oracle.final_values(),
        "the summed sink topic"
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
    let out = format!("{prefix}out");

    let total: i64 = input_partitions(&brokers, &prefix, None)
        .iter()
        .map(|p| p.len() as i64)
        .sum();
    // Run, and kill it (SIGKILL) once it has committed a tenth of the input's offsets.
    let mut child = spawn_run(dir.path(), &graph);
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

    let ran = diffmill_ok(dir.path(), run_args(&graph));
    assert!(
        ran.stderr.contains("every record is accounted for"),
        "{}",
        ran.stderr
    );
    let all = output(&brokers, &out);
    let settings = settings(&graph);
    let oracle = Oracle::new(&settings, &input_partitions(&brokers, &prefix, None));
    let expected = per_window(&oracle.final_values());
    let got = per_window(&sum(&settings, &all));
    // Bids, impressions, clicks and conversions: the first four default measures.
    let mut excess = [0i128; 4];
    for (window, want) in &expected {
        let have = got.get(window).cloned().unwrap_or_else(|| vec![0; want.len()]);
        for (j, name) in ["bids", "impressions", "clicks", "conversions"].iter().enumerate() {
            let (h, w) = (have[j], want[j]);
            assert!(
                h >= w,
                "window {window}: {name} {h} < {w}: records were lost"
            );
            excess[j] += h - w;
        }
    }
    // Restart does not restore the dataflow's state yet: records read again after the
    // last commit count twice. Report them, do not hide them.
    report(&format!(
        "restart test: duplicates in the output after kill + restart (over the oracle): \
         {} bids, {} impressions, {} clicks, {} conversions",
        excess[0], excess[1], excess[2], excess[3]
    ));
    if killed {
        assert!(committed > 0, "nothing was committed before the kill");
    }
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

/// Starts `diffmill run <graph> -w 2` in `dir` in the background, its output discarded.
fn spawn_run(dir: &Path, graph: &Path) -> Child {
    command(dir)
        .args(run_args(graph))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("diffmill starts")
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
    let settings = settings(&graph);
    let oracle = Oracle::new(&settings, &input);
    assert_eq!(
        sum(&settings, &output(&brokers, &format!("{prefix}out"))),
        oracle.final_values()
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
    let settings = settings(&graph);
    let input = input_partitions(&brokers, &prefix, None);
    let oracle = Oracle::new(&settings, &input);
    let last_final = oracle
        .windows()
        .iter()
        .map(|&(a, start)| oracle.final_at_in(a, start))
        .max()
        .expect("windows");

    let mut child = spawn_run(dir.path(), &graph);
    let deadline = Instant::now() + Duration::from_secs(180);
    let out = format!("{prefix}out");
    let reached = loop {
        let frontier = output(&brokers, &out)
            .iter()
            .filter_map(|r| match r {
                OutputRecord::Progress(p) => p.frontier,
                OutputRecord::Row(_) => None,
            })
            .max()
            .unwrap_or(0);
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
    assert_eq!(sum(&settings, &output(&brokers, &out)), oracle.final_values());
}
