//! Per-partition watermarks and the lateness decision made when a record is ingested.

use crate::declare::Lateness;
use crate::event::{Millis, StreamKind};

/// How an ingested record is treated (docs/semantics.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The record enters the dataflow at time `entry`.
    Enter {
        /// The timely time it enters at: `max(ts, watermark)`.
        entry: Millis,
        /// Its `ts` was below the partition's watermark (*late*, but applied).
        late: bool,
        /// A parent whose own window is already final: it only attributes children.
        attribution_only: bool,
    },
    /// The record's `ts` is more than `max_future_skew` ahead of the watermark: it is
    /// dead-lettered and does not move the watermark.
    TooFarInFuture {
        /// How far ahead of the watermark it was.
        ahead_ms: Millis,
    },
    /// *Too late*: the watermark had reached the record's release time, so every window it
    /// could affect is final. It goes to the late output and never enters any state.
    TooLate {
        /// The watermark it was judged against.
        watermark: Millis,
    },
}

/// The watermark of one source partition: `max ts seen − max_disorder` (docs/design.md §3).
///
/// # Examples
/// ```
/// use diffmill::declare::Lateness;
/// use diffmill::event::StreamKind;
/// use diffmill::runtime::{Admission, PartitionClock};
///
/// let lateness = Lateness::single(1_000, 500, 0, 0);
/// let mut clock = PartitionClock::new(100);
/// let click = |ts| (StreamKind::Click, ts);
/// clock.admit(&lateness, click(5_000));
/// assert_eq!(clock.watermark(), 4_900);
/// // Within the disorder bound: enters at its own time.
/// assert_eq!(clock.admit(&lateness, click(4_950)),
///            Admission::Enter { entry: 4_950, late: false, attribution_only: false });
/// // Late but its window [4000, 5000) is not final before 5500: enters at the watermark.
/// assert_eq!(clock.admit(&lateness, click(4_000)),
///            Admission::Enter { entry: 4_900, late: true, attribution_only: false });
/// // Window [3000, 4000) became final at 4500: too late.
/// assert_eq!(clock.admit(&lateness, click(3_999)), Admission::TooLate { watermark: 4_900 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionClock {
    max_disorder: Millis,
    max_future_skew: Millis,
    max_seen: Option<Millis>,
}

impl PartitionClock {
    /// A clock for a partition that has seen nothing yet (watermark 0), with no bound
    /// on future skew.
    pub fn new(max_disorder: Millis) -> PartitionClock {
        PartitionClock::with_future_skew(max_disorder, Millis::MAX)
    }

    /// A clock that dead-letters records more than `max_future_skew` ahead of its
    /// watermark (once it has seen a record).
    pub fn with_future_skew(max_disorder: Millis, max_future_skew: Millis) -> PartitionClock {
        PartitionClock {
            max_disorder,
            max_future_skew,
            max_seen: None,
        }
    }

    /// The watermark: no record of this partition with an earlier `ts` is expected.
    pub fn watermark(&self) -> Millis {
        self.max_seen
            .map_or(0, |seen| seen.saturating_sub(self.max_disorder))
    }

    /// The greatest event time admitted (or caught up to), what a checkpoint keeps of
    /// the clock.
    pub fn max_seen(&self) -> Option<Millis> {
        self.max_seen
    }

    /// Sets the greatest event time admitted, from a checkpoint.
    pub fn restore(&mut self, max_seen: Option<Millis>) {
        self.max_seen = max_seen;
    }

    /// How far the watermark trails the latest event time seen: `max_disorder`.
    pub fn watermark_lag(&self) -> Millis {
        self.max_disorder
    }

    /// Moves the watermark up to at least `watermark`, as if a record with
    /// `ts = watermark + max_disorder` had been seen: an idle partition released after
    /// its `idle_timeout` so it does not hold the frontier back.
    pub fn catch_up(&mut self, watermark: Millis) {
        if self.watermark() < watermark {
            self.max_seen = Some(watermark.saturating_add(self.max_disorder));
        }
    }

    /// Decides how a record of `stream` with event time `ts` enters (judged against the
    /// watermark before it), then advances the watermark by `ts` if it enters.
    pub fn admit(&mut self, lateness: &Lateness, (stream, ts): (StreamKind, Millis)) -> Admission {
        let admission = self.judge(lateness, stream, ts);
        if let Admission::Enter { .. } = admission {
            self.advance(ts);
        }
        admission
    }

    /// Decides how a record of `stream` with event time `ts` would enter, without moving
    /// the watermark (a record that enters must then [`advance`](Self::advance) it; one
    /// that is dead-lettered afterwards for another reason must not).
    pub fn judge(&self, lateness: &Lateness, stream: StreamKind, ts: Millis) -> Admission {
        let watermark = self.watermark();
        let ahead_ms = ts.saturating_sub(watermark);
        if self.max_seen.is_some() && ahead_ms > self.max_future_skew {
            return Admission::TooFarInFuture { ahead_ms };
        }
        if watermark >= lateness.release_time(stream, ts) {
            return Admission::TooLate { watermark };
        }
        Admission::Enter {
            entry: ts.max(watermark),
            late: ts < watermark,
            attribution_only: watermark >= lateness.final_at(ts),
        }
    }

    /// Moves the watermark by an entered record's event time.
    pub fn advance(&mut self, ts: Millis) {
        self.max_seen = Some(self.max_seen.map_or(ts, |seen| seen.max(ts)));
    }
}
