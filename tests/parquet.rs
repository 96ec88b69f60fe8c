//! The Parquet sink and source (issue #17), read back by DuckDB: in both modes the
//! tables equal the oracle; `final` mode holds one row per `(window, dims)` and none for
//! a window not final yet; a run killed with SIGKILL and restarted leaves no duplicate
//! and no partial file; a Parquet replay gives the CSV replay's output; bad event files
//! are named with their column.
//!
//! The DuckDB tests need `DIFFMILL_TEST_DUCKDB_PYTHON` (set by
//! `.ci/services/duckdb.sh`); without it they print why and pass, except under
//! `CI=true`, where they fail.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use diffmill::connectors::{sum_change_log, FileFormat, FileSource, Source};
use diffmill::declare::{FunnelSettings, Schema};
use diffmill::event::{Millis, StreamKind};
use tempfile::TempDir;

use support::cli::{
    as_csv, command, diffmill, diffmill_ok, expected_dead_letters, expected_too_late,
    file_partitions, files_graph, generate, generate_into, read_csv, summary_counts, CsvAggregates,
};
use support::duckdb::{self, query, table};
use support::oracle::Oracle;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The files graph of the CLI tests (`input` files in `data`, 1-minute windows, a batch
/// at every frontier move) writing to a `final` sink in `final` and a `changes` sink in
/// `changes`; with checkpoints in `state` when `state` is true.
fn parquet_graph(dir: &Path, input: FileFormat, state: bool) -> (PathBuf, FunnelSettings) {
    let (graph, settings) = files_graph(dir, input);
    let text = std::fs::read_to_string(&graph).expect("the graph reads");
    let head = text.split("[[sink]]").next().expect("the graph's head");
    let text = format!(
        "{head}[[sink]]\nkind = \"parquet\"\npath = '{}'\nmode = \"final\"\n\
         [[sink]]\nkind = \"parquet\"\npath = '{}'\nmode = \"changes\"\nrow_group_size = 1000\n",
        dir.join("final").display(),
        dir.join("changes").display()
    );
    let text = match state {
        true => format!(
            "{text}[state]\ndir = '{}'\ncheckpoint_interval = \"250ms\"\n",
            dir.join("state").display()
        ),
        false => text,
    };
    std::fs::write(&graph, text).expect("the graph writes");
    (graph, settings)
}

/// The aggregate columns of the graph's dims, keyed as [`as_csv`] keys them.
const KEY_COLUMNS: &str = "epoch_ms(window_start), epoch_ms(window_end), campaign_id, region";
const MEASURES: [&str; 6] = [
    "bids",
    "impressions",
    "clicks",
    "conversions",
    "spend_micros",
    "revenue_micros",
];

/// Rows of four key columns and six measures as aggregates; every key once.
fn aggregates(rows: Vec<Vec<String>>) -> (CsvAggregates, usize) {
    let count = rows.len();
    let mut totals = CsvAggregates::new();
    for row in rows {
        let measures: Vec<i64> = row[4..10]
            .iter()
            .map(|m| m.parse().expect("an integer measure"))
            .collect();
        assert_eq!(measures.len(), 6, "six measures");
        if measures.iter().all(|m| *m == 0) {
            continue;
        }
        totals.insert(row[..4].to_vec(), measures);
    }
    (totals, count)
}

/// Asserts `actual == expected`, naming at most five keys that differ (the tables are too
/// large to print whole).
fn assert_same(actual: &CsvAggregates, expected: &CsvAggregates, what: &str) {
    let keys: BTreeSet<&Vec<String>> = actual.keys().chain(expected.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|key| actual.get(*key) != expected.get(*key))
        .map(|key| format!("{key:?}: {:?} vs {:?}", actual.get(key), expected.get(key)))
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: {} of {} keys differ (read vs expected), e.g.\n{}",
        differing.len(),
        expected.len(),
        differing[..differing.len().min(5)].join("\n")
    );
}

/// The SQL condition that keeps the rows of the batches the sink committed: those up to
/// the sequence number in its progress record.
fn committed(sink: &Path) -> String {
    match progress(sink).expect("a progress record").0 {
        Some(seq) => format!("batch_seq <= {seq}"),
        None => "false".to_owned(),
    }
}

/// The `changes` table summed per `(window, dims)` (over the committed batches only when
/// `committed_only`), announcements left out, zero sums dropped.
fn summed_changes(python: &Path, sink: &Path, committed_only: bool) -> CsvAggregates {
    let sums: Vec<String> = MEASURES.iter().map(|m| format!("sum({m})")).collect();
    let below = match committed_only {
        true => format!("AND {}", committed(sink)),
        false => String::new(),
    };
    let rows = query(
        python,
        sink,
        &format!(
            "SELECT {KEY_COLUMNS}, {} FROM {} WHERE status <> 'final' {below} GROUP BY ALL",
            sums.join(", "),
            table(sink, "aggregates")
        ),
    );
    aggregates(rows).0
}

/// The `final` table's rows (of the committed batches only when `committed_only`),
/// asserting one row per `(window, dims)`, each with status `final`.
fn final_rows(python: &Path, sink: &Path, committed_only: bool) -> CsvAggregates {
    let below = match committed_only {
        true => format!("WHERE {}", committed(sink)),
        false => String::new(),
    };
    let rows = query(
        python,
        sink,
        &format!(
            "SELECT {KEY_COLUMNS}, {}, status FROM {} {below}",
            MEASURES.join(", "),
            table(sink, "aggregates")
        ),
    );
    assert!(
        rows.iter().all(|row| row[10] == "final"),
        "final mode writes status `final` only"
    );
    let (totals, count) = aggregates(rows);
    assert_eq!(
        count,
        totals.len(),
        "final mode: exactly one row per (window, dims), none zero"
    );
    totals
}

/// Every file's Hive partition is its rows' window (UTC date and hour), and its name
/// carries the batch sequence of its rows.
fn assert_layout(python: &Path, sink: &Path) {
    let misplaced = query(
        python,
        sink,
        &format!(
            "SELECT count(*) FROM {} WHERE date <> CAST(make_timestamp(epoch_ms(window_start) * 1000) AS DATE) \
             OR hour <> hour(make_timestamp(epoch_ms(window_start) * 1000))",
            table(sink, "aggregates")
        ),
    );
    assert_eq!(
        misplaced,
        vec![vec!["0".to_owned()]],
        "rows in the partition of their window"
    );
    let names = query(
        python,
        sink,
        &format!(
            "SELECT DISTINCT filename, batch_seq FROM read_parquet('{}/*/**/*.parquet', filename = true, union_by_name = true)",
            sink.display()
        ),
    );
    assert!(!names.is_empty());
    for row in names {
        let name = Path::new(&row[0])
            .file_name()
            .expect("a file name")
            .to_string_lossy();
        let seq: u64 = row[1].parse().expect("a batch_seq");
        assert_eq!(name, format!("part-{seq:010}.parquet"), "{}", row[0]);
    }
}

/// The sink's progress record: the last committed batch, its frontier, complete.
fn progress(sink: &Path) -> Option<(Option<u64>, Millis, bool)> {
    let text = std::fs::read(sink.join("_diffmill_progress.json")).ok()?;
    let record: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some((
        record["seq"].as_u64(),
        record["frontier"].as_u64()?,
        record["complete"].as_bool()?,
    ))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the folder reads") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// True once the state folder holds a checkpoint file.
fn checkpointed(state: &Path) -> bool {
    std::fs::read_dir(state).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with("checkpoint-") && name.ends_with(".ckpt")
        })
    })
}

/// No temporary file, and every data file belongs to a committed batch.
fn assert_only_committed_files(sink: &Path) {
    let (last, _, _) = progress(sink).expect("a progress record");
    for file in files_under(sink) {
        let name = file
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if name == "_diffmill_progress.json" {
            continue;
        }
        let seq: u64 = name
            .strip_prefix("part-")
            .and_then(|n| n.strip_suffix(".parquet"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a file that is not a committed batch: {}", file.display()));
        assert!(
            last.is_some_and(|last| seq <= last),
            "{} is past the last committed batch {last:?}",
            file.display()
        );
    }
}

/// The oracle's value of every window final at `frontier` (`None`: every window).
fn final_at(oracle: &Oracle, settings: &FunnelSettings, frontier: Option<Millis>) -> CsvAggregates {
    let mut values = oracle.expected_prefix(frontier);
    values
        .retain(|(a, window, _), _| frontier.is_none_or(|f| oracle.final_at_in(*a, *window) <= f));
    as_csv(&values, settings, 0)
}

/// The oracle of the generated `input` files in `dir/data`, with the partitions' names.
fn oracle(dir: &Path, input: FileFormat, settings: &FunnelSettings) -> (Oracle, Vec<String>) {
    let (names, partitions) = file_partitions(input, &settings.schema, &dir.join("data"));
    (Oracle::new(settings, &partitions), names)
}

#[test]
fn both_modes_read_back_by_duckdb_equal_the_oracle() {
    let Some(python) = duckdb::python("both_modes_read_back_by_duckdb_equal_the_oracle") else {
        return;
    };
    let dir = tempdir();
    let (graph, settings) = parquet_graph(dir.path(), FileFormat::Csv, false);
    generate(dir.path(), &graph, FileFormat::Csv, 5, 4000);
    diffmill_ok(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    let (oracle, names) = oracle(dir.path(), FileFormat::Csv, &settings);
    let expected = as_csv(&oracle.final_values(), &settings, 0);
    assert!(expected.keys().any(|key| key[2] == "unattributed"));

    let (changes, finals) = (dir.path().join("changes"), dir.path().join("final"));
    assert_same(
        &summed_changes(&python, &changes, false),
        &expected,
        "changes: summed diffs vs the oracle",
    );
    assert_same(
        &final_rows(&python, &finals, false),
        &expected,
        "final: the rows vs the oracle",
    );
    let announced = query(
        &python,
        &changes,
        &format!(
            "SELECT count(DISTINCT window_start), count(*) FILTER (WHERE campaign_id IS NOT NULL) FROM {} WHERE status = 'final'",
            table(&changes, "aggregates")
        ),
    );
    let windows = expected.keys().map(|key| &key[0]).collect::<BTreeSet<_>>();
    assert_eq!(
        announced,
        vec![vec![windows.len().to_string(), "0".to_owned()]],
        "changes: one `final` row without dims per window"
    );
    for sink in [&changes, &finals] {
        assert_layout(&python, sink);
        assert_only_committed_files(sink);
        let dead = query(
            &python,
            sink,
            &format!(
                "SELECT source, position, stream FROM {}",
                table(sink, "dead_letters")
            ),
        );
        assert_eq!(
            dead.len() as u64,
            oracle.accounting().total().dead_lettered,
            "each dead letter once"
        );
        let expected_dead = expected_dead_letters(&oracle, &names);
        assert_eq!(dead.into_iter().collect::<BTreeSet<_>>(), expected_dead);
        let late = query(
            &python,
            sink,
            &format!(
                "SELECT source, position, stream, id, epoch_ms(ts), epoch_ms(watermark) FROM {}",
                table(sink, "too_late")
            ),
        );
        assert!(!late.is_empty(), "the input has too-late records");
        assert_eq!(
            late.len() as u64,
            oracle.accounting().total().too_late,
            "each too-late record once"
        );
        assert_eq!(
            late.into_iter().collect::<BTreeSet<_>>(),
            expected_too_late(&oracle, &names)
        );
    }

    // A second run into the same folders writes nothing: both hold a complete input.
    let before = (files_under(&changes).len(), files_under(&finals).len());
    diffmill_ok(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    assert_eq!(
        (files_under(&changes).len(), files_under(&finals).len()),
        before
    );
    assert_same(
        &final_rows(&python, &finals, false),
        &expected,
        "final: after a re-run",
    );
    assert_same(
        &summed_changes(&python, &changes, false),
        &expected,
        "changes: after a re-run",
    );
}

#[test]
fn a_killed_run_then_a_restart_leaves_no_duplicate_or_partial_file() {
    killed_then_restarted(
        "a_killed_run_then_a_restart_leaves_no_duplicate_or_partial_file",
        FileFormat::Csv,
        false,
    );
}

#[test]
fn a_killed_run_restored_from_a_checkpoint_leaves_no_duplicate_or_partial_file() {
    killed_then_restarted(
        "a_killed_run_restored_from_a_checkpoint_leaves_no_duplicate_or_partial_file",
        FileFormat::Csv,
        true,
    );
}

#[test]
fn a_killed_parquet_replay_restored_from_a_checkpoint_equals_the_oracle() {
    killed_then_restarted(
        "a_killed_parquet_replay_restored_from_a_checkpoint_equals_the_oracle",
        FileFormat::Parquet,
        true,
    );
}

/// A run of `input` files into both modes killed with SIGKILL after a few commits, then
/// run again: from the start (the sinks skip what they hold) or, with `state`, from its
/// last checkpoint (which reopens each file where it stood).
fn killed_then_restarted(test: &str, input: FileFormat, state: bool) {
    let Some(python) = duckdb::python(test) else {
        return;
    };
    let dir = tempdir();
    let (graph, settings) = parquet_graph(dir.path(), input, state);
    generate(dir.path(), &graph, input, 17, 100_000);
    let (changes, finals) = (dir.path().join("changes"), dir.path().join("final"));

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
    let watched = loop {
        match (progress(&finals), progress(&changes)) {
            (Some((_, _, true)), _) | (_, Some((_, _, true))) => {
                break Err("the run ended before it was killed: give it more input")
            }
            (Some((Some(f), _, _)), Some((Some(c), _, _)))
                if f >= 3 && c >= 3 && (!state || checkpointed(&dir.path().join("state"))) =>
            {
                break Ok(())
            }
            _ if started.elapsed() > Duration::from_secs(120) => {
                break Err("no batches after 2 minutes")
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    child.kill().expect("diffmill is killed (SIGKILL)");
    let _ = child.wait();
    watched.expect("killed mid-run");

    let (oracle, _) = oracle(dir.path(), input, &settings);
    let (_, frontier, complete) = progress(&changes).expect("a progress record");
    assert!(!complete);
    assert_same(
        &summed_changes(&python, &changes, true),
        &as_csv(&oracle.expected_prefix(Some(frontier)), &settings, 0),
        &format!(
            "changes: the committed batches sum to the oracle at the committed frontier {frontier}"
        ),
    );
    let (_, frontier, complete) = progress(&finals).expect("a progress record");
    assert!(!complete);
    assert_same(
        &final_rows(&python, &finals, true),
        &final_at(&oracle, &settings, Some(frontier)),
        &format!("final: the windows final at the committed frontier {frontier}, and no other"),
    );

    let restarted = diffmill_ok(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    assert_eq!(
        restarted.stderr.contains("state: resuming from"),
        state,
        "{}",
        restarted.stderr
    );
    let expected = as_csv(&oracle.final_values(), &settings, 0);
    for sink in [&changes, &finals] {
        assert_only_committed_files(sink);
        assert!(
            progress(sink).expect("a progress record").2,
            "complete after the restart"
        );
        let dead = query(
            &python,
            sink,
            &format!(
                "SELECT count(*), count(DISTINCT (source, position)) FROM {}",
                table(sink, "dead_letters")
            ),
        );
        let total = oracle.accounting().total().dead_lettered.to_string();
        assert_eq!(
            dead,
            vec![vec![total.clone(), total]],
            "each dead letter once"
        );
    }
    assert_same(
        &summed_changes(&python, &changes, false),
        &expected,
        "changes: killed, restarted, the oracle",
    );
    assert_same(
        &final_rows(&python, &finals, false),
        &expected,
        "final: killed, restarted, the oracle",
    );
}

#[test]
fn a_parquet_replay_equals_the_csv_replay() {
    let dir = tempdir();
    let (graph, _) = files_graph(dir.path(), FileFormat::Csv);
    let mut outputs = Vec::new();
    for format in [FileFormat::Csv, FileFormat::Parquet] {
        let data = dir.path().join(format.name());
        generate_into(&data, dir.path(), &graph, format, 9, 4000);
        let out = dir.path().join(format!("out-{}", format.name()));
        let text = std::fs::read_to_string(&graph).expect("the graph reads");
        let replay = dir.path().join(format!("{}.toml", format.name()));
        std::fs::write(
            &replay,
            text.replace(
                "format = \"csv\"",
                &format!("format = \"{}\"", format.name()),
            ),
        )
        .expect("the graph writes");
        let ran = diffmill_ok(
            dir.path(),
            [
                "run".as_ref(),
                replay.as_os_str(),
                "--input".as_ref(),
                data.as_os_str(),
                "--output".as_ref(),
                out.as_os_str(),
            ],
        );
        // Rejected records by file (without its extension) and position; a CSV line's
        // number is its record's index + 1 (the header is line 1).
        let header_lines = u64::from(format == FileFormat::Csv);
        let keyed = |file: &str, columns: usize| -> Vec<Vec<String>> {
            let mut rows: Vec<Vec<String>> = read_csv(&out.join(file))
                .1
                .into_iter()
                .map(|row| {
                    let stem = Path::new(&row[0])
                        .file_stem()
                        .expect("a file")
                        .to_string_lossy()
                        .into_owned();
                    let position = row[1].parse::<u64>().expect("a position") - header_lines;
                    let mut key = vec![stem, position.to_string()];
                    key.extend(row[2..columns].iter().cloned());
                    key
                })
                .collect();
            rows.sort();
            rows
        };
        outputs.push((
            summary_counts(&ran.stderr),
            sum_change_log(&out.join("aggregates.csv"), 6).expect("aggregates.csv reads"),
            keyed("dead_letters.csv", 3),
            keyed("late.csv", 6),
        ));
    }
    let (csv, parquet) = (&outputs[0], &outputs[1]);
    assert!(!csv.1.is_empty() && !csv.2.is_empty() && !csv.3.is_empty());
    assert_eq!(parquet.0, csv.0, "the accounting");
    assert_eq!(parquet.1, csv.1, "the summed aggregates");
    assert_eq!(parquet.2, csv.2, "the dead letters (file, record, stream)");
    assert_eq!(
        parquet.3, csv.3,
        "the too-late records (file, record, stream, id, ts, watermark)"
    );
}

/// Writes a Parquet file of `columns`.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).expect("a record batch");
    let file = std::fs::File::create(path).expect("the file creates");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("a writer");
    writer.write(&batch).expect("the batch writes");
    writer.close().expect("the file closes");
}

#[test]
fn a_missing_or_mistyped_column_is_named_with_its_file() {
    let dir = tempdir();
    let (graph, _) = files_graph(dir.path(), FileFormat::Parquet);
    generate(dir.path(), &graph, FileFormat::Parquet, 3, 200);
    let clicks = dir.path().join("data").join("click-0.parquet");
    let pattern = clicks.display().to_string();
    let ids = || Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef;
    let text = || Arc::new(StringArray::from(vec!["1", "2"])) as ArrayRef;
    for (columns, column, problem) in [
        (
            vec![("click_id", ids()), ("ts", ids())],
            "bid_id",
            "no column `bid_id`",
        ),
        (
            vec![("click_id", ids()), ("bid_id", ids()), ("ts", text())],
            "ts",
            "column `ts` is Utf8, expected a timestamp",
        ),
    ] {
        write_parquet(&clicks, columns);
        let source = FileSource::from_globs(
            FileFormat::Parquet,
            Arc::new(Schema::funnel().clone()),
            &[(StreamKind::Click, pattern.clone())],
        )
        .expect("the file is found");
        let error = source
            .partitions(0, 1)
            .err()
            .expect("the partition does not open")
            .to_string();
        assert!(
            error.contains(&pattern) && error.contains(problem),
            "{error}"
        );

        let checked = diffmill(dir.path(), ["check".as_ref(), graph.as_os_str()]);
        assert_eq!(checked.code(), Some(2), "{}", checked.stderr);
        assert!(
            checked.stderr.contains(&pattern) && checked.stderr.contains(&format!("`{column}`")),
            "{}",
            checked.stderr
        );
        assert_eq!(
            checked.stderr.lines().count(),
            1,
            "one message: {}",
            checked.stderr
        );
    }
}

#[test]
fn sink_config_errors_name_the_file_and_key() {
    let dir = tempdir();
    let (graph, _) = files_graph(dir.path(), FileFormat::Csv);
    let text = std::fs::read_to_string(&graph).expect("the graph reads");
    let head = text
        .split("[[sink]]")
        .next()
        .expect("the graph's head")
        .to_owned();
    generate(dir.path(), &graph, FileFormat::Csv, 3, 500);
    for (sink, key) in [
        (
            "kind = \"parquet\"\npath = 'w'\nmode = \"snapshot\"\n",
            "sink",
        ),
        (
            "kind = \"parquet\"\npath = 'w'\nmode = \"final\"\nrow_group_size = 0\n",
            "sink[0].row_group_size",
        ),
        ("kind = \"parquet\"\nmode = \"final\"\n", "sink"),
    ] {
        std::fs::write(&graph, format!("{head}[[sink]]\n{sink}")).expect("the graph writes");
        let ran = diffmill(dir.path(), ["check".as_ref(), graph.as_os_str()]);
        assert_eq!(ran.code(), Some(2), "{sink}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(&graph.display().to_string()),
            "{}",
            ran.stderr
        );
        assert!(
            ran.stderr.contains(&format!("key `{key}`")),
            "{sink}: {}",
            ran.stderr
        );
    }
    // Tables of another mode in the folder: the run stops at once, naming both modes.
    std::fs::write(
        &graph,
        format!("{head}[[sink]]\nkind = \"parquet\"\npath = 'w'\nmode = \"final\"\n"),
    )
    .expect("the graph writes");
    diffmill_ok(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    std::fs::write(
        &graph,
        format!("{head}[[sink]]\nkind = \"parquet\"\npath = 'w'\nmode = \"changes\"\n"),
    )
    .expect("the graph writes");
    let ran = diffmill(dir.path(), ["run".as_ref(), graph.as_os_str()]);
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("`final` tables") && ran.stderr.contains("`changes` tables"),
        "{}",
        ran.stderr
    );
}
