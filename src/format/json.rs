//! JSON records decoded with typed serde straight into a record: one pass over the text,
//! each declared key's value taken as it is read, undeclared keys skipped.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::too_long;
use crate::declare::{FieldType, StreamSchema, UnknownFields, Value, MAX_FIELDS};
use crate::event::{Invalid, Millis, Record, MAX_TS};

/// A declared key's value as read, before it is checked against the field's type.
#[derive(Debug, Default)]
enum Slot<'de> {
    /// Absent, or `null`.
    #[default]
    Missing,
    /// A string (not yet trimmed).
    Text(Cow<'de, str>),
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    /// A number with a fraction or exponent, as JSON text.
    Float(String),
    /// `true` or `false`.
    Bool(bool),
    /// An array or object, as JSON text (for the message).
    Other(String),
}

/// Decodes one JSON object as a record of `schema`'s stream. Undeclared keys are ignored
/// (or rejected, as the stream declares); numbers may be JSON numbers or strings of
/// digits. A record without its time field takes `fallback_ts` when given (a Kafka
/// message's timestamp).
///
/// # Errors
/// An [`Invalid`] reason: bad JSON, an undeclared key of a strict stream, then the first
/// missing or mistyped field in declaration order.
///
/// # Examples
/// ```
/// use diffmill::declare::Schema;
/// use diffmill::event::StreamKind;
/// use diffmill::format::decode_json;
///
/// let conversions = Schema::funnel().stream(StreamKind::Conversion);
/// let line = r#"{"conversion_id":1,"click_id":"2","value_micros":4,"extra":true}"#;
/// let record = decode_json(conversions, line, Some(3)).unwrap();
/// assert_eq!((record.id, record.ts), (1, 3));
/// assert!(decode_json(conversions, line, None).is_err()); // no `ts`
/// ```
pub fn decode_json(
    schema: &StreamSchema,
    text: &str,
    fallback_ts: Option<Millis>,
) -> Result<Record, Invalid> {
    if let Some(reason) = too_long(text.len()) {
        return Err(reason);
    }
    let mut slots: [Slot<'_>; MAX_FIELDS] = Default::default();
    let mut unknown = None;
    let mut de = serde_json::Deserializer::from_str(text);
    ObjectSeed {
        schema,
        slots: &mut slots,
        unknown: &mut unknown,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| Invalid::Json(e.to_string()))?;
    if let Some(field) = unknown {
        return Err(Invalid::UnknownField { field });
    }
    let mut record = Record::new(schema.kind(), 0, 0);
    for (index, field) in schema.fields().iter().enumerate() {
        let slot = std::mem::take(&mut slots[index]);
        let absent = match &slot {
            Slot::Missing => true,
            Slot::Text(text) => text.trim().is_empty(),
            _ => false,
        };
        let value = match fallback_ts {
            Some(ts) if absent && index == schema.time_index() && ts <= MAX_TS => {
                Value::Timestamp(ts)
            }
            _ => typed(field.ty, &field.name, slot)?,
        };
        schema.set(&mut record, index, value);
    }
    Ok(record)
}

/// A slot as a value of type `ty`, with the same reasons as the text of a CSV column.
fn typed(ty: FieldType, name: &str, slot: Slot<'_>) -> Result<Value, Invalid> {
    let missing = || Invalid::MissingField {
        field: name.to_owned(),
    };
    match slot {
        Slot::Missing => Err(missing()),
        Slot::Text(text) => match text.trim() {
            "" => Err(missing()),
            trimmed => ty.parse(name, trimmed),
        },
        Slot::Unsigned(v) => match ty {
            FieldType::Id if v > 0 => Ok(Value::Id(v)),
            FieldType::Timestamp if v <= MAX_TS => Ok(Value::Timestamp(v)),
            FieldType::Money if v <= i64::MAX as u64 => Ok(Value::Money(v as i64)),
            FieldType::Int if v <= i64::MAX as u64 => Ok(Value::Int(v as i64)),
            _ => ty.parse(name, &v.to_string()),
        },
        Slot::Signed(v) => match ty {
            FieldType::Int => Ok(Value::Int(v)),
            _ => ty.parse(name, &v.to_string()),
        },
        Slot::Float(text) => ty.parse(name, &text),
        Slot::Bool(b) if ty == FieldType::Bool => Ok(Value::Bool(b)),
        Slot::Bool(b) => Err(not_scalar(name, &b.to_string())),
        Slot::Other(json) => Err(not_scalar(name, &json)),
    }
}

fn not_scalar(name: &str, json: &str) -> Invalid {
    Invalid::Json(format!(
        "field `{name}` must be a number or a string, got {json}"
    ))
}

/// Reads the top-level object into the slots of the declared fields.
struct ObjectSeed<'s, 'de> {
    schema: &'s StreamSchema,
    slots: &'s mut [Slot<'de>; MAX_FIELDS],
    unknown: &'s mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `serde_json::Map` says it, so the reasons read as they always have.
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reject = self.schema.unknown_fields() == UnknownFields::Reject;
        let mut next = 0;
        loop {
            let seed = KeySeed {
                schema: self.schema,
                next,
                keep_unknown: reject && self.unknown.is_none(),
            };
            match map.next_key_seed(seed)? {
                None => return Ok(()),
                Some(Key::Field(index)) => {
                    self.slots[index] = map.next_value_seed(SlotSeed)?;
                    next = index + 1;
                }
                Some(Key::Unknown(name)) => {
                    map.next_value::<IgnoredAny>()?;
                    if name.is_some() {
                        *self.unknown = name;
                    }
                }
            }
        }
    }
}

/// A key as read: a declared field's position, or an undeclared key (named when a strict
/// stream will reject it).
enum Key {
    Field(usize),
    Unknown(Option<String>),
}

/// Reads one key, borrowed from the text when it has no escapes, and finds its field:
/// the field after the previous key's first (keys usually come in declaration order),
/// then every field.
struct KeySeed<'s> {
    schema: &'s StreamSchema,
    next: usize,
    keep_unknown: bool,
}

impl KeySeed<'_> {
    fn key(&self, name: &str) -> Key {
        let fields = self.schema.fields();
        let index = match fields.get(self.next) {
            Some(field) if field.name == name => Some(self.next),
            _ => self.schema.index(name),
        };
        match index {
            Some(index) => Key::Field(index),
            None => Key::Unknown(self.keep_unknown.then(|| name.to_owned())),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, name: &str) -> Result<Key, E> {
        Ok(self.key(name))
    }
}

/// Reads one value into a slot.
struct SlotSeed;

impl<'de> DeserializeSeed<'de> for SlotSeed {
    type Value = Slot<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Slot<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed {
    type Value = Slot<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Slot<'de>, E> {
        Ok(Slot::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Slot<'de>, E> {
        Ok(Slot::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Slot<'de>, E> {
        Ok(Slot::Text(Cow::Owned(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Slot<'de>, E> {
        Ok(Slot::Unsigned(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Slot<'de>, E> {
        Ok(if v >= 0 {
            Slot::Unsigned(v as u64)
        } else {
            Slot::Signed(v)
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Slot<'de>, E> {
        let text = serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        Ok(Slot::Float(text))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Slot<'de>, E> {
        Ok(Slot::Bool(v))
    }

    fn visit_unit<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Missing)
    }

    fn visit_none<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Missing)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot<'de>, A::Error> {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Slot::Other(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot<'de>, A::Error> {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Slot::Other(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declare::{Schema, StreamSpec};
    use crate::event::{Bid, Event, Label, StreamKind};

    fn schema(kind: StreamKind) -> &'static StreamSchema {
        Schema::funnel().stream(kind)
    }

    #[test]
    fn the_reasons_of_the_map_decoder() {
        let clicks = schema(StreamKind::Click);
        assert_eq!(
            decode_json(clicks, r#"{"click_id":1,"ts":3}"#, None),
            Err(Invalid::MissingField {
                field: "bid_id".into()
            })
        );
        let json = |text| match decode_json(clicks, text, None) {
            Err(Invalid::Json(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(json("{"), "EOF while parsing an object at line 1 column 1");
        assert_eq!(
            json("5"),
            "invalid type: integer `5`, expected a map at line 1 column 1"
        );
        assert_eq!(json("{} x"), "trailing characters at line 1 column 4");
        assert_eq!(
            json(r#"{"click_id":[1, {"a":null}],"bid_id":1,"ts":1}"#),
            r#"field `click_id` must be a number or a string, got [1,{"a":null}]"#
        );
        assert_eq!(
            json(r#"{"click_id":true,"bid_id":1,"ts":1}"#),
            "field `click_id` must be a number or a string, got true"
        );
        assert!(matches!(
            decode_json(clicks, r#"{"click_id":1.5,"bid_id":1,"ts":1}"#, None),
            Err(Invalid::BadNumber { ref value, .. }) if value == "1.5"
        ));
        assert!(matches!(
            decode_json(clicks, r#"{"click_id":" ","bid_id":1,"ts":1}"#, None),
            Err(Invalid::MissingField { .. })
        ));
        assert!(matches!(
            decode_json(clicks, r#"{"click_id":-1,"bid_id":1,"ts":1}"#, None),
            Err(Invalid::BadNumber { .. })
        ));
    }

    #[test]
    fn round_trips_the_encoder() {
        let bid = Event::Bid(Bid {
            bid_id: 1,
            ts: 2,
            campaign_id: 3,
            ad_id: 4,
            publisher_id: 5,
            region: Label::new("eu \"x\"").unwrap(),
            device: Label::new("ios").unwrap(),
            bid_price_micros: 6,
        });
        let record = Record::from(bid);
        let bids = schema(StreamKind::Bid);
        let text = super::super::json_object(bids, &record);
        assert_eq!(decode_json(bids, &text, None), Ok(record));
    }

    #[test]
    fn strict_streams_reject_unknown_keys() {
        let strict = StreamSpec::default_for(StreamKind::Click)
            .unknown_fields(UnknownFields::Reject)
            .resolve(StreamKind::Click)
            .unwrap();
        assert_eq!(
            decode_json(&strict, r#"{"click_id":1,"bid_id":1,"ts":1,"x":2}"#, None),
            Err(Invalid::UnknownField { field: "x".into() })
        );
    }
}
