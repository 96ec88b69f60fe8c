//! The dashboard's funnel: per aggregate, totals of its declared measures over the recent
//! windows, summed from the batches as they are committed, with each window's status and
//! the corrections as they land.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::connectors::Batch;
use crate::declare::{
    Aggregate, Attribution, FieldType, KeyLayout, MeasureKind, Measures, Schema, Window as Windows,
    WindowStatus,
};
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
    /// The declared measures summed over every committed row, in declaration order.
    pub totals: Vec<i64>,
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
    /// The change, in the measures' declaration order.
    pub delta: Vec<i64>,
}

/// Everything the page draws of one aggregate, as sent to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunnelSnapshot {
    /// The aggregate's name.
    pub aggregate: String,
    /// The aggregate's `group_by` dims, in order.
    pub dims: Vec<String>,
    /// The aggregate's declared measures' names, in order.
    pub measures: Vec<String>,
    /// For each measure, whether it sums money (integer micros, shown as amounts).
    pub money: Vec<bool>,
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
/// use diffmill::declare::{Attribution, FunnelSpec, Declaration, DurationText, Measures, WindowStatus};
/// use diffmill::observe::{FunnelView, WindowPhase};
///
/// let funnel = FunnelSpec { window: Some(DurationText::from_millis(60_000)),
///     allowed_lateness: DurationText::from_millis(60_000), ..FunnelSpec::default() };
/// let settings = Declaration::default().funnel(funnel).resolve().unwrap();
/// let mut view = FunnelView::new(&settings.aggregates[0], &settings.schema, 4);
/// let row = |delta, status| AggregateRow {
///     window_start: 0, window_end: 60_000, dims: Attribution::Unattributed, delta, status,
/// };
/// view.apply(&Batch { frontier: Some(60_000), rows: vec![row(Measures::click(), WindowStatus::Closed)], ..Batch::default() });
/// view.apply(&Batch { seq: 1, previous: 60_000, frontier: Some(120_000),
///     rows: vec![row(Measures::click().negated(), WindowStatus::Correction)], finalized: vec![0], ..Batch::default() });
/// let snapshot = view.snapshot();
/// assert_eq!(snapshot.windows[0].phase, WindowPhase::Final);
/// assert_eq!(snapshot.measures[2], "clicks");
/// assert_eq!(snapshot.windows[0].rows[0].totals, [0; 6]); // the click moved out of unattributed
/// assert_eq!(snapshot.corrections[0].delta[2], -1);
/// ```
pub struct FunnelView {
    aggregate: String,
    dims: KeyLayout,
    measures: Vec<String>,
    money: Vec<bool>,
    window: Windows,
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
    /// An empty view of the `keep` most recent windows of `aggregate` (over the streams
    /// `schema` declares).
    pub fn new(aggregate: &Aggregate, schema: &Schema, keep: usize) -> FunnelView {
        let money = aggregate
            .measures
            .iter()
            .map(|m| match m.kind {
                MeasureKind::Sum { field } => {
                    schema.stream(m.stream).fields()[field].ty == FieldType::Money
                }
                MeasureKind::Count | MeasureKind::CountDistinct { .. } => false,
            })
            .collect();
        FunnelView {
            aggregate: aggregate.name.clone(),
            dims: aggregate.dims.clone(),
            measures: aggregate.measures.iter().map(|m| m.name.clone()).collect(),
            money,
            window: aggregate.window,
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
                    delta: row.delta.values(self.measures.len()).to_vec(),
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

    /// Adds the rows of `batch` to the aggregate's measure totals in `gauges` (labelled
    /// by aggregate and measure).
    pub fn count_measures(&self, gauges: &prometheus::IntGaugeVec, batch: &Batch) {
        let mut sums = vec![0i64; self.measures.len()];
        for row in &batch.rows {
            for (sum, value) in sums.iter_mut().zip(row.delta.values(self.measures.len())) {
                *sum = sum.wrapping_add(*value);
            }
        }
        for (name, sum) in self.measures.iter().zip(sums) {
            gauges
                .with_label_values(&[self.aggregate.as_str(), name.as_str()])
                .add(sum);
        }
    }

    /// The view as the page draws it.
    pub fn snapshot(&self) -> FunnelSnapshot {
        FunnelSnapshot {
            aggregate: self.aggregate.clone(),
            dims: self.dims.names().into_iter().map(str::to_owned).collect(),
            measures: self.measures.clone(),
            money: self.money.clone(),
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
                    end: self.window.end(*start),
                    phase: window.phase,
                    updated_in: window.updated_in,
                    rows: window
                        .rows
                        .iter()
                        .map(|(dims, row)| RowView {
                            dims: self.dim_values(dims),
                            totals: row.totals.values(self.measures.len()).to_vec(),
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
        self.dims.texts(dims)
    }
}
