//! `final` mode's running totals of the windows that are not final yet.

use std::collections::BTreeMap;

use differential_dataflow::difference::{IsZero, Semigroup};

use super::columns::AggregateLine;
use crate::connectors::AggregateRow;
use crate::declare::{Attribution, Measures, Window};
use crate::event::Millis;

/// The key of a total: the window start and the dims.
pub type WindowKey = (Millis, Attribution);

/// The totals per `(window, dims)` of the windows that are not final: the sum of every
/// diff row received for them. When a window becomes final its totals are taken out,
/// whole, to be written once.
///
/// This is the only state `final` mode needs across a restart. The sink persists it with
/// each commit ([`super::progress::Committed::open_windows`]) and hands it back through
/// [`OpenWindows::restore`]; a runtime that restores the totals of non-final windows
/// itself can call `restore` instead.
///
/// # Examples
/// ```
/// use diffmill::connectors::parquet::OpenWindows;
/// use diffmill::connectors::AggregateRow;
/// use diffmill::declare::{Attribution, Measures, Window, WindowStatus};
///
/// let mut open = OpenWindows::new(Window { length: 10, allowed_lateness: 5 });
/// let row = |start, delta| AggregateRow {
///     window_start: start,
///     window_end: start + 10,
///     dims: Attribution::Unattributed,
///     delta,
///     status: WindowStatus::Open,
/// };
/// open.add(&[row(0, Measures::click()), row(10, Measures::click())]);
/// open.add(&[row(0, Measures::click())]);
/// // At frontier 15 the window [0, 10) is final (end 10 + lateness 5); [10, 20) is not.
/// let finals = open.take_final(&[], Some(15));
/// assert_eq!(finals.len(), 1);
/// assert_eq!(finals[0].measures, Measures::click().times(2));
/// assert_eq!(open.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct OpenWindows {
    window: Window,
    totals: BTreeMap<WindowKey, Measures>,
}

impl OpenWindows {
    /// No open windows, under the aggregate's window and lateness settings.
    pub fn new(window: Window) -> OpenWindows {
        OpenWindows {
            window,
            totals: BTreeMap::new(),
        }
    }

    /// Replaces the totals with `totals` (as persisted, or as a restored run hands them).
    pub fn restore(&mut self, totals: impl IntoIterator<Item = (WindowKey, Measures)>) {
        self.totals = totals.into_iter().filter(|(_, m)| !m.is_zero()).collect();
    }

    /// Adds a batch's diff rows.
    pub fn add(&mut self, rows: &[AggregateRow]) {
        for row in rows {
            let key = (row.window_start, row.dims);
            let total = self.totals.entry(key).or_default();
            total.plus_equals(&row.delta);
            if total.is_zero() {
                self.totals.remove(&key);
            }
        }
    }

    /// Takes out the totals of every window final after a batch: those in `finalized`,
    /// those whose `end + allowed lateness` the `frontier` reached, or all when the input
    /// is complete (`None`). Sorted by window, then dims; status `final`.
    pub fn take_final(
        &mut self,
        finalized: &[Millis],
        frontier: Option<Millis>,
    ) -> Vec<AggregateLine> {
        let window = self.window;
        let is_final = |start: Millis| {
            frontier.is_none_or(|f| window.final_at(start) <= f)
                || finalized.binary_search(&start).is_ok()
        };
        let (finals, open): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.totals)
            .into_iter()
            .partition(|((start, _), _)| is_final(*start));
        self.totals = open;
        finals
            .into_iter()
            .map(|((window_start, dims), measures)| AggregateLine {
                window_start,
                window_end: window.end(window_start),
                dims: Some(dims),
                measures,
                status: "final",
            })
            .collect()
    }

    /// The totals, for persisting.
    pub fn snapshot(&self) -> Vec<(WindowKey, Measures)> {
        self.totals.iter().map(|(k, m)| (*k, *m)).collect()
    }

    /// Number of `(window, dims)` totals held.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    /// True when no window is open.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}
