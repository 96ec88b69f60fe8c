//! Tumbling event-time windows and the lateness rules that decide when they are final.

use serde::{Deserialize, Serialize};

use crate::event::{Millis, StreamKind};

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

/// Window and lateness settings shared by every operator that needs them.
///
/// Terms (docs/design.md §3, §6):
/// - *frontier* (watermark): no more updates at times earlier than it;
/// - *allowed lateness* `L`: a window `[s, e)` takes corrections while the frontier is
///   `< e + L` and is *final* once the frontier reaches `e + L`;
/// - *match bound* of a parent stream: a child matches its parent only when
///   `child.ts − parent.ts ≤ bound`;
/// - *release time* of a record: the first time at which no window that is not final can
///   depend on it, so its state may be released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lateness {
    /// Window length in ms (tumbling, aligned to the epoch).
    pub window: Millis,
    /// Allowed lateness `L` in ms.
    pub allowed_lateness: Millis,
    /// Match bound of bids (impressions and clicks match a bid up to this much later).
    pub bid_bound: Millis,
    /// Match bound of clicks (conversions match a click up to this much later).
    pub click_bound: Millis,
}

impl Lateness {
    /// Start of the window holding `ts`.
    pub fn window_start(&self, ts: Millis) -> Millis {
        ts - ts % self.window
    }

    /// End (exclusive) of the window holding `ts`.
    pub fn window_end(&self, ts: Millis) -> Millis {
        self.window_start(ts).saturating_add(self.window)
    }

    /// The frontier at which the window holding `ts` becomes final: `e + L`.
    pub fn final_at(&self, ts: Millis) -> Millis {
        self.window_end(ts).saturating_add(self.allowed_lateness)
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

    /// The release time of a record: once the frontier reaches it, every window the
    /// record can affect is final. Its join and dedup state is released then, and a record
    /// whose partition watermark has already reached it is *too late*.
    pub fn release_time(&self, kind: StreamKind, ts: Millis) -> Millis {
        self.final_at(self.reach(kind, ts))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn lateness() -> Lateness {
        Lateness {
            window: 15 * MIN,
            allowed_lateness: 10 * MIN,
            bid_bound: 60 * MIN,
            click_bound: 30 * MIN,
        }
    }

    #[test]
    fn windows_are_epoch_aligned() {
        let l = lateness();
        assert_eq!(l.window_start(15 * MIN + 1), 15 * MIN);
        assert_eq!(l.window_end(15 * MIN), 30 * MIN);
        assert_eq!(l.window_end(15 * MIN - 1), 15 * MIN);
        assert_eq!(l.final_at(0), 25 * MIN);
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
    fn status_follows_the_frontier() {
        let l = lateness();
        assert_eq!(l.status(15 * MIN, 0, Some(MIN)), WindowStatus::Open);
        assert_eq!(
            l.status(15 * MIN, MIN, Some(15 * MIN)),
            WindowStatus::Closed
        );
        assert_eq!(
            l.status(15 * MIN, 15 * MIN, Some(16 * MIN)),
            WindowStatus::Correction
        );
        assert_eq!(l.status(15 * MIN, MIN, None), WindowStatus::Closed);
    }
}
