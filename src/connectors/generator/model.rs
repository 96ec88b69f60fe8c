//! What every shard shares: the samplers, the funnel's coins, and the arrival lags that
//! put a record in the disorder, late or too-late category of a given `FunnelSettings`.

use rand::RngCore;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::RESTAMP_MS;
use super::sample::{threshold, uniform, Coin, Zipf};
use super::{Bounds, GeneratorConfig};
use crate::declare::{FunnelSettings, Lateness, Schema};
use crate::event::{Event, Label, Millis, Record, StreamKind};

/// How a second copy of a record is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Duplicate {
    /// The same record again.
    Identical,
    /// The same id with another payload.
    Conflicting,
}

/// The validated configuration, compiled into samplers and thresholds.
#[derive(Debug)]
pub(super) struct Model {
    pub(super) config: GeneratorConfig,
    pub(super) campaigns: Zipf,
    pub(super) ads: Zipf,
    pub(super) publishers: Zipf,
    pub(super) regions: (Zipf, Vec<Label>),
    pub(super) devices: (Zipf, Vec<Label>),
    pub(super) impression: Coin,
    pub(super) click: Coin,
    pub(super) conversion: Coin,
    pub(super) orphan: Coin,
    pub(super) malformed: Coin,
    /// Cumulative thresholds of disorder, late, too late.
    arrival: [u64; 3],
    /// Cumulative thresholds of identical and conflicting duplicates.
    duplicate: [u64; 2],
    lateness: Lateness,
    pub(super) max_disorder: Millis,
    /// The declared streams the records are made for.
    pub(super) schema: Arc<Schema>,
    /// Values of declared string fields the generator does not know.
    values: BTreeMap<String, Vec<Label>>,
    /// Slack added to the late and too-late lags so that enough on-time records of the
    /// partition arrive in between to move its watermark past the record.
    margin: Millis,
}

impl Model {
    /// Compiles a validated configuration.
    pub(super) fn new(config: GeneratorConfig, settings: &FunnelSettings) -> Model {
        let labels = |names: &[String]| -> (Zipf, Vec<Label>) {
            let labels: Vec<Label> = names.iter().filter_map(|n| Label::new(n)).collect();
            (Zipf::new(labels.len() as u64, config.skew), labels)
        };
        // Event time between two bids of one partition, rounded up.
        let spacing = (config.partitions as u64 * 1_000).div_ceil(config.rate);
        Model {
            campaigns: Zipf::new(config.campaigns, config.skew),
            ads: Zipf::new(config.ads_per_campaign, config.skew),
            publishers: Zipf::new(config.publishers, config.skew),
            regions: labels(&config.regions),
            devices: labels(&config.devices),
            impression: Coin::new(config.impression_rate),
            click: Coin::new(config.click_rate),
            conversion: Coin::new(config.conversion_rate),
            orphan: Coin::new(config.orphan),
            malformed: Coin::new(config.malformed),
            arrival: [
                threshold(config.disorder),
                threshold(config.disorder + config.late),
                threshold(config.disorder + config.late + config.too_late),
            ],
            duplicate: [
                threshold(config.duplicate),
                threshold(config.duplicate + config.conflicting),
            ],
            lateness: settings.lateness,
            max_disorder: settings.max_disorder,
            schema: Arc::clone(&settings.schema),
            values: config
                .values
                .iter()
                .map(|(name, list)| {
                    let labels = list.iter().filter_map(|v| Label::new(v)).collect();
                    (name.clone(), labels)
                })
                .collect(),
            margin: spacing.saturating_mul(8).max(1_000),
            config,
        }
    }

    /// `event` as a record of the declared streams.
    pub(super) fn record(&self, event: &Event) -> Record {
        super::fields::record(&self.schema, &self.values, self.config.seed, event)
    }

    /// Event time of bid `index` (0-based over the whole run).
    pub(super) fn bid_ts(&self, index: u64) -> Millis {
        self.config
            .start_ms
            .saturating_add(index.saturating_mul(1_000) / self.config.rate)
    }

    /// The arrival key of a record of `kind` at `ts`: its event time, plus a lag for the
    /// perturbed ones. Records of a partition come out in order of arrival key, and every
    /// key is at least the record's `ts`, so the records that arrive before a record with
    /// key `a` have event times `≤ a` and the partition's watermark is then `≤ a − d`
    /// (`d` = max disorder). Hence:
    ///
    /// - *disorder*: a lag in `1..=d` keeps the watermark `≤ ts`: out of order, not late;
    /// - *late*: a lag in `d + margin ..= final_at(ts) − ts + d − 1` keeps the watermark
    ///   below `final_at(ts)` (own window not final), while the on-time records of the
    ///   last `margin` ms raise it above `ts`;
    /// - *too late*: a lag of at least `release_time − ts + d + margin` raises it to the
    ///   release time.
    ///
    /// A late or too-late lag is only used when the record would still arrive before the
    /// partition's last bid, `horizon`; otherwise the record stays on time.
    pub(super) fn arrival(
        &self,
        rng: &mut impl RngCore,
        kind: StreamKind,
        ts: Millis,
        horizon: Millis,
    ) -> Millis {
        let x = rng.next_u64();
        let d = self.max_disorder;
        if x >= self.arrival[2] {
            return ts;
        }
        if x < self.arrival[0] {
            return ts.saturating_add(uniform(rng, Bounds::new(d.min(1), d)));
        }
        let lag = if x < self.arrival[1] {
            let most = (self.lateness.final_at(ts) - ts)
                .saturating_add(d)
                .saturating_sub(1);
            Some(d.saturating_add(self.margin))
                .filter(|&least| least <= most)
                .map(|least| uniform(rng, Bounds::new(least, most)))
        } else {
            let least = (self.lateness.release_time(kind, ts) - ts)
                .saturating_add(d)
                .saturating_add(self.margin);
            Some(uniform(rng, Bounds::new(0, self.margin)).saturating_add(least))
        };
        match lag.map(|lag| ts.saturating_add(lag)) {
            Some(arrival) if arrival <= horizon => arrival,
            _ => ts,
        }
    }

    /// Whether a record is sent a second time, and how.
    pub(super) fn duplicate(&self, rng: &mut impl RngCore) -> Option<Duplicate> {
        let x = rng.next_u64();
        if x < self.duplicate[0] {
            Some(Duplicate::Identical)
        } else if x < self.duplicate[1] {
            Some(Duplicate::Conflicting)
        } else {
            None
        }
    }

    /// A copy of `event` with the same id and another payload.
    pub(super) fn conflicting(&self, rng: &mut impl RngCore, event: Event) -> Event {
        let bump = uniform(rng, Bounds::new(1, RESTAMP_MS));
        match event {
            Event::Bid(mut bid) => {
                bid.bid_price_micros += bump as i64;
                Event::Bid(bid)
            }
            Event::Impression(mut impression) => {
                impression.cost_micros += bump as i64;
                Event::Impression(impression)
            }
            Event::Click(mut click) => {
                click.ts += bump;
                Event::Click(click)
            }
            Event::Conversion(mut conversion) => {
                conversion.value_micros += bump as i64 * 1_000;
                Event::Conversion(conversion)
            }
        }
    }
}
