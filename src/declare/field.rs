//! Declared fields: their types, how a value is parsed from text, and how it is encoded.
//!
//! Every value is stored in an order-preserving byte encoding (big-endian, the sign bit
//! of signed integers flipped, strings as their length then their bytes padded with
//! zeros), so comparing encodings byte by byte compares the values, and equal encodings
//! are equal values. Records, dimension keys and distinct-counted values all use it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{Invalid, Label, LABEL_MAX_BYTES, MAX_TS};

/// The type of a declared field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldType {
    /// A positive integer id (`u64`, zero rejected as missing).
    Id,
    /// A signed integer (`i64`).
    Int,
    /// Integer micros of a currency unit, never negative.
    Money,
    /// A string of at most 23 bytes of UTF-8.
    String,
    /// Milliseconds since the Unix epoch, UTC, up to the end of year 9999.
    Timestamp,
    /// `true` or `false`.
    Bool,
}

impl FieldType {
    /// Every type, as listed in messages.
    pub const ALL: [FieldType; 6] = [
        FieldType::Id,
        FieldType::Int,
        FieldType::Money,
        FieldType::String,
        FieldType::Timestamp,
        FieldType::Bool,
    ];

    /// The type's name in graph files.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Int => "int",
            FieldType::Money => "money",
            FieldType::String => "string",
            FieldType::Timestamp => "timestamp",
            FieldType::Bool => "bool",
        }
    }

    /// Bytes of the value's encoding.
    pub fn width(self) -> usize {
        match self {
            FieldType::Id | FieldType::Int | FieldType::Money | FieldType::Timestamp => 8,
            FieldType::String => 1 + LABEL_MAX_BYTES,
            FieldType::Bool => 1,
        }
    }

    /// Whether a `sum` may add up values of this type.
    pub fn summable(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Money)
    }

    /// Whether aggregates may be grouped by a field of this type.
    pub fn groupable(self) -> bool {
        !matches!(self, FieldType::Money | FieldType::Timestamp)
    }

    /// Parses one field's text (already trimmed and not empty) as a value of this type,
    /// with the reason a dead letter gives when it is not one.
    ///
    /// # Errors
    /// An [`Invalid`] naming `field`.
    pub fn parse(self, field: &str, text: &str) -> Result<Value, Invalid> {
        Ok(match self {
            FieldType::Id => Value::Id(parse_id(field, text)?),
            FieldType::Timestamp => Value::Timestamp(parse_ts(field, text)?),
            FieldType::Money => Value::Money(parse_money(field, text)?),
            FieldType::Int => Value::Int(parse_int(field, text)?),
            FieldType::String => {
                Value::String(Label::new(text).ok_or_else(|| too_long(field, text))?)
            }
            FieldType::Bool => Value::Bool(parse_bool(field, text)?),
        })
    }

    /// Parses one field's text like [`FieldType::parse`] and writes the value's
    /// order-preserving encoding (see [`Value::encode`]) straight to the start of `out`,
    /// without making a [`Value`]: the decoders' hot path.
    ///
    /// # Errors
    /// An [`Invalid`] naming `field`.
    pub fn parse_into(self, field: &str, text: &str, out: &mut [u8]) -> Result<(), Invalid> {
        match self {
            FieldType::Id => out[..8].copy_from_slice(&parse_id(field, text)?.to_be_bytes()),
            FieldType::Timestamp => out[..8].copy_from_slice(&parse_ts(field, text)?.to_be_bytes()),
            FieldType::Money => out[..8].copy_from_slice(&signed(parse_money(field, text)?)),
            FieldType::Int => out[..8].copy_from_slice(&signed(parse_int(field, text)?)),
            FieldType::String => {
                let bytes = text.as_bytes();
                if bytes.len() > LABEL_MAX_BYTES {
                    return Err(too_long(field, text));
                }
                out[0] = bytes.len() as u8;
                out[1..1 + bytes.len()].copy_from_slice(bytes);
                out[1 + bytes.len()..1 + LABEL_MAX_BYTES].fill(0);
            }
            FieldType::Bool => out[0] = u8::from(parse_bool(field, text)?),
        }
        Ok(())
    }
}

/// The order-preserving encoding of a signed integer: its two's complement with the sign
/// bit flipped, big-endian.
fn signed(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

/// The reason for `text` that is not a value of the kind `expected`.
fn bad(field: &str, text: &str, expected: &'static str) -> Invalid {
    Invalid::BadNumber {
        field: field.to_owned(),
        value: shorten(text),
        expected,
    }
}

fn too_long(field: &str, text: &str) -> Invalid {
    Invalid::StringTooLong {
        field: field.to_owned(),
        len: text.len(),
        max: LABEL_MAX_BYTES,
    }
}

/// An `id`: a positive integer.
pub(crate) fn parse_id(field: &str, text: &str) -> Result<u64, Invalid> {
    match text.parse::<u64>() {
        Ok(0) => Err(Invalid::ZeroId {
            field: field.to_owned(),
        }),
        Ok(value) => Ok(value),
        Err(_) => Err(bad(field, text, "positive integer id")),
    }
}

/// A `timestamp`: ms since the epoch in `[0, MAX_TS]`.
pub(crate) fn parse_ts(field: &str, text: &str) -> Result<u64, Invalid> {
    let out_of_range = || Invalid::TsOutOfRange {
        field: field.to_owned(),
        ts: shorten(text),
    };
    match text.parse::<u64>() {
        Ok(value) if value <= MAX_TS => Ok(value),
        Ok(_) => Err(out_of_range()),
        // Not a u64: still an integer (negative, or beyond u64) is out of range.
        Err(_) => match text.parse::<i128>() {
            Ok(_) => Err(out_of_range()),
            Err(_) => Err(bad(field, text, "integer of milliseconds since the epoch")),
        },
    }
}

/// `money`: a non-negative integer amount of micros.
fn parse_money(field: &str, text: &str) -> Result<i64, Invalid> {
    let value: i64 = text
        .parse()
        .map_err(|_| bad(field, text, "integer amount of micros"))?;
    if value < 0 {
        return Err(Invalid::NegativeMoney {
            field: field.to_owned(),
            value,
        });
    }
    Ok(value)
}

fn parse_int(field: &str, text: &str) -> Result<i64, Invalid> {
    text.parse().map_err(|_| bad(field, text, "integer"))
}

fn parse_bool(field: &str, text: &str) -> Result<bool, Invalid> {
    match text {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad(field, text, "boolean (true or false)")),
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FieldType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.name() == text.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = FieldType::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown field type `{text}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl Serialize for FieldType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One declared field: its name and type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// The field's name: a CSV header column, a JSON key.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: FieldType,
}

impl Field {
    /// A field named `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: FieldType) -> Field {
        Field {
            name: name.into(),
            ty,
        }
    }
}

/// A decoded value of a declared field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// A value of an `id` field.
    Id(u64),
    /// A value of an `int` field.
    Int(i64),
    /// A value of a `money` field.
    Money(i64),
    /// A value of a `string` field.
    String(Label),
    /// A value of a `timestamp` field.
    Timestamp(u64),
    /// A value of a `bool` field.
    Bool(bool),
}

impl Value {
    /// The value as a signed integer, for sums and comparisons (`None` for strings and
    /// booleans).
    pub fn as_i128(&self) -> Option<i128> {
        match *self {
            Value::Id(v) | Value::Timestamp(v) => Some(i128::from(v)),
            Value::Int(v) | Value::Money(v) => Some(i128::from(v)),
            Value::String(_) | Value::Bool(_) => None,
        }
    }

    /// Writes the value's order-preserving encoding to the start of `out` (which holds at
    /// least the type's width).
    pub fn encode(&self, out: &mut [u8]) {
        match *self {
            Value::Id(v) | Value::Timestamp(v) => out[..8].copy_from_slice(&v.to_be_bytes()),
            Value::Int(v) | Value::Money(v) => out[..8].copy_from_slice(&signed(v)),
            Value::String(label) => {
                let text = label.as_str().as_bytes();
                out[0] = text.len() as u8;
                out[1..1 + text.len()].copy_from_slice(text);
                out[1 + text.len()..1 + LABEL_MAX_BYTES].fill(0);
            }
            Value::Bool(b) => out[0] = u8::from(b),
        }
    }

    /// Reads a value of type `ty` from its encoding at the start of `bytes`.
    pub fn decode(ty: FieldType, bytes: &[u8]) -> Value {
        let word = || {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[..8]);
            u64::from_be_bytes(raw)
        };
        match ty {
            FieldType::Id => Value::Id(word()),
            FieldType::Timestamp => Value::Timestamp(word()),
            FieldType::Int => Value::Int((word() ^ (1 << 63)) as i64),
            FieldType::Money => Value::Money((word() ^ (1 << 63)) as i64),
            FieldType::String => {
                let len = usize::from(bytes[0]).min(LABEL_MAX_BYTES);
                let text = std::str::from_utf8(&bytes[1..1 + len]).unwrap_or_default();
                Value::String(Label::new(text).unwrap_or_default())
            }
            FieldType::Bool => Value::Bool(bytes[0] != 0),
        }
    }
}

impl fmt::Display for Value {
    /// As written in CSV files and dims: decimal numbers, the string's text, `true` or
    /// `false`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Id(v) | Value::Timestamp(v) => write!(f, "{v}"),
            Value::Int(v) | Value::Money(v) => write!(f, "{v}"),
            Value::String(label) => f.write_str(label.as_str()),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `text`, cut after 40 characters, for messages.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_order_like_values() {
        let encoded = |value: Value, ty: FieldType| {
            let mut out = vec![0u8; ty.width()];
            value.encode(&mut out);
            assert_eq!(Value::decode(ty, &out), value);
            out
        };
        let ints = [-5i64, -1, 0, 3, i64::MAX];
        for pair in ints.windows(2) {
            assert!(
                encoded(Value::Int(pair[0]), FieldType::Int)
                    < encoded(Value::Int(pair[1]), FieldType::Int)
            );
        }
        let label = |t| Value::String(Label::new(t).unwrap());
        // Strings order as labels do: shorter first, then by bytes.
        assert!(encoded(label("zz"), FieldType::String) < encoded(label("aaa"), FieldType::String));
        assert!(encoded(label("ab"), FieldType::String) < encoded(label("ac"), FieldType::String));
        assert!(label("zz") < label("aaa"));
    }

    #[test]
    fn parse_reasons() {
        assert_eq!(FieldType::Id.parse("f", "7"), Ok(Value::Id(7)));
        assert_eq!(
            FieldType::Id.parse("f", "0"),
            Err(Invalid::ZeroId { field: "f".into() })
        );
        assert!(matches!(
            FieldType::Money.parse("m", "-1"),
            Err(Invalid::NegativeMoney { .. })
        ));
        assert_eq!(FieldType::Int.parse("i", "-1"), Ok(Value::Int(-1)));
        assert_eq!(FieldType::Bool.parse("b", "true"), Ok(Value::Bool(true)));
        assert!("float".parse::<FieldType>().is_err());
    }
}
