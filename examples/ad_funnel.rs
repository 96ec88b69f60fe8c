//! The ad funnel composed in Rust: the builder that graph files are a front end to, with
//! the aggregate declared in code (5-minute windows by campaign and device, six named
//! measures, one of them filtered) and a serving layer written here as a small `Sink`.
//!
//! The sink keeps a running total per `(window, dims)` by adding up the diffs of every
//! batch: open rows, the rows that close a window, and corrections (late records, children
//! moved out of *unattributed* when their parent arrives) all merge the same way, because
//! summing diffs is the whole serving-layer merge. At the end it prints the top rows by
//! revenue, then the accounting of every record read.
//!
//! Run it with `cargo run --example ad_funnel -- -w 2` (add `--bids N` for more input).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use clap::Parser;
use differential_dataflow::difference::{IsZero, Semigroup};
use diffmill::connectors::generator::{Generator, GeneratorConfig};
use diffmill::connectors::{Batch, Sink, SinkError};
use diffmill::declare::{
    AggregateSpec, Attribution, Declaration, DurationText, FunnelSpec, MeasureSpec, Measures,
};
use diffmill::event::{utc, Micros, Millis, StreamKind};
use diffmill::runtime::Funnel;

/// The position of `revenue_micros` among the aggregate's measures.
const REVENUE: usize = 5;
/// Rows printed at the end.
const TOP: usize = 10;

/// Runs the ad funnel over generated events and prints the top rows by revenue.
#[derive(Parser)]
struct Args {
    /// Worker threads.
    #[arg(short, long, default_value = "1")]
    workers: NonZeroUsize,
    /// Bids to generate (impressions, clicks and conversions follow from them).
    #[arg(long, default_value_t = 20_000)]
    bids: u64,
}

/// What the serving layer holds: the aggregates so far, `(window, dims)` → measures, each
/// the sum of the rows received for it.
#[derive(Default)]
struct Served {
    totals: BTreeMap<(Millis, Attribution), Measures>,
    /// Rows received, by window status (open, closed, correction).
    rows: BTreeMap<&'static str, usize>,
}

/// A serving layer in a dozen lines: add each row's diff to its key's running total.
struct RunningTotals(Arc<Mutex<Served>>);

impl Sink for RunningTotals {
    fn name(&self) -> &str {
        "running-totals"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // The whole batch is applied under one lock: readers see all of it or none.
        let mut served = self.0.lock().map_err(|_| SinkError::Other {
            sink: "running-totals".into(),
            message: "lock poisoned".into(),
        })?;
        for row in &batch.rows {
            *served.rows.entry(row.status.name()).or_default() += 1;
            let key = (row.window_start, row.dims);
            let total = served.totals.entry(key).or_default();
            total.plus_equals(&row.delta);
            if total.is_zero() {
                served.totals.remove(&key);
            }
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same declaration a graph file's `[[aggregate]]` table makes.
    let by_campaign_device = AggregateSpec::new("by_campaign_device", "5m")
        .group_by(["campaign_id", "device"])
        .measure(MeasureSpec::count("bids", StreamKind::Bid))
        .measure(MeasureSpec::count("impressions", StreamKind::Impression))
        .measure(MeasureSpec::count("clicks", StreamKind::Click))
        .measure(MeasureSpec::count("conversions", StreamKind::Conversion))
        .measure(MeasureSpec::sum(
            "spend_micros",
            StreamKind::Impression,
            "cost_micros",
        ))
        .measure(MeasureSpec::sum(
            "revenue_micros",
            StreamKind::Conversion,
            "value_micros",
        ))
        .measure(
            MeasureSpec::count("big_conversions", StreamKind::Conversion)
                .filter("value_micros >= 100000000"),
        );
    let funnel = FunnelSpec {
        emit_interval: DurationText::from_millis(100),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default()
        .funnel(funnel)
        .aggregate(by_campaign_device)
        .resolve()?;
    let aggregate = settings.aggregates[0].clone();
    // 20 bids per second, so that the input spans a few windows; more clicks and
    // conversions than the default, so that there is revenue to rank.
    let config = GeneratorConfig {
        bids: args.bids,
        rate: 20,
        click_rate: 0.1,
        conversion_rate: 0.2,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, &settings)?;
    let served: Arc<Mutex<Served>> = Arc::default();
    let sink = RunningTotals(Arc::clone(&served));

    let report = Funnel::new(settings)
        .source(generator)
        .sink(sink)
        .workers(args.workers.get())
        .run()?;

    let served = served.lock().map_err(|_| anyhow!("the sink panicked"))?;
    let rows: Vec<String> = served
        .rows
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    println!(
        "{} batches, rows {} merged into {} aggregates",
        report.batches,
        rows.join(" + "),
        served.totals.len()
    );
    println!("top {TOP} (window, campaign_id, device) by revenue:");
    let mut ranked: Vec<_> = served.totals.iter().collect();
    ranked.sort_by_key(|(key, m)| (std::cmp::Reverse(m.get(REVENUE)), *key));
    for ((window, dims), m) in ranked.into_iter().take(TOP) {
        let dims = aggregate.dims.texts(dims);
        println!(
            "  {} campaign_id={:<4} device={:<12} bids {:>5} impressions {:>5} clicks {:>4} \
             conversions {:>3} (big {:>2}) spend {:>9} revenue {:>9}",
            utc(*window),
            dims[0],
            dims[1],
            m.get(0),
            m.get(1),
            m.get(2),
            m.get(3),
            m.get(6),
            money(m.get(4)),
            money(m.get(REVENUE)),
        );
    }

    println!("accounting (read = applied + duplicate + too late + dead-lettered):");
    for kind in StreamKind::ALL {
        let c = report.accounting.stream(kind);
        println!(
            "  {:<10} read {:>6} applied {:>6} duplicate {:>4} (conflicting {:>2}) too late {:>3} \
             dead-lettered {:>3} late {:>3}",
            kind.name(),
            c.read,
            c.applied,
            c.duplicate,
            c.conflicting,
            c.too_late,
            c.dead_lettered,
            c.late,
        );
    }
    println!("accounting balances: {}", report.accounting.balances());
    Ok(())
}

/// Micros as currency units with two decimals (for display only; sums stay integer).
fn money(micros: Micros) -> String {
    let cents = micros / 10_000;
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}
