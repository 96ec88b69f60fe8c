//! `diffmill run`: run a graph file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::observe::Observed;
use super::signals::{exit_code, SignalGuard};
use super::status::{summary, SourceTime, StatusLine};
use super::CliError;
use crate::connectors::SinkError;
use crate::declare::DurationText;
use crate::event::time_text;
use crate::graph::{GraphSpec, Overrides, SinkSpec};
use crate::observe::{ListenAddress, RunInfo};
use crate::runtime::{Cluster, Progress, RunError, StartFrom, StopReason, DEFAULT_BASE_PORT};

/// Arguments of `diffmill run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The graph file, e.g. graphs/ad_funnel.toml.
    pub graph: PathBuf,
    /// Worker threads in this process (every process of a cluster runs as many).
    #[arg(short = 'w', long, default_value_t = 1, env = "DIFFMILL_WORKERS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: usize,
    /// Processes in the cluster; start each with the same arguments and its own -p.
    #[arg(short = 'n', long, default_value_t = 1, env = "DIFFMILL_PROCESSES",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub processes: usize,
    /// This process's index in the cluster, 0..processes.
    #[arg(short = 'p', long, default_value_t = 0, env = "DIFFMILL_PROCESS")]
    pub process: usize,
    /// The cluster's addresses, one `host:port` per line, process 0 first (without it:
    /// 127.0.0.1:2101, 127.0.0.1:2102, ...).
    #[arg(long, env = "DIFFMILL_HOSTFILE")]
    pub hostfile: Option<PathBuf>,
    /// Seconds to wait for every process of the cluster to connect.
    #[arg(long, default_value_t = 60.0, env = "DIFFMILL_CONNECT_TIMEOUT")]
    pub connect_timeout: f64,
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
    /// Serve /metrics, /health, /ready and the dashboard here, e.g. 127.0.0.1:9184 (a
    /// port alone listens on loopback; 0 picks a free port). Replaces the graph's
    /// `[observe] metrics_addr`. In a cluster give each process its own.
    #[arg(long, env = "DIFFMILL_METRICS_ADDR")]
    pub metrics_addr: Option<ListenAddress>,
    /// With a metrics address: keep serving this long after the run ends, e.g. 10m
    /// (Ctrl-C ends it sooner). Default: until Ctrl-C when stderr is a terminal, else 0.
    #[arg(long)]
    pub linger: Option<DurationText>,
    /// Replace the graph's state folder (or give it one, with a checkpoint every 30 s).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Start from the beginning of the input, whatever the graph's state folder holds
    /// (its checkpoints are deleted first). Sinks that skip what they hold (PostgreSQL,
    /// Kafka) still skip it; CSV files are written again.
    #[arg(long)]
    pub fresh: bool,
}

/// Runs the graph and prints the summary to stderr.
///
/// # Errors
/// [`CliError::Config`] for a graph that cannot be used, [`CliError::Runtime`] when the
/// run fails. A closed stdout pipe ends the run without error when stdout is its only
/// sink; otherwise the run goes on without the preview (see [`crate::connectors::OnClosed`]).
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let overrides = Overrides {
        input: args.input.clone(),
        output: args.output.clone(),
        bids: args.bids,
        fresh: args.fresh,
        state: args.state.clone(),
    };
    let cluster = cluster(args)?;
    let plan = GraphSpec::load(&args.graph)?.plan(&args.graph, &overrides)?;
    // Only process 0 writes the sinks: the others must not even open them.
    let funnel = match cluster.process() {
        0 => plan
            .funnel()
            .map_err(|e| CliError::Runtime(format!("cannot open a sink: {e}")))?,
        _ => plan.funnel_without_sinks(),
    };
    let observed = Observed::start(
        args.metrics_addr,
        args.linger,
        &plan.spec.observe,
        RunInfo {
            graph: plan.spec.name.clone(),
            process: cluster.process(),
            processes: cluster.processes(),
            workers: cluster.threads(),
        },
        &plan.settings,
    )?;
    let mut funnel = funnel.observe(observed.observer.clone());
    let start = funnel.prepare().map_err(|e| match e {
        RunError::State(e) => CliError::Config(format!("{}: {e}", args.graph.display())),
        e => CliError::Runtime(format!("cannot start: {e}")),
    })?;
    if let Some(state) = &plan.spec.state {
        if cluster.process() == 0 {
            eprintln!("{}", describe_start(start, &state.dir));
        }
    }
    let earlier = match start {
        StartFrom::Checkpoint { checkpoint, .. } => Some(checkpoint.accounting),
        _ => None,
    };
    let progress = funnel.progress();
    let stop = funnel.stop_handle();
    let _signals = SignalGuard::install(stop, cluster.process())
        .map_err(|e| CliError::Runtime(format!("cannot install signal handlers: {e}")))?;
    if cluster.processes() > 1 {
        eprintln!(
            "process {} of {}: workers {}..{} of {}, waiting for the cluster at {}",
            cluster.process(),
            cluster.processes(),
            cluster.first_worker(),
            cluster.first_worker() + cluster.threads(),
            cluster.workers(),
            cluster.addresses().join(", ")
        );
        super::signals::exit_on_lost_peer(cluster.process(), Arc::clone(&progress));
        watch_connection(
            &cluster,
            &progress,
            Duration::from_secs_f64(args.connect_timeout.max(0.0)),
        );
    }
    let started = Instant::now();
    let status = (args.status_every > 0.0).then(|| {
        let time = match plan.is_live() {
            true => SourceTime::Live,
            false => SourceTime::Replay,
        };
        StatusLine::start(
            Arc::clone(&progress),
            Duration::from_secs_f64(args.status_every),
            time,
        )
    });
    let bar = plan.file_progress.as_ref().and_then(|(total, read)| {
        std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| progress_bar(*total, read))
    });
    let outcome = funnel.cluster(cluster.clone()).run();
    drop(bar);
    drop(status);
    drop(_signals);
    let failed = outcome.is_err();
    // A run stopped by a signal exits; only a run that ended by itself lingers.
    let ended = matches!(&outcome, Ok(report) if report.stopped.is_none());
    let result = report(
        args,
        &plan,
        &cluster,
        &progress,
        started,
        earlier.as_ref(),
        outcome,
    );
    observed.finish(failed, ended);
    result
}

/// Prints what a finished run did, and maps its outcome to the command's result.
fn report(
    args: &RunArgs,
    plan: &crate::graph::Plan,
    cluster: &Cluster,
    progress: &Progress,
    started: Instant,
    earlier: Option<&crate::runtime::Accounting>,
    outcome: Result<crate::runtime::RunReport, RunError>,
) -> Result<(), CliError> {
    match outcome {
        Ok(report) => {
            if cluster.process() == 0 {
                if cluster.processes() > 1 {
                    eprintln!(
                        "the cluster's accounting ({} processes):",
                        cluster.processes()
                    );
                }
                eprintln!(
                    "{}",
                    summary(
                        &report.accounting,
                        earlier,
                        report.batches,
                        started.elapsed()
                    )
                );
                if let Some(line) = checkpoints_line(progress) {
                    eprintln!("{line}");
                }
            } else {
                eprintln!(
                    "process {} of {}: read {} records in {:.2}s; process 0 reports the \
                     cluster's accounting and writes the sinks",
                    cluster.process(),
                    cluster.processes(),
                    report.accounting.total().read,
                    started.elapsed().as_secs_f64()
                );
            }
            if let Some(reason) = report.stopped {
                return Err(stopped(&reason, progress));
            }
            if cluster.process() != 0 {
                return Ok(());
            }
            for sink in &plan.spec.sinks {
                match sink {
                    SinkSpec::Csv(csv) => eprintln!(
                        "output: {}/aggregates.csv (change log), dead_letters.csv, late.csv",
                        csv.path.display()
                    ),
                    SinkSpec::Parquet(parquet) => eprintln!(
                        "output: {}/aggregates/**/*.parquet ({} mode), dead_letters/, too_late/",
                        parquet.path.display(),
                        parquet.mode.name()
                    ),
                    _ => {}
                }
            }
            Ok(())
        }
        Err(RunError::Sink(SinkError::Closed(_))) => Ok(()),
        Err(RunError::State(e)) => Err(CliError::Config(format!("{}: {e}", args.graph.display()))),
        Err(RunError::Runtime(e)) if e.contains("networking") => Err(CliError::Runtime(format!(
            "process {} cannot join the cluster at {}: {e}",
            cluster.process(),
            cluster.addresses().join(", ")
        ))),
        Err(e) => Err(CliError::Runtime(e.to_string())),
    }
}

/// What the run's checkpoints were, in a line for the summary; `None` without any.
fn checkpoints_line(progress: &Progress) -> Option<String> {
    let note = progress.checkpoint.lock().ok()?.clone()?;
    let frontier = note.frontier.map(crate::event::utc).unwrap_or_default();
    Some(format!(
        "checkpoints: {} written; the last, at frontier {frontier}, {:.1} MB in {:.0} ms",
        note.count,
        note.bytes as f64 / 1e6,
        note.took.as_secs_f64() * 1e3
    ))
}

/// What a run with state starts from, in a sentence for stderr.
fn describe_start(start: &StartFrom, dir: &std::path::Path) -> String {
    match start {
        StartFrom::Beginning => format!(
            "state: no checkpoint in {}: starting from the beginning",
            dir.display()
        ),
        StartFrom::AfterComplete { path } => format!(
            "state: {} says the last run completed its input: starting from the beginning",
            path.display()
        ),
        StartFrom::Checkpoint {
            checkpoint,
            path,
            skipped,
        } => {
            let mut text = String::new();
            for (file, why) in skipped {
                text.push_str(&format!(
                    "state: warning: {} cannot be used ({why}); falling back to an older \
                     checkpoint\n",
                    file.display()
                ));
            }
            let frontier = checkpoint.frontier.unwrap_or_default();
            text.push_str(&format!(
                "state: resuming from {} at frontier {} ({frontier} ms): {} partitions, \
                 {} records read but not applied, batch {} next",
                path.display(),
                crate::event::utc(frontier),
                checkpoint.partitions.len(),
                checkpoint.pending_records(),
                checkpoint.next_seq,
            ));
            text
        }
    }
}

/// The cluster from the arguments.
fn cluster(args: &RunArgs) -> Result<Cluster, CliError> {
    let cluster = match &args.hostfile {
        Some(path) => Cluster::from_hostfile(path, args.workers, args.processes, args.process),
        None => Cluster::local(
            args.workers,
            args.processes,
            args.process,
            DEFAULT_BASE_PORT,
        ),
    };
    cluster.map_err(|e| CliError::Config(e.to_string()))
}

/// What a stopped run reports: why, and what the sinks hold.
fn stopped(reason: &StopReason, progress: &Progress) -> CliError {
    let signal = match reason {
        StopReason::Signal { signal, .. } => signal.as_str(),
        _ => "SIGINT",
    };
    let frontier = progress.frontier.load(std::sync::atomic::Ordering::Relaxed);
    let held = match frontier {
        0 => "the sinks received no batch".to_owned(),
        f => format!(
            "the sinks hold a consistent state up to frontier {} (not final)",
            time_text(f)
        ),
    };
    CliError::Stopped {
        code: exit_code(signal),
        message: format!("stopped: {reason}; {held}"),
    }
}

/// Exits with a clear message when the cluster has not formed within `timeout`: timely
/// itself retries connecting forever.
fn watch_connection(cluster: &Cluster, progress: &std::sync::Arc<Progress>, timeout: Duration) {
    let progress = std::sync::Arc::clone(progress);
    let (process, addresses) = (cluster.process(), cluster.addresses().to_vec());
    std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if progress
                .workers_started
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "error: process {process}: the cluster did not form within {:.0}s: not every \
             process of {} is up and reachable (check that each runs with its own -p, \
             the same -n and hostfile, and that the ports are open)",
            timeout.as_secs_f64(),
            addresses.join(", ")
        );
        std::process::exit(1);
    });
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
