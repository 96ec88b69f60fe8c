//! Chaos (issue 13, docs/restarts.md): a Kafka-fed run writing to PostgreSQL, Kafka and CSV
//! is killed with SIGKILL at random moments — at a random time, while a checkpoint is being
//! written, between one sink's commit and another's — and restarted each time with the
//! same command, with another number of workers, and once as a 2-process cluster whose
//! second process is killed. At the end every sink holds exactly the oracle's totals per
//! (window, dims), each sink's batch sequence is continuous, every window is final once,
//! and the accounting equals the oracle's.
//!
//! Needs `KAFKA_BROKERS` and `DIFFMILL_TEST_POSTGRES_URL` (`.ci/run` starts both).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use diffmill::connectors::sum_change_log;
use diffmill::event::{Millis, StreamKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use support::cli::{
    as_csv, counts_row, diffmill_ok, graph_settings, read_csv, spawn_run, summary_counts,
};
use support::cluster::{free_ports, hostfile, Process};
use support::kafka::{input_partitions, output, produce, progress_frontiers, unique};
use support::oracle::Oracle;
use support::postgres::{connect, progress, totals};
use support::services::service;

/// How a round ends.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// SIGKILL at a random moment after a new checkpoint.
    Random,
    /// SIGKILL as soon as a checkpoint file is being written.
    DuringCheckpoint,
    /// SIGKILL between the CSV sink's append of a batch and its progress record (the
    /// PostgreSQL and Kafka sinks, written before it, hold the batch already).
    BetweenSinkCommits,
    /// A 2-process cluster; process 1 is killed at a random moment.
    ClusterPeer,
}

/// The graph: Kafka in; PostgreSQL, Kafka and CSV out; a checkpoint every 250 ms.
fn graph(dir: &Path, brokers: &str, prefix: &str, schema: &str) -> PathBuf {
    let text = format!(
        r#"name = "chaos"

[source]
kind = "kafka"
brokers = "{brokers}"
format = "json"
group_id = "{prefix}group"
topic_prefix = "{prefix}"
start = "earliest"
stop_at_end = true
idle_timeout = "10m"

[funnel]
emit_interval = "50ms"

[[sink]]
kind = "postgres"
url_env = "DIFFMILL_TEST_POSTGRES_URL"
schema = "{schema}"

[[sink]]
kind = "kafka"
brokers = "{brokers}"
topic = "{prefix}out"

[[sink]]
kind = "csv"
path = "out"

[state]
dir = "state"
checkpoint_interval = "250ms"
"#
    );
    let path = dir.join("chaos.toml");
    std::fs::write(&path, text).expect("the graph writes");
    path
}

/// The checkpoint files in `state`, newest last.
fn checkpoint_files(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".ckpt"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// True while a checkpoint file is being written (its temporary file exists).
fn writing_checkpoint(state: &Path) -> bool {
    std::fs::read_dir(state).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".ckpt.tmp"))
    })
}

/// True when the CSV change log is longer than its progress record says: a batch is
/// appended but not yet recorded.
fn between_commits(out: &Path) -> bool {
    let length = std::fs::metadata(out.join("aggregates.csv")).map_or(0, |m| m.len());
    let recorded = std::fs::read(out.join("progress.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v["aggregates_bytes"].as_u64());
    recorded.is_some_and(|r| length > r)
}

/// Waits, at most `limit`, until `ready` holds, polling every millisecond; false when
/// `running` says the process has ended first or the limit passed.
fn wait_until(
    limit: Duration,
    mut running: impl FnMut() -> bool,
    ready: impl Fn() -> bool,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return true;
        }
        if !running() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// One round: starts the run, kills it the way `kill` says (unless it completes first);
/// returns what happened, for the report.
fn round(dir: &Path, graph: &Path, kill: Kill, workers: usize, rng: &mut ChaCha8Rng) -> String {
    let state = dir.join("state");
    let before = checkpoint_files(&state).last().cloned();
    let new_checkpoint = || checkpoint_files(&state).last().cloned() != before;
    if let Kill::ClusterPeer = kill {
        let hosts = hostfile(dir, &free_ports(2));
        let args = [graph.as_os_str().to_owned()];
        let mut first = Process::start(dir, &args, &hosts, 2, 0);
        let mut second = Process::start(dir, &args, &hosts, 2, 1);
        let alive = wait_until(
            Duration::from_secs(120),
            || first.child.try_wait().ok().flatten().is_none(),
            new_checkpoint,
        );
        std::thread::sleep(Duration::from_millis(rng.random_range(0..800)));
        let _ = second.child.kill();
        let _ = second.child.wait();
        let (status, stderr) = first.exit_within(Duration::from_secs(120), "process 0 stops");
        return format!(
            "2 processes, process 1 killed (a checkpoint before: {alive}): process 0 exited \
             {status}{}",
            if stderr.contains("lost") {
                ", lost its peer"
            } else {
                ""
            }
        );
    }
    let workers = workers.to_string();
    let mut child = spawn_run(dir, graph, &["-w", &workers]);
    let running = |child: &mut Child| child.try_wait().ok().flatten().is_none();
    let caught = match kill {
        Kill::Random => {
            let checkpointed = wait_until(
                Duration::from_secs(120),
                || running(&mut child),
                new_checkpoint,
            );
            std::thread::sleep(Duration::from_millis(rng.random_range(0..800)));
            checkpointed
        }
        Kill::DuringCheckpoint => wait_until(
            Duration::from_secs(120),
            || running(&mut child),
            || writing_checkpoint(&state),
        ),
        Kill::BetweenSinkCommits => wait_until(
            Duration::from_secs(120),
            || running(&mut child),
            || between_commits(&dir.join("out")),
        ),
        Kill::ClusterPeer => unreachable!("handled above"),
    };
    let finished = !running(&mut child);
    let _ = child.kill();
    let status = child.wait().expect("the run is reaped");
    format!("-w {workers}, {kill:?}: condition met {caught}, completed before the kill {finished} ({status})")
}

#[test]
fn killed_at_random_moments_every_sink_equals_the_oracle() {
    let test = "killed_at_random_moments_every_sink_equals_the_oracle";
    let (Some(brokers), Some(url)) = (
        service(test, "KAFKA_BROKERS"),
        service(test, "DIFFMILL_TEST_POSTGRES_URL"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let prefix = unique("chaos");
    let schema = format!("t_chaos_{}", std::process::id());
    connect(&url)
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .expect("the schema drops");
    produce(dir.path(), &brokers, &prefix, 150_000, 23);
    let graph = graph(dir.path(), &brokers, &prefix, &schema);

    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let rounds = [
        (Kill::Random, 2),
        (Kill::DuringCheckpoint, 2),
        (Kill::BetweenSinkCommits, 1),
        (Kill::Random, 3),
        (Kill::ClusterPeer, 1),
        (Kill::DuringCheckpoint, 1),
        (Kill::Random, 2),
    ];
    let mut log = Vec::new();
    for (kill, workers) in rounds {
        log.push(round(dir.path(), &graph, kill, workers, &mut rng));
        if let Some(newest) = checkpoint_files(&dir.path().join("state")).last() {
            let path = dir.path().join("state").join(newest);
            let checkpoint = diffmill::runtime::checkpoint::file::read(&path).expect("usable");
            let total = checkpoint.accounting.total();
            log.push(format!(
                "  newest {newest}: read {} = applied {} + duplicate {} + too late {} + dead {} + pending {} ({})",
                total.read, total.applied, total.duplicate, total.too_late, total.dead_lettered,
                checkpoint.events.len(),
                total.read == total.applied + total.duplicate + total.too_late + total.dead_lettered + checkpoint.events.len() as u64
            ));
        }
    }
    let last = diffmill_ok(
        dir.path(),
        [
            "run".as_ref(),
            graph.as_os_str(),
            "-w".as_ref(),
            "2".as_ref(),
        ],
    );
    eprintln!("chaos rounds:\n  {}", log.join("\n  "));
    let killed = log
        .iter()
        .filter(|l| l.contains("completed before the kill false") || l.contains("process 1 killed"))
        .count();
    assert!(
        killed >= 5,
        "only {killed} rounds were killed mid-run, the input is too short:\n{}",
        log.join("\n")
    );

    let settings = graph_settings(&graph);
    let oracle = Oracle::new(&settings, &input_partitions(&brokers, &prefix, None));
    let expected = as_csv(&oracle.final_values(), &settings, 0);

    // Accounting over all the runs, as the last one reports it.
    let counts = summary_counts(&last.stderr);
    for kind in StreamKind::ALL {
        assert_eq!(
            counts.get(&kind).copied(),
            Some(counts_row(oracle.accounting().stream(kind))),
            "{kind:?}: the accounting over every restart"
        );
    }

    // PostgreSQL.
    let mut client = connect(&url);
    let aggregate = &settings.aggregates[0];
    let table = totals(
        &mut client,
        &format!("{schema}.diffmill_aggregates"),
        aggregate,
    );
    assert_eq!(table, expected, "PostgreSQL totals");
    let sink = format!("{schema}.diffmill_aggregates");
    let (_, _, complete) = progress(&mut client, &format!("{schema}.diffmill_progress"), &sink);
    assert!(complete, "PostgreSQL holds a complete input");

    // Kafka: rows sum to the oracle; progress records number the batches 0, 1, 2, ...
    let records = output(&brokers, &format!("{prefix}out"));
    assert_eq!(
        support::kafka::sum(&records, &settings),
        expected,
        "Kafka totals"
    );
    let progress: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["type"] == "progress").collect();
    let seqs: Vec<u64> = progress.iter().filter_map(|p| p["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (0..progress.len() as u64).collect::<Vec<_>>(),
        "Kafka batch sequence"
    );
    assert_eq!(
        progress_frontiers(&records).last(),
        Some(&None),
        "Kafka: the last batch completes the input"
    );
    let mut finalized: BTreeMap<Millis, usize> = BTreeMap::new();
    for window in progress
        .iter()
        .flat_map(|p| p["finalized"].as_array().cloned().unwrap_or_default())
    {
        *finalized
            .entry(window.as_u64().expect("a window start"))
            .or_default() += 1;
    }
    assert!(
        finalized.values().all(|n| *n == 1),
        "Kafka: a window finalized twice"
    );
    let with_totals: std::collections::BTreeSet<Millis> = oracle
        .final_values()
        .keys()
        .map(|(_, window, _)| *window)
        .collect();
    assert!(
        with_totals.iter().all(|w| finalized.contains_key(w)),
        "Kafka: every window with totals is final"
    );

    // CSV.
    let change_log = dir.path().join("out/aggregates.csv");
    assert_eq!(
        sum_change_log(&change_log, 6).expect("the change log reads"),
        expected,
        "CSV totals"
    );
    let (header, rows) = read_csv(&change_log);
    let status = header
        .iter()
        .position(|h| h == "status")
        .expect("a status column");
    let finals: Vec<Millis> = rows
        .iter()
        .filter(|r| r[status] == "final")
        .map(|r| r[0].parse().expect("a window start"))
        .collect();
    let once: std::collections::BTreeSet<Millis> = finals.iter().copied().collect();
    assert_eq!(finals.len(), once.len(), "CSV: a window finalized twice");
    assert!(
        with_totals.is_subset(&once),
        "CSV: every window with totals is final"
    );
}
