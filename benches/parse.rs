//! Parsing throughput per format: CSV by header and JSON lines, decoded by the default
//! declaration.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffmill::declare::Schema;
use diffmill::event::StreamKind;
use diffmill::format::{decode_json, CsvDecoder};

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

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = parse
}
criterion_main!(benches);
