//! Parsing throughput per format: one bid as CSV by header and as JSON lines, decoded by
//! the default declaration; one line of each stream through a file's decoder, as CSV and
//! as `gen` writes JSON; and a file of bids read whole as CSV and as Parquet.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffmill::cli::write_files;
use diffmill::connectors::generator::{Generator, GeneratorConfig};
use diffmill::connectors::{FileFormat, FileSource, Poll, Source};
use diffmill::declare::{FieldType, FunnelSettings, Schema, StreamSchema, Value};
use diffmill::event::{Label, Record, StreamKind};
use diffmill::format::{csv_line, decode_json, json_object, CsvDecoder, Decoder, Format, Framing};

fn parse(c: &mut Criterion) {
    let line = "123456789,1704067200123,17,171,942,us-east,mobile,2500";
    let json = r#"{"bid_id":123456789,"ts":1704067200123,"campaign_id":17,"ad_id":171,"publisher_id":942,"region":"us-east","device":"mobile","bid_price_micros":2500}"#;
    let bids = Schema::funnel().stream(StreamKind::Bid);
    let names: Vec<&str> = bids.fields().iter().map(|f| f.name.as_str()).collect();
    let header = csv::StringRecord::from(names);
    let decoder = CsvDecoder::by_header(bids.clone(), &header).expect("canonical header");
    let mut group = c.benchmark_group("parse_bid");
    group.throughput(Throughput::Elements(1));
    group.bench_function("csv", |b| {
        let mut record = csv::StringRecord::new();
        b.iter(|| {
            record.clear();
            for field in line.split(',') {
                record.push_field(field);
            }
            decoder.decode(&record)
        })
    });
    group.bench_function("json", |b| b.iter(|| decode_json(bids, json, None)));
    group.finish();
}

/// A record of `stream` with a typical value in every field.
fn sample(stream: &StreamSchema) -> Record {
    let mut record = Record::new(stream.kind(), 0, 0);
    for (index, field) in stream.fields().iter().enumerate() {
        let value = match field.ty {
            FieldType::Id => Value::Id(123_456_789 + index as u64),
            FieldType::Timestamp => Value::Timestamp(1_704_067_200_123),
            FieldType::Money => Value::Money(2_500),
            FieldType::Int => Value::Int(-42),
            FieldType::String => Value::String(Label::new("us-east").expect("a short label")),
            FieldType::Bool => Value::Bool(true),
        };
        stream.set(&mut record, index, value);
    }
    record
}

/// One line of each stream through a file partition's decoder (line framing, UTF-8 check
/// included): CSV by its header, and JSON as `gen` writes it (keys in alphabetical order).
fn decode_lines(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_line");
    group.throughput(Throughput::Elements(1));
    for kind in StreamKind::ALL {
        let stream = Schema::funnel().stream(kind);
        let record = sample(stream);
        let names: Vec<&str> = stream.fields().iter().map(|f| f.name.as_str()).collect();
        let csv = csv_line(stream, &record);
        let mut decoder = Decoder::new(Arc::clone(stream), Format::Csv, Framing::Lines);
        let header = decoder.decode(names.join(",").as_bytes(), None);
        assert_eq!(header, Ok(None), "the header is read");
        assert_eq!(decoder.decode(csv.as_bytes(), None), Ok(Some(record)));
        group.bench_function(format!("{}/csv", kind.name()), |b| {
            b.iter(|| decoder.decode(csv.as_bytes(), None))
        });
        let json = json_object(stream, &record);
        let mut decoder = Decoder::new(Arc::clone(stream), Format::Json, Framing::Lines);
        assert_eq!(decoder.decode(json.as_bytes(), None), Ok(Some(record)));
        group.bench_function(format!("{}/json", kind.name()), |b| {
            b.iter(|| decoder.decode(json.as_bytes(), None))
        });
    }
    group.finish();
}

/// Reads every record of `source` (one worker), returning how many.
fn read_all(source: &FileSource) -> u64 {
    let mut records = 0;
    let mut out = Vec::with_capacity(1024);
    for mut partition in source.partitions(0, 1).expect("the files open") {
        loop {
            out.clear();
            let poll = partition.poll(&mut out, 1024).expect("the file reads");
            records += out.len() as u64;
            if poll == Poll::Done {
                break;
            }
        }
    }
    records
}

/// The same generated bids (with their malformed records) as a CSV file and as a Parquet
/// file, each read whole through the files source: file reading and decoding, no
/// dataflow.
fn read_files(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = GeneratorConfig {
        bids: 50_000,
        partitions: 1,
        ..GeneratorConfig::default()
    };
    let settings = FunnelSettings::default();
    let generator = Generator::new(config, &settings).expect("valid generator settings");
    let mut group = c.benchmark_group("read_bid_file");
    for format in [FileFormat::Csv, FileFormat::Parquet] {
        let folder = dir.path().join(format.name());
        write_files(&generator, &folder, format).expect("the files write");
        let pattern = FileSource::folder_pattern(&folder, format, StreamKind::Bid);
        let source = FileSource::from_globs(
            format,
            Arc::clone(&settings.schema),
            &[(StreamKind::Bid, pattern)],
        )
        .expect("a bid file");
        group.throughput(Throughput::Elements(read_all(&source)));
        group.bench_function(format.name(), |b| b.iter(|| read_all(&source)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = parse, decode_lines, read_files
}
criterion_main!(benches);
