//! The settings of the funnel graph: windows, dims, disorder, lateness, retention, emission.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Dim, GroupBy, Lateness};
use crate::event::Millis;

const SECOND: Millis = 1_000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;

/// Everything that decides what the funnel computes (and nothing about where data comes
/// from or goes). Two runs with equal settings over the same partitions produce the same
/// output, whatever the cluster shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelSettings {
    /// Window length, allowed lateness and match bounds.
    pub lateness: Lateness,
    /// Dimensions the aggregates are grouped by.
    pub group_by: GroupBy,
    /// *Max disorder*: a partition's watermark is `max ts seen − max_disorder`. Records at
    /// most this much older than the newest record of their partition are not late.
    pub max_disorder: Millis,
    /// *Max future skew*: a record whose `ts` is more than this ahead of its partition's
    /// watermark is dead-lettered instead of applied, so one far-future timestamp cannot
    /// drag the watermark forward and make the rest of the partition too late. Not
    /// applied to a partition's first record, which has no watermark to compare with.
    pub max_future_skew: Millis,
    /// Least wall-clock time between two emitted batches (zero: at every frontier move).
    pub emit_interval: Duration,
}

impl Default for FunnelSettings {
    /// 15-minute windows by campaign and region, 5 s disorder, 24 h max future skew,
    /// 1 h allowed lateness,
    /// 36 h match bounds for bids and clicks, a batch at most every second.
    fn default() -> Self {
        FunnelSettings {
            lateness: Lateness {
                window: 15 * MINUTE,
                allowed_lateness: HOUR,
                bid_bound: 36 * HOUR,
                click_bound: 36 * HOUR,
            },
            group_by: GroupBy::new([Dim::Campaign, Dim::Region]),
            max_disorder: 5 * SECOND,
            max_future_skew: 24 * HOUR,
            emit_interval: Duration::from_secs(1),
        }
    }
}

/// A setting that cannot work, with the setting's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct SettingsError {
    /// The setting's key, as in graph files.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl FunnelSettings {
    /// Checks that the settings are usable.
    ///
    /// # Errors
    /// The first setting that cannot work (e.g. a zero-length window).
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.lateness.window == 0 {
            return Err(SettingsError {
                setting: "window",
                problem: "must be longer than 0".into(),
            });
        }
        if self.lateness.window > 366 * 24 * HOUR {
            return Err(SettingsError {
                setting: "window",
                problem: "must be at most 366 days".into(),
            });
        }
        Ok(())
    }
}
