//! The PostgreSQL sink (issue #8) against a real server: totals equal the oracle; a
//! re-run, a run failed mid-way and a killed run, each followed by a complete run, equal
//! the oracle, not double; a concurrent reader only ever sees totals at a batch
//! boundary; permanent errors and config errors are named.
//!
//! The database tests need `DIFFMILL_TEST_POSTGRES_URL` (set by
//! `.ci/services/postgres.sh`); without it they print `SKIPPED <test> (set
//! DIFFMILL_TEST_POSTGRES_URL to run)`, or fail under `CI=true`
//! (tests/support/services.rs). Each test writes its own schema, so they run in parallel.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diffmill::connectors::generator::{Generated, Generator, GeneratorConfig};
use diffmill::connectors::{Arrival, MemorySource, PostgresConfig, PostgresSink, Sink, SinkError};
use diffmill::declare::FunnelSettings;
use diffmill::event::{DeadLetter, Millis, Origin};
use diffmill::format::Format;
use diffmill::graph::GraphSpec;
use diffmill::runtime::{Funnel, RunError};
use postgres::Client;

use support::cli::{
    as_csv, closed_port, command, diffmill, diffmill_ok, diffmill_within, file_partitions,
    files_graph, generate, graphs_dir, CsvAggregates,
};
use support::oracle::Oracle;
use support::postgres::{connect, grouped_by, progress, totals};

const URL_VAR: &str = "DIFFMILL_TEST_POSTGRES_URL";

/// The test database, or `None` after saying that the test is skipped (a failure under
/// `CI=true`; see [`support::services`]).
fn database(test: &str) -> Option<String> {
    support::services::service(test, URL_VAR)
}

/// A sink config writing to the empty schema `schema` (dropped first).
fn fresh(url: &str, schema: &str) -> PostgresConfig {
    connect(url)
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .expect("the schema drops");
    PostgresConfig {
        schema: schema.to_owned(),
        ..PostgresConfig::with_url(url)
    }
}

/// Generated partitions; malformed lines arrive as dead letters (the reason is the
/// test's: the sink stores whatever it is given).
fn generated(settings: &FunnelSettings, config: GeneratorConfig) -> Vec<Vec<Arrival>> {
    let generator = Generator::new(config, settings).expect("a generator");
    (0..generator.partition_count())
        .map(|p| {
            generator
                .partition(p)
                .enumerate()
                .map(|(i, generated)| match generated {
                    Generated::Event(event) => Arrival::Event {
                        record: generator.record(&event),
                        position: i as u64 + 1,
                    },
                    Generated::Malformed { stream, line } => Arrival::DeadLetter(DeadLetter {
                        stream,
                        origin: Origin {
                            source: format!("memory/{p}"),
                            position: i as u64 + 1,
                        },
                        raw: line,
                        reason: "malformed (generated)".into(),
                    }),
                })
                .collect()
        })
        .collect()
}

/// A dead letter as the tables and the oracle both name it: stream, source, position.
type DeadKey = (String, String, i64);

/// A too-late record: stream, source, position, id, event time (ms), watermark (ms).
type LateKey = (String, String, i64, String, i64, i64);

/// The dead letters and too-late records held in `schema`'s reject tables, sorted.
fn rejects(client: &mut Client, schema: &str) -> (Vec<DeadKey>, Vec<LateKey>) {
    let mut dead: Vec<DeadKey> = client
        .query(
            &format!(
                "SELECT stream, source, position FROM {schema}.diffmill_aggregates_dead_letters"
            ),
            &[],
        )
        .expect("the dead-letter table reads")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut late: Vec<LateKey> = client
        .query(
            &format!(
                "SELECT stream, source, position, id::text, \
                 (extract(epoch FROM ts) * 1000)::int8, \
                 (extract(epoch FROM watermark) * 1000)::int8 \
                 FROM {schema}.diffmill_aggregates_too_late"
            ),
            &[],
        )
        .expect("the too-late table reads")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    dead.sort();
    late.sort();
    (dead, late)
}

/// The oracle's dead letters and too-late records, keyed and sorted as [`rejects`].
fn expected_rejects(oracle: &Oracle) -> (Vec<DeadKey>, Vec<LateKey>) {
    let mut dead: Vec<DeadKey> = oracle
        .dead_letters()
        .into_iter()
        .map(|d| {
            (
                d.stream.name().to_owned(),
                d.origin.source,
                d.origin.position as i64,
            )
        })
        .collect();
    let mut late: Vec<LateKey> = oracle
        .too_late()
        .into_iter()
        .map(|t| {
            (
                t.stream.name().to_owned(),
                t.origin.source,
                t.origin.position as i64,
                t.id.to_string(),
                t.ts as i64,
                t.watermark as i64,
            )
        })
        .collect();
    dead.sort();
    late.sort();
    (dead, late)
}

/// One-minute windows by campaign, a batch at every frontier move, and 4000 bids over
/// 200 s of event time with late, too-late, duplicate, orphan and malformed records.
fn case() -> (FunnelSettings, Vec<Vec<Arrival>>) {
    let settings = support::settings(60_000, 120_000, 300_000, 300_000, 2_000);
    let partitions = generated(
        &settings,
        GeneratorConfig {
            seed: 8,
            bids: 4_000,
            rate: 20,
            partitions: 3,
            late: 0.01,
            too_late: 0.005,
            duplicate: 0.01,
            orphan: 0.01,
            malformed: 0.005,
            ..GeneratorConfig::default()
        },
    );
    (settings, partitions)
}

fn run(
    settings: &FunnelSettings,
    partitions: &[Vec<Arrival>],
    sink: PostgresSink,
) -> Result<(), RunError> {
    Funnel::new(settings.clone())
        .source(MemorySource::new(partitions.to_vec()).with_chunk(200))
        .sink(sink)
        .workers(2)
        .run()
        .map(|_| ())
}

#[test]
fn totals_equal_the_oracle_and_a_second_run_adds_nothing() {
    let Some(url) = database("totals_equal_the_oracle_and_a_second_run_adds_nothing") else {
        return;
    };
    let (settings, partitions) = case();
    let aggregate = settings.aggregates[0].clone();
    let mut config = fresh(&url, "t_totals");
    config.change_log_table = Some("changes".into());
    let oracle = Oracle::new(&settings, &partitions);
    let expected = as_csv(&oracle.final_values(), &settings, 0);
    let expected_rejects = expected_rejects(&oracle);
    assert!(
        !expected_rejects.0.is_empty() && !expected_rejects.1.is_empty(),
        "the input has dead letters and too-late records ({} and {})",
        expected_rejects.0.len(),
        expected_rejects.1.len()
    );
    let mut client = connect(&url);

    for attempt in ["first", "second"] {
        let sink = PostgresSink::open(&config, &aggregate).expect("the sink opens");
        run(&settings, &partitions, sink).expect("the run succeeds");
        assert_eq!(
            totals(&mut client, "t_totals.diffmill_aggregates", &aggregate),
            expected,
            "{attempt} run: the table vs the oracle"
        );
        assert_eq!(
            rejects(&mut client, "t_totals"),
            expected_rejects,
            "{attempt} run: the dead letters and too-late records, each once"
        );
        let (_, batches, complete) = progress(
            &mut client,
            "t_totals.diffmill_progress",
            &config.sink_name(),
        );
        assert!(complete, "{attempt} run: the input was complete");
        let changes: i64 = client
            .query_one(
                "SELECT count(DISTINCT batch_seq) FROM t_totals.changes",
                &[],
            )
            .expect("the change log reads")
            .get(0);
        assert!(
            changes > 1 && changes <= batches,
            "{changes} of {batches} batches logged"
        );
    }
    let statuses: Vec<String> = client
        .query(
            "SELECT DISTINCT status FROM t_totals.diffmill_aggregates",
            &[],
        )
        .expect("statuses read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["final"], "every window is final at the end");
    // The change log sums to the totals.
    let logged: BTreeMap<(String, String), i64> = client
        .query(
            "SELECT window_start::text, campaign_id, sum(revenue_micros)::int8 \
             FROM t_totals.changes GROUP BY 1, 2 HAVING sum(revenue_micros) <> 0",
            &[],
        )
        .expect("the change log sums")
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let held: BTreeMap<(String, String), i64> = client
        .query(
            "SELECT window_start::text, campaign_id, revenue_micros \
             FROM t_totals.diffmill_aggregates WHERE revenue_micros <> 0",
            &[],
        )
        .expect("the totals read")
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    assert_eq!(logged, held, "the change log sums to the totals");
}

#[test]
fn a_run_failed_mid_way_then_rerun_equals_the_oracle_not_double() {
    let Some(url) = database("a_run_failed_mid_way_then_rerun_equals_the_oracle_not_double") else {
        return;
    };
    let (mut settings, partitions) = case();
    let aggregate = settings.aggregates[0].clone();
    let config = fresh(&url, "t_failed");
    let oracle = Oracle::new(&settings, &partitions);
    let mut client = connect(&url);

    // The progress update is the last statement of a batch's transaction: failing it
    // after the rows were upserted shows that nothing of the batch stays.
    PostgresSink::open(&config, &aggregate).expect("the sink opens (creates the tables)");
    client
        .batch_execute(
            "ALTER TABLE t_failed.diffmill_progress ADD CONSTRAINT stop_here CHECK (batch_seq <= 2)",
        )
        .expect("the constraint is added");
    let sink = PostgresSink::open(&config, &aggregate).expect("the sink opens");
    let error = run(&settings, &partitions, sink).expect_err("the 3rd batch fails");
    let message = error.to_string();
    assert!(
        message.contains("permanent error") && message.contains("not applied"),
        "{message}"
    );
    let (frontier, batches, complete) = progress(
        &mut client,
        "t_failed.diffmill_progress",
        &config.sink_name(),
    );
    assert_eq!((batches, complete), (2, false));
    assert_eq!(
        totals(&mut client, "t_failed.diffmill_aggregates", &aggregate),
        as_csv(
            &oracle.expected_prefix(Some(frontier as Millis)),
            &settings,
            0
        ),
        "after the failure: the totals at the 2nd batch's frontier {frontier}, nothing of the 3rd"
    );
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM t_failed.diffmill_aggregates_dead_letters \
             WHERE batch_seq >= 2 OR frontier IS NULL",
            &[],
        )
        .expect("the dead letters read")
        .get(0);
    assert_eq!(
        logged, 0,
        "nothing of the failed batch in the dead-letter table"
    );

    // The re-run batches differently (at most every 20 ms): the emitter must cut a batch at
    // the recorded frontier, or the sink refuses a batch that straddles it.
    client
        .batch_execute("ALTER TABLE t_failed.diffmill_progress DROP CONSTRAINT stop_here")
        .expect("the constraint is dropped");
    settings.emit_interval = Duration::from_millis(20);
    let sink = PostgresSink::open(&config, &aggregate).expect("the sink reopens");
    assert_eq!(sink.resume().map(|r| r.frontier), Some(frontier as Millis));
    run(&settings, &partitions, sink).expect("the re-run succeeds");
    assert_eq!(
        totals(&mut client, "t_failed.diffmill_aggregates", &aggregate),
        as_csv(&oracle.final_values(), &settings, 0),
        "after the re-run: the oracle's final values, nothing twice"
    );
    assert_eq!(
        rejects(&mut client, "t_failed"),
        expected_rejects(&oracle),
        "after the re-run: every dead letter and too-late record once"
    );
}

#[test]
fn a_concurrent_reader_only_sees_totals_at_batch_boundaries() {
    let Some(url) = database("a_concurrent_reader_only_sees_totals_at_batch_boundaries") else {
        return;
    };
    let (settings, partitions) = case();
    let aggregate = settings.aggregates[0].clone();
    let config = fresh(&url, "t_reader");
    let oracle = Oracle::new(&settings, &partitions);
    let sink = PostgresSink::open(&config, &aggregate).expect("the sink opens");
    let sink_name = config.sink_name();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        let url = url.clone();
        let aggregate = aggregate.clone();
        std::thread::spawn(move || {
            let mut client = connect(&url);
            let mut snapshots = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let mut transaction = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .expect("a snapshot starts");
                let seen = progress(&mut transaction, "t_reader.diffmill_progress", &sink_name);
                let held = totals(&mut transaction, "t_reader.diffmill_aggregates", &aggregate);
                transaction.commit().expect("the snapshot ends");
                snapshots.push((seen, held));
                if finished {
                    return snapshots;
                }
            }
        })
    };
    run(&settings, &partitions, sink).expect("the run succeeds");
    done.store(true, Ordering::SeqCst);
    let snapshots = reader.join().expect("the reader");

    let mut expected: BTreeMap<Option<Millis>, CsvAggregates> = BTreeMap::new();
    let mut frontiers = std::collections::BTreeSet::new();
    for ((frontier, batches, complete), held) in &snapshots {
        let at = (!complete).then_some(*frontier as Millis);
        let want = expected
            .entry(at)
            .or_insert_with(|| as_csv(&oracle.expected_prefix(at), &settings, 0));
        assert_eq!(
            &held, &want,
            "a snapshot after {batches} batches (frontier {frontier}, complete {complete}) is \
             not the cumulative sum at that batch boundary"
        );
        frontiers.insert(at);
    }
    assert!(
        frontiers.len() >= 3,
        "the reader saw {} batch boundaries in {} snapshots: too few to tell",
        frontiers.len(),
        snapshots.len()
    );
    println!(
        "{} snapshots at {} batch boundaries, each equal to the oracle's prefix",
        snapshots.len(),
        frontiers.len()
    );
}

/// A PostgreSQL sink whose connection is terminated by the server (from another
/// session) before its 3rd, 6th and 9th batch: the sink finds it lost when it writes.
struct Terminating {
    inner: PostgresSink,
    client: Client,
    batches: u64,
    terminated: Arc<AtomicI64>,
}

impl Sink for Terminating {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn write_batch(&mut self, batch: &diffmill::connectors::Batch) -> Result<(), SinkError> {
        self.batches += 1;
        if self.batches.is_multiple_of(3) && self.batches <= 9 {
            let row = self
                .client
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'diffmill_t_retry'",
                    &[],
                )
                .expect("backends are terminated");
            self.terminated
                .fetch_add(row.get::<_, i64>(0), Ordering::SeqCst);
        }
        self.inner.write_batch(batch)
    }

    fn resume(&self) -> Option<diffmill::connectors::Resume> {
        self.inner.resume()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.inner.close()
    }
}

#[test]
fn lost_connections_are_retried_without_counting_twice() {
    let Some(url) = database("lost_connections_are_retried_without_counting_twice") else {
        return;
    };
    let (settings, partitions) = case();
    let aggregate = settings.aggregates[0].clone();
    let mut config = fresh(&url, "t_retry");
    let separator = if url.contains('?') { '&' } else { '?' };
    config.url = Some(format!("{url}{separator}application_name=diffmill_t_retry"));
    let sink = PostgresSink::open(&config, &aggregate).expect("the sink opens");

    // Terminate the sink's connection while it writes: the server ends the session
    // (SQLSTATE 57P01 or a closed socket), mid-transaction or between transactions.
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let done = Arc::clone(&done);
        let url = url.clone();
        std::thread::spawn(move || {
            let mut client = connect(&url);
            let mut terminated = 0;
            // A few times, far enough apart for the sink to reconnect and go on.
            for _ in 0..5 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let row = client
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = 'diffmill_t_retry'",
                        &[],
                    )
                    .expect("backends are terminated");
                terminated += row.get::<_, i64>(0);
                std::thread::sleep(Duration::from_millis(300));
            }
            terminated
        })
    };
    // Also between transactions, at fixed batches, so the losses happen however fast
    // the run is (on a quiet machine it may end before the killer's second round).
    let between = Arc::new(AtomicI64::new(0));
    let sink = Terminating {
        inner: sink,
        client: connect(&url),
        batches: 0,
        terminated: Arc::clone(&between),
    };
    let ran = Funnel::new(settings.clone())
        .source(MemorySource::new(partitions.to_vec()).with_chunk(200))
        .sink(sink)
        .workers(2)
        .run()
        .map(|_| ());
    done.store(true, Ordering::SeqCst);
    let terminated = killer.join().expect("the killer") + between.load(Ordering::SeqCst);
    ran.expect("the run succeeds despite the lost connections");
    assert!(
        terminated >= 2,
        "only {terminated} connections were terminated"
    );
    let mut client = connect(&url);
    assert_eq!(
        totals(&mut client, "t_retry.diffmill_aggregates", &aggregate),
        as_csv(
            &Oracle::new(&settings, &partitions).final_values(),
            &settings,
            0
        ),
        "{terminated} connections lost: still the oracle, nothing twice"
    );
}

/// A files graph (1 minute windows, a batch at every frontier move) into `schema`.
fn files_graph_into(dir: &Path, schema: &str) -> (std::path::PathBuf, FunnelSettings) {
    let (graph, settings) = files_graph(dir, Format::Csv);
    let text = std::fs::read_to_string(&graph).expect("the graph reads");
    let head = text.split("[[sink]]").next().expect("the graph's head");
    let text = format!(
        "{head}[[sink]]\nkind = \"postgres\"\nurl_env = \"{URL_VAR}\"\nschema = \"{schema}\"\n"
    );
    std::fs::write(&graph, text).expect("the graph writes");
    (graph, settings)
}

#[test]
fn a_killed_run_then_a_restart_equals_the_oracle_not_double() {
    let Some(url) = database("a_killed_run_then_a_restart_equals_the_oracle_not_double") else {
        return;
    };
    let config = fresh(&url, "t_killed");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (graph, settings) = files_graph_into(dir.path(), "t_killed");
    generate(dir.path(), &graph, Format::Csv, 17, 100_000);
    let (_, partitions) = file_partitions(Format::Csv, &settings.schema, &dir.path().join("data"));
    let expected = as_csv(
        &Oracle::new(&settings, &partitions).final_values(),
        &settings,
        0,
    );
    let aggregate = settings.aggregates[0].clone();
    let mut client = connect(&url);

    let mut child = command(dir.path())
        .args([
            "run".as_ref(),
            graph.as_os_str(),
            "--status-every".as_ref(),
            "0".as_ref(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("diffmill starts");
    let started = Instant::now();
    let watched: Result<i64, String> = loop {
        let seen = client
            .query_opt(
                "SELECT batch_seq, complete FROM t_killed.diffmill_progress WHERE sink = $1",
                &[&config.sink_name()],
            )
            .ok()
            .flatten()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, bool>(1)));
        match seen {
            Some((_, true)) => {
                break Err("the run ended before it was killed: give it more input".into())
            }
            Some((batches, false)) if batches >= 2 => break Ok(batches),
            _ if started.elapsed() > Duration::from_secs(120) => {
                break Err("no batches after 2 minutes".into())
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    child.kill().expect("diffmill is killed");
    let _ = child.wait();
    let killed_at = watched.expect("killed mid-run");
    let (frontier, batches, complete) = progress(
        &mut client,
        "t_killed.diffmill_progress",
        &config.sink_name(),
    );
    assert!(!complete && batches >= killed_at, "killed mid-run");
    let oracle = Oracle::new(&settings, &partitions);
    assert_eq!(
        totals(&mut client, "t_killed.diffmill_aggregates", &aggregate),
        as_csv(
            &oracle.expected_prefix(Some(frontier as Millis)),
            &settings,
            0
        ),
        "the killed run left the totals at its last committed frontier {frontier}"
    );

    diffmill_ok(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    assert_eq!(
        totals(&mut client, "t_killed.diffmill_aggregates", &aggregate),
        expected,
        "killed after {batches} batches, then restarted: the oracle, nothing twice"
    );
    // File sources name partitions by path, the oracle by index: compare without it.
    let unsourced = |(dead, late): (Vec<DeadKey>, Vec<LateKey>)| {
        let mut dead: Vec<(String, i64)> = dead.into_iter().map(|d| (d.0, d.2)).collect();
        let mut late: Vec<(String, i64, String, i64, i64)> = late
            .into_iter()
            .map(|l| (l.0, l.2, l.3, l.4, l.5))
            .collect();
        dead.sort();
        late.sort();
        (dead, late)
    };
    let held = unsourced(rejects(&mut client, "t_killed"));
    let expected_rejects = unsourced(expected_rejects(&oracle));
    assert!(
        !held.0.is_empty(),
        "the generated files have malformed lines"
    );
    assert_eq!(
        (held.0.len(), held.1.len()),
        (expected_rejects.0.len(), expected_rejects.1.len()),
        "killed, then restarted: how many dead letters and too-late records"
    );
    assert_eq!(
        held, expected_rejects,
        "killed, then restarted: every dead letter and too-late record once"
    );
}

#[test]
fn the_graph_file_runs_twice_into_the_same_totals() {
    let Some(url) = database("the_graph_file_runs_twice_into_the_same_totals") else {
        return;
    };
    let graph = graphs_dir().join("postgres_funnel.toml");
    let spec = GraphSpec::load(&graph).expect("the graph loads");
    let mut client = connect(&url);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS public.diffmill_aggregates, public.diffmill_progress, \
             public.diffmill_changes",
        )
        .expect("old tables drop");
    let settings = spec
        .declaration()
        .resolve()
        .expect("the graph's declaration resolves");
    let diffmill::graph::SourceSpec::Generator(mut generator) = spec.source.clone() else {
        panic!("the graph's source is the generator");
    };
    generator.bids = 3_000;
    let expected = as_csv(
        &Oracle::new(&settings, &generated(&settings, generator)).final_values(),
        &settings,
        0,
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    for attempt in ["first", "second"] {
        let ran = command(dir.path())
            .env("DIFFMILL_POSTGRES_URL", &url)
            .args([
                "run".as_ref(),
                graph.as_os_str(),
                "--bids".as_ref(),
                "3000".as_ref(),
            ])
            .output()
            .expect("diffmill runs");
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert!(ran.status.success(), "{attempt} run: {stderr}");
        assert_eq!(
            totals(
                &mut client,
                "public.diffmill_aggregates",
                &settings.aggregates[0]
            ),
            expected,
            "{attempt} run of {}",
            graph.display()
        );
    }
}

#[test]
fn permanent_errors_stop_with_a_clear_message() {
    let Some(url) = database("permanent_errors_stop_with_a_clear_message") else {
        return;
    };
    // A refused login: an unknown user with a wrong password.
    let parsed: postgres::Config = url.parse().expect("the test URL parses");
    let host = match &parsed.get_hosts()[0] {
        postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        _ => "localhost".to_owned(),
    };
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let dbname = parsed.get_dbname().unwrap_or("postgres");
    let mut refused = PostgresConfig::with_url(format!(
        "postgresql://diffmill_nobody:wrong@{host}:{port}/{dbname}"
    ));
    refused.retry_for = diffmill::declare::DurationText::from_millis(200);
    let started = Instant::now();
    let error = PostgresSink::open(&refused, &grouped_by(&["campaign_id"]))
        .err()
        .expect("the login is refused")
        .to_string();
    assert!(
        error.contains("permanent error") && error.contains("SQLSTATE 28"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");

    // A table of another shape: written by a graph grouped by campaign, opened by one
    // grouped by campaign and region.
    let config = fresh(&url, "t_shape");
    PostgresSink::open(&config, &grouped_by(&["campaign_id"])).expect("the sink opens");
    let error = PostgresSink::open(&config, &grouped_by(&["campaign_id", "region"]))
        .err()
        .expect("the table has other columns")
        .to_string();
    assert!(
        error.contains("permanent error")
            && error.contains("t_shape.diffmill_aggregates exists with other columns"),
        "{error}"
    );

    // Nothing listens: transient, retried for `retry_for`, then a clear message.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = free.local_addr().expect("an address").port();
    drop(free);
    let mut unreachable =
        PostgresConfig::with_url(format!("postgresql://diffmill@127.0.0.1:{port}/db"));
    unreachable.retry_for = diffmill::declare::DurationText::from_millis(500);
    let started = Instant::now();
    let error = PostgresSink::open(&unreachable, &grouped_by(&["campaign_id"]))
        .err()
        .expect("nothing listens")
        .to_string();
    assert!(
        error.contains("still failing after retrying for"),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(500), "retried");
}

/// Issue #18, item 4: an unreachable database was a minute of silence. The run says at
/// once where it connects, says so while it retries, and names the address (never the
/// password) when it gives up. Needs no server.
#[test]
fn an_unreachable_database_is_named_at_once_and_when_giving_up() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let address = format!("127.0.0.1:{}", closed_port());
    let graph = dir.path().join("unreachable.toml");
    std::fs::write(
        &graph,
        format!(
            "name = \"pg\"\n[source]\nkind = \"generator\"\nbids = 10\n\
             [[sink]]\nkind = \"postgres\"\nurl = \"postgresql://diffmill:secret@{address}/reports\"\n\
             retry_for = \"2s\"\n"
        ),
    )
    .expect("the graph writes");
    let ran = diffmill_within(
        dir.path(),
        ["run".as_ref(), graph.as_os_str()],
        Duration::from_secs(60),
    );
    let stderr = &ran.stderr;
    assert_eq!(ran.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!(
            "connecting to PostgreSQL at {address} (database reports)"
        )),
        "the first line does not say where: {stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot connect to PostgreSQL at {address}"))
            && stderr.contains("retrying for up to 2s"),
        "no visible retry: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains(&address) && last.contains("after retrying"),
        "the error does not name the address: {stderr}"
    );
    assert!(
        !stderr.contains("secret"),
        "the password is shown: {stderr}"
    );
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let head =
        "name = \"pg\"\n[source]\nkind = \"generator\"\nbids = 10\n[[sink]]\nkind = \"postgres\"\n";
    for (sink, key, problem) in [
        (
            "url_env = \"DIFFMILL_TEST_SURELY_UNSET\"\n",
            "sink[0].url_env",
            "DIFFMILL_TEST_SURELY_UNSET",
        ),
        (
            "url = \"postgresql://localhost/db\"\nurl_env = \"X\"\n",
            "sink[0].url",
            "not both",
        ),
        (
            "url = \"postgresql://localhost/db\"\ntable = \"Totals\"\n",
            "sink[0].table",
            "not a plain SQL name",
        ),
        (
            "url = \"postgresql://localhost/db\"\ntabel = \"x\"\n",
            "tabel",
            "unknown field",
        ),
    ] {
        let graph = dir.path().join("pg.toml");
        std::fs::write(&graph, format!("{head}{sink}")).expect("the graph writes");
        let ran = diffmill(dir.path(), ["run".as_ref(), graph.as_os_str()]);
        assert_eq!(ran.code(), Some(2), "{sink}: {}", ran.stderr);
        for part in [graph.display().to_string().as_str(), key, problem] {
            assert!(
                ran.stderr.contains(part),
                "{sink}: no `{part}` in {}",
                ran.stderr
            );
        }
    }
}
