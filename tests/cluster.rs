//! Clusters from the CLI (issue #5): the real binary as 2 processes × 2 workers, over
//! timely's TCP runtime on 127.0.0.1, agrees with 1 worker and with the oracle; each
//! record is read once; a killed process stops the others with a clear error; a signal on
//! one process stops the whole cluster and leaves a consistent output; a second signal
//! exits at once even while a sink is stuck; cluster
//! configuration errors are named.

mod support;

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use diffmill::connectors::sum_change_log;
use diffmill::event::StreamKind;
use diffmill::format::Format;
use tempfile::TempDir;

use support::cli::{
    as_csv, command, counts_row, diffmill, diffmill_ok, file_partitions, files_graph, generate,
    graphs_dir, read_csv, row_set, summary_counts, CsvAggregates,
};
use support::cluster::{free_ports, hostfile, Process};
use support::oracle::Oracle;

/// Waits until `path` holds at least one batch of aggregate rows (the run is under way),
/// at most 2 minutes.
fn wait_for_rows(path: &Path) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let rows = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if rows > 1 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} got no rows within 2 minutes", path.display());
}

/// Asserts two summed change logs are equal, naming at most five differing keys rather
/// than printing both whole.
fn assert_same(actual: &CsvAggregates, expected: &CsvAggregates, what: &str) {
    let keys: std::collections::BTreeSet<_> = actual.keys().chain(expected.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|key| actual.get(*key) != expected.get(*key))
        .map(|key| format!("{key:?}: {:?} vs {:?}", actual.get(key), expected.get(key)))
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: {} keys differ, e.g.\n{}",
        differing.len(),
        differing[..differing.len().min(5)].join("\n")
    );
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("diffmill-cluster-")
        .tempdir()
        .expect("a temp dir")
}

/// The last frontier in an aggregates change log (the `frontier` column).
fn last_frontier(path: &Path) -> u64 {
    let (header, rows) = read_csv(path);
    let at = header
        .iter()
        .position(|h| h == "frontier")
        .expect("a frontier column");
    rows.iter()
        .filter_map(|row| row[at].parse::<u64>().ok())
        .max()
        .expect("at least one row with a frontier")
}

#[test]
fn two_processes_of_two_workers_agree_with_one_worker_and_the_oracle() {
    let dir = tempdir();
    let (graph, settings) = files_graph(dir.path(), Format::Csv);
    generate(dir.path(), &graph, Format::Csv, 21, 4000);
    let (_, partitions) = file_partitions(Format::Csv, &settings.schema, &dir.path().join("data"));
    let oracle = Oracle::new(&settings, &partitions);

    let single = dir.path().join("out-single");
    diffmill_ok(
        dir.path(),
        [
            "run".as_ref(),
            graph.as_os_str(),
            "--output".as_ref(),
            single.as_os_str(),
        ],
    );

    let hosts = hostfile(dir.path(), &free_ports(2));
    let out = |name: &str| -> Vec<OsString> {
        vec![
            graph.clone().into(),
            "-w".into(),
            "2".into(),
            "--output".into(),
            dir.path().join(name).into(),
        ]
    };
    let second = Process::start(dir.path(), &out("out-process-1"), &hosts, 2, 1);
    let first = Process::start(dir.path(), &out("out-cluster"), &hosts, 2, 0);
    let (status, first_stderr) = first.finish();
    assert!(status.success(), "process 0: {status}\n{first_stderr}");
    let (status, second_stderr) = second.finish();
    assert!(status.success(), "process 1: {status}\n{second_stderr}");
    assert!(
        !dir.path().join("out-process-1").exists(),
        "only process 0 opens the sinks"
    );

    let cluster = dir.path().join("out-cluster");
    let summed = sum_change_log(&cluster.join("aggregates.csv"), 6).expect("aggregates.csv reads");
    let expected = as_csv(&oracle.final_values(), &settings, 0);
    assert!(!expected.is_empty());
    assert_same(&summed, &expected, "2 × 2 workers vs the oracle");
    let single_summed = sum_change_log(&single.join("aggregates.csv"), 6).expect("reads");
    assert_same(&summed, &single_summed, "2 × 2 workers vs 1 worker");
    for file in ["dead_letters.csv", "late.csv"] {
        let rows = row_set(&cluster.join(file), usize::MAX);
        assert!(!rows.is_empty(), "{file} is empty");
        assert_eq!(
            rows,
            row_set(&single.join(file), usize::MAX),
            "{file}: 2 × 2 vs 1"
        );
    }

    // Each record is read once in the cluster: process 0's accounting is the cluster's,
    // and it equals the oracle's per-stream counts (read, applied, duplicate, ...).
    let accounting = oracle.accounting();
    let counts = summary_counts(&first_stderr);
    for kind in StreamKind::ALL {
        assert_eq!(
            counts.get(&kind),
            Some(&counts_row(accounting.stream(kind))),
            "{kind}: the cluster's accounting vs the oracle\n{first_stderr}"
        );
    }
    assert!(first_stderr.contains("every record is accounted for"));
    // Both processes did part of the reading.
    let read_by_second: u64 = second_stderr
        .split("read ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("process 1 reports what it read:\n{second_stderr}"));
    let total = accounting.total().read;
    assert!(
        read_by_second > 0 && read_by_second < total,
        "process 1 read {read_by_second} of {total}"
    );
}

#[test]
fn a_killed_process_stops_the_others_with_a_clear_error() {
    let dir = tempdir();
    let hosts = hostfile(dir.path(), &free_ports(2));
    let graph = graphs_dir().join("ad_funnel.toml");
    let args = |name: &str| -> Vec<OsString> {
        vec![
            graph.clone().into(),
            "--bids".into(),
            "50000000".into(),
            "--output".into(),
            dir.path().join(name).into(),
        ]
    };
    let mut second = Process::start(dir.path(), &args("out-1"), &hosts, 2, 1);
    let mut first = Process::start(dir.path(), &args("out-0"), &hosts, 2, 0);
    let aggregates = dir.path().join("out-0").join("aggregates.csv");
    wait_for_rows(&aggregates);

    second.child.kill().expect("process 1 is killed");
    let _ = second.child.wait();
    let (status, stderr) = first.exit_within(
        Duration::from_secs(30),
        "process 0 exits once process 1 was killed",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("process 0 lost its connection to the cluster"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // What was written is whole batches: the change log parses and ends with a newline.
    let text = std::fs::read_to_string(&aggregates).expect("aggregates.csv reads");
    assert!(text.ends_with('\n'), "a cut line");
    read_csv(&aggregates);
}

#[test]
fn sigint_on_one_process_stops_the_cluster_and_leaves_a_consistent_output() {
    let dir = tempdir();
    let (graph, settings) = files_graph(dir.path(), Format::Csv);
    generate(dir.path(), &graph, Format::Csv, 31, 150_000);
    let hosts = hostfile(dir.path(), &free_ports(2));
    let args = |name: &str| -> Vec<OsString> {
        vec![
            graph.clone().into(),
            "--output".into(),
            dir.path().join(name).into(),
        ]
    };
    let second = Process::start(dir.path(), &args("out-1"), &hosts, 2, 1);
    let first = Process::start(dir.path(), &args("out-0"), &hosts, 2, 0);
    let aggregates = dir.path().join("out-0").join("aggregates.csv");
    wait_for_rows(&aggregates);
    second.signal("INT");

    let (status, second_stderr) = second.finish();
    assert_eq!(status.code(), Some(130), "process 1:\n{second_stderr}");
    let (status, first_stderr) = first.finish();
    assert_eq!(status.code(), Some(130), "process 0:\n{first_stderr}");
    assert!(
        first_stderr.contains("stopped: process 1 received SIGINT"),
        "{first_stderr}"
    );
    assert!(first_stderr.contains("summary:"), "{first_stderr}");

    // The output is a consistent prefix: its sum is the oracle's at the last frontier.
    let (_, partitions) = file_partitions(Format::Csv, &settings.schema, &dir.path().join("data"));
    let oracle = Oracle::new(&settings, &partitions);
    let frontier = last_frontier(&aggregates);
    let summed = sum_change_log(&aggregates, 6).expect("aggregates.csv reads");
    assert_ne!(
        summed,
        as_csv(&oracle.final_values(), &settings, 0),
        "the run was stopped before the end"
    );
    assert_same(
        &summed,
        &as_csv(&oracle.expected_prefix(Some(frontier)), &settings, 0),
        &format!("the stopped output vs the oracle at its last frontier {frontier}"),
    );
}

#[test]
fn sigterm_stops_one_process_with_its_summary_and_a_consistent_output() {
    let dir = tempdir();
    let (graph, settings) = files_graph(dir.path(), Format::Csv);
    generate(dir.path(), &graph, Format::Csv, 41, 100_000);
    let stderr = dir.path().join("run.stderr");
    let child = command(dir.path())
        .args(["run".as_ref(), graph.as_os_str()])
        .args(["--status-every", "0"])
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).expect("the stderr file"))
        .spawn()
        .expect("diffmill starts");
    let process = Process { child, stderr };
    let aggregates = dir.path().join("out").join("aggregates.csv");
    wait_for_rows(&aggregates);
    process.signal("TERM");
    let (status, stderr) = process.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("summary:"), "{stderr}");
    assert!(stderr.contains("every record is accounted for"), "{stderr}");
    assert!(stderr.contains("not final"), "{stderr}");

    let (_, partitions) = file_partitions(Format::Csv, &settings.schema, &dir.path().join("data"));
    let oracle = Oracle::new(&settings, &partitions);
    let frontier = last_frontier(&aggregates);
    assert_same(
        &sum_change_log(&aggregates, 6).expect("reads"),
        &as_csv(&oracle.expected_prefix(Some(frontier)), &settings, 0),
        &format!("the stopped output vs the oracle at its last frontier {frontier}"),
    );
    // No window is announced final beyond what the frontier makes final.
    let (header, rows) = read_csv(&aggregates);
    let status_at = header.len() - 1;
    for row in rows.iter().filter(|row| row[status_at] == "final") {
        let start: u64 = row[0].parse().expect("a window start");
        assert!(
            settings.aggregates[0].window.final_at(start) <= frontier,
            "window {start} announced final at frontier {frontier}"
        );
    }
}

#[test]
fn cluster_configuration_errors_exit_2_naming_the_problem() {
    let dir = tempdir();
    let graph = graphs_dir().join("ad_funnel.toml");
    let hosts = dir.path().join("bad-hosts");
    std::fs::write(&hosts, "127.0.0.1:2101\nlocalhost\n").expect("writes");
    let good_hosts = hostfile(dir.path(), &[2101, 2102]);
    let cases: Vec<(Vec<OsString>, Vec<String>)> = vec![
        (
            vec![
                "-n".into(),
                "2".into(),
                "--hostfile".into(),
                hosts.clone().into(),
            ],
            vec![format!("{}:2", hosts.display()), "host:port".into()],
        ),
        (
            vec![
                "-n".into(),
                "3".into(),
                "--hostfile".into(),
                good_hosts.clone().into(),
            ],
            vec!["2 address(es) for 3 processes".into()],
        ),
        (
            os(&["-n", "2", "-p", "2"]),
            vec!["process index 2 is out of range".into()],
        ),
        (
            vec![
                "--hostfile".into(),
                dir.path().join("missing").into(),
                "-n".into(),
                "2".into(),
            ],
            vec!["hostfile".into(), "missing".into()],
        ),
    ];
    for (args, names) in cases {
        let mut all = vec![OsString::from("run"), graph.clone().into()];
        all.extend(args.iter().cloned());
        let ran = diffmill(dir.path(), &all);
        assert_eq!(ran.code(), Some(2), "{args:?}: {}", ran.stderr);
        for name in &names {
            assert!(
                ran.stderr.contains(name.as_str()),
                "{args:?}: `{name}` in {}",
                ran.stderr
            );
        }
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    }
}

#[test]
fn a_cluster_that_does_not_form_is_an_error_after_the_connect_timeout() {
    let dir = tempdir();
    let hosts = hostfile(dir.path(), &free_ports(2));
    let graph = graphs_dir().join("ad_funnel.toml");
    for index in [0, 1] {
        let mut args = os(&["--connect-timeout", "2", "--output"]);
        args.insert(0, graph.clone().into());
        args.push(dir.path().join(format!("out-{index}")).into());
        let mut alone = Process::start(dir.path(), &args, &hosts, 2, index);
        let (status, stderr) = alone.exit_within(
            Duration::from_secs(30),
            "a process alone gives up after the connect timeout",
        );
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("the cluster did not form within 2s"),
            "{stderr}"
        );
    }
}

#[test]
fn a_second_signal_exits_at_once_while_a_sink_is_stuck() {
    let dir = tempdir();
    // A stdout sink whose reader never reads: once the pipe is full, the batch in
    // flight cannot finish, so the first signal's clean stop waits for it.
    let graph = dir.path().join("stuck.toml");
    std::fs::write(
        &graph,
        "name = \"stuck\"\n[source]\nkind = \"generator\"\nbids = 50_000_000\nrate = 250\n\
         [funnel]\nwindow = \"1m\"\ngroup_by = [\"campaign_id\", \"region\"]\n\
         emit_interval = \"0ms\"\n[[sink]]\nkind = \"stdout\"\nmax_rows = 1_000_000\n",
    )
    .expect("the graph writes");
    let stderr = dir.path().join("run.stderr");
    let mut child = command(dir.path())
        .args(["run".as_ref(), graph.as_os_str()])
        .args(["--status-every", "0"])
        .stdout(Stdio::piped())
        .stderr(File::create(&stderr).expect("the stderr file"))
        .spawn()
        .expect("diffmill starts");
    let _unread = child.stdout.take();
    let mut process = Process { child, stderr };
    // Enough time to fill a 64 KiB pipe with rows.
    std::thread::sleep(Duration::from_secs(3));
    process.signal("INT");
    let waited = process.wait_at_most(Duration::from_secs(2));
    assert!(
        waited.is_none(),
        "the first signal waits for the stuck batch:\n{}",
        process.log()
    );
    process.signal("INT");
    let (status, log) =
        process.exit_within(Duration::from_secs(10), "the second signal exits at once");
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("SIGINT again: exiting at once"), "{log}");
}

#[test]
fn two_processes_with_the_same_index_on_one_machine_are_an_error() {
    let dir = tempdir();
    let hosts = hostfile(dir.path(), &free_ports(2));
    let graph = graphs_dir().join("ad_funnel.toml");
    let args = |name: &str| -> Vec<OsString> {
        vec![
            graph.clone().into(),
            "--connect-timeout".into(),
            "20".into(),
            "--output".into(),
            dir.path().join(name).into(),
        ]
    };
    let mut first = Process::start(dir.path(), &args("out-first"), &hosts, 2, 0);
    // Wait until the first one listens on process 0's address.
    let started = Instant::now();
    while !first.log().contains("waiting for the cluster")
        && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut twin = Process::start(dir.path(), &args("out-twin"), &hosts, 2, 0);
    let (status, stderr) =
        twin.exit_within(Duration::from_secs(10), "a second process 0 fails at once");
    let _ = first.child.kill();
    let _ = first.child.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("process 0 cannot join the cluster") && stderr.contains("in use"),
        "{stderr}"
    );
}
