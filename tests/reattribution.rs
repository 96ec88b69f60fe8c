//! A late bid moves its impression out of *unattributed* in a correction batch.
//!
//! Settings: `W = 1000`, `L = 3000`, bid bound 5000, click bound 0, no disorder, grouped
//! by campaign. Worked out by hand from docs/semantics.md:
//!
//! - partition 0: impression 1 of bid 7, ts 3500, cost 50 (enters at 3500); bid 8,
//!   campaign 8, ts 6500 (enters at 6500).
//! - partition 1: bid 9, campaign 9, ts 6000 (enters at 6000, watermark 6000); then bid
//!   7, campaign 1, ts 100: its watermark 6000 is below its release
//!   `final_at(100 + 5000) = 6000 + 3000 = 9000`, so it enters at 6000, late, and
//!   attribution-only (`final_at(100) = 4000 ≤ 6000`).
//! - Partition 1 holds bid 7 back (it polls `Idle`) until the sink has seen a batch whose
//!   frontier reached 4000, the end of the impression's window. The frontier only stops
//!   at watermark values, `min(w0, w1)` with `w0 ∈ {0, 3500, 6500}` and `w1 ∈ {0, 6000}`
//!   until bid 7 is read, so that batch ends exactly at 6000.
//! - Window 3000 (end 4000, final at 7000) holds the impression: unattributed over
//!   [3500, 6000), under campaign 1 from 6000. The batch ending at 6000 closes the window
//!   with `+1` impression and `+50` spend unattributed (status closed). The batch from
//!   6000 carries the move as a correction: −1 impression and −50 spend unattributed, +1
//!   and +50 under campaign 1, and nothing else for window 3000.
//! - Final values: window 3000 campaign 1: 1 impression, 50 spend; window 6000: one bid
//!   under campaign 8 and one under campaign 9. Bid 7's own count (window 0, final at 4000)
//!   never shows.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diffmill::connectors::{
    owner, Arrival, Batch, MemorySink, Partition, Poll, Sink, SinkError, Source,
};
use diffmill::declare::{Attribution, Measures, WindowStatus};
use diffmill::event::StreamKind;
use diffmill::runtime::{Funnel, RunReport, StreamCounts};

use support::oracle::Aggregates;
use support::{
    add_rows, bid, campaign, campaign_row, impression, measures, partitions, settings, values,
};

/// The arrivals: partition 1's last record is bid 7, the one held back.
fn input() -> Vec<Vec<Arrival>> {
    partitions(vec![
        vec![impression(1, 7, 3_500, 50), bid(8, 6_500, 8)],
        vec![bid(9, 6_000, 9), bid(7, 100, 1)],
    ])
}

/// A source whose last partition holds its last record back until `gate` opens.
struct Gated {
    partitions: Vec<Vec<Arrival>>,
    gate: Arc<AtomicBool>,
}

struct GatedPartition {
    name: String,
    arrivals: Vec<Arrival>,
    /// How many records it gives before the gate opens.
    before_gate: usize,
    next: usize,
    gate: Arc<AtomicBool>,
    /// When the partition was opened: the gate also opens after [`GATE_TIMEOUT`], so that a
    /// runtime that never emits the awaited batch fails the test instead of hanging it.
    opened: Instant,
}

const GATE_TIMEOUT: Duration = Duration::from_secs(20);

impl Source for Gated {
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        Ok(self
            .partitions
            .iter()
            .enumerate()
            .filter(|(p, _)| owner(*p, workers) == worker)
            .map(|(p, arrivals)| {
                let last = p + 1 == self.partitions.len();
                Box::new(GatedPartition {
                    name: format!("memory/{p}"),
                    arrivals: arrivals.clone(),
                    before_gate: arrivals.len() - usize::from(last),
                    next: 0,
                    gate: self.gate.clone(),
                    opened: Instant::now(),
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

impl Partition for GatedPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        let until = if self.gate.load(Ordering::SeqCst) || self.opened.elapsed() > GATE_TIMEOUT {
            self.arrivals.len()
        } else {
            self.before_gate
        };
        let take = until.saturating_sub(self.next).min(max);
        out.extend_from_slice(&self.arrivals[self.next..self.next + take]);
        self.next += take;
        Ok(if self.next == self.arrivals.len() {
            Poll::Done
        } else if self.next < until {
            Poll::Ready
        } else {
            Poll::Idle
        })
    }
}

/// A memory sink that opens the gate once a batch's frontier reaches the window end.
struct Opener {
    sink: MemorySink,
    gate: Arc<AtomicBool>,
}

impl Sink for Opener {
    fn name(&self) -> &str {
        "opener"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.sink.write_batch(batch)?;
        if batch.frontier.is_none_or(|f| f >= 4_000) {
            self.gate.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn run(workers: usize) -> (Vec<Batch>, RunReport) {
    let gate = Arc::new(AtomicBool::new(false));
    let sink = MemorySink::new();
    let report = Funnel::new(settings(1_000, 3_000, 5_000, 0, 0))
        .source(Gated {
            partitions: input(),
            gate: gate.clone(),
        })
        .sink(Opener {
            sink: sink.clone(),
            gate,
        })
        .workers(workers)
        .run()
        .expect("the run succeeds");
    (sink.batches(), report)
}

/// The rows of window 3000 in `batch`, as `(dims, delta, status)`.
fn window_3000(batch: &Batch) -> Vec<(Attribution, Measures, WindowStatus)> {
    batch
        .rows
        .iter()
        .filter(|row| row.window_start == 3_000)
        .map(|row| (row.dims, row.delta, row.status))
        .collect()
}

fn check(workers: usize) {
    let (batches, report) = run(workers);
    let context = format!("{workers} workers: {batches:#?}");

    // The batch ending at 6000 closes window 3000 with the impression unattributed, and
    // no earlier batch touches it.
    let closing = batches
        .iter()
        .position(|b| b.frontier == Some(6_000))
        .unwrap_or_else(|| panic!("no batch ends at 6000; {context}"));
    for batch in &batches[..closing] {
        assert_eq!(window_3000(batch), vec![], "{context}");
    }
    assert_eq!(
        window_3000(&batches[closing]),
        vec![(
            Attribution::Unattributed,
            measures(0, 1, 0, 0, 50, 0),
            WindowStatus::Closed
        )],
        "{context}"
    );

    // The next batch carries exactly the move, as a correction; nothing follows for the
    // window, and it is announced final once.
    let moving = &batches[closing + 1];
    assert_eq!(moving.previous, 6_000);
    assert_eq!(
        window_3000(moving),
        vec![
            (
                Attribution::Unattributed,
                measures(0, -1, 0, 0, -50, 0),
                WindowStatus::Correction
            ),
            (
                campaign(1),
                measures(0, 1, 0, 0, 50, 0),
                WindowStatus::Correction
            ),
        ],
        "{context}"
    );
    for batch in &batches[closing + 2..] {
        assert_eq!(window_3000(batch), vec![], "{context}");
    }

    // The final values are as worked out above.
    let mut totals = Aggregates::new();
    let settings = settings(1_000, 3_000, 5_000, 0, 0);
    for batch in &batches {
        add_rows(&mut totals, &settings, 0, &batch.rows);
    }
    assert_eq!(totals, final_values(), "{context}");
    let mut finalized: Vec<_> = batches.iter().flat_map(|b| b.finalized.clone()).collect();
    finalized.sort();
    assert_eq!(finalized, vec![3_000, 6_000], "{context}");

    let bids = report.accounting.stream(StreamKind::Bid);
    assert_eq!(
        *bids,
        StreamCounts {
            read: 3,
            applied: 3,
            late: 1,
            attribution_only: 1,
            ..StreamCounts::default()
        }
    );
    let impressions = report.accounting.stream(StreamKind::Impression);
    assert_eq!((impressions.read, impressions.applied), (1, 1));
    assert!(report.accounting.balances());
}

#[test]
fn a_late_bid_moves_its_impression_in_a_correction_batch() {
    for workers in [1, 2, 4] {
        check(workers);
    }
}

/// The oracle agrees with the values worked out by hand above.
#[test]
fn the_oracle_agrees_with_the_hand_computation() {
    let oracle = support::oracle::Oracle::new(&settings(1_000, 3_000, 5_000, 0, 0), &input());
    let impression = values(measures(0, 1, 0, 0, 50, 0));
    for frontier in [4_000, 6_000] {
        let prefix = oracle.expected_prefix(Some(frontier));
        assert_eq!(prefix.get(&campaign_row(3_000, None)), Some(&impression));
        assert_eq!(prefix.get(&campaign_row(3_000, Some(1))), None);
    }
    let prefix = oracle.expected_prefix(Some(6_001));
    assert_eq!(prefix.get(&campaign_row(3_000, None)), None);
    assert_eq!(prefix.get(&campaign_row(3_000, Some(1))), Some(&impression));
    assert_eq!(oracle.final_values(), final_values());
}

/// The final values worked out by hand: the impression under its late bid's campaign,
/// one bid each for campaigns 8 and 9.
fn final_values() -> Aggregates {
    [
        (campaign_row(3_000, Some(1)), measures(0, 1, 0, 0, 50, 0)),
        (campaign_row(6_000, Some(8)), measures(1, 0, 0, 0, 0, 0)),
        (campaign_row(6_000, Some(9)), measures(1, 0, 0, 0, 0, 0)),
    ]
    .into_iter()
    .map(|(key, m)| (key, values(m)))
    .collect()
}
