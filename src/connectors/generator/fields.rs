//! Generated records as the graph declares them: today's fields from the generated event,
//! any other declared field a deterministic value drawn from the record's id.

use std::collections::BTreeMap;

use crate::declare::{FieldType, Schema, Value};
use crate::event::{Event, Label, Record};

/// Values of string fields the generator does not know, when its configuration gives none.
const DEFAULT_STRINGS: [&str; 4] = ["a", "b", "c", "d"];

/// `event` as a record of `schema`: its id, event time and parent in the declared key
/// fields, today's fields by name (when the declared type matches), and every other field a
/// value that depends only on `seed`, the stream, the id and the field's name, so the same
/// record always gets the same values (duplicates of it too). String fields take one of
/// `values[name]` (or `a`..`d`), skewed towards the first.
pub(super) fn record(
    schema: &Schema,
    values: &BTreeMap<String, Vec<Label>>,
    seed: u64,
    event: &Event,
) -> Record {
    let stream = schema.stream(event.kind());
    let mut record = Record::new(event.kind(), event.id(), event.ts());
    let known = known_fields(event);
    for (index, field) in stream.fields().iter().enumerate() {
        let value = if index == stream.id_index() {
            Value::Id(event.id())
        } else if index == stream.time_index() {
            Value::Timestamp(event.ts())
        } else if Some(index) == stream.parent_index() {
            Value::Id(parent(event))
        } else {
            match known
                .iter()
                .find(|(name, v)| *name == field.name && same_type(v, field.ty))
            {
                Some((_, value)) => *value,
                None => drawn(values, seed, event, &field.name, field.ty),
            }
        };
        stream.set(&mut record, index, value);
    }
    record
}

fn parent(event: &Event) -> u64 {
    match event {
        Event::Bid(_) => 0,
        Event::Impression(i) => i.bid_id,
        Event::Click(c) => c.bid_id,
        Event::Conversion(c) => c.click_id,
    }
}

/// Today's fields of `event` with their values.
fn known_fields(event: &Event) -> Vec<(&'static str, Value)> {
    match event {
        Event::Bid(b) => vec![
            ("bid_id", Value::Id(b.bid_id)),
            ("campaign_id", Value::Id(b.campaign_id)),
            ("ad_id", Value::Id(b.ad_id)),
            ("publisher_id", Value::Id(b.publisher_id)),
            ("region", Value::String(b.region)),
            ("device", Value::String(b.device)),
            ("bid_price_micros", Value::Money(b.bid_price_micros)),
        ],
        Event::Impression(i) => vec![
            ("bid_id", Value::Id(i.bid_id)),
            ("cost_micros", Value::Money(i.cost_micros)),
        ],
        Event::Click(c) => vec![("bid_id", Value::Id(c.bid_id))],
        Event::Conversion(c) => vec![
            ("click_id", Value::Id(c.click_id)),
            ("value_micros", Value::Money(c.value_micros)),
        ],
    }
}

fn same_type(value: &Value, ty: FieldType) -> bool {
    matches!(
        (value, ty),
        (Value::Id(_), FieldType::Id)
            | (Value::Money(_), FieldType::Money)
            | (Value::String(_), FieldType::String)
    )
}

/// A value of type `ty` for the field `name` of `event`.
fn drawn(
    values: &BTreeMap<String, Vec<Label>>,
    seed: u64,
    event: &Event,
    name: &str,
    ty: FieldType,
) -> Value {
    let mut h = mix(seed ^ mix(event.kind() as u64) ^ mix(event.id()));
    for byte in name.bytes() {
        h = mix(h ^ u64::from(byte));
    }
    // Skewed: the first value half the time, the second a quarter, ...
    let skewed = |n: usize| (h.trailing_ones() as usize).min(n.saturating_sub(1));
    match ty {
        FieldType::Id => Value::Id(1 + h % 100),
        FieldType::Int => Value::Int((h % 100) as i64),
        FieldType::Money => Value::Money((h % 1_000_000) as i64),
        FieldType::Timestamp => Value::Timestamp(event.ts()),
        FieldType::Bool => Value::Bool(h & 1 == 1),
        FieldType::String => Value::String(match values.get(name) {
            Some(list) if !list.is_empty() => list[skewed(list.len())],
            _ => Label::new(DEFAULT_STRINGS[skewed(DEFAULT_STRINGS.len())]).unwrap_or_default(),
        }),
    }
}

/// SplitMix64's finalizer: a well-mixed 64-bit value of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
