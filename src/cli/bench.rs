//! `diffmill bench`: the open-loop latency harness at one or more offered rates.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::bench::{run_bench, BenchConfig, BenchReport, LatencySummary, Verdict};
use crate::connectors::generator::GeneratorConfig;
use crate::declare::DurationText;
use crate::declare::{Declaration, FunnelSpec};

/// Arguments of `diffmill bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Offered rates to run, records per second of wall clock, comma-separated (e.g.
    /// `100000,200000,400000`); each is one run of `--duration`.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    pub rates: Vec<u64>,
    /// How long records are sent at each rate.
    #[arg(long, default_value = "20s")]
    pub duration: DurationText,
    /// The first part of each run, not measured.
    #[arg(long, default_value = "3s")]
    pub warmup: DurationText,
    /// The last part of each run, not measured (the end of input releases all state).
    #[arg(long, default_value = "2s")]
    pub cooldown: DurationText,
    /// Worker threads.
    #[arg(long, short = 'w', default_value_t = 1)]
    pub workers: usize,
    /// Generator partitions (default: one per worker).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Window length.
    #[arg(long, default_value = "1s")]
    pub window: DurationText,
    /// Max disorder (the generator's out-of-order records stay within it).
    #[arg(long, default_value = "10ms")]
    pub max_disorder: DurationText,
    /// Allowed lateness.
    #[arg(long, default_value = "5s")]
    pub allowed_lateness: DurationText,
    /// Match bound of bids and of clicks.
    #[arg(long, default_value = "2m")]
    pub bound: DurationText,
    /// Least time between two batches (0: a batch at every frontier move).
    #[arg(long, default_value = "0ms")]
    pub emit_interval: DurationText,
    /// The step in which entry times and the frontier move (default: the largest of at
    /// most 100ms and a tenth of the max disorder that divides the window and lateness).
    #[arg(long)]
    pub tick: Option<DurationText>,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// p99 processing latency above which a rate is not sustainable.
    #[arg(long, default_value = "1s")]
    pub p99_bound: DurationText,
    /// Append one CSV row per rate to this file (a header is written to a new file).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a checkpoint this often (into a temporary state folder), to measure what
    /// checkpoints cost; none by default.
    #[arg(long)]
    pub checkpoint_interval: Option<DurationText>,
}

const CSV_HEADER: &str = "workers,offered,achieved,proc_p50_ms,proc_p90_ms,proc_p99_ms,\
proc_p999_ms,proc_max_ms,window_p50_ms,window_p99_ms,window_max_ms,cpu_cores,\
cpu_us_per_record,peak_rss_mb,held_max,load1,sustainable";

/// Runs every rate, prints a line per rate and the sustainable throughput.
///
/// # Errors
/// [`CliError::Config`] for arguments that cannot work, [`CliError::Runtime`] when a run
/// or the CSV file fails.
pub fn bench(args: &BenchArgs) -> Result<(), CliError> {
    let workers = args.workers.max(1);
    let funnel = FunnelSpec {
        window: Some(args.window),
        allowed_lateness: args.allowed_lateness,
        bid_retention: args.bound,
        click_retention: args.bound,
        max_disorder: args.max_disorder,
        emit_interval: args.emit_interval,
        tick: args.tick,
        ..FunnelSpec::default()
    };
    let settings = Declaration::default()
        .funnel(funnel)
        .resolve()
        .map_err(|e| CliError::Config(format!("bench: {e}")))?;
    let verdict = Verdict {
        p99_bound: args.p99_bound.to_std(),
        ..Verdict::default()
    };
    eprintln!(
        "bench: {workers} worker(s), {} per rate ({} warm-up), window {}, max disorder {}, tick {}",
        args.duration,
        args.warmup,
        args.window,
        args.max_disorder,
        DurationText::from_millis(settings.tick.step())
    );
    println!(
        "{:>9} {:>9} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>5} {:>7} {:>9} | verdict",
        "offered/s",
        "achieved",
        "p50 ms",
        "p90",
        "p99",
        "p99.9",
        "max",
        "win p50",
        "win p99",
        "cpu",
        "rss MB",
        "held"
    );
    let mut sustainable = None;
    for &rate in &args.rates {
        let config = BenchConfig {
            rate,
            duration: args.duration.to_std(),
            warmup: args.warmup.to_std(),
            cooldown: args.cooldown.to_std(),
            workers,
            settings: settings.clone(),
            generator: GeneratorConfig {
                seed: args.seed,
                partitions: args.partitions.unwrap_or(workers).max(1),
                ..GeneratorConfig::default()
            },
            checkpoint_interval: args.checkpoint_interval.map(DurationText::to_std),
        };
        let report = run_bench(&config).map_err(|e| CliError::Runtime(format!("bench: {e}")))?;
        let problem = verdict.judge(&report);
        print_row(&report, problem.as_deref());
        if let Some(note) = &report.checkpoint {
            println!(
                "          checkpoints: {} written, the last {:.1} MB in {:.0} ms",
                note.count,
                note.bytes as f64 / 1e6,
                note.took.as_secs_f64() * 1e3
            );
        }
        if problem.is_none() {
            sustainable = Some(sustainable.map_or(rate, |s: u64| s.max(rate)));
        }
        if let Some(path) = &args.csv {
            append_csv(path, workers, &report, problem.is_none())
                .map_err(|e| CliError::Runtime(format!("bench: {}: {e}", path.display())))?;
        }
    }
    match sustainable {
        Some(rate) => println!("sustainable: {rate} records/s ({workers} worker(s))"),
        None => println!("sustainable: none of the rates ({workers} worker(s))"),
    }
    Ok(())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn print_row(report: &BenchReport, problem: Option<&str>) {
    let p: &LatencySummary = &report.processing;
    let w = &report.window;
    println!(
        "{:>9} {:>9.0} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>5} {:>7} {:>9} | {}",
        report.offered,
        report.achieved,
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.max),
        ms(w.p50),
        ms(w.p99),
        report
            .cpu_cores
            .map_or_else(|| "-".into(), |c| format!("{c:.2}")),
        report
            .peak_rss
            .map_or_else(|| "-".into(), |b| (b >> 20).to_string()),
        report.held_max,
        problem.map_or_else(
            || "sustainable".to_owned(),
            |why| format!("not sustainable: {why}")
        ),
    );
    eprintln!(
        "  handed {} records, {} batches, {:.1} s; p99 first/second half {:.1}/{:.1} ms, \
         {} windows; {} µs CPU per record; load average {}",
        report.handed,
        report.batches,
        report.wall.as_secs_f64(),
        ms(report.halves[0].p99),
        ms(report.halves[1].p99),
        w.count,
        report
            .cpu_us_per_record
            .map_or_else(|| "-".into(), |c| format!("{c:.2}")),
        load_average().unwrap_or_else(|| "-".into())
    );
}

/// The 1-minute load average (Linux), to judge how noisy a measurement was.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

fn append_csv(
    path: &PathBuf,
    workers: usize,
    report: &BenchReport,
    sustainable: bool,
) -> std::io::Result<()> {
    let new = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    if new {
        writeln!(file, "{CSV_HEADER}")?;
    }
    let p = &report.processing;
    let w = &report.window;
    writeln!(
        file,
        "{workers},{},{:.0},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{},{},{},{},{},{}",
        report.offered,
        report.achieved,
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.max),
        ms(w.p50),
        ms(w.p99),
        ms(w.max),
        report
            .cpu_cores
            .map_or(String::new(), |c| format!("{c:.2}")),
        report
            .cpu_us_per_record
            .map_or(String::new(), |c| format!("{c:.2}")),
        report
            .peak_rss
            .map_or(String::new(), |b| (b >> 20).to_string()),
        report.held_max,
        load_average().unwrap_or_default(),
        sustainable
    )
}
