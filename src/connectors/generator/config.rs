//! The generator's configuration: volume, event time, dimensions, funnel and perturbations.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::declare::SettingsError;
use crate::event::{span_text, utc, Label, Millis, MAX_TS};

/// An inclusive range `[min, max]` of integers (milliseconds or micros).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Least value.
    pub min: u64,
    /// Greatest value.
    pub max: u64,
}

impl Bounds {
    /// The range `[min, max]`.
    pub const fn new(min: u64, max: u64) -> Bounds {
        Bounds { min, max }
    }
}

/// Most distinct values of one id dimension (the skewed sampler keeps a table of this size).
pub const MAX_CARDINALITY: u64 = 10_000_000;

/// What the built-in generator produces: every field is documented as a user setting, and
/// unknown keys are errors. Missing keys take their [`Default`] values.
///
/// Fractions are probabilities in `[0, 1]`, drawn independently per record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Seed of the pseudo-random generator: the same seed and settings give the same
    /// records, in the same order, in every partition.
    pub seed: u64,
    /// Number of bids of the whole run, over all partitions. Children (impressions,
    /// clicks, conversions) and perturbations come on top.
    pub bids: u64,
    /// Event time of the first bid, in ms since the Unix epoch.
    pub start_ms: Millis,
    /// Bids per second of event time over all partitions: bid `i` (0-based, counted over
    /// the whole run) has event time `start_ms + i * 1000 / rate`.
    pub rate: u64,
    /// Number of partitions (shards). Bid `i` belongs to partition `i % partitions`.
    pub partitions: usize,
    /// Number of campaigns; campaign ids are `1..=campaigns`, Zipf-skewed (id 1 is the most
    /// frequent).
    pub campaigns: u64,
    /// Ads per campaign; ad ids are unique over all campaigns, Zipf-skewed within one.
    pub ads_per_campaign: u64,
    /// Number of publishers; ids `1..=publishers`, Zipf-skewed.
    pub publishers: u64,
    /// Zipf exponent of every skewed choice (ids, regions, devices): value of rank `k`
    /// has weight `1 / k^skew`. 0 is uniform.
    pub skew: f64,
    /// Region names (1 to 23 bytes, no commas, quotes or surrounding spaces), the first
    /// the most frequent.
    pub regions: Vec<String>,
    /// Device classes, same rules and skew as `regions`.
    pub devices: Vec<String>,
    /// Fraction of bids that win an impression.
    pub impression_rate: f64,
    /// Fraction of impressions that get a click.
    pub click_rate: f64,
    /// Fraction of clicks that convert.
    pub conversion_rate: f64,
    /// Delay from a bid to its impression, ms (uniform).
    pub impression_delay_ms: Bounds,
    /// Delay from an impression to its click, ms (skewed towards `min`).
    pub click_delay_ms: Bounds,
    /// Delay from a click to its conversion, ms (skewed towards `min`).
    pub conversion_delay_ms: Bounds,
    /// Bid price in micros (uniform). An impression costs 50-100 % of its bid price.
    pub bid_price_micros: Bounds,
    /// Conversion value in micros (uniform).
    pub conversion_value_micros: Bounds,
    /// Fraction of records that arrive up to `max_disorder` after their event time: out
    /// of order, but not late.
    pub disorder: f64,
    /// Fraction of records delayed beyond `max_disorder` but not so far that their own
    /// window is final: *late*, and still applied. The delay is cut to end by the
    /// partition's last bid (the record must arrive while the run goes on); only records
    /// in the run's last seconds, too close to its end for any such delay, stay on time.
    pub late: f64,
    /// Fraction of records *too late*: every window they could affect is final when they
    /// arrive, so they go to the late output. A record is delayed past its release time;
    /// when the run ends before such a delay (a run shorter than window + allowed
    /// lateness, or for bids than the match bounds too), it is sent at its own place
    /// with an event time that much earlier (back-dated, as a straggler from long ago
    /// looks). So every run holds its fraction of too-late records, whatever its length.
    pub too_late: f64,
    /// Fraction of records sent twice, identically, within `max_disorder` of their event
    /// time (an at-least-once producer).
    pub duplicate: f64,
    /// Fraction of records sent a second time with the same id and a different payload
    /// (another price, cost or value; a click re-stamped up to 1 s later).
    pub conflicting: f64,
    /// Fraction of parents with children (bids with an impression, clicks with a
    /// conversion) that are never sent, so their children are *orphans*.
    pub orphan: f64,
    /// Fraction of records followed by a malformed copy: a CSV line that fails decoding
    /// (bad number, missing field, negative money, zero id or a missing column).
    pub malformed: f64,
    /// Values of declared string fields that today's records do not have (e.g.
    /// `gender = ["female", "male"]`), the first most often; a field not listed takes
    /// `a`, `b`, `c` or `d`. Other declared fields take values drawn from the record's id.
    pub values: BTreeMap<String, Vec<String>>,
}

impl Default for GeneratorConfig {
    /// One million bids at 1,000 per second from 2024-01-01T00:00Z over 4 partitions;
    /// 100 campaigns of 10 ads, 1,000 publishers, 6 regions, 4 devices, Zipf skew 1;
    /// 70 % of bids win an impression after 10-500 ms, 3 % of impressions get a click
    /// after 1-60 s, 4 % of clicks convert after 1 min-2 h; 5 % disorder, 0.1 % late,
    /// 0.02 % too late, 0.2 % duplicates, 0.05 % conflicting, 0.1 % orphans, 0.05 %
    /// malformed.
    fn default() -> Self {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        GeneratorConfig {
            seed: 1,
            bids: 1_000_000,
            start_ms: 1_704_067_200_000,
            rate: 1_000,
            partitions: 4,
            campaigns: 100,
            ads_per_campaign: 10,
            publishers: 1_000,
            skew: 1.0,
            regions: names(&[
                "us-east", "eu-west", "us-west", "ap-south", "eu-north", "sa-east",
            ]),
            devices: names(&["mobile", "desktop", "tablet", "ctv"]),
            impression_rate: 0.7,
            click_rate: 0.03,
            conversion_rate: 0.04,
            impression_delay_ms: Bounds::new(10, 500),
            click_delay_ms: Bounds::new(1_000, 60_000),
            conversion_delay_ms: Bounds::new(60_000, 7_200_000),
            bid_price_micros: Bounds::new(500, 5_000),
            conversion_value_micros: Bounds::new(1_000_000, 200_000_000),
            disorder: 0.05,
            late: 0.001,
            too_late: 0.000_2,
            duplicate: 0.002,
            conflicting: 0.000_5,
            orphan: 0.001,
            malformed: 0.000_5,
            values: BTreeMap::new(),
        }
    }
}

/// A fraction as a percentage without float noise: `0.0005` is `0.05%`.
fn percent(fraction: f64) -> String {
    let text = format!("{:.6}", fraction * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Most a conflicting click is re-stamped after the original, ms.
pub(super) const RESTAMP_MS: Millis = 1_000;

fn fail(setting: &'static str, problem: impl Into<String>) -> Result<(), SettingsError> {
    Err(SettingsError {
        setting,
        problem: problem.into(),
    })
}

impl GeneratorConfig {
    /// The configuration as `diffmill check` prints it, one line per aspect: volume and
    /// event time, dimensions, the funnel, the perturbations.
    ///
    /// # Examples
    /// ```
    /// use diffmill::connectors::generator::GeneratorConfig;
    ///
    /// let lines = GeneratorConfig::default().describe();
    /// assert_eq!(
    ///     lines[0],
    ///     "generator: 1000000 bids at 1000/s of event time from 2024-01-01T00:00:00.000Z \
    ///      (16m 40s of bids), 4 partitions, seed 1"
    /// );
    /// assert_eq!(
    ///     lines[3],
    ///     "perturbations: disorder 5%, late 0.1%, too late 0.02%, duplicates 0.2%, \
    ///      conflicting 0.05%, orphans 0.1%, malformed 0.05%"
    /// );
    /// ```
    pub fn describe(&self) -> Vec<String> {
        let span = |bounds: Bounds| format!("{}-{}", span_text(bounds.min), span_text(bounds.max));
        vec![
            format!(
                "generator: {} bids at {}/s of event time from {} ({} of bids), {} partitions, \
                 seed {}",
                self.bids,
                self.rate,
                utc(self.start_ms),
                span_text(self.bids.saturating_mul(1_000) / self.rate.max(1)),
                self.partitions,
                self.seed
            ),
            format!(
                "dims: {} campaigns × {} ads, {} publishers, regions [{}], devices [{}], Zipf \
                 skew {}",
                self.campaigns,
                self.ads_per_campaign,
                self.publishers,
                self.regions.join(", "),
                self.devices.join(", "),
                self.skew
            ),
            format!(
                "funnel: {} of bids win an impression after {}, {} of impressions get a click \
                 after {}, {} of clicks convert after {}",
                percent(self.impression_rate),
                span(self.impression_delay_ms),
                percent(self.click_rate),
                span(self.click_delay_ms),
                percent(self.conversion_rate),
                span(self.conversion_delay_ms)
            ),
            format!(
                "perturbations: disorder {}, late {}, too late {}, duplicates {}, conflicting \
                 {}, orphans {}, malformed {}",
                percent(self.disorder),
                percent(self.late),
                percent(self.too_late),
                percent(self.duplicate),
                percent(self.conflicting),
                percent(self.orphan),
                percent(self.malformed)
            ),
        ]
    }

    /// Checks that the configuration can generate valid records.
    ///
    /// # Errors
    /// The first setting that cannot work, e.g. a zero rate, an empty region list, a
    /// fraction outside `[0, 1]`, or event times beyond the accepted range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.rate == 0 {
            return fail("rate", "must be at least 1 bid per second");
        }
        if self.partitions == 0 {
            return fail("partitions", "must be at least 1");
        }
        for (setting, n) in [
            ("campaigns", self.campaigns),
            ("ads_per_campaign", self.ads_per_campaign),
            ("publishers", self.publishers),
        ] {
            if n == 0 || n > MAX_CARDINALITY {
                return fail(setting, format!("must be in 1..={MAX_CARDINALITY}"));
            }
        }
        if !(self.skew.is_finite() && (0.0..=10.0).contains(&self.skew)) {
            return fail("skew", "must be in 0..=10");
        }
        let listed = [("regions", &self.regions), ("devices", &self.devices)]
            .into_iter()
            .chain(self.values.values().map(|list| ("values", list)));
        for (setting, names) in listed {
            if names.is_empty() {
                return fail(setting, "must name at least one value");
            }
            for name in names {
                let clean = !name.is_empty()
                    && name.trim() == name
                    && !name.contains([',', '"', '\n', '\r']);
                if !clean || Label::new(name).is_none() {
                    return fail(setting, format!("`{name}` must be 1 to 23 bytes without commas, quotes or surrounding spaces"));
                }
            }
        }
        for (setting, p) in [
            ("impression_rate", self.impression_rate),
            ("click_rate", self.click_rate),
            ("conversion_rate", self.conversion_rate),
            ("disorder", self.disorder),
            ("late", self.late),
            ("too_late", self.too_late),
            ("duplicate", self.duplicate),
            ("conflicting", self.conflicting),
            ("orphan", self.orphan),
            ("malformed", self.malformed),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return fail(setting, "must be a fraction in [0, 1]");
            }
        }
        if self.disorder + self.late + self.too_late > 1.0 {
            return fail("disorder", "disorder + late + too_late must be at most 1");
        }
        if self.duplicate + self.conflicting > 1.0 {
            return fail("duplicate", "duplicate + conflicting must be at most 1");
        }
        for (setting, bounds, limit) in [
            ("impression_delay_ms", self.impression_delay_ms, MAX_TS),
            ("click_delay_ms", self.click_delay_ms, MAX_TS),
            ("conversion_delay_ms", self.conversion_delay_ms, MAX_TS),
            (
                "bid_price_micros",
                self.bid_price_micros,
                i64::MAX as u64 / 4,
            ),
            (
                "conversion_value_micros",
                self.conversion_value_micros,
                i64::MAX as u64 / 4,
            ),
        ] {
            if bounds.min > bounds.max || bounds.max > limit {
                return fail(setting, format!("needs min <= max <= {limit}"));
            }
        }
        let last = self
            .bids
            .checked_mul(1_000)
            .map(|ms| ms / self.rate)
            .and_then(|ms| ms.checked_add(self.start_ms))
            .and_then(|ms| ms.checked_add(self.impression_delay_ms.max))
            .and_then(|ms| ms.checked_add(self.click_delay_ms.max))
            .and_then(|ms| ms.checked_add(self.conversion_delay_ms.max))
            .and_then(|ms| ms.checked_add(RESTAMP_MS));
        if last.is_none_or(|ms| ms > MAX_TS) {
            return fail("bids", format!("the run's event times would pass {MAX_TS}"));
        }
        Ok(())
    }
}
