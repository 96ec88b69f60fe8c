//! What every shard shares: the samplers, the funnel's coins, and the arrival lags that
//! put a record in the disorder, late or too-late category of a given `FunnelSettings`.

use rand::RngCore;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::RESTAMP_MS;
use super::sample::{threshold, uniform, Coin, Zipf};
use super::{Bounds, GeneratorConfig};
use crate::declare::{FunnelSettings, Lateness, Schema};
use crate::event::{Bid, Click, Conversion, Event, Impression, Label, Millis, Record, StreamKind};

/// How a second copy of a record is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Duplicate {
    /// The same record again.
    Identical,
    /// The same id with another payload.
    Conflicting,
}

/// Where a record goes in its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Placement {
    /// Its arrival key: records of a partition come out in this order.
    pub(super) arrival: Millis,
    /// The event time it is sent with: its own, or an earlier one when back-dated.
    pub(super) ts: Millis,
}

/// The event times of a partition's first and last bids.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub(super) first: Millis,
    pub(super) horizon: Millis,
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

    /// Where a record of `kind` at `ts` goes in its partition: its arrival key (its event
    /// time, plus a lag for the perturbed ones) and the event time it is sent with.
    /// Records of a partition come out in order of arrival key, and every key is at least
    /// the record's `ts`, so the records that arrive before a record with key `a` have
    /// event times `≤ a` and the partition's watermark is then `≤ a − d` (`d` = max
    /// disorder). Hence:
    ///
    /// - *disorder*: a lag in `1..=d` keeps the watermark `≤ ts`: out of order, not late;
    /// - *late*: a lag in `d + margin ..= final_at(ts) − ts + d − 1` keeps the watermark
    ///   below `final_at(ts)` (own window not final), while the on-time records of the
    ///   last `margin` ms raise it above `ts`. The lag is cut to end by the partition's
    ///   last bid, `horizon` (the record must arrive while the run goes on); a record
    ///   that cannot be late by then stays on time;
    /// - *too late*: a lag of at least `release_time − ts + d + margin` raises the
    ///   watermark to the release time. When such a lag would end after `horizon` (a run
    ///   shorter than window + allowed lateness, and for bids the match bounds too), the
    ///   record is sent on time but *back-dated* ([`Model::back_date`]), so that runs of
    ///   any length hold their fraction of too-late records.
    pub(super) fn arrival(
        &self,
        rng: &mut impl RngCore,
        kind: StreamKind,
        ts: Millis,
        span: Span,
    ) -> Placement {
        let x = rng.next_u64();
        let d = self.max_disorder;
        let on_time = Placement { arrival: ts, ts };
        let delayed = |lag: Millis| Placement {
            arrival: ts.saturating_add(lag),
            ts,
        };
        if x >= self.arrival[2] {
            return on_time;
        }
        if x < self.arrival[0] {
            return delayed(uniform(rng, Bounds::new(d.min(1), d)));
        }
        if x < self.arrival[1] {
            let most = (self.lateness.final_at(ts) - ts)
                .saturating_add(d)
                .saturating_sub(1)
                .min(span.horizon.saturating_sub(ts));
            let least = d.saturating_add(self.margin);
            return match least <= most {
                true => delayed(uniform(rng, Bounds::new(least, most))),
                false => on_time,
            };
        }
        let least = (self.lateness.release_time(kind, ts) - ts)
            .saturating_add(d)
            .saturating_add(self.margin);
        let lag = uniform(rng, Bounds::new(0, self.margin)).saturating_add(least);
        match ts.saturating_add(lag) <= span.horizon {
            true => delayed(lag),
            false => self.back_date(ts, lag, span).unwrap_or(on_time),
        }
    }

    /// A too-late record sent at its own place in the partition, with an event time
    /// `lag + window` earlier (the longest aggregate's window): a record of `kind` with
    /// that time is released by the time the watermark reaches `ts − d − margin`, which the
    /// on-time records of the last `margin` ms have brought it to. (`release_time(t) − t`
    /// is at most `window` more for any `t` than for `ts`.) `None` in the partition's first `margin` ms, before its
    /// watermark is that far, or when the time would be before the epoch.
    fn back_date(&self, ts: Millis, lag: Millis, span: Span) -> Option<Placement> {
        let longest = self.lateness.windows().iter().map(|w| w.length).max();
        let back = lag.saturating_add(longest.unwrap_or_default());
        if ts < span.first.saturating_add(self.margin) {
            return None;
        }
        Some(Placement {
            arrival: ts,
            ts: ts.checked_sub(back)?,
        })
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

    /// `event` with event time `ts`.
    pub(super) fn at(event: Event, ts: Millis) -> Event {
        match event {
            Event::Bid(bid) => Event::Bid(Bid { ts, ..bid }),
            Event::Impression(impression) => Event::Impression(Impression { ts, ..impression }),
            Event::Click(click) => Event::Click(Click { ts, ..click }),
            Event::Conversion(conversion) => Event::Conversion(Conversion { ts, ..conversion }),
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
