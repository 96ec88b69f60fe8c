//! Invariants of the parsers on arbitrary input, shared by the proptest version
//! (`tests/fuzz_parsers.rs`) and the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, which
//! include this file by path).
//!
//! Each check panics when an invariant breaks, so a fuzzer reports it as a crash:
//! - a file of any bytes yields exactly one arrival per record line (blank lines and the
//!   CSV header carry none), in line order, and the partition ends;
//! - every record it yields is of the partition's stream and survives a round trip
//!   through the canonical encodings (a headerless CSV line, a JSON object);
//! - every dead letter names its stream, line and a reason, and keeps a bounded raw text;
//! - graph text either loads into settings that validate and survive a round trip
//!   through TOML, or fails with an error that names the file.

use std::io::Cursor;
use std::path::Path;

use diffmill::connectors::{reader_partition, Arrival, Poll};
use diffmill::declare::{Schema, StreamSchema};
use diffmill::event::{Record, StreamKind, MAX_RAW_KEPT};
use diffmill::format::{
    csv_line, decode_json, json_object, Decoder, Format, Framing, MAX_RECORD_BYTES,
};
use diffmill::graph::{GraphSpec, Overrides, SinkSpec, SourceSpec};

/// The stream a fuzz input is read as, chosen by one byte.
pub fn stream_of(byte: u8) -> StreamKind {
    StreamKind::ALL[usize::from(byte) % StreamKind::ALL.len()]
}

/// The declaration of `stream` that the fuzzed files are read by: today's fields.
pub fn schema_of(stream: StreamKind) -> &'static StreamSchema {
    Schema::funnel().stream(stream)
}

/// Checks one record against the rules every decoded record satisfies.
pub fn check_record(stream: StreamKind, record: &Record) {
    assert_eq!(
        record.stream, stream,
        "a record of another stream: {record:?}"
    );
    let schema = schema_of(stream);
    let line = csv_line(schema, record);
    let mut decoder = Decoder::new(schema.clone().into(), Format::Csv, Framing::Messages);
    assert_eq!(
        decoder.decode(line.as_bytes(), None),
        Ok(Some(*record)),
        "a record does not survive a CSV round trip: {line}"
    );
    let json = json_object(schema, record);
    assert_eq!(
        decode_json(schema, &json, None).as_ref(),
        Ok(record),
        "a record does not survive a JSON round trip: {json}"
    );
}

/// The 1-based numbers of the lines of `bytes` that must each yield one arrival when
/// read as a file of `format`: the non-blank lines, less the CSV header (the first
/// non-blank line that is neither too long nor invalid UTF-8; those before it are dead
/// letters).
pub fn record_lines(format: Format, bytes: &[u8]) -> Vec<u64> {
    let mut lines = Vec::new();
    let mut header_seen = format == Format::Json;
    let mut rest = bytes;
    let mut line_no = 0u64;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut content = line;
        while let Some(stripped) = content
            .strip_suffix(b"\n")
            .or_else(|| content.strip_suffix(b"\r"))
        {
            content = stripped;
        }
        let readable = content.len() <= MAX_RECORD_BYTES && std::str::from_utf8(content).is_ok();
        if !header_seen && readable {
            header_seen = true;
            continue;
        }
        lines.push(line_no);
    }
    lines
}

/// Reads `bytes` as a whole file of `stream` in `format`, polling `chunk` records at a
/// time, and checks every arrival. Returns the number of events and of dead letters.
pub fn check_file(
    format: Format,
    stream: StreamKind,
    bytes: &[u8],
    chunk: usize,
) -> (usize, usize) {
    let expected = record_lines(format, bytes);
    let schema = Schema::funnel();
    let mut partition =
        reader_partition("fuzz", schema, stream, format, Cursor::new(bytes.to_vec()));
    let mut arrivals = Vec::new();
    let chunk = chunk.max(1);
    // Each poll that is not the last yields `chunk` records, so this many polls suffice.
    let polls = expected.len() / chunk + 2;
    let mut done = false;
    for _ in 0..polls {
        let before = arrivals.len();
        match partition.poll(&mut arrivals, chunk) {
            Ok(Poll::Done) => {
                done = true;
                break;
            }
            Ok(Poll::Ready) => assert_eq!(arrivals.len() - before, chunk, "a short Ready poll"),
            Ok(Poll::Idle) => panic!("a file partition is never idle"),
            Err(e) => panic!("reading from memory failed: {e}"),
        }
    }
    assert!(done, "the partition did not end after {polls} polls");
    let positions: Vec<u64> = arrivals
        .iter()
        .map(|arrival| match arrival {
            Arrival::Event { position, .. } => *position,
            Arrival::DeadLetter(dead) => dead.origin.position,
        })
        .collect();
    assert_eq!(
        positions, expected,
        "arrivals do not match the record lines"
    );
    let mut events = 0;
    let mut dead_letters = 0;
    for arrival in &arrivals {
        match arrival {
            Arrival::Event { record, .. } => {
                check_record(stream, record);
                events += 1;
            }
            Arrival::DeadLetter(dead) => {
                assert_eq!(dead.stream, stream);
                assert_eq!(dead.origin.source, "fuzz");
                assert!(
                    !dead.reason.trim().is_empty(),
                    "a dead letter without a reason"
                );
                // Each kept byte becomes at most one char (U+FFFD for invalid UTF-8).
                assert!(
                    dead.raw.chars().count() <= MAX_RAW_KEPT + 40,
                    "a dead letter keeps {} chars of raw text",
                    dead.raw.chars().count()
                );
                dead_letters += 1;
            }
        }
    }
    (events, dead_letters)
}

/// Decodes one line as JSON of `stream`: a record round-trips; a failure is a reason
/// with text.
pub fn check_json_line(stream: StreamKind, line: &str) {
    match decode_json(schema_of(stream), line, None) {
        Ok(record) => check_record(stream, &record),
        Err(reason) => assert!(!reason.to_string().trim().is_empty()),
    }
}

/// Parses graph text: a graph validates and survives a TOML round trip; an error names
/// the file.
pub fn check_graph(text: &str) {
    let file = Path::new("fuzz.toml");
    match GraphSpec::parse(file, text) {
        Ok(spec) => {
            spec.declaration()
                .resolve()
                .expect("a loaded graph's declaration resolves");
            let written = toml::to_string(&spec).expect("a loaded graph serializes");
            let again = GraphSpec::parse(file, &written)
                .unwrap_or_else(|e| panic!("a written graph does not load: {e}\n{written}"));
            // Compared as text, as a NaN in the generator's settings is not equal to itself.
            assert_eq!(
                toml::to_string(&again).expect("a loaded graph serializes"),
                written,
                "a graph does not survive a TOML round trip"
            );
            if let SourceSpec::Generator(config) = &spec.source {
                // Small cardinalities only: the generator's tables are sized by them.
                let small = config
                    .campaigns
                    .max(config.ads_per_campaign)
                    .max(config.publishers)
                    <= 1_000;
                // Sinks on a server (a database, a broker) connect when planned; only
                // graphs with local sinks are planned here.
                let local = spec
                    .all_sinks()
                    .iter()
                    .all(|(_, sink)| matches!(sink, SinkSpec::Csv(_) | SinkSpec::Stdout(_)));
                if small && local && config.validate().is_ok() {
                    if let Err(e) = spec.clone().plan(file, &Overrides::default()) {
                        panic!("a valid generator graph does not plan: {e}");
                    }
                }
            }
        }
        Err(error) => {
            assert_eq!(error.file, file);
            let message = error.to_string();
            assert!(message.starts_with("fuzz.toml"), "{message}");
            assert!(
                !error.problem.trim().is_empty(),
                "an error without a problem: {error:?}\n{text}"
            );
        }
    }
}
