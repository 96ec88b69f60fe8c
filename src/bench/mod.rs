//! The open-loop benchmark harness behind `diffmill bench`.
//!
//! The generator runs in the process at a fixed offered rate, with event time equal to
//! wall-clock time: each record is handed to the dataflow when the clock reaches its
//! scheduled arrival ([`PacedSource`]), whether or not the dataflow kept up, so latency
//! is measured from the schedule (no coordinated omission). A [`BenchSink`] notes when
//! each batch is written; the [`Tracker`] turns that into HdrHistograms of
//!
//! - *processing latency*: a record's scheduled arrival to the write of the first batch
//!   whose frontier is beyond its entry time (the batch that carries its effect). It
//!   includes the wait for the watermark, which trails the newest record by the max
//!   disorder;
//! - *window latency*: a window's end plus the max disorder (the first moment it could be
//!   complete) to the write of the batch that closes it.
//!
//! [`run_bench`] runs one offered rate and also reports the achieved rate, CPU use, peak
//! RSS and the records held in state; [`Verdict`] judges whether the rate is sustainable.

mod clock;
mod paced;
mod resources;
#[cfg(test)]
mod tests;
mod tracker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use clock::{now_ms, now_us};
pub use paced::PacedSource;
pub use resources::{cpu_seconds, peak_rss_bytes, reset_peak_rss};
pub use tracker::{BenchSink, Frame, LatencySummary, Measured, Tracker};

use crate::connectors::generator::{Generator, GeneratorConfig};
use crate::declare::{FunnelSettings, SettingsError};
use crate::event::Millis;
use crate::runtime::checkpoint::StateConfig;
use crate::runtime::{CheckpointNote, Funnel, RunError};

/// One benchmark run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Offered rate: records (of all streams) per second of wall clock.
    pub rate: u64,
    /// How long records are sent.
    pub duration: Duration,
    /// The first part of the run, not measured.
    pub warmup: Duration,
    /// The last part of the run, not measured: records are still sent, but the batch
    /// that ends the input (and releases all state) does not count.
    pub cooldown: Duration,
    /// Worker threads.
    pub workers: usize,
    /// The funnel's settings.
    pub settings: FunnelSettings,
    /// The generator's settings; `bids`, `rate` and `start_ms` are set by the run.
    pub generator: GeneratorConfig,
    /// Checkpoints written during the run (into a fresh temporary folder) every this
    /// long; `None`: none.
    pub checkpoint_interval: Option<Duration>,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Offered rate asked for, records/s.
    pub offered: u64,
    /// Bids per second of event time given to the generator for that rate.
    pub bid_rate: u64,
    /// Records handed to the dataflow.
    pub handed: u64,
    /// Records handed over per second, from the start until the last one was handed
    /// over (or the deadline, if later).
    pub achieved: f64,
    /// Processing latency.
    pub processing: LatencySummary,
    /// Processing latency in the first and second half of the measured span.
    pub halves: [LatencySummary; 2],
    /// Window latency.
    pub window: LatencySummary,
    /// CPU time over wall time: cores in use on average.
    pub cpu_cores: Option<f64>,
    /// CPU time per record handed over, µs: the cost of a record, less sensitive to
    /// other load on the machine than latency is.
    pub cpu_us_per_record: Option<f64>,
    /// Peak RSS during the run, bytes.
    pub peak_rss: Option<u64>,
    /// Most records held in state (join arrangements and dedup ids) seen by a sampler.
    pub held_max: i64,
    /// Batches written.
    pub batches: u64,
    /// Wall time of the whole run, from the start of the dataflow to its end.
    pub wall: Duration,
    /// The last checkpoint of a run with checkpoints (its size and write time).
    pub checkpoint: Option<CheckpointNote>,
}

/// When an offered rate counts as sustainable.
#[derive(Clone, Copy, Debug)]
pub struct Verdict {
    /// The p99 processing latency must be at most this.
    pub p99_bound: Duration,
    /// The achieved rate must be at least this fraction of the offered one.
    pub min_achieved: f64,
}

impl Default for Verdict {
    /// p99 within 1 s, 95 % of the offered rate achieved.
    fn default() -> Self {
        Verdict {
            p99_bound: Duration::from_secs(1),
            min_achieved: 0.95,
        }
    }
}

impl Verdict {
    /// Why `report`'s rate is not sustainable, or `None` if it is: the p99 is bounded,
    /// the second half's p99 is not above 1.5 × the first half's + 20 ms (it does not
    /// grow over the run), and the offered rate was achieved.
    pub fn judge(&self, report: &BenchReport) -> Option<String> {
        let bound = self.p99_bound.as_micros() as u64;
        let [first, second] = report.halves;
        if report.processing.count == 0 {
            Some("nothing measured".into())
        } else if report.achieved < self.min_achieved * report.offered as f64 {
            Some(format!(
                "achieved {:.0}/s of {}/s offered",
                report.achieved, report.offered
            ))
        } else if report.processing.p99 > bound {
            Some(format!(
                "p99 {} ms above {} ms",
                report.processing.p99 / 1000,
                bound / 1000
            ))
        } else if second.p99 > first.p99 * 3 / 2 + 20_000 {
            Some(format!(
                "p99 grew from {} ms to {} ms",
                first.p99 / 1000,
                second.p99 / 1000
            ))
        } else {
            None
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad settings.
    #[error("{0}")]
    Settings(#[from] SettingsError),
    /// The run failed.
    #[error("{0}")]
    Run(#[from] RunError),
    /// An argument that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Records the generator makes per bid with `config` and `settings` (children,
/// duplicates and malformed copies included), from a sample of 20,000 bids.
pub fn records_per_bid(
    config: &GeneratorConfig,
    settings: &FunnelSettings,
) -> Result<f64, SettingsError> {
    const SAMPLE: u64 = 20_000;
    let sample = GeneratorConfig {
        bids: SAMPLE,
        partitions: 1,
        ..config.clone()
    };
    let generator = Generator::new(sample, settings)?;
    Ok(generator.partition(0).count() as f64 / SAMPLE as f64)
}

/// Runs the funnel once at `config.rate` and measures it.
///
/// # Errors
/// A [`BenchError`] when the settings do not work or the run fails.
pub fn run_bench(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    if config.rate == 0 || config.duration <= config.warmup + config.cooldown {
        return Err(BenchError::Invalid(
            "the rate must be above 0 and the duration longer than warm-up and cool-down".into(),
        ));
    }
    let settings = config.settings.clone();
    let per_bid = records_per_bid(&config.generator, &settings)?;
    let bid_rate = ((config.rate as f64 / per_bid).round() as u64).max(1);
    // A little lead, so that building the dataflow does not eat the first records.
    let start = now_ms() + 200;
    let duration_ms = config.duration.as_millis() as Millis;
    let generator = Generator::new(
        GeneratorConfig {
            start_ms: start,
            rate: bid_rate,
            bids: (bid_rate * duration_ms / 1000).max(1),
            ..config.generator.clone()
        },
        &settings,
    )?;
    let frame = Frame {
        start,
        measure_from: start + config.warmup.as_millis() as Millis,
        measure_until: start + duration_ms - config.cooldown.as_millis() as Millis,
        deadline: start + duration_ms,
        window: settings.aggregates[0].window.length,
        max_disorder: settings.max_disorder,
    };
    let tracker = Tracker::new(frame);
    let funnel = Funnel::new(settings.clone())
        .source(PacedSource::new(
            generator,
            settings,
            frame.deadline,
            Arc::clone(&tracker),
        ))
        .sink(BenchSink::new(Arc::clone(&tracker)))
        .workers(config.workers.max(1));
    let state = match config.checkpoint_interval {
        Some(interval) => Some((state_folder()?, interval)),
        None => None,
    };
    let funnel = match &state {
        Some((dir, interval)) => funnel.state(StateConfig::new(dir.clone(), *interval)),
        None => funnel,
    };
    let progress = funnel.progress();
    let checkpoints = funnel.progress();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut held_max = 0i64;
            while sampling.load(Ordering::Relaxed) {
                held_max = held_max.max(progress.held_records());
                std::thread::sleep(Duration::from_millis(50));
            }
            held_max
        })
    };
    reset_peak_rss();
    let cpu_before = cpu_seconds();
    let began = Instant::now();
    let outcome = funnel.run();
    let wall = began.elapsed();
    let cpu_after = cpu_seconds();
    sampling.store(false, Ordering::Relaxed);
    let held_max = sampler.join().unwrap_or(0);
    if let Some((dir, _)) = &state {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome?;
    let checkpoint = checkpoints.checkpoint.lock().ok().and_then(|c| c.clone());
    let measured = tracker.measured();
    let span_ms = measured
        .last_handed
        .max(frame.deadline)
        .saturating_sub(frame.start)
        .max(1);
    Ok(BenchReport {
        offered: config.rate,
        bid_rate,
        handed: measured.handed,
        achieved: measured.handed as f64 * 1000.0 / span_ms as f64,
        processing: LatencySummary::of(&measured.processing),
        halves: [
            LatencySummary::of(&measured.halves[0]),
            LatencySummary::of(&measured.halves[1]),
        ],
        window: LatencySummary::of(&measured.window),
        cpu_cores: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| (after - before) / wall.as_secs_f64()),
        cpu_us_per_record: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| (after - before) * 1e6 / measured.handed.max(1) as f64),
        peak_rss: peak_rss_bytes(),
        held_max,
        batches: measured.batches,
        wall,
        checkpoint,
    })
}

/// A new, empty folder for a bench run's checkpoints, under the system's temporary
/// folder.
fn state_folder() -> Result<std::path::PathBuf, BenchError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("diffmill-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::Invalid(format!("a state folder {}: {e}", dir.display())))?;
    Ok(dir)
}
