//! The status line printed to stderr while a graph runs, and the summary at exit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::{span_text, utc, Millis, StreamKind};
use crate::runtime::{Accounting, Progress};

/// What the status line says about time: it depends on whether event time follows the
/// wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceTime {
    /// Recorded input (files, the generator, a Kafka read up to its end offsets): event
    /// time moves as fast as the input is read, so the line shows how far the frontier
    /// came in the last interval and how many times faster than real time that is.
    Replay,
    /// A live source (Kafka until stopped): event time is about the wall clock, so the
    /// line shows how far the frontier is behind it.
    Live,
}

/// Prints a status line every `every` until dropped.
pub struct StatusLine {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusLine {
    /// Starts printing the status of `progress` every `every`.
    pub fn start(progress: Arc<Progress>, every: Duration, time: SourceTime) -> StatusLine {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut status = Status::new(progress, time);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                eprintln!("{}", status.line());
            }
        });
        StatusLine {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the run stood at one status line.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    read: u64,
    frontier: Millis,
}

/// The status line's state: the previous sample, for rates.
struct Status {
    progress: Arc<Progress>,
    time: SourceTime,
    started: Instant,
    last: Sample,
}

impl Status {
    fn new(progress: Arc<Progress>, time: SourceTime) -> Status {
        let started = Instant::now();
        Status {
            progress,
            time,
            started,
            last: Sample {
                at: started,
                read: 0,
                frontier: 0,
            },
        }
    }

    /// One line: records read and their rate, what became of them, the records held in
    /// state, the frontier, batches.
    fn line(&mut self) -> String {
        let accounting = self.progress.accounting();
        let now = Sample {
            at: Instant::now(),
            read: accounting.total().read,
            frontier: self.progress.frontier.load(Ordering::Relaxed),
        };
        let seconds = now.at.duration_since(self.last.at).as_secs_f64().max(1e-9);
        let line = format!(
            "[{:>6.1}s] {} · {:.0} records/s · {} records held in state · {} · {}",
            self.started.elapsed().as_secs_f64(),
            per_stream(&accounting),
            now.read.saturating_sub(self.last.read) as f64 / seconds,
            self.progress.held_records(),
            self.frontier(now, seconds),
            match self.progress.batches.load(Ordering::Relaxed) {
                1 => "1 batch".to_owned(),
                n => format!("{n} batches"),
            },
        );
        self.last = now;
        line
    }

    /// The frontier of the sinks, and how it moves: against the last line on a replay,
    /// against the wall clock on a live source.
    fn frontier(&self, now: Sample, seconds: f64) -> String {
        let frontier = match now.frontier {
            u64::MAX => return "input complete".to_owned(),
            0 => return "no batch written yet".to_owned(),
            f => f,
        };
        match self.time {
            // How far it moved is known from the second line with a frontier on.
            SourceTime::Replay if self.last.frontier == 0 => format!("frontier {}", utc(frontier)),
            SourceTime::Replay => {
                let advanced = frontier.saturating_sub(self.last.frontier);
                let speed = advanced as f64 / 1000.0 / seconds;
                format!(
                    "frontier {} (+{} of event time in {seconds:.1}s, {}× real time)",
                    utc(frontier),
                    span_text(advanced),
                    match speed < 10.0 {
                        true => format!("{speed:.1}"),
                        false => format!("{speed:.0}"),
                    }
                )
            }
            SourceTime::Live => {
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as Millis);
                format!(
                    "frontier {} ({} behind the wall clock)",
                    utc(frontier),
                    span_text(wall.saturating_sub(frontier))
                )
            }
        }
    }
}

fn per_stream(accounting: &Accounting) -> String {
    let total = accounting.total();
    let reads: Vec<String> = StreamKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), accounting.stream(*k).read))
        .collect();
    format!(
        "read {} ({}) · late {} · too late {} · duplicates {} · dead-lettered {}",
        total.read,
        reads.join(", "),
        total.late,
        total.too_late,
        total.duplicate,
        total.dead_lettered
    )
}

/// The summary printed at exit: per-stream accounting and whether it balances.
///
/// `earlier` is what the runs before this one read, when it resumed from a checkpoint:
/// the table counts every record, the rate only this run's.
pub fn summary(
    accounting: &Accounting,
    earlier: Option<&Accounting>,
    batches: u64,
    elapsed: Duration,
) -> String {
    let total = accounting.total().read;
    let before = earlier.map_or(0, |e| e.total().read);
    let this_run = total.saturating_sub(before);
    let rate = this_run as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut text = match earlier {
        None => format!(
            "summary: {total} records in {:.2}s ({rate:.0} records/s), {batches} batches\n",
            elapsed.as_secs_f64()
        ),
        Some(_) => format!(
            "summary: {total} records, {before} of them read before the checkpoint this run \
             resumed from and {this_run} by this run in {:.2}s ({rate:.0} records/s), \
             {batches} batches\n",
            elapsed.as_secs_f64()
        ),
    };
    text.push_str("  stream       read    applied  duplicate  too_late  dead_lettered  late  attribution_only\n");
    for kind in StreamKind::ALL {
        let c = accounting.stream(kind);
        text.push_str(&format!(
            "  {:<10} {:>8} {:>10} {:>10} {:>9} {:>14} {:>5} {:>17}\n",
            kind.name(),
            c.read,
            c.applied,
            c.duplicate,
            c.too_late,
            c.dead_lettered,
            c.late,
            c.attribution_only
        ));
    }
    text.push_str(if accounting.balances() {
        "  every record is accounted for: read = applied + duplicate + too_late + dead_lettered"
    } else {
        "  WARNING: the accounting does not balance"
    });
    text
}
