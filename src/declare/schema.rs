//! Declared streams: each stream's fields and types, which one is the id, the event time
//! and the parent key; today's four streams are the default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{DeclError, Field, FieldType, Value};
use crate::event::{Event, EventId, Record, StreamKind, PAYLOAD_BYTES};

/// Most fields one stream may declare.
pub const MAX_FIELDS: usize = 32;

/// What a source does with a column or JSON key that the stream does not declare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Ignore it (the default).
    #[default]
    Ignore,
    /// Dead-letter the record (for CSV: every record of a file whose header has one).
    Reject,
}

/// A stream's fields in declaration order, written as a table `name = "type"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<Field>);

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for field in &self.0 {
            map.serialize_entry(&field.name, &field.ty)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of field names and types, e.g. `campaign_id = \"id\"`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some((name, ty)) = map.next_entry::<String, FieldType>()? {
                    fields.push(Field::new(name, ty));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// A stream's declaration as written in a graph file (`[stream.<name>]`), or built in
/// Rust: its fields in order, and which of them is the id, the event time and (for
/// impressions, clicks and conversions) the parent's id.
///
/// # Examples
/// ```
/// use diffmill::declare::{FieldType, StreamSpec};
/// use diffmill::event::StreamKind;
///
/// let conversions = StreamSpec::new("conversion_id", "ts")
///     .parent("click_id")
///     .field("conversion_id", FieldType::Id)
///     .field("click_id", FieldType::Id)
///     .field("ts", FieldType::Timestamp)
///     .field("type", FieldType::String)
///     .field("value_micros", FieldType::Money);
/// let schema = conversions.resolve(StreamKind::Conversion).unwrap();
/// assert_eq!(schema.index("type"), Some(3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// The field holding the record's own id (type `id`): what dedup keys on.
    pub id: String,
    /// The field holding the event time (type `timestamp`).
    pub time: String,
    /// The field holding the parent's id (type `id`): `bid_id` for impressions and
    /// clicks, `click_id` for conversions. Bids have none.
    #[serde(default)]
    pub parent: Option<String>,
    /// What to do with undeclared columns or keys: `ignore` (default) or `reject`.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// The fields in order (the CSV column order of headerless input and of `gen`).
    pub fields: Fields,
}

impl StreamSpec {
    /// A stream with id field `id`, event time field `time` and no fields yet.
    pub fn new(id: impl Into<String>, time: impl Into<String>) -> StreamSpec {
        StreamSpec {
            id: id.into(),
            time: time.into(),
            parent: None,
            unknown_fields: UnknownFields::Ignore,
            fields: Fields::default(),
        }
    }

    /// Sets the parent key field.
    pub fn parent(mut self, field: impl Into<String>) -> StreamSpec {
        self.parent = Some(field.into());
        self
    }

    /// Adds a field.
    pub fn field(mut self, name: impl Into<String>, ty: FieldType) -> StreamSpec {
        self.fields.0.push(Field::new(name, ty));
        self
    }

    /// Sets what happens to undeclared columns or keys.
    pub fn unknown_fields(mut self, unknown: UnknownFields) -> StreamSpec {
        self.unknown_fields = unknown;
        self
    }

    /// The declaration of today's stream `kind` (docs/design.md §2).
    pub fn default_for(kind: StreamKind) -> StreamSpec {
        use FieldType::{Id, Money, String, Timestamp};
        match kind {
            StreamKind::Bid => StreamSpec::new("bid_id", "ts")
                .field("bid_id", Id)
                .field("ts", Timestamp)
                .field("campaign_id", Id)
                .field("ad_id", Id)
                .field("publisher_id", Id)
                .field("region", String)
                .field("device", String)
                .field("bid_price_micros", Money),
            StreamKind::Impression => StreamSpec::new("impression_id", "ts")
                .parent("bid_id")
                .field("impression_id", Id)
                .field("bid_id", Id)
                .field("ts", Timestamp)
                .field("cost_micros", Money),
            StreamKind::Click => StreamSpec::new("click_id", "ts")
                .parent("bid_id")
                .field("click_id", Id)
                .field("bid_id", Id)
                .field("ts", Timestamp),
            StreamKind::Conversion => StreamSpec::new("conversion_id", "ts")
                .parent("click_id")
                .field("conversion_id", Id)
                .field("click_id", Id)
                .field("ts", Timestamp)
                .field("value_micros", Money),
        }
    }

    /// Checks the declaration and lays its fields out in a record.
    ///
    /// # Errors
    /// A [`DeclError`] under `stream.<kind>`: a key field that is missing or of the wrong
    /// type, a parent on bids or none on a child stream, too many or too wide fields.
    pub fn resolve(&self, kind: StreamKind) -> Result<StreamSchema, DeclError> {
        let at = |key: &str, problem: String| {
            DeclError::at(&format!("stream.{}.{key}", kind.name()), problem)
        };
        let fields = &self.fields.0;
        if fields.len() > MAX_FIELDS {
            return Err(at(
                "fields",
                format!("{} fields, at most {MAX_FIELDS}", fields.len()),
            ));
        }
        for (i, field) in fields.iter().enumerate() {
            if field.name.trim().is_empty() {
                return Err(at("fields", "a field has an empty name".into()));
            }
            if fields[..i].iter().any(|f| f.name == field.name) {
                return Err(at(
                    &format!("fields.{}", field.name),
                    "declared twice".into(),
                ));
            }
        }
        let role = |key: &str, name: &str, ty: FieldType| -> Result<usize, DeclError> {
            let index = fields
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| at(key, format!("`{name}` is not a declared field")))?;
            if fields[index].ty != ty {
                return Err(at(
                    key,
                    format!(
                        "`{name}` is a {} field, it must be {}",
                        fields[index].ty, ty
                    ),
                ));
            }
            Ok(index)
        };
        let id = role("id", &self.id, FieldType::Id)?;
        let time = role("time", &self.time, FieldType::Timestamp)?;
        let parent = match (kind, &self.parent) {
            (StreamKind::Bid, None) => None,
            (StreamKind::Bid, Some(_)) => {
                return Err(at("parent", "bids have no parent".into()));
            }
            (_, None) => {
                return Err(at(
                    "parent",
                    format!(
                        "missing: name the field holding the {} id",
                        parent_name(kind)
                    ),
                ))
            }
            (_, Some(name)) => Some(role("parent", name, FieldType::Id)?),
        };
        let mut offsets = Vec::with_capacity(fields.len());
        let mut width = 0;
        for (i, field) in fields.iter().enumerate() {
            offsets.push(width);
            if i != id && i != time {
                width += field.ty.width();
            }
        }
        if width > PAYLOAD_BYTES {
            return Err(at(
                "fields",
                format!(
                    "the fields other than the id and time take {width} bytes, more than \
                     {PAYLOAD_BYTES} (ids, ints, money and timestamps take 8, strings 24, \
                     booleans 1): declare fewer fields"
                ),
            ));
        }
        Ok(StreamSchema {
            kind,
            fields: fields.clone(),
            offsets,
            id,
            time,
            parent,
            unknown: self.unknown_fields,
        })
    }
}

fn parent_name(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Conversion => "click",
        _ => "bid",
    }
}

/// A resolved stream declaration: its fields and where each lives in a [`Record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSchema {
    kind: StreamKind,
    fields: Vec<Field>,
    offsets: Vec<usize>,
    id: usize,
    time: usize,
    parent: Option<usize>,
    unknown: UnknownFields,
}

impl StreamSchema {
    /// The stream.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// The fields in declaration order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The position of the field named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The position of the id field.
    pub fn id_index(&self) -> usize {
        self.id
    }

    /// The position of the event time field.
    pub fn time_index(&self) -> usize {
        self.time
    }

    /// The position of the parent key field (`None` for bids).
    pub fn parent_index(&self) -> Option<usize> {
        self.parent
    }

    /// What sources do with undeclared columns or keys.
    pub fn unknown_fields(&self) -> UnknownFields {
        self.unknown
    }

    /// The names of the fields, comma-separated, for messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        names.join(", ")
    }

    /// The offset of field `index` in the record's payload (meaningless for the id and
    /// time fields, which the record holds apart).
    pub fn offset(&self, index: usize) -> usize {
        self.offsets[index]
    }

    /// The value of field `index` of `record`.
    pub fn get(&self, record: &Record, index: usize) -> Value {
        if index == self.id {
            Value::Id(record.id)
        } else if index == self.time {
            Value::Timestamp(record.ts)
        } else {
            let offset = self.offsets[index];
            Value::decode(self.fields[index].ty, &record.payload()[offset..])
        }
    }

    /// Sets field `index` of `record` to `value` (of the field's type).
    pub fn set(&self, record: &mut Record, index: usize, value: Value) {
        if index == self.id {
            if let Value::Id(id) = value {
                record.id = id;
            }
        } else if index == self.time {
            if let Value::Timestamp(ts) = value {
                record.ts = ts;
            }
        } else {
            let offset = self.offsets[index];
            value.encode(&mut record.payload_mut()[offset..]);
        }
    }

    /// The parent's id of `record` (0 for bids).
    pub fn parent(&self, record: &Record) -> EventId {
        match self.parent {
            Some(index) => {
                let offset = self.offsets[index];
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&record.payload()[offset..offset + 8]);
                u64::from_be_bytes(raw)
            }
            None => 0,
        }
    }

    /// The record's fields as text, in declaration order: a headerless CSV record.
    pub fn texts(&self, record: &Record) -> Vec<String> {
        (0..self.fields.len())
            .map(|i| self.get(record, i).to_string())
            .collect()
    }
}

/// The four streams' declarations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    streams: [Arc<StreamSchema>; 4],
}

impl Schema {
    /// Resolves the declared streams; a stream not in `specs` takes its default.
    ///
    /// # Errors
    /// The first stream declaration that cannot work.
    pub fn resolve(specs: &BTreeMap<StreamKind, StreamSpec>) -> Result<Schema, DeclError> {
        let mut streams = Vec::with_capacity(4);
        for kind in StreamKind::ALL {
            let spec = specs
                .get(&kind)
                .cloned()
                .unwrap_or_else(|| StreamSpec::default_for(kind));
            streams.push(Arc::new(spec.resolve(kind)?));
        }
        let streams: [Arc<StreamSchema>; 4] = streams
            .try_into()
            .map_err(|_| DeclError::at("stream", "four streams"))?;
        Ok(Schema { streams })
    }

    /// The declaration of stream `kind`.
    pub fn stream(&self, kind: StreamKind) -> &Arc<StreamSchema> {
        &self.streams[kind.index()]
    }

    /// Today's four streams (docs/design.md §2): the default declaration.
    pub fn funnel() -> &'static Schema {
        static DEFAULT: OnceLock<Schema> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            Schema::resolve(&BTreeMap::new()).expect("the default declaration is valid")
        })
    }
}

impl Default for Schema {
    fn default() -> Self {
        Schema::funnel().clone()
    }
}

impl From<Event> for Record {
    /// Encodes an event of the default declaration.
    fn from(event: Event) -> Record {
        let schema = Schema::funnel().stream(event.kind());
        let mut record = Record::new(event.kind(), event.id(), event.ts());
        let values: Vec<Value> = match event {
            Event::Bid(b) => vec![
                Value::Id(b.bid_id),
                Value::Timestamp(b.ts),
                Value::Id(b.campaign_id),
                Value::Id(b.ad_id),
                Value::Id(b.publisher_id),
                Value::String(b.region),
                Value::String(b.device),
                Value::Money(b.bid_price_micros),
            ],
            Event::Impression(i) => vec![
                Value::Id(i.impression_id),
                Value::Id(i.bid_id),
                Value::Timestamp(i.ts),
                Value::Money(i.cost_micros),
            ],
            Event::Click(c) => vec![
                Value::Id(c.click_id),
                Value::Id(c.bid_id),
                Value::Timestamp(c.ts),
            ],
            Event::Conversion(c) => vec![
                Value::Id(c.conversion_id),
                Value::Id(c.click_id),
                Value::Timestamp(c.ts),
                Value::Money(c.value_micros),
            ],
        };
        for (index, value) in values.into_iter().enumerate() {
            schema.set(&mut record, index, value);
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Bid, Label};

    #[test]
    fn records_order_like_events() {
        let bid = |campaign_id, region: &str, price| Bid {
            bid_id: 1,
            ts: 5,
            campaign_id,
            ad_id: 2,
            publisher_id: 3,
            region: Label::new(region).unwrap(),
            device: Label::new("web").unwrap(),
            bid_price_micros: price,
        };
        let bids = [
            bid(1, "eu", 5),
            bid(1, "eu", 6),
            bid(1, "us", 0),
            bid(1, "apac", 0),
            bid(2, "eu", 0),
        ];
        for a in bids {
            for b in bids {
                let (ra, rb) = (Record::from(Event::Bid(a)), Record::from(Event::Bid(b)));
                assert_eq!(a.cmp(&b), ra.cmp(&rb), "{a:?} vs {b:?}");
            }
        }
        let schema = Schema::funnel().stream(StreamKind::Bid);
        let record = Record::from(Event::Bid(bids[3]));
        assert_eq!(schema.texts(&record).join(","), "1,5,1,2,3,apac,web,0");
    }

    #[test]
    fn bad_declarations_name_their_key() {
        let spec = StreamSpec::default_for(StreamKind::Click).parent("ts");
        let error = spec.resolve(StreamKind::Click).unwrap_err();
        assert_eq!(error.key(), "stream.click.parent");
        let mut wide = StreamSpec::default_for(StreamKind::Bid);
        for i in 0..4 {
            wide = wide.field(format!("s{i}"), FieldType::String);
        }
        assert_eq!(
            wide.resolve(StreamKind::Bid).unwrap_err().key(),
            "stream.bid.fields"
        );
    }
}
