//! Dimension keys: the grouped bid fields of an aggregate row, packed in a fixed-size,
//! order-preserving key, and the *unattributed* key of children without a parent.

use std::fmt;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FieldType, StreamSchema, Value};
use crate::event::Record;

/// Bytes of a dimension key. Each grouped field takes one byte more than its value's
/// encoding (ids and ints 9, strings 25, booleans 2); the dims of all aggregates of a graph
/// together must fit.
pub const KEY_BYTES: usize = 96;

/// Bytes of the compact key the dataflow carries when the dims of all aggregates fit in
/// it (today's default dims, campaign and region, take 34): every parent, attributed
/// child and aggregate update carries a key, so a key half as wide moves half the bytes.
/// Rows reach the sinks with keys of [`KEY_BYTES`] (see [`Attribution::widen`]).
pub const COMPACT_KEY_BYTES: usize = 48;

/// The text written for every dim of an unattributed row.
pub const UNATTRIBUTED: &str = "unattributed";

/// The text written for a dim value beyond its dimension's bound on distinct values.
pub const OTHER: &str = "other";

/// Tag of a slot holding a value.
const VALUE: u8 = 1;
/// Tag of a slot holding `other`.
const OTHER_TAG: u8 = 2;

/// The values of some dimensions, each in a slot at a fixed offset: a tag byte (a value,
/// or `other`) and the value's order-preserving encoding. Keys compare like their values
/// in column order, with `other` after every value. `N` bytes hold the slots (zero
/// beyond them): [`KEY_BYTES`] in rows, [`COMPACT_KEY_BYTES`] inside the dataflow when
/// the dims fit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key<const N: usize = KEY_BYTES>([u8; N]);

impl<const N: usize> Default for Key<N> {
    fn default() -> Self {
        Key([0; N])
    }
}

impl<const N: usize> fmt::Debug for Key<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.0.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        f.write_str("Key(")?;
        for byte in &self.0[..used] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

impl<const N: usize> Serialize for Key<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Key<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for Bytes<N> {
            type Value = Key<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Key<N>, E> {
                <[u8; N]>::try_from(bytes)
                    .map(Key)
                    .map_err(|_| E::invalid_length(bytes.len(), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Key<N>, A::Error> {
                let mut array = [0u8; N];
                for (i, slot) in array.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(Key(array))
            }
        }
        deserializer.deserialize_bytes(Bytes::<N>)
    }
}

/// The dimension key of an aggregate row.
///
/// *Unattributed*: the value under which a child (impression, click, conversion) is
/// counted while its parent has not arrived, or when it has no parent within the match
/// bound. When the parent arrives, the contribution moves to the parent's dims: a
/// retraction under `Unattributed` and an insertion under `Dims` in the same batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attribution<const N: usize = KEY_BYTES> {
    /// The parent is missing.
    Unattributed,
    /// The grouped dimensions of the bid the event descends from.
    Dims(Key<N>),
}

impl<const N: usize> Attribution<N> {
    /// The same attribution with a key of [`KEY_BYTES`] (`N` is at most that).
    pub fn widen(&self) -> Attribution {
        match self {
            Attribution::Unattributed => Attribution::Unattributed,
            Attribution::Dims(key) => {
                let mut wide = Key::default();
                wide.0[..N].copy_from_slice(&key.0);
                Attribution::Dims(wide)
            }
        }
    }
}

/// One grouped bid field and where its slot is in a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimSlot {
    /// The field's name (the column's name in sinks).
    pub name: String,
    /// Its type.
    pub ty: FieldType,
    /// Its position among the bid's fields.
    pub field: usize,
    /// Which bit of a record's `marks` says the value is bucketed as `other` (for a
    /// dimension with a bound on distinct values).
    pub mark: Option<u8>,
    /// Offset of its slot in the key.
    pub offset: usize,
}

impl DimSlot {
    /// Bytes of the slot: the tag and the value.
    pub fn width(&self) -> usize {
        1 + self.ty.width()
    }
}

/// The slots of a key: a set of grouped bid fields, in the bid's field order.
///
/// # Examples
/// ```
/// use diffmill::declare::{Attribution, Key, KeyLayout, Schema};
/// use diffmill::event::{Bid, Event, Label, Record, StreamKind};
///
/// let bids = Schema::funnel().stream(StreamKind::Bid);
/// let layout = KeyLayout::new(bids, &["region", "campaign_id"], &[]).unwrap();
/// let bid = Event::Bid(Bid { bid_id: 1, ts: 0, campaign_id: 7, ad_id: 1, publisher_id: 1,
///     region: Label::new("eu").unwrap(), device: Label::new("web").unwrap(),
///     bid_price_micros: 0 });
/// let key: Key = layout.key_of(bids, &Record::from(bid));
/// assert_eq!(layout.width(), 34); // an id's slot takes 9 bytes, a string's 25
/// assert_eq!(layout.texts(&Attribution::Dims(key)), ["7", "eu"]);
/// let unattributed: Attribution = Attribution::Unattributed;
/// assert_eq!(layout.texts(&unattributed), ["unattributed", "unattributed"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLayout {
    slots: Vec<DimSlot>,
}

impl KeyLayout {
    /// The layout of the bid fields `names` (put in the bid's field order, duplicates
    /// removed); `bounded` lists the dimensions with a bound, whose position is their
    /// mark bit.
    ///
    /// # Errors
    /// The first name that is not a groupable bid field, or a layout longer than
    /// [`KEY_BYTES`] (as a message).
    pub fn new(
        bids: &StreamSchema,
        names: &[impl AsRef<str>],
        bounded: &[String],
    ) -> Result<KeyLayout, (usize, String)> {
        let mut fields = Vec::new();
        for (position, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let Some(index) = bids.index(name) else {
                return Err((
                    position,
                    format!("`{name}` is not a bid field (bid fields: {})", bids.names()),
                ));
            };
            let ty = bids.fields()[index].ty;
            if !ty.groupable() {
                return Err((
                    position,
                    format!("`{name}` is a {ty} field: group by an id, int, string or bool field"),
                ));
            }
            fields.push(index);
        }
        fields.sort_unstable();
        fields.dedup();
        let mut slots = Vec::with_capacity(fields.len());
        let mut offset = 0;
        for index in fields {
            let field = &bids.fields()[index];
            let slot = DimSlot {
                name: field.name.clone(),
                ty: field.ty,
                field: index,
                mark: bounded
                    .iter()
                    .position(|b| *b == field.name)
                    .map(|p| p as u8),
                offset,
            };
            offset += slot.width();
            slots.push(slot);
        }
        if offset > KEY_BYTES {
            return Err((
                0,
                format!(
                    "the grouped fields take {offset} bytes of key, more than {KEY_BYTES} \
                     (ids and ints take 9, strings 25, booleans 2)"
                ),
            ));
        }
        Ok(KeyLayout { slots })
    }

    /// The slots, in column order.
    pub fn slots(&self) -> &[DimSlot] {
        &self.slots
    }

    /// The column names.
    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Bytes the slots take: the least key width that holds them.
    pub fn width(&self) -> usize {
        self.slots.last().map_or(0, |s| s.offset + s.width())
    }

    /// The key of a bid record, in a key of `N` bytes (at least [`KeyLayout::width`]).
    pub fn key_of<const N: usize>(&self, bids: &StreamSchema, record: &Record) -> Key<N> {
        let mut key = Key::default();
        for slot in &self.slots {
            let out = &mut key.0[slot.offset..slot.offset + slot.width()];
            if slot.mark.is_some_and(|bit| record.marks & (1 << bit) != 0) {
                out[0] = OTHER_TAG;
                continue;
            }
            out[0] = VALUE;
            let from = bids.offset(slot.field);
            let width = slot.ty.width();
            if slot.field == bids.id_index() {
                Value::Id(record.id).encode(&mut out[1..]);
            } else if slot.field == bids.time_index() {
                Value::Timestamp(record.ts).encode(&mut out[1..]);
            } else {
                out[1..].copy_from_slice(&record.payload()[from..from + width]);
            }
        }
        key
    }

    /// How to cut this layout's key out of a key of `wider` (which holds every slot of
    /// this one): `(offset in wider, offset here, width)` per slot.
    pub fn projection_from(&self, wider: &KeyLayout) -> Projection {
        if self.slots == wider.slots && !self.slots.is_empty() {
            return Projection {
                copies: Vec::new(),
                identity: true,
            };
        }
        let copies = self
            .slots
            .iter()
            .filter_map(|slot| {
                wider
                    .slots
                    .iter()
                    .find(|w| w.field == slot.field)
                    .map(|w| (w.offset, slot.offset, slot.width()))
            })
            .collect();
        Projection {
            copies,
            identity: false,
        }
    }

    /// The value of each dim as written to sinks: its text, `other`, or `unattributed` for
    /// every dim of an unattributed row.
    pub fn texts<const N: usize>(&self, attribution: &Attribution<N>) -> Vec<String> {
        self.slots
            .iter()
            .map(|slot| match attribution {
                Attribution::Unattributed => UNATTRIBUTED.to_owned(),
                Attribution::Dims(key) => slot_text(slot, key),
            })
            .collect()
    }

    /// A key of this layout from one value per slot (`None` for `other`), for tests and
    /// programs that build expected rows.
    pub fn key<const N: usize>(&self, values: &[Option<Value>]) -> Key<N> {
        let mut key = Key::default();
        for (slot, value) in self.slots.iter().zip(values) {
            let out = &mut key.0[slot.offset..slot.offset + slot.width()];
            match value {
                Some(value) => {
                    out[0] = VALUE;
                    value.encode(&mut out[1..]);
                }
                None => out[0] = OTHER_TAG,
            }
        }
        key
    }
}

fn slot_text<const N: usize>(slot: &DimSlot, key: &Key<N>) -> String {
    let bytes = &key.0[slot.offset..slot.offset + slot.width()];
    match bytes[0] {
        OTHER_TAG => OTHER.to_owned(),
        _ => Value::decode(slot.ty, &bytes[1..]).to_string(),
    }
}

/// Copies the slots of a narrower key out of a wider one (an aggregate's dims out of the
/// dims of all aggregates).
///
/// An aggregate without dims has one row per window: its rows are keyed by the text of
/// their dims (docs/semantics.md §0), and no dims tell an unattributed contribution from
/// an attributed one, so both go to the one row (which matters for distinct counts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    copies: Vec<(usize, usize, usize)>,
    /// The narrower layout is the wider one (a graph with one aggregate): nothing to cut.
    identity: bool,
}

impl Projection {
    /// The narrower attribution of `attribution`.
    pub fn apply<const N: usize>(&self, attribution: &Attribution<N>) -> Attribution<N> {
        if self.identity {
            return *attribution;
        }
        match attribution {
            Attribution::Unattributed if self.copies.is_empty() => {
                Attribution::Dims(Key::default())
            }
            Attribution::Unattributed => Attribution::Unattributed,
            Attribution::Dims(wide) => {
                let mut key = Key::default();
                for &(from, to, width) in &self.copies {
                    key.0[to..to + width].copy_from_slice(&wide.0[from..from + width]);
                }
                Attribution::Dims(key)
            }
        }
    }
}
