//! Records written back as text: a headerless CSV line in declaration order, or a JSON
//! object, as `diffmill gen` writes them and dead letters quote them.

use std::collections::BTreeMap;

use crate::declare::{StreamSchema, Value};
use crate::event::Record;

/// `record` as one CSV line (no newline), fields in declaration order; a field holding a
/// comma, quote or line break is quoted.
pub fn csv_line(schema: &StreamSchema, record: &Record) -> String {
    let mut line = String::new();
    for (i, text) in schema.texts(record).into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if text.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&text.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&text);
        }
    }
    line
}

/// `record` as one JSON object (no newline), keys in alphabetical order: numbers as
/// numbers, strings as strings, booleans as booleans.
pub fn json_object(schema: &StreamSchema, record: &Record) -> String {
    let object: BTreeMap<&str, serde_json::Value> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let value = match schema.get(record, index) {
                Value::Id(v) | Value::Timestamp(v) => serde_json::Value::from(v),
                Value::Int(v) | Value::Money(v) => serde_json::Value::from(v),
                Value::String(label) => serde_json::Value::from(label.as_str()),
                Value::Bool(b) => serde_json::Value::from(b),
            };
            (field.name.as_str(), value)
        })
        .collect();
    serde_json::to_string(&object).unwrap_or_default()
}
