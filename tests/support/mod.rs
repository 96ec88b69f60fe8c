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

use diffmill::connectors::generator::{Generated, Generator};
use diffmill::connectors::{positioned, AggregateRow, Arrival};
use diffmill::declare::{
    Attribution, Declaration, DurationText, FunnelSettings, FunnelSpec, Measures, Value,
};
use diffmill::event::{Bid, Click, Conversion, Event, EventId, Impression, Label, Millis};

use oracle::{Aggregates, RowKey};

/// A `[funnel]` table with these durations (ms), emitting at every frontier move.
pub fn funnel_spec(
    window: Millis,
    allowed_lateness: Millis,
    bid_bound: Millis,
    click_bound: Millis,
    max_disorder: Millis,
) -> FunnelSpec {
    let ms = DurationText::from_millis;
    FunnelSpec {
        window: Some(ms(window)),
        allowed_lateness: ms(allowed_lateness),
        bid_retention: ms(bid_bound),
        click_retention: ms(click_bound),
        max_disorder: ms(max_disorder),
        emit_interval: ms(0),
        ..FunnelSpec::default()
    }
}

/// Settings for hand-written cases, grouped by campaign, emitting at every frontier move.
pub fn settings(
    window: Millis,
    allowed_lateness: Millis,
    bid_bound: Millis,
    click_bound: Millis,
    max_disorder: Millis,
) -> FunnelSettings {
    let funnel = FunnelSpec {
        group_by: Some(vec!["campaign_id".to_owned()]),
        ..funnel_spec(
            window,
            allowed_lateness,
            bid_bound,
            click_bound,
            max_disorder,
        )
    };
    Declaration::default()
        .funnel(funnel)
        .resolve()
        .expect("valid settings")
}

/// Settings with `emit_interval` changed.
pub fn with_emit_interval(settings: &FunnelSettings, interval: Duration) -> FunnelSettings {
    FunnelSettings {
        emit_interval: interval,
        ..settings.clone()
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
                        record: generator.record(&event),
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
    let settings = settings(1, 0, 0, 0, 0);
    Attribution::Dims(
        settings.aggregates[0]
            .dims
            .key(&[Some(Value::Id(campaign_id))]),
    )
}

/// The row key of the first aggregate's window `start` for campaign `campaign_id`
/// (`None`: unattributed), under [`settings`]' grouping.
pub fn campaign_row(start: Millis, campaign_id: Option<u64>) -> RowKey {
    let text = campaign_id.map_or("unattributed".to_owned(), |c| c.to_string());
    (0, start, vec![text])
}

/// Measures of the default declaration from their six values, in order.
pub fn measures(
    bids: i64,
    impressions: i64,
    clicks: i64,
    conversions: i64,
    spend_micros: i64,
    revenue_micros: i64,
) -> Measures {
    Measures::from_values(&[
        bids,
        impressions,
        clicks,
        conversions,
        spend_micros,
        revenue_micros,
    ])
}

/// Six values of the default declaration as the oracle holds them.
pub fn values(measures: Measures) -> Vec<i128> {
    measures.values(6).iter().map(|v| i128::from(*v)).collect()
}

/// `row` of aggregate `aggregate` as the oracle keys and holds it: its dims as text, its
/// measures as integers.
pub fn row_entry(
    settings: &FunnelSettings,
    aggregate: usize,
    row: &AggregateRow,
) -> (RowKey, Vec<i128>) {
    let declared = &settings.aggregates[aggregate];
    let key = (aggregate, row.window_start, declared.dims.texts(&row.dims));
    let values = row
        .delta
        .values(declared.measures.len())
        .iter()
        .map(|v| i128::from(*v))
        .collect();
    (key, values)
}

/// Adds the `rows` of aggregate `aggregate` to running sums per row key, dropping entries
/// that reach zero.
pub fn add_rows(
    sums: &mut Aggregates,
    settings: &FunnelSettings,
    aggregate: usize,
    rows: &[AggregateRow],
) {
    for row in rows {
        let (key, values) = row_entry(settings, aggregate, row);
        let sum = sums
            .entry(key.clone())
            .or_insert_with(|| vec![0; values.len()]);
        for (total, value) in sum.iter_mut().zip(values) {
            *total += value;
        }
        if sum.iter().all(|v| *v == 0) {
            sums.remove(&key);
        }
    }
}
