//! JSON records decoded with typed serde straight into a record: one pass over the text,
//! each declared key's value parsed into the record as it is read, undeclared keys skipped.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::too_long;
use crate::declare::{
    parse_id, parse_ts, FieldType, StreamSchema, UnknownFields, Value, MAX_FIELDS,
};
use crate::event::{Invalid, Millis, Record, MAX_TS};

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
    let mut object = Object::new(schema);
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut object)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| Invalid::Json(e.to_string()))?;
    object.finish(fallback_ts)
}

const _: () = assert!(
    MAX_FIELDS <= u32::BITS as usize,
    "one bit per field in a u32"
);

/// The record being read from one JSON object, and what is known of its fields so far.
struct Object<'s> {
    schema: &'s StreamSchema,
    record: Record,
    /// One bit per declared field whose last value was set in the record (a stream has at
    /// most [`MAX_FIELDS`] fields).
    present: u32,
    /// The reasons of the declared fields whose last value was not one of their type.
    problems: Vec<(usize, Invalid)>,
    /// The first undeclared key, when the stream rejects them.
    unknown: Option<String>,
}

impl<'s> Object<'s> {
    fn new(schema: &'s StreamSchema) -> Object<'s> {
        Object {
            schema,
            record: Record::new(schema.kind(), 0, 0),
            present: 0,
            problems: Vec::new(),
            unknown: None,
        }
    }

    /// Forgets what an earlier value of field `index` came to: of a repeated key, the
    /// last value counts.
    fn forget(&mut self, index: usize) {
        self.present &= !(1 << index);
        if !self.problems.is_empty() {
            self.problems.retain(|(field, _)| *field != index);
        }
    }

    /// The record, or the first problem: an undeclared key of a strict stream, then the
    /// first missing or mistyped field in declaration order.
    fn finish(mut self, fallback_ts: Option<Millis>) -> Result<Record, Invalid> {
        if let Some(field) = self.unknown {
            return Err(Invalid::UnknownField { field });
        }
        for (index, field) in self.schema.fields().iter().enumerate() {
            if self.present & (1 << index) != 0 {
                continue;
            }
            if let Some(at) = self.problems.iter().position(|(i, _)| *i == index) {
                return Err(self.problems.swap_remove(at).1);
            }
            match fallback_ts {
                Some(ts) if index == self.schema.time_index() && ts <= MAX_TS => {
                    self.record.ts = ts;
                }
                _ => {
                    return Err(Invalid::MissingField {
                        field: field.name.clone(),
                    })
                }
            }
        }
        Ok(self.record)
    }
}

impl<'de> DeserializeSeed<'de> for &mut Object<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Object<'_> {
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
                    self.forget(index);
                    map.next_value_seed(FieldSeed {
                        object: &mut *self,
                        index,
                    })?;
                    next = index + 1;
                }
                Some(Key::Unknown(name)) => {
                    map.next_value::<IgnoredAny>()?;
                    if name.is_some() {
                        self.unknown = name;
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
/// first the one declared after the previous key's (keys usually come in declaration
/// order), then every field.
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

/// Reads one value of declared field `index` straight into the record, with the reasons
/// the text of a CSV column gives: `null` or a string of blanks is as if the key were not
/// there.
struct FieldSeed<'o, 's> {
    object: &'o mut Object<'s>,
    index: usize,
}

impl FieldSeed<'_, '_> {
    fn name(&self) -> &str {
        &self.object.schema.fields()[self.index].name
    }

    fn ty(&self) -> FieldType {
        self.object.schema.fields()[self.index].ty
    }

    /// Parses a string's text (or a number's, when it is no value of the type as a number).
    fn text(self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let schema = self.object.schema;
        let field = &schema.fields()[self.index];
        let name = &field.name;
        let record = &mut self.object.record;
        let parsed = if self.index == schema.id_index() {
            parse_id(name, text).map(|id| record.id = id)
        } else if self.index == schema.time_index() {
            parse_ts(name, text).map(|ts| record.ts = ts)
        } else {
            let offset = schema.offset(self.index);
            field
                .ty
                .parse_into(name, text, &mut record.payload_mut()[offset..])
        };
        match parsed {
            Ok(()) => self.object.present |= 1 << self.index,
            Err(reason) => self.bad(reason),
        }
    }

    /// A non-negative JSON integer: the value itself when it is one of the type.
    fn unsigned(self, v: u64) {
        match self.ty() {
            FieldType::Id if v > 0 => self.set(Value::Id(v)),
            FieldType::Timestamp if v <= MAX_TS => self.set(Value::Timestamp(v)),
            FieldType::Money if v <= i64::MAX as u64 => self.set(Value::Money(v as i64)),
            FieldType::Int if v <= i64::MAX as u64 => self.set(Value::Int(v as i64)),
            _ => self.text(&v.to_string()),
        }
    }

    fn set(self, value: Value) {
        let object = self.object;
        object.schema.set(&mut object.record, self.index, value);
        object.present |= 1 << self.index;
    }

    fn bad(self, reason: Invalid) {
        self.object.problems.push((self.index, reason));
    }

    fn not_scalar(self, json: &str) {
        let reason = Invalid::Json(format!(
            "field `{}` must be a number or a string, got {json}",
            self.name()
        ));
        self.bad(reason);
    }
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.text(v);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.unsigned(v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        match u64::try_from(v) {
            Ok(v) => self.unsigned(v),
            Err(_) if self.ty() == FieldType::Int => self.set(Value::Int(v)),
            Err(_) => self.text(&v.to_string()),
        }
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        let text = serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        self.text(&text);
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        match self.ty() {
            FieldType::Bool => self.set(Value::Bool(v)),
            _ => self.not_scalar(&v.to_string()),
        }
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        self.not_scalar(&value.to_string());
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.not_scalar(&value.to_string());
        Ok(())
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
    fn of_a_repeated_key_the_last_value_counts() {
        let clicks = schema(StreamKind::Click);
        let text = r#"{"click_id":"x","bid_id":2,"ts":3,"click_id":1}"#;
        let record = decode_json(clicks, text, None).unwrap();
        assert_eq!((record.id, record.ts), (1, 3));
        assert_eq!(
            decode_json(
                clicks,
                r#"{"click_id":1,"bid_id":2,"ts":3,"click_id":null}"#,
                None
            ),
            Err(Invalid::MissingField {
                field: "click_id".into()
            })
        );
        let blank_time = r#"{"click_id":1,"bid_id":2,"ts":"x","ts":" "}"#;
        assert_eq!(
            decode_json(clicks, blank_time, Some(9)).map(|r| r.ts),
            Ok(9)
        );
    }

    #[test]
    fn the_first_problem_in_declaration_order_not_in_the_text() {
        let clicks = schema(StreamKind::Click);
        assert_eq!(
            decode_json(clicks, r#"{"ts":"x","bid_id":0,"click_id":1}"#, None),
            Err(Invalid::ZeroId {
                field: "bid_id".into()
            })
        );
        assert!(matches!(
            decode_json(clicks, r#"{"ts":"x","click_id":1}"#, None),
            Err(Invalid::MissingField { ref field }) if field == "bid_id"
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
