//! The status line printed to stderr while a graph runs, and the summary at exit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connectors::utc;
use crate::event::StreamKind;
use crate::runtime::{Accounting, Progress};

/// Prints a status line every `every` until dropped.
pub struct StatusLine {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusLine {
    /// Starts printing the status of `progress` every `every`.
    pub fn start(progress: Arc<Progress>, every: Duration) -> StatusLine {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = (started, 0u64);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                let accounting = progress.accounting();
                let read = accounting.total().read;
                let rate = (read - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
                last = (Instant::now(), read);
                eprintln!(
                    "[{:>6.1}s] {} · {:.0} records/s · held {} · {}",
                    started.elapsed().as_secs_f64(),
                    per_stream(&accounting),
                    rate,
                    progress.held_records(),
                    frontier_text(&progress)
                );
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

fn per_stream(accounting: &Accounting) -> String {
    let total = accounting.total();
    let reads: Vec<String> = StreamKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), accounting.stream(*k).read))
        .collect();
    format!(
        "in: {} · late {} · too late {} · duplicates {} · dead-lettered {}",
        reads.join(", "),
        total.late,
        total.too_late,
        total.duplicate,
        total.dead_lettered
    )
}

fn frontier_text(progress: &Progress) -> String {
    let frontier = progress.frontier.load(Ordering::Relaxed);
    let batches = progress.batches.load(Ordering::Relaxed);
    match frontier {
        u64::MAX => format!("frontier complete · {batches} batches"),
        0 => format!("frontier not yet advanced · {batches} batches"),
        f => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let lag = now.saturating_sub(f) as f64 / 1000.0;
            format!(
                "frontier {} (lag behind wall clock {lag:.1}s) · {batches} batches",
                utc(f)
            )
        }
    }
}

/// The summary printed at exit: per-stream accounting and whether it balances.
pub fn summary(accounting: &Accounting, batches: u64, elapsed: Duration) -> String {
    let mut text = format!(
        "summary: {} records in {:.2}s ({:.0} records/s), {batches} batches\n",
        accounting.total().read,
        elapsed.as_secs_f64(),
        accounting.total().read as f64 / elapsed.as_secs_f64().max(1e-9)
    );
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
