//! Latency bookkeeping: records handed to the dataflow, batches written, histograms.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;

use super::clock::now_us;
use crate::connectors::{Batch, Sink, SinkError};
use crate::event::Millis;

/// Highest latency a histogram resolves, µs (one hour); higher values count as this.
const HIGHEST_US: u64 = 3_600_000_000;

/// Percentiles of one latency histogram, in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl LatencySummary {
    /// The percentiles of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        LatencySummary {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// The times that frame a benchmark run, in wall-clock (= event-time) ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Scheduled arrival of the first record.
    pub start: Millis,
    /// Records scheduled before this are not measured (warm-up).
    pub measure_from: Millis,
    /// Records scheduled at or after this are not measured (cool-down: the last batch,
    /// when the input ends, also releases all state, which is not steady-state work).
    pub measure_until: Millis,
    /// Records scheduled after this are not sent.
    pub deadline: Millis,
    /// Window length of the funnel.
    pub window: Millis,
    /// Max disorder of the funnel: a window ending at `e` could first be complete at
    /// `e + max_disorder`.
    pub max_disorder: Millis,
}

impl Frame {
    /// The middle of the measured span: it splits the processing latencies into two
    /// halves, to see whether latency grows over the run.
    fn midpoint(&self) -> Millis {
        self.measure_from + (self.measure_until.saturating_sub(self.measure_from)) / 2
    }
}

/// What the tracker measured.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Records handed to the dataflow (events and dead letters).
    pub handed: u64,
    /// Wall-clock ms when the last record was handed over.
    pub last_handed: Millis,
    /// Processing latency of measured records, µs: scheduled arrival to the write of the
    /// first batch whose frontier is beyond the record's entry time.
    pub processing: Histogram<u64>,
    /// The same, split into the first and second half of the measured span (by
    /// scheduled arrival).
    pub halves: [Histogram<u64>; 2],
    /// Window latency, µs: window end plus max disorder to the write of the batch that
    /// closes the window.
    pub window: Histogram<u64>,
    /// Batches written.
    pub batches: u64,
}

/// Shared by the paced partitions (which register what they hand over) and the bench
/// sink (which settles registered records when a batch carrying them is written).
pub struct Tracker {
    frame: Frame,
    state: Mutex<State>,
}

struct State {
    /// Scheduled arrival times of admitted records not yet in a written batch, by entry
    /// time.
    pending: BTreeMap<Millis, Vec<Millis>>,
    measured: Measured,
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low).
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

impl Tracker {
    /// A tracker for a run framed by `frame`.
    pub fn new(frame: Frame) -> Arc<Tracker> {
        Arc::new(Tracker {
            frame,
            state: Mutex::new(State {
                pending: BTreeMap::new(),
                measured: Measured {
                    handed: 0,
                    last_handed: frame.start,
                    processing: histogram(),
                    halves: [histogram(), histogram()],
                    window: histogram(),
                    batches: 0,
                },
            }),
        })
    }

    /// The run's frame.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere poisons the lock; the counts stay usable for a report.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A partition handed `count` records to the dataflow at `now` (ms); `entries` holds
    /// `(entry time, scheduled arrival)` of the admitted ones, and is emptied.
    pub fn handed(&self, entries: &mut Vec<(Millis, Millis)>, count: u64, now: Millis) {
        if count == 0 && entries.is_empty() {
            return;
        }
        entries.sort_unstable();
        let mut state = self.lock();
        state.measured.handed += count;
        state.measured.last_handed = state.measured.last_handed.max(now);
        let mut rest = &entries[..];
        while let Some(&(entry, _)) = rest.first() {
            let run = rest.partition_point(|&(e, _)| e == entry);
            state
                .pending
                .entry(entry)
                .or_default()
                .extend(rest[..run].iter().map(|&(_, scheduled)| scheduled));
            rest = &rest[run..];
        }
        entries.clear();
    }

    /// A batch that moved the frontier from `previous` to `frontier` (`None`: input
    /// complete) was written at `at_us` (µs since the epoch).
    pub fn written(&self, previous: Millis, frontier: Option<Millis>, at_us: u64) {
        let frame = self.frame;
        let mut guard = self.lock();
        let state = &mut *guard;
        state.measured.batches += 1;
        let settled = match frontier {
            Some(f) => {
                let rest = state.pending.split_off(&f);
                std::mem::replace(&mut state.pending, rest)
            }
            None => std::mem::take(&mut state.pending),
        };
        let midpoint = frame.midpoint();
        let measured = &mut state.measured;
        for scheduled in settled.into_values() {
            let mut run: Option<(Millis, u64)> = None;
            for s in scheduled.into_iter().chain(std::iter::once(Millis::MAX)) {
                match run {
                    Some((value, n)) if value == s => run = Some((value, n + 1)),
                    _ => {
                        if let Some((value, n)) = run {
                            if (frame.measure_from..frame.measure_until).contains(&value) {
                                let latency = at_us.saturating_sub(value * 1000).min(HIGHEST_US);
                                measured.processing.saturating_record_n(latency, n);
                                measured.halves[usize::from(value >= midpoint)]
                                    .saturating_record_n(latency, n);
                            }
                        }
                        run = Some((s, 1));
                    }
                }
            }
        }
        if let Some(f) = frontier {
            // Windows that close in this batch: ends in (previous, f], whole windows
            // after the warm-up that could be complete before the cool-down.
            let w = frame.window;
            let first = previous.max(frame.measure_from) / w + 1;
            let mut end = first * w;
            while end <= f {
                let ready = end + frame.max_disorder;
                if end - w >= frame.measure_from && ready <= frame.measure_until {
                    let latency = at_us.saturating_sub(ready * 1000).min(HIGHEST_US);
                    measured.window.saturating_record(latency);
                }
                end += w;
            }
        }
    }

    /// What was measured so far.
    pub fn measured(&self) -> Measured {
        self.lock().measured.clone()
    }
}

/// A sink that only tells the [`Tracker`] when each batch was written.
pub struct BenchSink {
    tracker: Arc<Tracker>,
}

impl BenchSink {
    /// A sink reporting to `tracker`.
    pub fn new(tracker: Arc<Tracker>) -> BenchSink {
        BenchSink { tracker }
    }
}

impl Sink for BenchSink {
    fn name(&self) -> &str {
        "bench"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.tracker
            .written(batch.previous, batch.frontier, now_us());
        Ok(())
    }
}
