//! `diffmill run`: run a graph file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::status::{summary, StatusLine};
use super::CliError;
use crate::connectors::SinkError;
use crate::graph::{GraphSpec, Overrides, SinkSpec};
use crate::runtime::RunError;

/// Arguments of `diffmill run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The graph file, e.g. graphs/ad_funnel.toml.
    pub graph: PathBuf,
    /// Worker threads in this process.
    #[arg(short = 'w', long, default_value_t = 1, env = "DIFFMILL_WORKERS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: usize,
    /// Replace the folder of a files source.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Replace the folder of every CSV sink.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Replace the number of bids of a generator source (e.g. for a quick try).
    #[arg(long)]
    pub bids: Option<u64>,
    /// Seconds between status lines on stderr (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub status_every: f64,
}

/// Runs the graph and prints the summary to stderr.
///
/// # Errors
/// [`CliError::Config`] for a graph that cannot be used, [`CliError::Runtime`] when the
/// run fails. A closed stdout pipe ends the run without error.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let overrides = Overrides {
        input: args.input.clone(),
        output: args.output.clone(),
        bids: args.bids,
    };
    let plan = GraphSpec::load(&args.graph)?.plan(&args.graph, &overrides)?;
    let funnel = plan
        .funnel()
        .map_err(|e| CliError::Runtime(format!("cannot open a sink: {e}")))?;
    let progress = funnel.progress();
    let started = Instant::now();
    let status = (args.status_every > 0.0)
        .then(|| StatusLine::start(progress, Duration::from_secs_f64(args.status_every)));
    let bar = plan.file_progress.as_ref().and_then(|(total, read)| {
        std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| progress_bar(*total, read))
    });
    let outcome = funnel.workers(args.workers).run();
    drop(bar);
    drop(status);
    match outcome {
        Ok(report) => {
            eprintln!(
                "{}",
                summary(&report.accounting, report.batches, started.elapsed())
            );
            for sink in &plan.spec.sinks {
                if let SinkSpec::Csv(csv) = sink {
                    eprintln!(
                        "output: {}/aggregates.csv (change log), dead_letters.csv, late.csv",
                        csv.path.display()
                    );
                }
            }
            Ok(())
        }
        Err(RunError::Sink(SinkError::Closed(_))) => Ok(()),
        Err(RunError::Settings(e)) => {
            Err(CliError::Config(format!("{}: {e}", args.graph.display())))
        }
        Err(e) => Err(CliError::Runtime(e.to_string())),
    }
}

/// A progress bar over the bytes of a file replay, drawn while stderr is a terminal.
struct ProgressBar {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn progress_bar(total: u64, read: &std::sync::Arc<std::sync::atomic::AtomicU64>) -> ProgressBar {
    use std::sync::atomic::Ordering;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (read, stopped) = (std::sync::Arc::clone(read), std::sync::Arc::clone(&stop));
    let thread = std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while !stopped.load(Ordering::Relaxed) {
            bar.set_position(read.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(200));
        }
        bar.finish_and_clear();
    });
    ProgressBar {
        stop,
        thread: Some(thread),
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
