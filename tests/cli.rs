//! The `diffmill` binary end to end (issue #3): every graph in `graphs/` checks and runs;
//! `gen` then `run` agrees with the oracle; replays are identical whatever the worker
//! count; configuration errors exit 2 with one message naming the file and key; a closed
//! stdout pipe is not a crash; help works.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use diffmill::connectors::generator::Generator;
use diffmill::connectors::{sum_change_log, Arrival};
use diffmill::declare::Aggregate;
use diffmill::event::StreamKind;
use diffmill::format::Format;
use diffmill::graph::{GraphSpec, SinkSpec, SourceSpec};
use tempfile::TempDir;

use support::cli::{
    as_csv, command, counts_row, diffmill, diffmill_ok, expected_dead_letters, expected_too_late,
    file_partitions, files_graph, generate, graphs_dir, read_csv, row_set, summary_counts,
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

fn gen_then_run_matches_the_oracle(format: Format) {
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
    gen_then_run_matches_the_oracle(Format::Csv);
}

#[test]
fn gen_then_run_json_matches_the_oracle() {
    gen_then_run_matches_the_oracle(Format::Json);
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
    let settings = spec.declaration().resolve().expect("the declaration resolves");
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
        assert_eq!(summed, expected, "aggregate `{}` vs the oracle", aggregate.name);
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
fn a_closed_stdout_pipe_is_not_a_crash() {
    let dir = tempdir();
    let graph = dir.path().join("preview.toml");
    // Every dim grouped, so that nearly every bid has its own row: hundreds of kilobytes
    // of preview, far more than a pipe holds, so the run writes after the pipe closes.
    std::fs::write(
        &graph,
        "name = \"preview\"\n\
         [source]\nkind = \"generator\"\nbids = 4000\nrate = 200\npartitions = 2\n\
         [funnel]\nwindow = \"1m\"\nemit_interval = \"0ms\"\n\
         group_by = [\"campaign_id\", \"ad_id\", \"publisher_id\", \"region\", \"device\"]\n\
         [[sink]]\nkind = \"stdout\"\nmax_rows = 1000000\n",
    )
    .expect("the graph writes");
    let mut child = command(dir.path())
        .args([Path::new("run"), &graph])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the diffmill binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("some preview");
    drop(stdout);
    let output = child.wait_with_output().expect("the run ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
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
