//! Shared helpers of the oracle and property tests: the oracle, input strategies, and
//! short constructors for hand-written cases.
// Each test binary uses a different part of the helpers.
#![allow(dead_code)]

pub mod batches;
pub mod cli;
pub mod cluster;
pub mod duckdb;
pub mod feed;
pub mod http;
pub mod inputs;
pub mod kafka;
pub mod oracle;
pub mod postgres;
pub mod services;
pub mod source;

use std::time::Duration;

use differential_dataflow::difference::Semigroup;
use diffmill::connectors::generator::{Generated, Generator};
use diffmill::connectors::{positioned, AggregateRow, Arrival};
use diffmill::dataflow::{
    Attribution, Dim, DimValues, FunnelSettings, GroupBy, Lateness, Measures,
};
use diffmill::event::{Bid, Click, Conversion, Event, EventId, Impression, Label, Millis};

use oracle::Aggregates;

/// Settings for hand-written cases, grouped by campaign, emitting at every frontier move.
pub fn settings(
    window: Millis,
    allowed_lateness: Millis,
    bid_bound: Millis,
    click_bound: Millis,
    max_disorder: Millis,
) -> FunnelSettings {
    FunnelSettings {
        lateness: Lateness {
            window,
            allowed_lateness,
            bid_bound,
            click_bound,
        },
        group_by: GroupBy::new([Dim::Campaign]),
        max_disorder,
        emit_interval: Duration::ZERO,
        ..FunnelSettings::default()
    }
}

/// A bid of `campaign_id` (other dims fixed).
pub fn bid(bid_id: EventId, ts: Millis, campaign_id: u64) -> Event {
    Event::Bid(Bid {
        bid_id,
        ts,
        campaign_id,
        ad_id: 1,
        publisher_id: 1,
        region: Label::new("eu").expect("short label"),
        device: Label::new("web").expect("short label"),
        bid_price_micros: 100,
    })
}

/// An impression of bid `bid_id` costing `cost_micros`.
pub fn impression(impression_id: EventId, bid_id: EventId, ts: Millis, cost_micros: i64) -> Event {
    Event::Impression(Impression {
        impression_id,
        bid_id,
        ts,
        cost_micros,
    })
}

/// A click on bid `bid_id`.
pub fn click(click_id: EventId, bid_id: EventId, ts: Millis) -> Event {
    Event::Click(Click {
        click_id,
        bid_id,
        ts,
    })
}

/// A conversion of click `click_id` worth `value_micros`.
pub fn conversion(
    conversion_id: EventId,
    click_id: EventId,
    ts: Millis,
    value_micros: i64,
) -> Event {
    Event::Conversion(Conversion {
        conversion_id,
        click_id,
        ts,
        value_micros,
    })
}

/// Partitions of valid events, each at its index + 1 as position.
pub fn partitions(events: Vec<Vec<Event>>) -> Vec<Vec<Arrival>> {
    events.into_iter().map(positioned).collect()
}

/// The generator's partitions as arrivals, its valid events only (malformed records left
/// out: they never reach the aggregates), each at its index + 1 as position.
pub fn generated_events(generator: &Generator) -> Vec<Vec<Arrival>> {
    (0..generator.partition_count())
        .map(|p| {
            generator
                .partition(p)
                .enumerate()
                .filter_map(|(i, generated)| match generated {
                    Generated::Event(event) => Some(Arrival::Event {
                        event,
                        position: i as u64 + 1,
                    }),
                    Generated::Malformed { .. } => None,
                })
                .collect()
        })
        .collect()
}

/// The dims key of campaign `campaign_id` under [`settings`]' grouping.
pub fn campaign(campaign_id: u64) -> Attribution {
    Attribution::Dims(DimValues {
        campaign_id: Some(campaign_id),
        ..DimValues::default()
    })
}

/// Measures from their six values, in field order.
pub fn measures(
    bids: i64,
    impressions: i64,
    clicks: i64,
    conversions: i64,
    spend_micros: i64,
    revenue_micros: i64,
) -> Measures {
    Measures {
        bids,
        impressions,
        clicks,
        conversions,
        spend_micros,
        revenue_micros,
    }
}

/// Adds `rows` to running sums per `(window, dims)`, dropping entries that reach zero.
pub fn add_rows(sums: &mut Aggregates, rows: &[AggregateRow]) {
    for row in rows {
        let key = (row.window_start, row.dims);
        let sum = sums.entry(key).or_default();
        sum.plus_equals(&row.delta);
        if *sum == Measures::default() {
            sums.remove(&key);
        }
    }
}
