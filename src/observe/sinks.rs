//! Sinks that watch the others: each sink timed, and a last sink that sees every batch
//! once every other sink has committed it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use prometheus::{Histogram, IntCounter};

use super::Shared;
use crate::connectors::{Batch, Resume, Sink, SinkError, SinkHealth};
use crate::declare::WindowStatus;
use crate::event::Millis;

/// A sink with its write time and failures measured; otherwise the sink itself.
pub struct TimedSink {
    sink: Box<dyn Sink>,
    write_time: Histogram,
    errors: IntCounter,
}

impl TimedSink {
    pub(super) fn new(sink: Box<dyn Sink>, shared: &Shared) -> TimedSink {
        let name = sink.name().to_owned();
        let metrics = &shared.metrics;
        TimedSink {
            write_time: metrics.sink_write.with_label_values(&[name.as_str()]),
            errors: metrics.sink_errors.with_label_values(&[name.as_str()]),
            sink,
        }
    }
}

impl Sink for TimedSink {
    fn name(&self) -> &str {
        self.sink.name()
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let started = Instant::now();
        let written = self.sink.write_batch(batch);
        self.write_time.observe(started.elapsed().as_secs_f64());
        if written.is_err() {
            self.errors.inc();
        }
        written
    }

    fn begin(&mut self, restored: Option<Millis>) -> Result<(), SinkError> {
        self.sink.begin(restored)
    }

    fn resume(&self) -> Option<Resume> {
        self.sink.resume()
    }

    fn health(&self) -> Option<Arc<SinkHealth>> {
        self.sink.health()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let closed = self.sink.close();
        if closed.is_err() {
            self.errors.inc();
        }
        closed
    }
}

/// The last sink of each aggregate of an observed run: the emitter writes a batch to the
/// sinks in order and stops at the first failure, so this one sees a batch only once every
/// other sink of its aggregate has committed it. It counts rows and feeds the dashboard's
/// view of its aggregate; the first aggregate's also counts batches and measures the
/// batch and window latencies (every aggregate's batch has the same frontier).
pub struct CommitSink {
    shared: Arc<Shared>,
    aggregate: usize,
}

impl CommitSink {
    pub(super) fn new(shared: Arc<Shared>, aggregate: usize) -> CommitSink {
        CommitSink { shared, aggregate }
    }
}

impl Sink for CommitSink {
    fn name(&self) -> &str {
        "observe"
    }

    fn begin(&mut self, restored: Option<Millis>) -> Result<(), SinkError> {
        if let (Some(frontier), Some(view)) = (restored, self.shared.views.get(self.aggregate)) {
            if let Ok(mut view) = view.lock() {
                view.resumed_at(frontier);
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let shared = &self.shared;
        let metrics = &shared.metrics;
        let now = Instant::now();
        let frontier = batch.frontier.unwrap_or(Millis::MAX);
        let first = self.aggregate == 0;
        let clock = match first {
            true => shared.input_clock.lock().ok(),
            false => None,
        };
        if let Some(mut clock) = clock {
            if let Some(advanced) = clock.reached(frontier) {
                let latency = now.duration_since(advanced).as_secs_f64();
                metrics.batch_latency.observe(latency);
                shared.latest.batch_latency.store(latency);
            }
            let closed: BTreeSet<Millis> = batch
                .rows
                .iter()
                .filter(|row| row.status == WindowStatus::Closed)
                .map(|row| row.window_end)
                .collect();
            for end in closed {
                // Closed at the end of input: the watermark never passed the end itself.
                if let Some(passed) = clock.reached(end).or_else(|| clock.reached(frontier)) {
                    let latency = now.duration_since(passed).as_secs_f64();
                    metrics.window_latency.observe(latency);
                    shared.latest.window_latency.store(latency);
                }
            }
            clock.forget_below(frontier);
        }
        for status in [
            WindowStatus::Open,
            WindowStatus::Closed,
            WindowStatus::Correction,
        ] {
            let rows = batch.rows.iter().filter(|r| r.status == status).count();
            if rows > 0 {
                metrics
                    .rows
                    .with_label_values(&[status.name()])
                    .inc_by(rows as u64);
            }
        }
        metrics
            .windows_finalized
            .inc_by(batch.finalized.len() as u64);
        if first {
            metrics.batches.inc();
            match batch.frontier {
                Some(f) => metrics.written_frontier.set(f as f64 / 1000.0),
                None => metrics.input_complete.set(1),
            }
        }
        if let Some(view) = shared.views.get(self.aggregate) {
            if let Ok(mut view) = view.lock() {
                view.apply(batch);
                view.count_measures(&metrics.measures, batch);
            }
            shared.changed.send_modify(|version| *version += 1);
        }
        Ok(())
    }
}
