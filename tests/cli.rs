//! The `diffmill` binary end to end (issue #3): every graph in `graphs/` checks and runs;
//! `gen` then `run` agrees with the oracle; replays are identical whatever the worker
//! count; configuration errors exit 2 with one message naming the file and key; help
//! works. What a newcomer tripped over (issue #18): a closed stdout pipe leaves the other
//! sinks complete; bad CSV rows are dead-lettered as text with their reason; timely's
//! connection chatter stays off stdout.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use diffmill::connectors::generator::Generator;
use diffmill::connectors::{sum_change_log, Arrival, FileFormat};
use diffmill::declare::Aggregate;
use diffmill::event::StreamKind;
use diffmill::format::Format;
use diffmill::graph::{GraphSpec, SinkSpec, SourceSpec};
use tempfile::TempDir;

use support::cli::{
    as_csv, command, counts_row, diffmill, diffmill_ok, expected_dead_letters, expected_too_late,
    file_partitions, files_graph, generate, graphs_dir, read_csv, row_set, summary_counts,
    CsvAggregates,
};
use support::oracle::Oracle;

/// The columns of `late.csv` that identify a record (all but the reason's wording).
const LATE_KEY_COLUMNS: usize = 6;

/// The columns of `dead_letters.csv` that identify a record: source, position, stream.
const DEAD_LETTER_KEY_COLUMNS: usize = 3;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The string at `table.key` of a TOML document.
fn toml_str<'a>(value: &'a toml::Value, table: &str, key: &str) -> Option<&'a str> {
    value.get(table)?.get(key)?.as_str()
}

/// The expected header of an aggregate's `aggregates.csv`: its dims (in the bid's field
/// order) and its measures (in declaration order), as the graph declares them.
fn aggregates_header(graph: &GraphSpec, aggregate: usize) -> String {
    let aggregate: Aggregate = graph
        .declaration()
        .resolve()
        .expect("the graph's declaration resolves")
        .aggregates[aggregate]
        .clone();
    let mut header = vec!["window_start", "window_end"];
    header.extend(aggregate.dims.names());
    header.extend(aggregate.measure_names());
    header.extend(["frontier", "status"]);
    header.join(",")
}

#[test]
fn every_graph_checks_and_runs_on_a_small_input() {
    let mut graphs: Vec<PathBuf> = std::fs::read_dir(graphs_dir())
        .expect("graphs/ exists")
        .map(|entry| entry.expect("a graphs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    graphs.sort();
    assert!(
        !graphs.is_empty(),
        "no graphs in {}",
        graphs_dir().display()
    );
    for graph in graphs {
        let text = std::fs::read_to_string(&graph).expect("the graph reads");
        let spec: toml::Value = toml::from_str(&text).expect("the graph is TOML");
        let parsed = GraphSpec::load(&graph).expect("the graph loads");
        let source = toml_str(&spec, "source", "kind").expect("[source] kind");
        let sinks: Vec<&str> = parsed
            .all_sinks()
            .into_iter()
            .map(|(_, sink)| match sink {
                SinkSpec::Csv(_) => "csv",
                SinkSpec::Stdout(_) => "stdout",
                SinkSpec::Kafka(_) => "kafka",
                SinkSpec::Postgres(_) => "postgres",
                SinkSpec::Parquet(_) => "parquet",
            })
            .collect();
        if source == "kafka" || sinks.iter().any(|s| *s == "kafka" || *s == "postgres") {
            println!(
                "skipping {}: source `{source}`, sinks {sinks:?} need external services",
                graph.display()
            );
            continue;
        }
        let dir = tempdir();
        let out = dir.path().join("out");
        let mut args = vec![
            "run".into(),
            graph.clone().into_os_string(),
            "--output".into(),
            out.clone().into_os_string(),
        ];
        // `check` resolves a files source's folder, relative to the working directory:
        // the files are generated there (or in `data` when the graph gives no relative
        // folder, for `run --input` only).
        let mut checkable = true;
        match source {
            "generator" => args.extend(["--bids".into(), "3000".into()]),
            "files" => {
                let format = toml_str(&spec, "source", "format").expect("[source] format");
                let data = match toml_str(&spec, "source", "path").map(Path::new) {
                    Some(path) if path.is_relative() => dir.path().join(path),
                    _ => {
                        checkable = false;
                        println!(
                            "{}: no relative `source.path`, `check` not run",
                            graph.display()
                        );
                        dir.path().join("data")
                    }
                };
                diffmill_ok(
                    dir.path(),
                    [
                        "gen".as_ref(),
                        "--out".as_ref(),
                        data.as_os_str(),
                        "--bids".as_ref(),
                        "3000".as_ref(),
                        "--format".as_ref(),
                        format.as_ref(),
                        "--graph".as_ref(),
                        graph.as_os_str(),
                    ],
                );
                args.extend(["--input".into(), data.into_os_string()]);
            }
            other => panic!(
                "{}: source kind `{other}` is not covered by this test: add it",
                graph.display()
            ),
        }
        if checkable {
            let checked = diffmill_ok(dir.path(), [Path::new("check"), &graph]);
            let name = spec.get("name").and_then(|n| n.as_str()).expect("name");
            assert!(
                checked.stdout.contains(&format!("graph `{name}`"))
                    && checked.stdout.contains("source")
                    && checked.stdout.contains("sinks")
                    && checked.stdout.contains("ok: "),
                "{}: check printed no plan:\n{}",
                graph.display(),
                checked.stdout
            );
            // Issue #18, item 10: a readable plan, not a Rust Debug struct.
            assert!(
                !checked.stdout.contains("Config {") && !checked.stdout.contains("Bounds {"),
                "{}: check printed a Debug struct:\n{}",
                graph.display(),
                checked.stdout
            );
        }
        let ran = diffmill_ok(dir.path(), &args);
        assert!(
            ran.stderr.contains("every record is accounted for"),
            "{}: {}",
            graph.display(),
            ran.stderr
        );
        if sinks.contains(&"stdout") {
            assert!(ran.stdout.contains("batch "), "{}", graph.display());
        }
        for (a, (_, specs)) in parsed.aggregate_sinks().into_iter().enumerate() {
            if !specs.iter().any(|s| matches!(s, SinkSpec::Csv(_))) {
                continue;
            }
            // `--output` replaces the folder of the old form's sinks, and is the parent
            // of each declared aggregate's folder.
            let (folder, name) = match parsed.aggregates.get(a) {
                None => (out.clone(), "funnel".to_owned()),
                Some(table) => (out.join(&table.name), table.name.clone()),
            };
            let (header, rows) = read_csv(&folder.join("aggregates.csv"));
            assert_eq!(
                header.join(","),
                aggregates_header(&parsed, a),
                "{} aggregate `{name}`",
                graph.display()
            );
            assert!(!rows.is_empty(), "{}: no rows of `{name}`", graph.display());
        }
    }
}

fn gen_then_run_matches_the_oracle(format: FileFormat) {
    let dir = tempdir();
    let (graph, settings) = files_graph(dir.path(), format);
    generate(dir.path(), &graph, format, 5, 4000);
    let ran = diffmill_ok(dir.path(), [Path::new("run"), &graph]);

    let (names, partitions) = file_partitions(format, &settings.schema, &dir.path().join("data"));
    let oracle = Oracle::new(&settings, &partitions);
    let accounting = oracle.accounting();
    assert!(accounting.balances());
    assert!(accounting.total().too_late > 0, "no too-late records");
    assert!(accounting.total().late > 0, "no late records");
    assert!(accounting.total().dead_lettered > 0, "no dead letters");
    let summary = summary_counts(&ran.stderr);
    for kind in StreamKind::ALL {
        assert_eq!(
            summary.get(&kind),
            Some(&counts_row(accounting.stream(kind))),
            "{kind} counts (read, applied, duplicate, too_late, dead_lettered, late, \
             attribution_only) in the summary:\n{}",
            ran.stderr
        );
    }

    let out = dir.path().join("out");
    let summed = sum_change_log(&out.join("aggregates.csv"), 6).expect("aggregates.csv reads");
    let expected = as_csv(&oracle.final_values(), &settings, 0);
    assert!(
        expected.keys().any(|key| key[2] == "unattributed"),
        "orphans give unattributed rows"
    );
    assert_eq!(
        summed, expected,
        "summed change log vs the oracle's final values"
    );
    assert_eq!(
        row_set(&out.join("dead_letters.csv"), DEAD_LETTER_KEY_COLUMNS),
        expected_dead_letters(&oracle, &names),
        "dead letters (source, position, stream)"
    );
    assert_eq!(
        read_csv(&out.join("dead_letters.csv")).1.len() as u64,
        accounting.total().dead_lettered,
        "each dead letter is written once"
    );
    assert_eq!(
        row_set(&out.join("late.csv"), LATE_KEY_COLUMNS),
        expected_too_late(&oracle, &names),
        "too-late records (source, position, stream, id, ts, watermark)"
    );
    assert_eq!(
        read_csv(&out.join("late.csv")).1.len() as u64,
        accounting.total().too_late,
        "each too-late record is written once"
    );

    let (header, rows) = read_csv(&out.join("aggregates.csv"));
    let status = header.len() - 1;
    let measures = header
        .iter()
        .position(|h| h == "bids")
        .expect("bids column");
    let mut finals = BTreeSet::new();
    let mut with_rows = BTreeSet::new();
    for row in &rows {
        if row[status] == "final" {
            finals.insert(row[0].clone());
        } else {
            with_rows.insert(row[0].clone());
            assert!(
                row[measures..measures + 6].iter().any(|m| m != "0"),
                "a zero row: {row:?}"
            );
        }
    }
    let unannounced: Vec<_> = with_rows.difference(&finals).collect();
    assert!(
        unannounced.is_empty(),
        "windows with rows never announced final: {unannounced:?}"
    );
}

#[test]
fn gen_then_run_csv_matches_the_oracle() {
    gen_then_run_matches_the_oracle(FileFormat::Csv);
}

#[test]
fn gen_then_run_json_matches_the_oracle() {
    gen_then_run_matches_the_oracle(FileFormat::Json);
}

#[test]
fn gen_then_run_parquet_matches_the_oracle() {
    gen_then_run_matches_the_oracle(FileFormat::Parquet);
}

/// The Youzan-style report of `graphs/youzan_report.toml` (declared gender, age band,
/// user and conversion type; hourly and daily aggregates with filtered order and payment
/// measures, a distinct count and a bounded dimension) equals the oracle, aggregate by
/// aggregate, with every dead letter and too-late record, and the accounting.
#[test]
fn the_youzan_report_matches_the_oracle() {
    const BIDS: u64 = 40_000;
    let dir = tempdir();
    let graph = graphs_dir().join("youzan_report.toml");
    let out = dir.path().join("out");
    let ran = diffmill_ok(
        dir.path(),
        [
            "run".as_ref(),
            graph.as_os_str(),
            "-w".as_ref(),
            "2".as_ref(),
            "--bids".as_ref(),
            BIDS.to_string().as_ref(),
            "--output".as_ref(),
            out.as_os_str(),
            "--state".as_ref(),
            dir.path().join("state").as_os_str(),
        ],
    );

    // The same records, read as the generator source reads them.
    let spec = GraphSpec::load(&graph).expect("the graph loads");
    let settings = spec
        .declaration()
        .resolve()
        .expect("the declaration resolves");
    let SourceSpec::Generator(mut config) = spec.source.clone() else {
        panic!("the report's source is the generator");
    };
    config.bids = BIDS;
    let generator = Generator::new(config, &settings).expect("a generator");
    let names: Vec<String> = (0..generator.partition_count())
        .map(|p| format!("generator/{p}"))
        .collect();
    let partitions: Vec<Vec<Arrival>> = names
        .iter()
        .enumerate()
        .map(|(p, name)| {
            generator
                .partition(p)
                .enumerate()
                .map(|(i, item)| generator.arrival(item, name, i as u64 + 1))
                .collect()
        })
        .collect();
    let oracle = Oracle::new(&settings, &partitions);
    let accounting = oracle.accounting();
    assert!(accounting.balances());
    assert!(accounting.total().late > 0, "no late records");
    assert!(accounting.total().dead_lettered > 0, "no dead letters");
    let summary = summary_counts(&ran.stderr);
    for kind in StreamKind::ALL {
        assert_eq!(
            summary.get(&kind),
            Some(&counts_row(accounting.stream(kind))),
            "{kind} counts in the summary:\n{}",
            ran.stderr
        );
    }

    let finals = oracle.final_values();
    for (a, aggregate) in settings.aggregates.iter().enumerate() {
        let folder = out.join(&aggregate.name);
        let summed = sum_change_log(&folder.join("aggregates.csv"), aggregate.measures.len())
            .expect("aggregates.csv reads");
        let expected = as_csv(&finals, &settings, a);
        assert_eq!(
            summed, expected,
            "aggregate `{}` vs the oracle",
            aggregate.name
        );
        assert_eq!(
            row_set(&folder.join("dead_letters.csv"), DEAD_LETTER_KEY_COLUMNS),
            expected_dead_letters(&oracle, &names),
            "aggregate `{}`: dead letters",
            aggregate.name
        );
        assert_eq!(
            row_set(&folder.join("late.csv"), LATE_KEY_COLUMNS),
            expected_too_late(&oracle, &names),
            "aggregate `{}`: too-late records",
            aggregate.name
        );
    }

    // The report has what it is for: orders, payments and follows by gender, ads beyond
    // the bound as `other`, a reach below the exposures.
    let hourly = as_csv(&finals, &settings, 0);
    let column = |name: &str| {
        settings.aggregates[0]
            .measure_names()
            .iter()
            .position(|m| *m == name)
            .expect("a measure")
    };
    for measure in ["orders", "payments", "follows"] {
        assert!(
            hourly.values().any(|m| m[column(measure)] > 0),
            "no {measure} in the hourly report"
        );
    }
    let genders: BTreeSet<&str> = hourly.keys().map(|key| key[4].as_str()).collect();
    assert!(genders.is_superset(&BTreeSet::from(["female", "male", "unknown"])));
    assert!(
        hourly.keys().any(|key| key[3] == "other"),
        "no ad beyond the bound"
    );
    let daily = as_csv(&finals, &settings, 1);
    assert!(
        daily.values().any(|m| m[0] > 0 && m[0] < m[1]),
        "the reach never differs from the exposures"
    );
}

#[test]
fn replays_agree_across_runs_and_worker_counts() {
    let dir = tempdir();
    let (graph, _) = files_graph(dir.path(), Format::Csv);
    generate(dir.path(), &graph, Format::Csv, 11, 4000);
    let mut results = Vec::new();
    for workers in ["1", "1", "2"] {
        let out = dir.path().join(format!("out-{}", results.len()));
        diffmill_ok(
            dir.path(),
            [
                "run".as_ref(),
                graph.as_os_str(),
                "-w".as_ref(),
                workers.as_ref(),
                "--output".as_ref(),
                out.as_os_str(),
            ],
        );
        let summed = sum_change_log(&out.join("aggregates.csv"), 6).expect("aggregates.csv reads");
        let dead = row_set(&out.join("dead_letters.csv"), usize::MAX);
        let late = row_set(&out.join("late.csv"), usize::MAX);
        assert!(!summed.is_empty() && !dead.is_empty() && !late.is_empty());
        results.push((workers, summed, dead, late));
    }
    let (_, summed, dead, late) = &results[0];
    for (workers, other_summed, other_dead, other_late) in &results[1..] {
        assert!(other_summed == summed, "-w {workers}: other aggregates");
        assert!(other_dead == dead, "-w {workers}: other dead letters");
        assert!(other_late == late, "-w {workers}: other too-late records");
    }
}

/// Runs `check` and `run` on `graph` and asserts each exits 2 with one line on stderr that
/// contains every one of `names`.
fn assert_config_error(dir: &Path, graph: &Path, names: &[&str]) {
    for verb in ["check", "run"] {
        let ran = diffmill(dir, [verb.as_ref(), graph.as_os_str()]);
        let message = ran.stderr.trim_end();
        assert_eq!(ran.code(), Some(2), "{verb} {}: {message}", graph.display());
        assert_eq!(message.lines().count(), 1, "{verb}: one message: {message}");
        for name in names {
            assert!(message.contains(name), "{verb}: no `{name}` in: {message}");
        }
    }
}

/// A small valid graph with declared streams and an aggregate, for the declaration errors.
const DECLARED: &str = r#"name = "declared"
[source]
kind = "generator"
bids = 100
[stream.conversion]
id = "conversion_id"
time = "ts"
parent = "click_id"
[stream.conversion.fields]
conversion_id = "id"
click_id = "id"
ts = "timestamp"
type = "string"
value_micros = "money"
[[aggregate]]
name = "hourly"
window = "1h"
group_by = ["campaign_id", "region"]
[[aggregate.measure]]
name = "orders"
count = "conversion"
filter = "type = 'order'"
[[aggregate.measure]]
name = "order_amount"
sum = "conversion.value_micros"
filter = "type = 'order'"
"#;

/// Bad declarations exit 2 with one message naming the file, the line and the key
/// (issue #16): an unknown field in group_by, a sum of a string, a filter on a missing
/// field, two measures of one name, a field type that does not parse.
#[test]
fn bad_declarations_exit_2_naming_file_line_and_key() {
    let dir = tempdir();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, DECLARED).expect("the graph writes");
    diffmill_ok(dir.path(), [Path::new("check"), &good]);
    let cases = [
        (
            "group_by = [\"campaign_id\", \"region\"]",
            "group_by = [\"campaign_id\", \"gender\"]",
            "aggregate[0].group_by[1]",
        ),
        (
            "sum = \"conversion.value_micros\"",
            "sum = \"conversion.type\"",
            "aggregate[0].measure[1].sum",
        ),
        (
            "filter = \"type = 'order'\"\n[[aggregate.measure]]",
            "filter = \"kind = 'order'\"\n[[aggregate.measure]]",
            "aggregate[0].measure[0].filter",
        ),
        (
            "name = \"order_amount\"",
            "name = \"orders\"",
            "aggregate[0].measure[1].name",
        ),
        (
            "value_micros = \"money\"",
            "value_micros = \"currency\"",
            "stream.conversion.fields.value_micros",
        ),
    ];
    for (i, (from, to, key)) in cases.into_iter().enumerate() {
        assert!(DECLARED.contains(from), "{from}");
        let text = DECLARED.replacen(from, to, 1);
        let at = DECLARED.find(from).expect("the change");
        let line = DECLARED[..at].matches('\n').count() + 1;
        let bad = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&bad, &text).expect("the graph writes");
        let at = format!("{}:{line}:", bad.display());
        assert_config_error(dir.path(), &bad, &[&at, &format!("`{key}`")]);
    }
}

#[test]
fn config_errors_exit_2_naming_the_file_and_key() {
    let dir = tempdir();
    let (graph, _) = files_graph(dir.path(), Format::Csv);
    let data = dir.path().join("data");
    diffmill_ok(
        dir.path(),
        [
            "gen".as_ref(),
            "--out".as_ref(),
            data.as_os_str(),
            "--bids".as_ref(),
            "20".as_ref(),
        ],
    );
    diffmill_ok(dir.path(), [Path::new("check"), &graph]);
    let valid = std::fs::read_to_string(&graph).expect("the graph reads");
    let cases = [
        ("window = \"1m\"", "windw = \"1m\"", "funnel.windw"),
        ("window = \"1m\"", "window = \"1x\"", "funnel.window"),
        ("data'", "nowhere'", "source.path"),
        (
            "\"campaign_id\", \"region\"",
            "\"campain_id\"",
            "funnel.group_by",
        ),
    ];
    for (i, (from, to, key)) in cases.into_iter().enumerate() {
        assert!(valid.contains(from), "{from}");
        let bad = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&bad, valid.replacen(from, to, 1)).expect("the graph writes");
        assert_config_error(dir.path(), &bad, &[&bad.display().to_string(), key]);
    }
    let missing = dir.path().join("missing.toml");
    assert_config_error(dir.path(), &missing, &[&missing.display().to_string()]);
}

/// A graph file at `dir/<name>.toml`: a generator source of `bids` bids, one-minute windows
/// grouped by every dim (so that nearly every bid has its own row: hundreds of kilobytes
/// of preview, far more than a pipe holds), batches at every frontier move, and `sinks`.
fn generator_graph(dir: &Path, name: &str, bids: u64, sinks: &str) -> PathBuf {
    let graph = dir.join(format!("{name}.toml"));
    std::fs::write(
        &graph,
        format!(
            "name = \"{name}\"\n\
             [source]\nkind = \"generator\"\nbids = {bids}\nrate = 200\npartitions = 2\n\
             [funnel]\nwindow = \"1m\"\nemit_interval = \"0ms\"\n\
             group_by = [\"campaign_id\", \"ad_id\", \"publisher_id\", \"region\", \"device\"]\n\
             {sinks}"
        ),
    )
    .expect("the graph writes");
    graph
}

/// The oracle's final values, keyed as in `aggregates.csv`, for a generator graph.
fn generator_oracle(graph: &Path) -> CsvAggregates {
    let spec = GraphSpec::load(graph).expect("the graph loads");
    let settings = spec
        .declaration()
        .resolve()
        .expect("the declaration resolves");
    let SourceSpec::Generator(config) = spec.source else {
        panic!("{}: not a generator graph", graph.display());
    };
    let generator = Generator::new(config, &settings).expect("a valid generator");
    let oracle = Oracle::new(&settings, &support::generated_events(&generator));
    as_csv(&oracle.final_values(), &settings, 0)
}

/// Runs `diffmill run <graph>`, reads the first bytes of its stdout and closes the pipe;
/// returns the exit code and stderr.
fn run_and_close_stdout(dir: &Path, graph: &Path) -> (Option<i32>, String) {
    let mut child = command(dir)
        .args([Path::new("run"), graph])
        .args(["--status-every", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the diffmill binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("some preview");
    drop(stdout);
    let output = child.wait_with_output().expect("the run ends");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code(), stderr)
}

/// Issue #18, item 1: `diffmill run graphs/ad_funnel.toml | head` left aggregates.csv
/// with 2,405 of its 5,495 lines and exit code 0. A closed preview must not cut the other
/// sinks short: the run goes on without it, says so, and the CSV output is complete.
#[test]
fn a_closed_stdout_pipe_leaves_the_other_sinks_complete() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let graph = generator_graph(
        dir.path(),
        "preview_and_csv",
        4000,
        &format!(
            "[[sink]]\nkind = \"stdout\"\nmax_rows = 1000000\n\
             [[sink]]\nkind = \"csv\"\npath = '{}'\n",
            out.display()
        ),
    );
    let (code, stderr) = run_and_close_stdout(dir.path(), &graph);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("stdout was closed") && stderr.contains("the run goes on"),
        "the closed preview is not reported:\n{stderr}"
    );
    assert!(stderr.contains("every record is accounted for"), "{stderr}");
    let summed = sum_change_log(&out.join("aggregates.csv"), 6).expect("aggregates.csv reads");
    assert!(
        summed == generator_oracle(&graph),
        "aggregates.csv does not sum to the oracle's final values: {} of its keys",
        summed.len()
    );
    let (header, rows) = read_csv(&out.join("aggregates.csv"));
    let status = header.len() - 1;
    let windows: BTreeSet<&String> = rows.iter().map(|row| &row[0]).collect();
    let finals: BTreeSet<&String> = rows
        .iter()
        .filter(|row| row[status] == "final")
        .map(|row| &row[0])
        .collect();
    assert_eq!(windows, finals, "every window is announced final");
}

/// With stdout its only sink, nobody reads the run's output any more: a closed pipe ends
/// the run quietly, with code 0.
#[test]
fn a_closed_stdout_pipe_ends_a_preview_only_run_quietly() {
    let dir = tempdir();
    let graph = generator_graph(
        dir.path(),
        "preview",
        4000,
        "[[sink]]\nkind = \"stdout\"\nmax_rows = 1000000\n",
    );
    let (code, stderr) = run_and_close_stdout(dir.path(), &graph);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// Issue #18, item 7: a CSV row with more fields than its header was applied; raw invalid
/// bytes made `dead_letters.csv` binary to `grep`; a reason read "is not a integer".
#[test]
fn bad_csv_rows_are_dead_lettered_as_text_with_their_reason() {
    let dir = tempdir();
    let (graph, _) = files_graph(dir.path(), Format::Csv);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("the data folder");
    for (file, header) in [
        (
            "bid-0.csv",
            "bid_id,ts,campaign_id,ad_id,publisher_id,region,device,bid_price_micros",
        ),
        ("impression-0.csv", "impression_id,bid_id,ts,cost_micros"),
        ("conversion-0.csv", "conversion_id,click_id,ts,value_micros"),
    ] {
        std::fs::write(data.join(file), format!("{header}\n")).expect("a file writes");
    }
    let mut clicks = b"click_id,bid_id,ts\n".to_vec();
    clicks.extend_from_slice(b"1,7,1704067200000\n"); // line 2: valid
    clicks.extend_from_slice(b"2,7,1704067200001,surplus\n"); // line 3: a field too many
    clicks.extend_from_slice(b"3,7,17040672O0002\n"); // line 4: a letter in ts
    clicks.extend_from_slice(b"4,\xff\x00,1704067200003\n"); // line 5: not UTF-8, a NUL
    clicks.extend_from_slice(b"5,8\x01,1704067200004\n"); // line 6: a control character
    std::fs::write(data.join("click-0.csv"), clicks).expect("the clicks write");

    let ran = diffmill_ok(dir.path(), [Path::new("run"), &graph]);
    let clicks = summary_counts(&ran.stderr)[&StreamKind::Click];
    assert_eq!(
        (clicks[0], clicks[1], clicks[4]),
        (5, 1, 4),
        "clicks read, applied, dead-lettered:\n{}",
        ran.stderr
    );

    let path = dir.path().join("out").join("dead_letters.csv");
    let bytes = std::fs::read(&path).expect("dead_letters.csv reads");
    let text = String::from_utf8(bytes).expect("dead_letters.csv is UTF-8 text");
    let control: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        control.is_empty(),
        "control characters {control:?} in:\n{text}"
    );
    let (header, rows) = read_csv(&path);
    assert_eq!(header, ["source", "position", "stream", "reason", "raw"]);
    let by_line = |line: &str| -> (String, String) {
        let row = rows
            .iter()
            .find(|row| row[1] == line)
            .unwrap_or_else(|| panic!("line {line} was not dead-lettered:\n{text}"));
        (row[3].clone(), row[4].clone())
    };
    assert_eq!(
        by_line("3"),
        (
            "bad CSV: 4 fields, but the header has 3 columns".to_owned(),
            "2,7,1704067200001,surplus".to_owned()
        )
    );
    assert_eq!(
        by_line("4").0,
        "field `ts`: expected integer of milliseconds since the epoch, got `17040672O0002`"
    );
    assert_eq!(by_line("5").1, "4,\\xff\\x00,1704067200003");
    let (reason, raw) = by_line("6");
    assert_eq!(raw, "5,8\\x01,1704067200004");
    assert!(reason.contains("got `8\\x01`"), "{reason}");
    assert!(!text.contains("a integer"), "{text}");
}

/// `n` ports that were free a moment ago, on 127.0.0.1.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

/// Starts process `index` of a 2-process cluster of `graph` with its stdout and stderr in
/// files `<index>.stdout`, `<index>.stderr` of `dir`.
fn start_process(dir: &Path, graph: &Path, hosts: &Path, index: usize) -> std::process::Child {
    let file = |stream: &str| {
        std::fs::File::create(dir.join(format!("{index}.{stream}"))).expect("an output file")
    };
    command(dir)
        .args([Path::new("run"), graph, Path::new("--hostfile"), hosts])
        .args(["-n", "2", "-p", &index.to_string(), "--status-every", "0"])
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .expect("diffmill starts")
}

/// Waits at most 2 minutes for `child` to exit with code 0.
fn wait_ok(child: &mut std::process::Child, what: &str, dir: &Path) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(120) {
        if let Some(status) = child.try_wait().expect("the process can be waited on") {
            let stderr = std::fs::read_to_string(dir.join(format!("{what}.stderr")));
            assert_eq!(status.code(), Some(0), "process {what}: {stderr:?}");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("process {what} still runs after 2 minutes");
}

/// Issue #18, item 8: timely's connection chatter ("awaiting connections", "error
/// connecting to worker 0 … retrying") went to stdout, mixed with the stdout sink's rows.
/// Process 1 starts first, so it has to retry until process 0 is up: stdout holds only
/// batches, and the retrying is said on stderr, naming the address.
#[test]
fn cluster_connection_chatter_stays_off_stdout() {
    let dir = tempdir();
    let graph = generator_graph(
        dir.path(),
        "cluster_preview",
        2000,
        "[[sink]]\nkind = \"stdout\"\nmax_rows = 3\n",
    );
    let ports = free_ports(2);
    let hosts = dir.path().join("hosts");
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    std::fs::write(&hosts, addresses.join("\n") + "\n").expect("the hostfile writes");

    let mut second = start_process(dir.path(), &graph, &hosts, 1);
    // Until process 1 has said (on stderr, or on stdout as timely did) that it cannot
    // reach process 0 yet.
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let started = std::time::Instant::now();
    while !read("1.stderr").contains("not reachable yet") && read("1.stdout").is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "process 1 never tried to connect:\n{}",
            read("1.stderr")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut first = start_process(dir.path(), &graph, &hosts, 0);
    wait_ok(&mut first, "0", dir.path());
    wait_ok(&mut second, "1", dir.path());

    assert_eq!(
        read("1.stdout"),
        "",
        "process 1 has no sinks: nothing on its stdout"
    );
    let stdout = read("0.stdout");
    assert!(stdout.starts_with("batch "), "{stdout}");
    for line in stdout.lines() {
        assert!(
            line.starts_with("batch ") || line.starts_with("  "),
            "not a line of the preview on stdout: {line:?}"
        );
    }
    let stderr = read("1.stderr");
    assert!(
        stderr.contains(&format!(
            "process 0 at {} is not reachable yet",
            addresses[0]
        )) && stderr.contains("retrying"),
        "{stderr}"
    );
}

#[test]
fn help_exits_0() {
    let dir = tempdir();
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["gen", "--help"],
        &["check", "--help"],
    ] {
        let ran = diffmill_ok(dir.path(), args);
        assert!(ran.stdout.contains("Usage"), "{args:?}: {}", ran.stdout);
    }
}
