//! Helpers of the CLI tests: run the real binary, read its CSV outputs back, and put the
//! oracle's answers in the same shape.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use diffmill::connectors::{Arrival, FileFormat, FileSource, Poll, Source};
use diffmill::declare::{Declaration, DurationText, FunnelSettings, FunnelSpec, Schema};
use diffmill::event::StreamKind;
use diffmill::graph::GraphSpec;
use diffmill::runtime::StreamCounts;

use super::oracle::{Aggregates, Oracle};

/// Summed aggregates keyed as in `aggregates.csv`: `[window_start, window_end, dims…]`,
/// measures in column order.
pub type CsvAggregates = BTreeMap<Vec<String>, Vec<i64>>;

/// What a finished `diffmill` process left: its exit status and its output as text.
pub struct Ran {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// The binary under test, in `cwd`, without the environment variables it reads.
pub fn command(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffmill"));
    command
        .current_dir(cwd)
        .env_remove("DIFFMILL_WORKERS")
        .env_remove("RUST_LOG");
    command
}

/// Runs `diffmill <args>` in `cwd` to completion.
pub fn diffmill<I, S>(cwd: &Path, args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = command(cwd)
        .args(args)
        .output()
        .expect("the diffmill binary starts");
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `diffmill <args>` in `cwd`, waiting at most `limit` for it to exit; kills it
/// and fails the test when it does not.
pub fn diffmill_within<I, S>(cwd: &Path, args: I, limit: Duration) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = command(cwd)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the diffmill binary starts");
    let started = std::time::Instant::now();
    while child
        .try_wait()
        .expect("the process can be waited on")
        .is_none()
    {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("the killed process ends");
            panic!(
                "diffmill still ran after {limit:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the process ended");
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// Runs `diffmill <args>` in `cwd` and asserts it exits 0 without a panic.
pub fn diffmill_ok<I, S>(cwd: &Path, args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let ran = diffmill(cwd, &args);
    assert!(
        ran.status.success(),
        "`diffmill {}` failed ({}):\n{}",
        shown.join(" "),
        ran.status,
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    ran
}

/// The repository's `graphs/` folder.
pub fn graphs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs")
}

/// The partitions of a folder written by `diffmill gen`, read the way the graph's files
/// source reads them: one partition per file, bids then impressions, clicks and
/// conversions, each stream's files sorted by path. Returns each partition's name (its
/// path, as in the `source` column of the outputs) and its arrivals.
pub fn file_partitions(
    format: impl Into<FileFormat>,
    schema: &Schema,
    folder: &Path,
) -> (Vec<String>, Vec<Vec<Arrival>>) {
    let format = format.into();
    let patterns: Vec<(StreamKind, String)> = StreamKind::ALL
        .iter()
        .map(|&kind| (kind, FileSource::folder_pattern(folder, format, kind)))
        .collect();
    let source = FileSource::from_globs(format, std::sync::Arc::new(schema.clone()), &patterns)
        .expect("the generated files exist");
    let names = source
        .files()
        .iter()
        .map(|(_, path)| path.display().to_string())
        .collect();
    let mut partitions = Vec::new();
    for mut partition in source.partitions(0, 1).expect("the files open") {
        let mut arrivals = Vec::new();
        while partition.poll(&mut arrivals, 1024).expect("the file reads") != Poll::Done {}
        partitions.push(arrivals);
    }
    (names, partitions)
}

/// The oracle's aggregates of aggregate `aggregate` keyed as in its `aggregates.csv`.
pub fn as_csv(
    aggregates: &Aggregates,
    settings: &FunnelSettings,
    aggregate: usize,
) -> CsvAggregates {
    let window = settings.aggregates[aggregate].window.length;
    aggregates
        .iter()
        .filter(|((a, _, _), _)| *a == aggregate)
        .map(|((_, start, dims), m)| {
            let mut key = vec![start.to_string(), (start + window).to_string()];
            key.extend(dims.iter().cloned());
            let measures = m
                .iter()
                .map(|v| i64::try_from(*v).expect("a measure fits in i64"))
                .collect();
            (key, measures)
        })
        .collect()
}

/// A CSV file with a header, as the header and the rows.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|row| {
            row.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, rows)
}

/// The rows of a CSV file as a set, each row cut to its first `columns` fields.
pub fn row_set(path: &Path, columns: usize) -> BTreeSet<Vec<String>> {
    read_csv(path)
        .1
        .into_iter()
        .map(|row| row.into_iter().take(columns).collect())
        .collect()
}

/// The oracle's dead letters as `(source, position, stream)`. Dead letters the oracle
/// makes itself (records too far in the future) name the partition `memory/<index>`;
/// that is replaced by the partition's name.
pub fn expected_dead_letters(oracle: &Oracle, names: &[String]) -> BTreeSet<Vec<String>> {
    oracle
        .dead_letters()
        .into_iter()
        .map(|d| {
            let source = match d.origin.source.strip_prefix("memory/") {
                Some(index) => names[index.parse::<usize>().expect("a partition index")].clone(),
                None => d.origin.source,
            };
            vec![
                source,
                d.origin.position.to_string(),
                d.stream.name().to_owned(),
            ]
        })
        .collect()
}

/// The oracle's too-late records as `(source, position, stream, id, ts, watermark)`, with
/// the oracle's partition index replaced by the partition's name.
pub fn expected_too_late(oracle: &Oracle, names: &[String]) -> BTreeSet<Vec<String>> {
    oracle
        .too_late()
        .into_iter()
        .map(|r| {
            let partition: usize = r
                .origin
                .source
                .strip_prefix("memory/")
                .and_then(|p| p.parse().ok())
                .expect("the oracle names partitions memory/<index>");
            vec![
                names[partition].clone(),
                r.origin.position.to_string(),
                r.stream.name().to_owned(),
                r.id.to_string(),
                r.ts.to_string(),
                r.watermark.to_string(),
            ]
        })
        .collect()
}

/// The per-stream accounting table of the summary `run` prints on stderr, as counts of
/// read, applied, duplicate, too_late, dead_lettered, late and attribution_only.
pub fn summary_counts(stderr: &str) -> BTreeMap<StreamKind, [u64; 7]> {
    let mut counts = BTreeMap::new();
    for line in stderr.lines() {
        let mut fields = line.split_whitespace();
        let Some(kind) = fields.next().and_then(StreamKind::from_name) else {
            continue;
        };
        let numbers: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
        if let Ok(numbers) = <[u64; 7]>::try_from(numbers) {
            counts.insert(kind, numbers);
        }
    }
    counts
}

/// The same seven counts from a [`StreamCounts`].
pub fn counts_row(c: &StreamCounts) -> [u64; 7] {
    [
        c.read,
        c.applied,
        c.duplicate,
        c.too_late,
        c.dead_lettered,
        c.late,
        c.attribution_only,
    ]
}

/// The graph of the `gen` → `run` tests: files in `data`, short windows so that late and
/// too-late records occur within a few minutes of event time.
pub fn files_graph(dir: &Path, format: impl Into<FileFormat>) -> (PathBuf, FunnelSettings) {
    let format_name = format.into().name();
    let text = format!(
        "name = \"cli_replay\"\n\
         [source]\nkind = \"files\"\nformat = \"{format_name}\"\npath = '{}'\n\
         [funnel]\nwindow = \"1m\"\ngroup_by = [\"campaign_id\", \"region\"]\n\
         max_disorder = \"2s\"\nmax_future_skew = \"24h\"\nallowed_lateness = \"2m\"\nbid_retention = \"5m\"\n\
         click_retention = \"5m\"\nemit_interval = \"0ms\"\n\
         [[sink]]\nkind = \"csv\"\npath = '{}'\n",
        dir.join("data").display(),
        dir.join("out").display()
    );
    let graph = dir.join("graph.toml");
    std::fs::write(&graph, text).expect("the graph writes");
    let ms = DurationText::from_millis;
    let funnel = FunnelSpec {
        window: Some(ms(60_000)),
        group_by: Some(vec!["campaign_id".into(), "region".into()]),
        allowed_lateness: ms(120_000),
        bid_retention: ms(300_000),
        click_retention: ms(300_000),
        max_disorder: ms(2_000),
        max_future_skew: ms(86_400_000),
        emit_interval: ms(0),
        tick: None,
    };
    let settings = Declaration::default()
        .funnel(funnel)
        .resolve()
        .expect("valid settings");
    let parsed = GraphSpec::load(&graph).expect("the graph loads");
    let declared = parsed.declaration().resolve().expect("a valid declaration");
    assert_eq!(declared, settings, "the graph's settings");
    assert_eq!(settings.emit_interval, Duration::ZERO);
    (graph, settings)
}

/// Writes the `gen` files of `seed` (`bids` bids, with every kind of perturbation) into
/// `dir/data`, placing late records for `graph`.
pub fn generate(dir: &Path, graph: &Path, format: impl Into<FileFormat>, seed: u64, bids: u64) {
    generate_into(&dir.join("data"), dir, graph, format, seed, bids);
}

/// [`generate`] into the folder `data`.
pub fn generate_into(
    data: &Path,
    dir: &Path,
    graph: &Path,
    format: impl Into<FileFormat>,
    seed: u64,
    bids: u64,
) {
    let format = format.into().name();
    let seed = seed.to_string();
    let bids = bids.to_string();
    let flags = [
        "--bids",
        &bids,
        "--rate",
        "20",
        "--partitions",
        "2",
        "--seed",
        &seed,
        "--late",
        "0.01",
        "--too-late",
        "0.01",
        "--duplicate",
        "0.01",
        "--conflicting",
        "0.005",
        "--orphan",
        "0.01",
        "--malformed",
        "0.01",
        "--format",
        format,
    ];
    let mut args = vec![
        "gen".as_ref(),
        "--out".as_ref(),
        data.as_os_str(),
        "--graph".as_ref(),
        graph.as_os_str(),
    ];
    args.extend(flags.iter().map(OsStr::new));
    diffmill_ok(dir, args);
}

/// Starts `diffmill run <graph> <args…> --status-every 0` in `dir` in the background, its
/// output discarded.
pub fn spawn_run(dir: &Path, graph: &Path, args: &[&str]) -> std::process::Child {
    command(dir)
        .arg("run")
        .arg(graph)
        .args(args)
        .args(["--status-every", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("diffmill starts")
}

/// The funnel settings a graph file declares.
pub fn graph_settings(graph: &Path) -> FunnelSettings {
    GraphSpec::load(graph)
        .expect("the graph loads")
        .declaration()
        .resolve()
        .expect("the graph's declaration resolves")
}
