//! The short, in-`cargo test` version of the fuzz targets (`fuzz/`): the CSV and JSON
//! event parsers (through the file partition, exactly as files are read) and the graph
//! TOML parser, over random bytes and over random mixes of meaningful tokens (so that
//! valid records and near misses are reached, not only garbage). The invariants are in
//! `tests/support/parser_checks.rs`; any panic or broken invariant fails the test.
//!
//! `PROPTEST_CASES` sets the number of cases per property (512 by default).

#[path = "support/parser_checks.rs"]
mod parser_checks;

use diffmill::event::StreamKind;
use diffmill::format::Format;
use parser_checks::{check_file, check_graph, check_json_line, schema_of, stream_of};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces of CSV and JSON records: field names, numbers at and beyond the limits,
/// separators, quotes, line ends, invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"bid_id",
    b"impression_id",
    b"click_id",
    b"conversion_id",
    b"ts",
    b"campaign_id",
    b"ad_id",
    b"publisher_id",
    b"region",
    b"device",
    b"bid_price_micros",
    b"cost_micros",
    b"value_micros",
    b",",
    b",",
    b",",
    b"\"",
    b"\"\"",
    b"\n",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"1",
    b"7",
    b"0",
    b"-1",
    b"1704067200000",
    b"253402300799999",
    b"253402300800000",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"1e3",
    b"1.5",
    b"eu",
    b"ios",
    b"a-label-of-24-bytes-long",
    b"\xff",
    b"\xc3",
    b"\xe2\x82\xac",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"true",
    b"\\u0000",
    b"\\",
];

fn token_bytes(max_tokens: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..max_tokens)
        .prop_map(|tokens| tokens.concat())
}

/// A CSV file that starts with a real header of its stream (maybe shuffled), then
/// records of tokens and of digits.
fn csv_file() -> impl Strategy<Value = (StreamKind, Vec<u8>)> {
    (
        any::<u8>(),
        any::<u64>(),
        prop::collection::vec(record(), 0..20),
    )
        .prop_map(|(stream, shuffle, records)| {
            let stream = stream_of(stream);
            let mut names: Vec<&str> = field_names(stream);
            let n = names.len();
            names.rotate_left((shuffle as usize) % n);
            let mut bytes = names.join(",").into_bytes();
            bytes.push(b'\n');
            for record in records {
                bytes.extend(record);
                bytes.push(b'\n');
            }
            (stream, bytes)
        })
}

/// The names of `stream`'s declared fields, in order.
fn field_names(stream: StreamKind) -> Vec<&'static str> {
    schema_of(stream)
        .fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect()
}

/// One record line: numbers and labels joined by commas, or a mix of tokens.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        (1u64..5_000_000_000_000).prop_map(|v| v.to_string().into_bytes()),
        "[a-z]{0,30}".prop_map(String::into_bytes),
        prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
    ];
    prop_oneof![
        prop::collection::vec(value, 0..10).prop_map(|values| values.join(&b","[..])),
        token_bytes(12),
    ]
}

/// A JSON object of a stream's fields (some missing, some mistyped) and extra keys.
fn json_line() -> impl Strategy<Value = (StreamKind, String)> {
    let value = prop_oneof![
        6 => (0u64..5_000_000_000_000).prop_map(|v| v.to_string()),
        3 => (0u64..5_000_000_000_000).prop_map(|v| format!("\"{v}\"")),
        1 => "[a-z ]{0,30}".prop_map(|s| format!("\"{s}\"")),
        1 => prop::sample::select(&[
            "null",
            "true",
            "[]",
            "{}",
            "-1",
            "1.5",
            "1e3",
            "18446744073709551616",
            "\"\"",
            "\" 7 \"",
        ][..])
        .prop_map(str::to_owned),
    ];
    (
        any::<u8>(),
        prop::collection::vec((prop::bool::weighted(0.9), value), 8),
        prop::collection::vec(("[a-z_]{1,12}", "[0-9]{1,5}"), 0..3),
    )
        .prop_map(|(stream, values, extra)| {
            let stream = stream_of(stream);
            let mut pairs: Vec<String> = field_names(stream)
                .into_iter()
                .zip(values)
                .filter(|(_, (present, _))| *present)
                .map(|(name, (_, value))| format!("\"{name}\":{value}"))
                .collect();
            pairs.extend(extra.into_iter().map(|(k, v)| format!("\"{k}\":{v}")));
            (stream, format!("{{{}}}", pairs.join(",")))
        })
}

/// A graph file of the repository with a few bytes replaced, inserted or removed.
fn mutated_graph() -> impl Strategy<Value = String> {
    let graphs: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/graphs"))
        .expect("the graphs folder")
        .filter_map(Result::ok)
        .map(|entry| std::fs::read_to_string(entry.path()).expect("a graph file"))
        .collect();
    let edit = (
        any::<prop::sample::Index>(),
        0u8..3,
        prop::sample::select(GRAPH_TOKENS),
    );
    (
        prop::sample::select(graphs),
        prop::collection::vec(edit, 1..4),
    )
        .prop_map(|(graph, edits)| {
            let mut bytes = graph.into_bytes();
            for (at, op, token) in edits {
                let at = at.index(bytes.len() + 1);
                match op {
                    0 => {
                        bytes.splice(at..at, token.bytes());
                    }
                    1 => {
                        let end = (at + token.len()).min(bytes.len());
                        bytes.splice(at..end, token.bytes());
                    }
                    _ => {
                        let end = (at + 8).min(bytes.len());
                        bytes.drain(at..end);
                    }
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

const GRAPH_TOKENS: &[&str] = &[
    "0",
    "0s",
    "1ms",
    "99999999999999d",
    "18446744073709551615",
    "-1",
    "nan",
    "inf",
    "1e308",
    "\"",
    "'",
    "[",
    "]",
    "[[sink]]\n",
    "\n",
    "=",
    "é",
    "\"campaign_id\"",
    "kind = \"generator\"\n",
    "partitions = 18446744073709551615\n",
    "rate = 18446744073709551615\n",
    "start_ms = 18446744073709551615\n",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_files_of_random_bytes(stream in any::<u8>(), chunk in 1usize..5, bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_file(Format::Csv, stream_of(stream), &bytes, chunk);
    }

    #[test]
    fn csv_files_of_tokens(stream in any::<u8>(), chunk in 1usize..5, bytes in token_bytes(80)) {
        check_file(Format::Csv, stream_of(stream), &bytes, chunk);
    }

    #[test]
    fn csv_files_with_a_header(file in csv_file(), chunk in 1usize..5) {
        check_file(Format::Csv, file.0, &file.1, chunk);
    }

    #[test]
    fn json_files_of_random_bytes(stream in any::<u8>(), chunk in 1usize..5, bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_file(Format::Json, stream_of(stream), &bytes, chunk);
    }

    #[test]
    fn json_files_of_tokens(stream in any::<u8>(), chunk in 1usize..5, bytes in token_bytes(80)) {
        check_file(Format::Json, stream_of(stream), &bytes, chunk);
    }

    #[test]
    fn json_objects(line in json_line()) {
        check_json_line(line.0, &line.1);
        check_file(Format::Json, line.0, line.1.as_bytes(), 1);
    }

    #[test]
    fn graph_text_of_random_chars(text in "\\PC{0,300}") {
        check_graph(&text);
    }

    #[test]
    fn graph_files_mutated(text in mutated_graph()) {
        check_graph(&text);
    }
}

/// The generators above reach the interesting outcomes: valid events from both formats,
/// and dead letters. (A property test whose inputs are all garbage proves little.)
#[test]
fn the_generators_reach_valid_records() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut csv_events, mut csv_dead) = (0, 0);
    for _ in 0..200 {
        let (stream, bytes) = csv_file().new_tree(&mut runner).expect("a case").current();
        let (events, dead) = check_file(Format::Csv, stream, &bytes, 3);
        csv_events += events;
        csv_dead += dead;
    }
    let (mut json_events, mut json_dead) = (0, 0);
    for _ in 0..200 {
        let (stream, line) = json_line().new_tree(&mut runner).expect("a case").current();
        let (events, dead) = check_file(Format::Json, stream, line.as_bytes(), 1);
        json_events += events;
        json_dead += dead;
    }
    assert!(
        csv_events > 0 && csv_dead > 0,
        "csv: {csv_events} events, {csv_dead} dead"
    );
    assert!(
        json_events > 0 && json_dead > 0,
        "json: {json_events} events, {json_dead} dead"
    );
}
