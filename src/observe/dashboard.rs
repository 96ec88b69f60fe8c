//! The dashboard's funnel: totals of the recent windows, summed from the batches as they
//! are committed, with each window's status and the corrections as they land.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::connectors::Batch;
use crate::dataflow::{Attribution, Dim, Lateness, Measures, WindowStatus};
use crate::event::Millis;

/// Corrections listed on the page, newest first.
const CORRECTIONS_KEPT: usize = 40;

/// What the page shows of a window's life (design.md §6), as of the last batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowPhase {
    /// The frontier has not reached the window's end.
    Open,
    /// The frontier reached its end: its first complete value is known.
    Closed,
    /// Closed, and corrections have landed since.
    Correction,
    /// Its end plus the allowed lateness has passed: its value stands.
    Final,
}

/// One `(window, dims)` total on the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowView {
    /// The dims' values in `group_by` order (`unattributed` for each when the parent is
    /// missing).
    pub dims: Vec<String>,
    /// The six measures summed over every committed row, in [`Measures::NAMES`] order.
    pub totals: [i64; 6],
    /// The status of the last row that changed it.
    pub status: WindowStatus,
    /// The batch of its last correction, if any.
    pub corrected_in: Option<u64>,
}

/// One window on the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowView {
    /// Window start (ms, inclusive).
    pub start: Millis,
    /// Window end (ms, exclusive).
    pub end: Millis,
    /// Where it is in its life.
    pub phase: WindowPhase,
    /// The batch that last changed it.
    pub updated_in: u64,
    /// Its totals per dims.
    pub rows: Vec<RowView>,
}

/// A correction row as it landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CorrectionView {
    /// The batch that carried it.
    pub batch: u64,
    /// The window it corrects.
    pub window_start: Millis,
    /// The dims it changed.
    pub dims: Vec<String>,
    /// The change, in [`Measures::NAMES`] order.
    pub delta: [i64; 6],
}

/// Everything the page draws of the funnel, as sent to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunnelSnapshot {
    /// The `group_by` dims, in order.
    pub dims: Vec<&'static str>,
    /// The measures' names, in order.
    pub measures: [&'static str; 6],
    /// The last batch committed (`None` before the first).
    pub batch: Option<u64>,
    /// Its frontier (ms); `None` once the input is complete, or before the first batch.
    pub frontier: Option<Millis>,
    /// True once the last batch of a complete input is committed.
    pub complete: bool,
    /// The frontier of the checkpoint the run resumed from: windows starting before it
    /// had rows before the restart that the page never saw, so they are not shown.
    pub resumed_at: Option<Millis>,
    /// The recent windows, newest first.
    pub windows: Vec<WindowView>,
    /// The recent corrections, newest first.
    pub corrections: Vec<CorrectionView>,
}

struct Window {
    phase: WindowPhase,
    updated_in: u64,
    rows: BTreeMap<Attribution, Row>,
}

struct Row {
    totals: Measures,
    status: WindowStatus,
    corrected_in: Option<u64>,
}

/// The totals of the most recent windows, kept by summing every committed batch.
///
/// # Examples
/// ```
/// use diffmill::connectors::{AggregateRow, Batch};
/// use diffmill::dataflow::{Attribution, Dim, Lateness, Measures, WindowStatus};
/// use diffmill::observe::{FunnelView, WindowPhase};
///
/// let lateness = Lateness { window: 60_000, allowed_lateness: 60_000, bid_bound: 0, click_bound: 0 };
/// let mut view = FunnelView::new(vec![Dim::Campaign], lateness, 4);
/// let row = |delta, status| AggregateRow {
///     window_start: 0, window_end: 60_000, dims: Attribution::Unattributed, delta, status,
/// };
/// view.apply(&Batch { frontier: Some(60_000), rows: vec![row(Measures::click(), WindowStatus::Closed)], ..Batch::default() });
/// view.apply(&Batch { seq: 1, previous: 60_000, frontier: Some(120_000),
///     rows: vec![row(Measures::click().negated(), WindowStatus::Correction)], finalized: vec![0], ..Batch::default() });
/// let snapshot = view.snapshot();
/// assert_eq!(snapshot.windows[0].phase, WindowPhase::Final);
/// assert_eq!(snapshot.windows[0].rows[0].totals, [0; 6]); // the click moved out of unattributed
/// assert_eq!(snapshot.corrections[0].delta[2], -1);
/// ```
pub struct FunnelView {
    dims: Vec<Dim>,
    lateness: Lateness,
    keep: usize,
    windows: BTreeMap<Millis, Window>,
    /// Windows below this start were dropped from the view: their later rows are ignored
    /// (the page would show a correction's delta as a total).
    dropped_below: Millis,
    corrections: VecDeque<CorrectionView>,
    batch: Option<u64>,
    frontier: Option<Millis>,
    complete: bool,
    resumed_at: Option<Millis>,
}

impl FunnelView {
    /// An empty view of the `keep` most recent windows, grouped by `dims`.
    pub fn new(dims: Vec<Dim>, lateness: Lateness, keep: usize) -> FunnelView {
        FunnelView {
            dims,
            lateness,
            keep: keep.max(1),
            windows: BTreeMap::new(),
            dropped_below: 0,
            corrections: VecDeque::new(),
            batch: None,
            frontier: None,
            complete: false,
            resumed_at: None,
        }
    }

    /// The run resumes from a checkpoint at `frontier`: a window that starts before it
    /// may hold rows written before the restart, so its totals are unknown here and its
    /// rows are left out. A window starting at or after it has no earlier row (a record
    /// enters at or after its own time).
    pub fn resumed_at(&mut self, frontier: Millis) {
        self.resumed_at = Some(frontier);
        self.dropped_below = self.dropped_below.max(frontier);
    }

    /// Adds a committed batch: its rows to the totals, its statuses and finalized
    /// windows to the phases, its corrections to the list.
    pub fn apply(&mut self, batch: &Batch) {
        for row in &batch.rows {
            if row.window_start < self.dropped_below {
                continue;
            }
            let window = self.windows.entry(row.window_start).or_insert(Window {
                phase: WindowPhase::Open,
                updated_in: batch.seq,
                rows: BTreeMap::new(),
            });
            window.updated_in = batch.seq;
            window.phase = match (window.phase, row.status) {
                (WindowPhase::Final, _) => WindowPhase::Final,
                (_, WindowStatus::Open) => WindowPhase::Open,
                (_, WindowStatus::Closed) => WindowPhase::Closed,
                (_, WindowStatus::Correction) => WindowPhase::Correction,
            };
            let total = window.rows.entry(row.dims).or_insert(Row {
                totals: Measures::default(),
                status: row.status,
                corrected_in: None,
            });
            differential_dataflow::difference::Semigroup::plus_equals(
                &mut total.totals,
                &row.delta,
            );
            total.status = row.status;
            if row.status == WindowStatus::Correction {
                total.corrected_in = Some(batch.seq);
                self.corrections.push_front(CorrectionView {
                    batch: batch.seq,
                    window_start: row.window_start,
                    dims: self.dim_values(&row.dims),
                    delta: row.delta.values(),
                });
            }
        }
        self.corrections.truncate(CORRECTIONS_KEPT);
        for start in &batch.finalized {
            if let Some(window) = self.windows.get_mut(start) {
                window.phase = WindowPhase::Final;
                window.updated_in = batch.seq;
            }
        }
        while self.windows.len() > self.keep {
            if let Some((start, _)) = self.windows.pop_first() {
                self.dropped_below = start + 1;
            }
        }
        self.batch = Some(batch.seq);
        self.frontier = batch.frontier;
        self.complete = batch.frontier.is_none();
    }

    /// The view as the page draws it.
    pub fn snapshot(&self) -> FunnelSnapshot {
        FunnelSnapshot {
            dims: self.dims.iter().map(|d| d.name()).collect(),
            measures: Measures::NAMES,
            batch: self.batch,
            frontier: self.frontier,
            complete: self.complete,
            resumed_at: self.resumed_at,
            windows: self
                .windows
                .iter()
                .rev()
                .map(|(start, window)| WindowView {
                    start: *start,
                    end: self.lateness.window_end(*start),
                    phase: window.phase,
                    updated_in: window.updated_in,
                    rows: window
                        .rows
                        .iter()
                        .map(|(dims, row)| RowView {
                            dims: self.dim_values(dims),
                            totals: row.totals.values(),
                            status: row.status,
                            corrected_in: row.corrected_in,
                        })
                        .collect(),
                })
                .collect(),
            corrections: self.corrections.iter().cloned().collect(),
        }
    }

    fn dim_values(&self, dims: &Attribution) -> Vec<String> {
        self.dims.iter().map(|dim| dims.value(*dim)).collect()
    }
}
