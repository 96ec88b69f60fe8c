//! Parsing throughput per format: CSV by header and JSON lines.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffmill::event::{fields, parse_json, CsvDecoder, StreamKind};

fn parse(c: &mut Criterion) {
    let line = "123456789,1704067200123,17,171,942,us-east,mobile,2500";
    let json = r#"{"bid_id":123456789,"ts":1704067200123,"campaign_id":17,"ad_id":171,"publisher_id":942,"region":"us-east","device":"mobile","bid_price_micros":2500}"#;
    let header = csv::StringRecord::from(fields(StreamKind::Bid).to_vec());
    let decoder = CsvDecoder::new(StreamKind::Bid, &header).expect("canonical header");
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
    group.bench_function("json", |b| b.iter(|| parse_json(StreamKind::Bid, json)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = parse
}
criterion_main!(benches);
