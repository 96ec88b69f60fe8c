//! Hostile files: every line is applied or dead-lettered with a precise reason, nothing
//! panics, and the accounting balances.

use std::path::Path;

use diffmill::connectors::{FileSource, MemorySink};
use diffmill::declare::{FunnelSettings, Schema};
use diffmill::event::StreamKind;
use diffmill::format::Format;
use diffmill::runtime::Funnel;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("the file writes");
}

/// Runs the files in `dir` (one glob per stream) and returns the dead letters as
/// `(file name, line, reason)` plus the run's accounting.
fn run(dir: &Path, format: Format) -> (Vec<(String, u64, String)>, diffmill::runtime::Accounting) {
    let ext = format.extension();
    let globs: Vec<(StreamKind, String)> = StreamKind::ALL
        .iter()
        .map(|k| (*k, format!("{}/{}*.{ext}", dir.display(), k.name())))
        .filter(|(_, pattern)| {
            glob::glob(pattern)
                .map(|mut paths| paths.next().is_some())
                .unwrap_or(false)
        })
        .collect();
    let schema = std::sync::Arc::new(Schema::funnel().clone());
    let source = FileSource::from_globs(format, schema, &globs).expect("files exist");
    let sink = MemorySink::new();
    let report = Funnel::new(FunnelSettings::default())
        .source(source)
        .sink(sink.clone())
        .workers(2)
        .run()
        .expect("a hostile input is not a run failure");
    let mut dead: Vec<(String, u64, String)> = sink
        .batches()
        .into_iter()
        .flat_map(|b| b.dead_letters)
        .map(|d| {
            let file = Path::new(&d.origin.source)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            (file, d.origin.position, d.reason)
        })
        .collect();
    dead.sort();
    (dead, report.accounting)
}

fn reason<'a>(dead: &'a [(String, u64, String)], file: &str, line: u64) -> &'a str {
    dead.iter()
        .find(|(f, l, _)| f == file && *l == line)
        .map(|(_, _, r)| r.as_str())
        .unwrap_or_else(|| panic!("{file}:{line} was not dead-lettered; dead letters: {dead:?}"))
}

#[test]
fn hostile_csv_lines_are_dead_lettered_with_their_reason() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let d = dir.path();
    let mut clicks = b"ts,click_id,extra,bid_id\n".to_vec(); // another column order, an extra column
    clicks.extend_from_slice(b"1704067200000,1,x,7\n"); // line 2: valid
    clicks.extend_from_slice(b"1704067200001,2\n"); // line 3: truncated
    clicks.extend_from_slice(b"1704067200002,three,x,7\n"); // line 4: wrong type
    clicks.extend_from_slice(b"1704067200003,0,x,7\n"); // line 5: id zero
    clicks.extend_from_slice(b"-5,4,x,7\n"); // line 6: before 1970
    clicks.extend_from_slice(b"99999999999999999,5,x,7\n"); // line 7: after 9999
    clicks.extend_from_slice(b"1704067200004,6,\xff\xfe,7\n"); // line 8: not UTF-8
    clicks.extend_from_slice(b"\n"); // line 9: blank, skipped
    clicks.extend_from_slice(b"1704067200005,\"8\",\"a,b\",7\n"); // line 10: quoted, valid
    clicks.extend_from_slice(b"1704067200006,9,x,7,surplus\n"); // line 11: a field more than the header
    write(d, "click-0.csv", &clicks);

    let mut impressions = b"impression_id,bid_id,ts,cost_micros\n".to_vec();
    impressions.extend_from_slice(b"1,7,1704067200000,-3\n"); // line 2: negative money
    impressions.extend_from_slice(b"2,7,1704067200000,99999999999999999999\n"); // line 3: absurd money
    let mut huge = b"3,7,1704067200000,".to_vec();
    huge.extend(std::iter::repeat_n(b'9', 10 * 1024 * 1024)); // line 4: a 10 MB line
    huge.push(b'\n');
    impressions.extend_from_slice(&huge);
    impressions.extend_from_slice(b"4,7,1704067200000,10\n"); // line 5: valid
    write(d, "impression-0.csv", &impressions);

    write(d, "bid-0.csv", b""); // empty file
    write(
        d,
        "bid-1.csv",
        b"bid_id,ts,campaign_id,ad_id,publisher_id,region,device,bid_price_micros\n",
    ); // header only
    let long_region = "r".repeat(40);
    write(
        d,
        "bid-2.csv",
        format!("bid_id,ts,campaign_id,ad_id,publisher_id,region,device,bid_price_micros\n7,1704067199000,1,1,1,{long_region},ios,5\n").as_bytes(),
    );
    write(
        d,
        "conversion-0.csv",
        b"conversion_id,ts,value_micros\n1,1704067200000,5\n",
    ); // header lacks click_id

    let (dead, accounting) = run(d, Format::Csv);
    assert!(reason(&dead, "click-0.csv", 3).contains("bad CSV"));
    assert!(reason(&dead, "click-0.csv", 4)
        .contains("`click_id`: expected positive integer id, got `three`"));
    assert!(reason(&dead, "click-0.csv", 5).contains("id 0"));
    assert!(reason(&dead, "click-0.csv", 6).contains("outside the accepted range"));
    assert!(reason(&dead, "click-0.csv", 7).contains("outside the accepted range"));
    assert!(reason(&dead, "click-0.csv", 8).contains("not valid UTF-8"));
    assert!(reason(&dead, "click-0.csv", 11).contains("5 fields, but the header has 4 columns"));
    assert!(reason(&dead, "impression-0.csv", 2).contains("must not be negative"));
    assert!(reason(&dead, "impression-0.csv", 3).contains("`cost_micros`"));
    assert!(reason(&dead, "impression-0.csv", 4).contains("exceeds the 65536-byte limit"));
    assert!(reason(&dead, "bid-2.csv", 2).contains("`region`: 40 bytes"));
    assert!(reason(&dead, "conversion-0.csv", 2).contains("no `click_id` column"));
    assert_eq!(dead.len(), 12, "exactly the bad lines: {dead:?}");

    let clicks = accounting.stream(StreamKind::Click);
    assert_eq!(
        (clicks.read, clicks.applied, clicks.dead_lettered),
        (9, 2, 7)
    );
    let impressions = accounting.stream(StreamKind::Impression);
    assert_eq!(
        (
            impressions.read,
            impressions.applied,
            impressions.dead_lettered
        ),
        (4, 1, 3)
    );
    assert!(accounting.balances(), "{accounting:?}");
}

#[test]
fn hostile_json_lines_are_dead_lettered_with_their_reason() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let d = dir.path();
    let lines = [
        r#"{"click_id":1,"bid_id":7,"ts":1704067200000,"unknown":[1,2]}"#, // 1: valid, extra field ignored
        r#"{"click_id":2,"ts":1704067200000}"#,                            // 2: missing bid_id
        r#"{"click_id":3,"bid_id":7,"ts":1704067200"#,                     // 3: truncated
        r#"[1,2,3]"#,                                                      // 4: not an object
        r#"{"click_id":4,"bid_id":{"a":1},"ts":1704067200000}"#,           // 5: wrong type
        r#"{"click_id":"5","bid_id":"7","ts":"1704067200000"}"#, // 6: numbers as strings, valid
    ];
    write(d, "click-0.jsonl", (lines.join("\n") + "\n").as_bytes());
    let (dead, accounting) = run(d, Format::Json);
    assert!(reason(&dead, "click-0.jsonl", 2).contains("missing field `bid_id`"));
    assert!(reason(&dead, "click-0.jsonl", 3).contains("bad JSON"));
    assert!(reason(&dead, "click-0.jsonl", 4).contains("bad JSON"));
    assert!(reason(&dead, "click-0.jsonl", 5).contains("`bid_id` must be a number or a string"));
    assert_eq!(dead.len(), 4, "{dead:?}");
    let clicks = accounting.stream(StreamKind::Click);
    assert_eq!(
        (clicks.read, clicks.applied, clicks.dead_lettered),
        (6, 2, 4)
    );
    assert!(accounting.balances());
}
