//! Throughput of the PostgreSQL sink: rows/s and batches/s into a real server.
//!
//! Needs `DIFFMILL_BENCH_POSTGRES_URL` (or `DIFFMILL_TEST_POSTGRES_URL`); without either
//! it prints `SKIPPED postgres_sink (set DIFFMILL_TEST_POSTGRES_URL to run)`, and fails
//! under `CI=true`, like the database tests (tests/support/services.rs). For each batch shape it writes the same synthetic batches into a
//! fresh schema `bench_postgres_sink` five times and prints the median and spread of
//! rows/s and batches/s. A batch touches `rows` keys `(window, campaign, region)`; the
//! window moves every 5 batches, so 4 batches in 5 update existing totals (the
//! `ON CONFLICT … DO UPDATE` path) and one in 5 inserts; each window move finalizes the
//! window before it.
//!
//! `cargo bench --bench postgres_sink`
#![allow(missing_docs)]

#[path = "../tests/support/services.rs"]
mod services;

use std::time::Instant;

use diffmill::connectors::{AggregateRow, Batch, PostgresConfig, PostgresSink, Sink};
use diffmill::declare::{Aggregate, Attribution, FunnelSettings, Measures, Value, WindowStatus};
use diffmill::event::Label;

const WINDOW: u64 = 900_000;
const START: u64 = 1_704_067_200_000;
const REGIONS: [&str; 8] = ["eu", "us", "apac", "latam", "mea", "ca", "uk", "jp"];

/// The default aggregate: 15-minute windows by campaign and region, six measures.
fn aggregate() -> Aggregate {
    FunnelSettings::default().aggregates[0].clone()
}

fn batches(rows: usize, count: usize) -> Vec<Batch> {
    let dims = aggregate().dims;
    (0..count)
        .map(|b| {
            let window_start = START + (b / 5) as u64 * WINDOW;
            let rows: Vec<AggregateRow> = (0..rows)
                .map(|i| AggregateRow {
                    window_start,
                    window_end: window_start + WINDOW,
                    dims: Attribution::Dims(dims.key(&[
                        Some(Value::Id((i / REGIONS.len()) as u64 + 1)),
                        Label::new(REGIONS[i % REGIONS.len()]).map(Value::String),
                    ])),
                    delta: Measures::from_values(&[10, 7, 1, (i % 3 == 0) as i64, 12_345, 99_000]),
                    status: WindowStatus::Open,
                })
                .collect();
            Batch {
                seq: b as u64,
                previous: START + b as u64 * 1_000,
                frontier: Some(START + (b as u64 + 1) * 1_000),
                rows,
                finalized: if b % 5 == 0 && b > 0 {
                    vec![window_start - WINDOW]
                } else {
                    Vec::new()
                },
                ..Batch::default()
            }
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let bench = std::env::var("DIFFMILL_BENCH_POSTGRES_URL").ok();
    let Some(url) =
        bench.or_else(|| services::service("postgres_sink", "DIFFMILL_TEST_POSTGRES_URL"))
    else {
        return;
    };
    let aggregate = aggregate();
    println!("shape                          rows/s (median, min-max)        batches/s (median, min-max)");
    for (rows, count, change_log) in [
        (10, 400, false),
        (1_000, 100, false),
        (1_000, 100, true),
        (10_000, 20, false),
    ] {
        let input = batches(rows, count);
        let mut rows_per_s = Vec::new();
        let mut batches_per_s = Vec::new();
        for _ in 0..5 {
            let mut config = PostgresConfig {
                schema: "bench_postgres_sink".into(),
                ..PostgresConfig::with_url(&url)
            };
            if change_log {
                config.change_log_table = Some("changes".into());
            }
            let mut client =
                postgres::Client::connect(&url, postgres::NoTls).expect("the database connects");
            client
                .batch_execute("DROP SCHEMA IF EXISTS bench_postgres_sink CASCADE")
                .expect("the schema drops");
            let mut sink = PostgresSink::open(&config, &aggregate).expect("the sink opens");
            let started = Instant::now();
            for batch in &input {
                sink.write_batch(batch).expect("the batch is written");
            }
            let seconds = started.elapsed().as_secs_f64();
            rows_per_s.push((rows * count) as f64 / seconds);
            batches_per_s.push(count as f64 / seconds);
        }
        let spread = |v: &[f64]| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            format!("{min:.0}-{max:.0}")
        };
        let shape = format!(
            "{count} × {rows} rows{}",
            if change_log { " + change log" } else { "" }
        );
        println!(
            "{shape:<30} {:>10.0} ({:<18}) {:>10.1} ({})",
            median(&mut rows_per_s.clone()),
            spread(&rows_per_s),
            median(&mut batches_per_s.clone()),
            spread(&batches_per_s)
        );
    }
}
