//! Observing a run (issue #15) through the real binary: `/metrics` scraped during and
//! after a run parses as Prometheus text and its counters equal the run's own accounting;
//! `/ready` is not ready before the cluster forms and ready after; a PostgreSQL sink
//! whose sessions are killed makes `/ready` not ready until it recovers; no secret shows.

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diffmill::event::StreamKind;
use prometheus_parse::{Scrape, Value};

use support::cli::{command, graphs_dir, read_csv, summary_counts};
use support::http::{get, wait_until, Lines};
use support::services::service;

const DEADLINE: Duration = Duration::from_secs(120);

/// Every sample of a scrape, parsed by a Prometheus text parser: `(name, labels) → value`.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn scrape(address: SocketAddr) -> Samples {
    let (status, body) = get(address, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "/metrics: {body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = Scrape::parse(lines).expect("the exposition parses as Prometheus text");
    assert!(!parsed.samples.is_empty(), "no samples in:\n{body}");
    parsed
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => return None,
            };
            let labels = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(((sample.metric, labels), value))
        })
        .collect()
}

/// The sum of `name` over the samples whose `label` is `value`.
fn sum(samples: &Samples, name: &str, label: &str, value: &str) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| {
            n == name && labels.get(label).map(String::as_str) == Some(value)
        })
        .map(|(_, v)| v)
        .sum()
}

fn single(samples: &Samples, name: &str) -> Option<f64> {
    samples
        .iter()
        .find(|((n, _), _)| n == name)
        .map(|(_, v)| *v)
}

/// `diffmill run <args>` in `dir`, observed on a free port, stderr collected.
fn spawn_observed(dir: &Path, args: &[&str]) -> (Child, Lines) {
    let mut child = command(dir)
        .arg("run")
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0", "--status-every", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("diffmill starts");
    let lines = Lines::of(&mut child);
    (child, lines)
}

fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    wait_until("the process to exit", DEADLINE, || {
        child.try_wait().expect("waitable")
    })
}

#[test]
fn metrics_equal_the_runs_accounting() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // The main graph, checkpointing often enough to write some during a short run.
    let text = std::fs::read_to_string(graphs_dir().join("ad_funnel.toml")).expect("the graph");
    let interval = "checkpoint_interval = \"5s\"";
    assert!(
        text.contains(interval),
        "graphs/ad_funnel.toml sets {interval}"
    );
    let text = text.replace(interval, "checkpoint_interval = \"100ms\"");
    std::fs::write(dir.path().join("ad_funnel.toml"), text).expect("the graph writes");
    let (mut child, lines) = spawn_observed(
        dir.path(),
        &[
            "ad_funnel.toml",
            "--bids",
            "60000",
            "--output",
            "out",
            "--linger",
            "120s",
        ],
    );
    let address = lines.metrics_address();

    // During the run (or already after it): the exposition parses, the run is described.
    let during = scrape(address);
    assert!(during.keys().any(|(n, l)| n == "diffmill_run_info"
        && l.get("graph").map(String::as_str) == Some("ad_funnel")));

    lines.wait_for("still serving", DEADLINE);
    let after = scrape(address);
    let stderr = lines.all().join("\n");
    let summary = summary_counts(&stderr);
    assert_eq!(summary.len(), 4, "a summary per stream in:\n{stderr}");
    for (kind, counts) in &summary {
        let stream = kind.name();
        let [read, applied, duplicate, too_late, dead_lettered, late, attribution_only] =
            counts.map(|c| c as f64);
        for (name, expected) in [
            ("diffmill_records_read_total", read),
            ("diffmill_records_applied_total", applied),
            ("diffmill_records_duplicate_total", duplicate),
            ("diffmill_records_too_late_total", too_late),
            ("diffmill_records_dead_lettered_total", dead_lettered),
            ("diffmill_records_late_total", late),
            ("diffmill_records_attribution_only_total", attribution_only),
        ] {
            assert_eq!(
                sum(&after, name, "stream", stream),
                expected,
                "{name}{{stream={stream}}}"
            );
        }
    }
    assert!(
        summary[&StreamKind::Bid][0] > 60_000,
        "the generator read its bids"
    );
    // Per partition: the generator's four shards each read some bids.
    for shard in 0..4 {
        let partition = format!("generator/{shard}");
        assert!(
            sum(
                &after,
                "diffmill_records_read_total",
                "partition",
                &partition
            ) > 0.0
        );
        assert!(after.contains_key(&(
            "diffmill_partition_watermark_seconds".to_owned(),
            BTreeMap::from([("partition".to_owned(), partition)])
        )));
    }

    // Batches and rows equal what the CSV sink wrote.
    let batches: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the summary counts batches");
    assert_eq!(
        single(&after, "diffmill_batches_written_total"),
        Some(batches)
    );
    assert_eq!(
        single(&after, "diffmill_batch_latency_seconds_count"),
        Some(batches)
    );
    let (header, rows) = read_csv(&dir.path().join("out/aggregates.csv"));
    let status = header
        .iter()
        .position(|h| h == "status")
        .expect("a status column");
    for name in ["open", "closed", "correction"] {
        let written = rows.iter().filter(|r| r[status] == name).count() as f64;
        assert_eq!(
            sum(&after, "diffmill_rows_written_total", "status", name),
            written,
            "rows with status {name}"
        );
    }
    let finals = rows.iter().filter(|r| r[status] == "final").count() as f64;
    assert_eq!(
        single(&after, "diffmill_windows_finalized_total"),
        Some(finals)
    );
    let closed_windows: std::collections::BTreeSet<&String> = rows
        .iter()
        .filter(|r| r[status] == "closed")
        .map(|r| &r[0])
        .collect();
    assert_eq!(
        single(&after, "diffmill_window_latency_seconds_count"),
        Some(closed_windows.len() as f64),
        "one window latency per window closed"
    );
    assert_eq!(single(&after, "diffmill_input_complete"), Some(1.0));
    assert_eq!(single(&after, "diffmill_ready"), Some(1.0));

    // The graph keeps state: the newest file is the marker of the complete input, the one
    // before it the last checkpoint of state, which the metrics describe.
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("out/ad_funnel/state"))
        .expect("the state folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "a checkpoint and the marker: {files:?}");
    let last = &files[files.len() - 2];
    let size = std::fs::metadata(last).expect("its size").len() as f64;
    assert_eq!(single(&after, "diffmill_checkpoint_size_bytes"), Some(size));
    assert!(single(&after, "diffmill_checkpoints_written_total").is_some_and(|n| n >= 1.0));
    assert!(single(&after, "diffmill_checkpoint_age_seconds").is_some_and(|a| a >= 0.0));

    assert!(
        interrupt(&mut child).success(),
        "Ctrl-C ends the linger with 0"
    );
}

/// `n` ports that were free a moment ago.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

#[test]
fn ready_only_once_the_cluster_forms() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let hosts = dir.path().join("hosts");
    let text: String = free_ports(2)
        .iter()
        .map(|p| format!("127.0.0.1:{p}\n"))
        .collect();
    std::fs::write(&hosts, text).expect("the hostfile writes");
    let graph = graphs_dir().join("ad_funnel.toml");
    let process = |index: &str| {
        let args = [
            graph.to_str().expect("utf-8"),
            "--bids",
            "20000",
            "--output",
            "out",
            "--linger",
            "120s",
            "-n",
            "2",
            "-p",
            index,
            "--hostfile",
            hosts.to_str().expect("utf-8"),
        ];
        spawn_observed(dir.path(), &args)
    };
    let (mut first, first_lines) = process("0");
    let first_address = first_lines.metrics_address();

    // Process 1 is not started: the cluster cannot form. Live, not ready, and saying why.
    let (status, _) = get(first_address, "/health").expect("/health answers");
    assert_eq!(status, 200);
    let (status, body) = get(first_address, "/ready").expect("/ready answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cluster has not formed"), "{body}");
    let before = scrape(first_address);
    assert_eq!(single(&before, "diffmill_ready"), Some(0.0));

    let (mut second, second_lines) = process("1");
    let second_address = second_lines.metrics_address();
    wait_until("process 0 to be ready", DEADLINE, || {
        get(first_address, "/ready").filter(|(status, _)| *status == 200)
    });
    wait_until("process 1 to be ready", DEADLINE, || {
        get(second_address, "/ready").filter(|(status, _)| *status == 200)
    });

    // Each process serves its own metrics; process 0 the dashboard.
    second_lines.wait_for("still serving", DEADLINE);
    let theirs = scrape(second_address);
    assert!(sum(&theirs, "diffmill_records_read_total", "stream", "bid") > 0.0);
    let (_, page) = get(second_address, "/").expect("process 1 answers /");
    assert!(
        page.contains("Process 0 writes the sinks and serves the dashboard"),
        "{page}"
    );
    let (_, page) = get(first_address, "/").expect("process 0 answers /");
    assert!(page.contains("/dashboard.js"), "{page}");

    assert!(interrupt(&mut second).success());
    assert!(interrupt(&mut first).success());
}

#[test]
fn a_failing_postgres_sink_is_not_ready_and_no_secret_shows() {
    let Some(url) = service(
        "a_failing_postgres_sink_is_not_ready_and_no_secret_shows",
        "DIFFMILL_TEST_POSTGRES_URL",
    ) else {
        return;
    };
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("the database");
    admin
        .batch_execute("DROP SCHEMA IF EXISTS t_observe CASCADE")
        .expect("the schema drops");
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .expect("the test URL has a password");
    let separator = if url.contains('?') { '&' } else { '?' };
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("graph.toml"),
        "name = \"observed_postgres\"\n\
         [source]\nkind = \"generator\"\nbids = 200000\nrate = 250\npartitions = 2\n\
         [funnel]\nemit_interval = \"200ms\"\n\
         [[sink]]\nkind = \"postgres\"\nurl_env = \"OBSERVE_TEST_URL\"\nschema = \"t_observe\"\nretry_for = \"300s\"\n",
    )
    .expect("the graph writes");
    let mut child = command(dir.path())
        .args([
            "run",
            "graph.toml",
            "--metrics-addr",
            "127.0.0.1:0",
            "--linger",
            "120s",
        ])
        .args(["--status-every", "0"])
        .env(
            "OBSERVE_TEST_URL",
            format!("{url}{separator}application_name=diffmill_t_observe"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("diffmill starts");
    let lines = Lines::of(&mut child);
    let address = lines.metrics_address();

    // Kill the sink's sessions again and again: it fails and retries, so not ready.
    let killing = Arc::new(AtomicBool::new(true));
    let killer = {
        let (killing, url) = (Arc::clone(&killing), url.clone());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("a client");
            while killing.load(Ordering::SeqCst) {
                client
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = 'diffmill_t_observe'",
                        &[],
                    )
                    .expect("backends are terminated");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let reasons = wait_until("/ready to say the sink is failing", DEADLINE, || {
        get(address, "/ready").filter(|(status, body)| *status == 503 && body.contains("failing"))
    });
    assert!(
        reasons.1.contains("t_observe.diffmill_aggregates"),
        "{}",
        reasons.1
    );
    let failing = scrape(address);
    assert_eq!(
        sum(
            &failing,
            "diffmill_sink_failing",
            "sink",
            "t_observe.diffmill_aggregates"
        ),
        1.0
    );
    assert!(
        sum(
            &failing,
            "diffmill_sink_retries_total",
            "sink",
            "t_observe.diffmill_aggregates"
        ) > 0.0
    );

    // Stop killing: the sink recovers, the run is ready again and completes.
    killing.store(false, Ordering::SeqCst);
    killer.join().expect("the killer stops");
    wait_until("/ready to be ready again", DEADLINE, || {
        get(address, "/ready").filter(|(status, _)| *status == 200)
    });
    lines.wait_for("still serving", Duration::from_secs(300));
    let after = scrape(address);
    assert_eq!(single(&after, "diffmill_input_complete"), Some(1.0));

    // No page, no endpoint and no metric shows the password of the connection string.
    for path in [
        "/metrics",
        "/",
        "/api/stats",
        "/api/funnel",
        "/ready",
        "/health",
    ] {
        let (_, body) = get(address, path).expect("the endpoint answers");
        assert!(!body.contains(&password), "{path} shows the password");
        assert!(!body.contains("postgresql://"), "{path} shows the URL");
    }
    assert!(interrupt(&mut child).success());
}
