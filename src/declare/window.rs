//! Tumbling event-time windows and the lateness rules that decide when they are final.

use serde::{Deserialize, Serialize};

use crate::event::{Millis, StreamKind};

/// Most aggregates one graph may declare.
pub const MAX_AGGREGATES: usize = 8;

/// The lifecycle of a window `[s, e)` relative to the frontier `F` (docs/design.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// `F < e`: more on-time records may still arrive; the value is partial.
    Open,
    /// The frontier reached `e` in this batch: the row completes the window's first
    /// complete value.
    Closed,
    /// The window was already closed before this batch: the row corrects it (late records,
    /// late parents moving children out of *unattributed*).
    Correction,
}

impl WindowStatus {
    /// The status as written to sinks.
    pub fn name(self) -> &'static str {
        match self {
            WindowStatus::Open => "open",
            WindowStatus::Closed => "closed",
            WindowStatus::Correction => "correction",
        }
    }
}

/// The windows of one aggregate: tumbling, aligned to the epoch (UTC), each taking
/// corrections for `allowed_lateness` after its end.
///
/// Terms (docs/design.md §3, §6): the *frontier* (watermark) says no more updates come at
/// earlier times; a window `[s, e)` is *open* while the frontier is `< e`, *closed* at `e`,
/// takes *corrections* while the frontier is `< e + L` and is *final* at `e + L`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Window length in ms.
    pub length: Millis,
    /// Allowed lateness `L` in ms.
    pub allowed_lateness: Millis,
}

impl Window {
    /// Start of the window holding `ts`.
    pub fn start(&self, ts: Millis) -> Millis {
        ts - ts % self.length
    }

    /// End (exclusive) of the window holding `ts`.
    pub fn end(&self, ts: Millis) -> Millis {
        self.start(ts).saturating_add(self.length)
    }

    /// The frontier at which the window holding `ts` becomes final: `e + L`.
    pub fn final_at(&self, ts: Millis) -> Millis {
        self.end(ts).saturating_add(self.allowed_lateness)
    }

    /// Status of a row for the window ending at `end`, in a batch that moved the frontier
    /// from `previous` to `frontier` (`None` = the input is complete).
    pub fn status(&self, end: Millis, previous: Millis, frontier: Option<Millis>) -> WindowStatus {
        if previous >= end {
            WindowStatus::Correction
        } else if frontier.is_none_or(|f| f >= end) {
            WindowStatus::Closed
        } else {
            WindowStatus::Open
        }
    }

    /// The least window start whose window is not final at frontier `f`.
    pub fn first_not_final(&self, f: Millis) -> Millis {
        // final_at(s) = s + W + L <= f  <=>  s <= f - W - L
        let span = self.length.saturating_add(self.allowed_lateness);
        match f.checked_sub(span) {
            Some(last_final) => self.start(last_final).saturating_add(self.length),
            None => 0,
        }
    }
}

/// The lateness rules of a graph: the windows of every aggregate and the match bounds of
/// the parent streams.
///
/// - *match bound* of a parent stream: a child matches its parent only when
///   `child.ts − parent.ts ≤ bound`;
/// - *release time* of a record: the first time at which no window of any aggregate that
///   is not final can depend on it, so its state may be released and a record whose
///   partition watermark has reached it is *too late*. Retention is therefore sized by the
///   aggregate whose windows become final last.
///
/// # Examples
/// ```
/// use diffmill::declare::{Lateness, Window};
/// use diffmill::event::StreamKind;
///
/// const MIN: u64 = 60_000;
/// let quarter = Window { length: 15 * MIN, allowed_lateness: 10 * MIN };
/// let hour = Window { length: 60 * MIN, allowed_lateness: 0 };
/// let lateness = Lateness::new(&[quarter, hour], 0, 0);
/// // A click at 1m: its 15-minute window is final at 25m, its hour at 60m.
/// assert_eq!(lateness.release_time(StreamKind::Click, MIN), 60 * MIN);
/// assert_eq!(lateness.final_at(MIN), 60 * MIN);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lateness {
    windows: [Window; MAX_AGGREGATES],
    count: usize,
    /// Match bound of bids (impressions and clicks match a bid up to this much later).
    pub bid_bound: Millis,
    /// Match bound of clicks (conversions match a click up to this much later).
    pub click_bound: Millis,
}

impl Lateness {
    /// The rules for aggregates with `windows` (at most [`MAX_AGGREGATES`]; more are
    /// ignored, as declarations are validated before) and the two match bounds.
    pub fn new(windows: &[Window], bid_bound: Millis, click_bound: Millis) -> Lateness {
        let mut all = [Window::default(); MAX_AGGREGATES];
        let count = windows.len().min(MAX_AGGREGATES);
        all[..count].copy_from_slice(&windows[..count]);
        Lateness {
            windows: all,
            count,
            bid_bound,
            click_bound,
        }
    }

    /// The rules of a graph with one aggregate.
    pub fn single(
        window: Millis,
        allowed_lateness: Millis,
        bid_bound: Millis,
        click_bound: Millis,
    ) -> Lateness {
        let window = Window {
            length: window,
            allowed_lateness,
        };
        Lateness::new(&[window], bid_bound, click_bound)
    }

    /// The windows of every aggregate, in declaration order.
    pub fn windows(&self) -> &[Window] {
        &self.windows[..self.count]
    }

    /// The first time at which every window holding `ts` (one per aggregate) is final.
    pub fn final_at(&self, ts: Millis) -> Millis {
        self.windows()
            .iter()
            .map(|w| w.final_at(ts))
            .max()
            .unwrap_or(ts)
    }

    /// The latest descendant event time that can still draw on a record of `kind` with
    /// event time `ts`: its own `ts` for children, `ts + bound` for parents. A bid's
    /// dimensions reach conversions through its clicks, so a bid reaches
    /// `ts + bid_bound + click_bound`.
    pub fn reach(&self, kind: StreamKind, ts: Millis) -> Millis {
        match kind {
            StreamKind::Bid => ts
                .saturating_add(self.bid_bound)
                .saturating_add(self.click_bound),
            StreamKind::Click => ts.saturating_add(self.click_bound),
            StreamKind::Impression | StreamKind::Conversion => ts,
        }
    }

    /// The release time of a record: once the frontier reaches it, every window of every
    /// aggregate the record can affect is final. Its join and dedup state is released then,
    /// and a record whose partition watermark has already reached it is *too late*.
    pub fn release_time(&self, kind: StreamKind, ts: Millis) -> Millis {
        self.final_at(self.reach(kind, ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn lateness() -> Lateness {
        Lateness::single(15 * MIN, 10 * MIN, 60 * MIN, 30 * MIN)
    }

    #[test]
    fn windows_are_epoch_aligned() {
        let w = lateness().windows()[0];
        assert_eq!(w.start(15 * MIN + 1), 15 * MIN);
        assert_eq!(w.end(15 * MIN), 30 * MIN);
        assert_eq!(w.end(15 * MIN - 1), 15 * MIN);
        assert_eq!(w.final_at(0), 25 * MIN);
        assert_eq!(w.first_not_final(25 * MIN), 15 * MIN);
        assert_eq!(w.first_not_final(25 * MIN - 1), 0);
    }

    #[test]
    fn parents_live_until_their_last_child_window_is_final() {
        let l = lateness();
        assert_eq!(l.release_time(StreamKind::Impression, MIN), 25 * MIN);
        // A click at 1m reaches conversions up to 31m (window [30m, 45m), final at 55m).
        assert_eq!(l.release_time(StreamKind::Click, MIN), 55 * MIN);
        // A bid at 1m reaches conversions up to 91m (window [90m, 105m), final at 115m).
        assert_eq!(l.release_time(StreamKind::Bid, MIN), 115 * MIN);
    }

    #[test]
    fn the_longest_lived_window_sizes_retention() {
        let day = Window {
            length: 1_440 * MIN,
            allowed_lateness: 0,
        };
        let quarter = lateness().windows()[0];
        let l = Lateness::new(&[quarter, day], 0, 0);
        assert_eq!(l.release_time(StreamKind::Impression, MIN), 1_440 * MIN);
        // The day is final at 1440m, but the last quarter [1425m, 1440m) only at 1450m.
        assert_eq!(l.final_at(1_440 * MIN - 1), 1_450 * MIN);
    }

    #[test]
    fn status_follows_the_frontier() {
        let w = lateness().windows()[0];
        assert_eq!(w.status(15 * MIN, 0, Some(MIN)), WindowStatus::Open);
        assert_eq!(
            w.status(15 * MIN, MIN, Some(15 * MIN)),
            WindowStatus::Closed
        );
        assert_eq!(
            w.status(15 * MIN, 15 * MIN, Some(16 * MIN)),
            WindowStatus::Correction
        );
        assert_eq!(w.status(15 * MIN, MIN, None), WindowStatus::Closed);
    }
}
